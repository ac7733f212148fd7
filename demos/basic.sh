#!/usr/bin/env bash
# demo-basic: a client sends a message; the server acknowledges it (raw
# protocol shown with --json) and delivers it to another client.
DEMO=demo-basic
. "$(dirname "$0")/lib.sh" "$@"

say "a plaintext server"
start_server --no-tls

say "bob listens; alice sends one line and shows the raw frames (--json)"
sleep 2 | client --no-tls --nick bob >"$WORK/bob" &
BOB=$!
sleep 0.3
printf 'hello, server\n' | client --no-tls --nick alice --json >"$WORK/alice"
wait $BOB
show alice "$WORK/alice"
show bob "$WORK/bob"

say "checks"
check "alice is welcomed" grep -q '"type":"welcome".*"nick":"alice"' "$WORK/alice"
check "alice's message is acknowledged" grep -q '"type":"ack"' "$WORK/alice"
check "alice's bye is acknowledged too (two acks)" test "$(grep -c '"type":"ack"' "$WORK/alice")" -ge 2
check "bob receives it from alice" grep -q '<alice> hello, server' "$WORK/bob"
check "bob sees alice leave" grep -q 'alice left (quit)' "$WORK/bob"
finish
