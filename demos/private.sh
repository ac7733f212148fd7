#!/usr/bin/env bash
# demo-private: a private message goes through the server to one person
# only; a private message to someone who is not online is refused clearly.
DEMO=demo-private
. "$(dirname "$0")/lib.sh" "$@"

say "a TLS server; bob and carol are online"
start_server
client --nick pin </dev/null >/dev/null 2>&1 # pin the certificate once
sleep 2 | client --nick bob >"$WORK/bob" 2>&1 &
B=$!
sleep 2 | client --nick carol >"$WORK/carol" 2>&1 &
C=$!
sleep 0.5

say "alice whispers to bob, then tries dave, who is not online"
printf '!private bob the answer is 42\n!private dave are you there?\n' |
    client --nick alice >"$WORK/alice" 2>&1
wait $B $C
show alice "$WORK/alice"
show bob "$WORK/bob"
show carol "$WORK/carol"

say "checks"
check "bob receives the private message" grep -q '\[private from alice\] the answer is 42' "$WORK/bob"
check "carol does not" bash -c '! grep -q "the answer is 42" "'"$WORK"'/carol"'
check "alice sees it was delivered to the server" grep -q '\[private to bob\] the answer is 42' "$WORK/alice"
check "alice is told dave is not online" grep -q '! dave is not online' "$WORK/alice"
check "nobody received the message to dave" \
    bash -c '! grep -q "are you there" "'"$WORK"'/bob" "'"$WORK"'/carol"'
finish
