#!/usr/bin/env bash
# demo-private: a private message goes through the server to one person
# only; a private message to a nickname with no account is refused clearly.
# (To someone registered but offline it is stored: see demo-offline.)
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

say "alice whispers to bob, then tries dave, who has no account"
printf '!private bob the answer is 42\n!private dave are you there?\n' |
    client --nick alice >"$WORK/alice" 2>&1
wait $B $C
show alice "$WORK/alice"
show bob "$WORK/bob"
show carol "$WORK/carol"

say "checks"
check "bob receives the private message" grep -q '\[private from alice\] the answer is 42' "$WORK/bob"
check "carol does not" bash -c '! grep -q "the answer is 42" "'"$WORK"'/carol"'
check "alice sees her message to bob" grep -q '\[private to bob\] the answer is 42 (#1 pending)' "$WORK/alice"
check "alice sees it stored by the server" grep -q '\* #1 stored' "$WORK/alice"
check "alice is told dave has no account" grep -q '! #2 to dave not sent: no such user: dave' "$WORK/alice"
check "nobody received the message to dave" \
    bash -c '! grep -q "are you there" "'"$WORK"'/bob" "'"$WORK"'/carol"'
finish
