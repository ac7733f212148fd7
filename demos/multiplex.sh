#!/usr/bin/env bash
# demo-multiplex: each client keeps receiving while it is still sending.
DEMO=demo-multiplex
. "$(dirname "$0")/lib.sh" "$@"

say "a TLS server"
start_server
client --nick pin </dev/null >/dev/null 2>&1 # pin the certificate once

talk() { # NAME DELAY: once both are logged in, send 8 lines, one every 0.25 s
    sleep 1
    sleep "$2"
    for i in $(seq 1 8); do
        echo "$1 says $i"
        sleep 0.25
    done
    sleep 1
}

say "alice and bob talk at the same time, each from one connection"
talk alice 0 | client --nick alice >"$WORK/alice" 2>&1 &
A=$!
talk bob 0.1 | client --nick bob >"$WORK/bob" 2>&1 &
B=$!
wait $A $B
show alice "$WORK/alice"
show bob "$WORK/bob"

# The line number of the last line matching $2 in file $1 (0 if none).
last() { grep -n "$2" "$1" | tail -1 | cut -d: -f1 || echo 0; }
first() { grep -n "$2" "$1" | head -1 | cut -d: -f1 || echo 0; }

say "checks"
check "alice received all 8 of bob's lines" test "$(grep -c '<bob> bob says' "$WORK/alice")" -eq 8
check "bob received all 8 of alice's lines" test "$(grep -c '<alice> alice says' "$WORK/bob")" -eq 8
check "alice received bob's lines while still sending her own" \
    test "$(first "$WORK/alice" '<bob> bob says')" -lt "$(last "$WORK/alice" '(you)> alice says 8')"
check "bob received alice's lines while still sending his own" \
    test "$(first "$WORK/bob" '<alice> alice says')" -lt "$(last "$WORK/bob" '(you)> bob says 8')"
finish
