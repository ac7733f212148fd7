#!/usr/bin/env bash
# demo-hardening: while two people chat, a flooder is held to the flood
# limit (and then disconnected) and a client that stops reading is cut off;
# the messages it missed wait for its next login. Limits are tightened so
# the demo takes seconds (--flood-cut 5, --stall-timeout 2, small buffers).
DEMO=demo-hardening
. "$(dirname "$0")/lib.sh" "$@"
ATTACK="python3 $(dirname "$0")/attacker.py"

say "a server with flood control (burst 20, then 10 messages/s) and slow-client limits"
start_server --no-tls --flood-cut 5 --stall-timeout 2 --queue-limit 32768 --send-buffer 16384
# bob listens for 16 s (room for a slow login of sloth's); alice chats all
# along: a message every half second.
sleep 16 | client --no-tls --nick bob >"$WORK/bob" 2>&1 &
B=$!
client --no-tls --nick sloth </dev/null >/dev/null 2>&1 # sloth has an account
sleep 0.5
(for i in $(seq 1 16); do echo "alice says $i"; sleep 0.5; done) |
    client --no-tls --nick alice >"$WORK/alice" 2>&1 &
A=$!

say "mallory floods the room; sloth logs in and stops reading"
$ATTACK flood "$PORT" mallory 8 >"$WORK/mallory" &
M=$!
$ATTACK stuck "$PORT" sloth 6 >"$WORK/sloth" &
S=$!
# carol starts once sloth's login is through: on a busy machine it used to
# take so long that her messages were stored for sloth "offline", never
# reached its connection, and nothing was cut.
for _ in $(seq 300); do grep -q 'logged in' "$WORK/sloth" && break; sleep 0.1; done
# What sloth misses: big private messages from carol.
TEXT=$(printf 'x%.0s' $(seq 1 3000))
(for i in $(seq 1 12); do echo "!private sloth $i $TEXT"; sleep 0.25; done) |
    client --no-tls --nick carol >"$WORK/carol" 2>&1
wait $M $S $A $B
$ATTACK resume "$PORT" sloth >>"$WORK/sloth"
admin /stats
sleep 0.5
show mallory "$WORK/mallory"
show sloth "$WORK/sloth"
show bob "$WORK/bob"
sed 's/^/  server │ /' "$WORK/server.out" | grep -E "floods|slow clients" || true

say "checks"
through=$(grep -o 'let [0-9]* through' "$WORK/mallory" | grep -o '[0-9]*')
check "the flooder offered thousands of messages" \
    bash -c "[ \$(grep -o 'offered [0-9]*' '$WORK/mallory' | grep -o '[0-9]*') -ge 2000 ]"
check "only a burst and 10 a second got through ($through in ~5 s)" \
    bash -c "[ '$through' -ge 40 ] && [ '$through' -le 80 ]"
check "the flooder was disconnected for flooding" grep -q 'disconnected after .*flooding' "$WORK/mallory"
check "everyone saw mallory leave, flooding" grep -q 'mallory left (flooding)' "$WORK/bob"
check "the stuck reader was cut off" grep -q 'server closed the connection' "$WORK/sloth"
check "everyone saw sloth leave, send queue exceeded" grep -q 'sloth left (send queue exceeded)' "$WORK/bob"
check "what sloth missed waited for its next login" \
    bash -c "grep -q 'logged in again: [1-9][0-9]* messages waited' '$WORK/sloth'"
check "bob got every one of alice's 16 messages meanwhile" \
    bash -c "[ \$(grep -c '<alice> alice says' '$WORK/bob') -eq 16 ]"
check "/stats counted the flood and the slow client" \
    bash -c "grep -q '^floods throttled: 1 (1 flooders disconnected)' '$WORK/server.out' && grep -q '^slow clients cut: 1' '$WORK/server.out'"
finish
