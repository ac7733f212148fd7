#!/usr/bin/env bash
# demo-file: alice offers a file to bob and to carol; it waits on the
# server (spooled, with its SHA-256) until each answers. bob accepts it and
# gets the same bytes; carol rejects it; alice is told both answers.
DEMO=demo-file
. "$(dirname "$0")/lib.sh" "$@"

# wait_for FILE PATTERN: until a line of FILE matches (grep -E), 20 s at most.
wait_for() {
    for _ in $(seq 200); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "  (timed out waiting for /$2/ in $(basename "$1"))"
    return 1
}

# offer_id FILE: the number of the offer shown in FILE.
offer_id() { grep -o '!accept [0-9]*' "$1" | head -1 | cut -d' ' -f2; }

say "a TLS server; bob and carol are online, each typing into a FIFO"
start_server
client --nick pin </dev/null >/dev/null 2>&1 # pin the certificate once
head -c 6000000 /dev/urandom >"$WORK/lecture.pdf"
mkdir -p "$WORK/bob-downloads" "$WORK/carol-downloads"
for who in alice bob carol; do mkfifo "$WORK/$who.in"; done
client --nick bob --downloads "$WORK/bob-downloads" <"$WORK/bob.in" >"$WORK/bob" 2>&1 &
BOB=$!
exec 3>"$WORK/bob.in"
client --nick carol --downloads "$WORK/carol-downloads" <"$WORK/carol.in" >"$WORK/carol" 2>&1 &
CAROL=$!
exec 4>"$WORK/carol.in"
wait_for "$WORK/bob" 'welcome, bob'
wait_for "$WORK/carol" 'welcome, carol'

say "alice offers lecture.pdf (6 MB) to bob and to carol"
client --nick alice <"$WORK/alice.in" >"$WORK/alice" 2>&1 &
ALICE=$!
exec 5>"$WORK/alice.in"
wait_for "$WORK/alice" 'welcome, alice'
echo "!send bob $WORK/lecture.pdf" >&5
echo "!send carol $WORK/lecture.pdf" >&5
wait_for "$WORK/bob" 'alice offers you lecture.pdf'
wait_for "$WORK/carol" 'alice offers you lecture.pdf'

say "bob accepts, carol rejects"
echo "!accept $(offer_id "$WORK/bob")" >&3
echo "!reject $(offer_id "$WORK/carol")" >&4
wait_for "$WORK/bob" 'received .*lecture.pdf' || true
wait_for "$WORK/alice" 'bob accepted lecture.pdf' || true
wait_for "$WORK/alice" 'carol rejected lecture.pdf' || true
exec 3>&- 4>&- 5>&-
wait "$BOB" "$CAROL" "$ALICE"
show alice "$WORK/alice"
show bob "$WORK/bob"
show carol "$WORK/carol"

say "checks"
got=$WORK/bob-downloads/lecture.pdf
check "bob's client verified the SHA-256" grep -q 'received .*lecture.pdf (6000000 bytes, SHA-256 verified)' "$WORK/bob"
check "bob's copy has the same SHA-256 as alice's file" \
    test "$(sha256sum <"$got" 2>/dev/null | cut -d' ' -f1)" = "$(sha256sum <"$WORK/lecture.pdf" | cut -d' ' -f1)"
check "and the same bytes" cmp -s "$got" "$WORK/lecture.pdf"
check "carol received nothing" test -z "$(ls -A "$WORK/carol-downloads")"
check "alice is told bob accepted" grep -q 'bob accepted lecture.pdf' "$WORK/alice"
check "alice is told carol rejected" grep -q 'carol rejected lecture.pdf' "$WORK/alice"
check "the spool is empty once both answered" \
    bash -c 'for _ in $(seq 50); do [ -z "$(ls -A "'"$WORK"'/data/spool" 2>/dev/null)" ] && exit 0; sleep 0.1; done; exit 1'
finish
