#!/usr/bin/env bash
# demo-encryption: with TLS the text never appears in the bytes on the wire;
# with --no-tls it does. A small recording proxy sits between client and server.
DEMO=demo-encryption
. "$(dirname "$0")/lib.sh" "$@"
SECRET="the password for the exam room is swordfish"

# through_tap FILE CLIENT-FLAGS…: alice sends $SECRET via the proxy, which
# records every byte in FILE; bob, connected directly, must receive it.
through_tap() {
    local wire=$1
    shift
    # Removed first: the redirection below truncates it only once the
    # background job starts, and the wait must not see the last run's port.
    rm -f "$WORK/tap.port"
    python3 "$(dirname "$0")/wiretap.py" "$PORT" "$wire" >"$WORK/tap.port" &
    local tap=$!
    for _ in $(seq 400); do [ -s "$WORK/tap.port" ] && break; sleep 0.05; done
    : >"$WORK/bob"
    # bob stays until the secret reached him (at most 20 s), not for a
    # fixed time: on a loaded machine a login can take seconds.
    (for _ in $(seq 200); do grep -q "$SECRET" "$WORK/bob" && break; sleep 0.1; done) |
        client "$@" --nick bob >>"$WORK/bob" 2>&1 &
    local bob=$!
    for _ in $(seq 200); do grep -q "welcome" "$WORK/bob" && break; sleep 0.1; done
    echo "$SECRET" | CHAT_PASSWORD=pw-alice "$BIN/chat-client" --server "127.0.0.1:$(cat "$WORK/tap.port")" \
        --known-hosts "$WORK/known_hosts" "$@" --nick alice >"$WORK/alice" 2>&1
    wait $bob || true
    kill $tap 2>/dev/null || true
    wait $tap 2>/dev/null || true
}

say "TLS (the default)"
start_server
client --nick pin </dev/null >/dev/null 2>&1
through_tap "$WORK/wire-tls"
echo "  $(wc -c <"$WORK/wire-tls") bytes on the wire; the first 96 as hex:"
head -c 96 "$WORK/wire-tls" | od -An -tx1 | sed 's/^/   /'
show bob "$WORK/bob"
check "bob received the secret over TLS" grep -q "$SECRET" "$WORK/bob"
check "the secret is not on the wire" bash -c '! grep -q swordfish "'"$WORK"'/wire-tls"'
check "the wire carried a TLS handshake (record type 0x16, version 0x03)" \
    bash -c '[ "$(head -c 2 "'"$WORK"'/wire-tls" | od -An -tx1 | tr -d " ")" = "1603" ]'
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
rm -f "$WORK/console"; exec 9>&-

say "plaintext (--no-tls on both sides)"
start_server --no-tls
through_tap "$WORK/wire-plain" --no-tls
echo "  $(wc -c <"$WORK/wire-plain") bytes on the wire; the lines with the secret:"
grep -a swordfish "$WORK/wire-plain" | sed 's/^/   /' || true
check "bob received the secret in plaintext" grep -q "$SECRET" "$WORK/bob"
check "the secret is on the wire, readable by anyone in between" grep -q -a swordfish "$WORK/wire-plain"
finish
