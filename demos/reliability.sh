#!/usr/bin/env bash
# demo-reliability: alice streams 60 private messages to bob; halfway the
# server is killed with kill -9 and restarted. Both clients reconnect by
# themselves; every message alice was told was stored reaches bob exactly
# once, in order.
DEMO=demo-reliability
. "$(dirname "$0")/lib.sh" "$@"
N=60

say "a TLS server on a fixed port (so it can come back on the same one)"
BIND_PORT=$(free_port)
start_server
client --nick alice </dev/null >/dev/null 2>&1 # register both, pin the certificate
client --nick bob </dev/null >/dev/null 2>&1

say "bob listens; alice sends $N messages, one every 50 ms"
sleep 14 | client --nick bob >"$WORK/bob" 2>"$WORK/bob.err" &
B=$!
sleep 0.5
(for i in $(seq 1 $N); do echo "!private bob message $i of $N"; sleep 0.05; done) |
    client --nick alice >"$WORK/alice" 2>"$WORK/alice.err" &
A=$!

sleep 1.2
say "kill -9 the server mid-conversation"
kill9_server
sed 's/^/  │ /' <<<"killed; stored so far: $(grep -c 'stored$' "$WORK/alice" || true) of $N"
sleep 1
say "restart it on the same data directory"
start_server
wait $A
alice_status=$?
wait $B || true

show alice "$WORK/alice.err"
grep -h 'reconnected;' "$WORK/alice" "$WORK/alice.err" | sed 's/^/  alice  │ /' || true
grep -E 'stored|not sent' "$WORK/alice" | tail -3 | sed 's/^/  alice  │ /'
show bob "$WORK/bob.err"
grep -h 'reconnected;' "$WORK/bob" "$WORK/bob.err" | sed 's/^/  bob    │ /' || true
grep 'private from' "$WORK/bob" | sed -n '1,3p;$p' | sed 's/^/  bob    │ /'

say "checks"
check "alice exited 0 (every message stored before she left)" test "$alice_status" -eq 0
check "alice saw the connection drop" grep -q 'connection lost — reconnecting' "$WORK/alice.err"
check "alice and bob reconnected by themselves" \
    bash -c 'grep -q "reconnected;" "'"$WORK"'/alice"* && grep -q "reconnected;" "'"$WORK"'/bob"*'
check "bob saw the drop too" grep -q 'connection lost — reconnecting' "$WORK/bob.err"
check "alice was told all $N were stored" \
    test "$(grep -c '^.*\* #[0-9]* stored' "$WORK/alice")" -eq $N
check "bob received all $N" \
    test "$(grep -c '\[private from alice\] message [0-9]* of' "$WORK/bob")" -eq $N
check "none twice" \
    test "$(grep -o 'message [0-9]* of' "$WORK/bob" | sort | uniq -d | wc -l)" -eq 0
check "in order" \
    bash -c 'grep -o "message [0-9]* of" "'"$WORK"'/bob" | awk "{print \$2}" | sort -n -c'
finish
