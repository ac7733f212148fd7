#!/usr/bin/env bash
# demo-cluster: three nodes on one PostgreSQL (scripts/cluster.sh), HAProxy
# in front. alice (n1), bob (n2) and carol (n3) each give the client the
# cluster's server list starting with their own node; dave comes through
# HAProxy. They chat in public, in private and in #study at once; halfway
# bob's node n2 is killed with SIGKILL. bob moves to the next server of his
# list, whoever HAProxy had put on n2 moves with it, and every message a
# sender was told was stored reaches each of its readers exactly once, in
# order. Transcript: demos/out/cluster/.
DEMO=demo-cluster
. "$(dirname "$0")/lib.sh" "$@"
N=40
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/demos/out/cluster
rm -rf "$OUT"
mkdir -p "$OUT"
exec > >(tee "$OUT/transcript.txt") 2>&1

# The cluster lives outside $WORK: PostgreSQL runs as its own user, who
# may not enter $WORK.
CL=$(mktemp -d "${TMPDIR:-/tmp}/chat-demo-cluster.XXXXXX")
trap 'BIN="$BIN" bash "$ROOT/scripts/cluster.sh" stop "$CL" >/dev/null 2>&1 || true; rm -rf "$CL"; cleanup' EXIT

say "PostgreSQL, three nodes and HAProxy on 127.0.0.1"
BIN="$BIN" bash "$ROOT/scripts/cluster.sh" start "$CL" 3 | sed 's/^/  cluster │ /'
# shellcheck disable=SC1091
. "$CL/cluster.env"
# Each user's server list starts with their own node; the rest follow.
list() {
    case $1 in
        n1) echo "$NODE_n1,$NODE_n2,$NODE_n3" ;;
        n2) echo "$NODE_n2,$NODE_n3,$NODE_n1" ;;
        n3) echo "$NODE_n3,$NODE_n1,$NODE_n2" ;;
    esac
}
declare -A SERVER=([alice]=$(list n1) [bob]=$(list n2) [carol]=$(list n3) [dave]=${FRONT:-$(list n1)})
[ -n "$FRONT" ] || echo "  (no HAProxy: dave uses the server list too)"
user() {
    local nick=$1
    shift
    CHAT_PASSWORD="pw-$nick" "$BIN/chat-client" --server "${SERVER[$nick]}" \
        --known-hosts "$WORK/known_hosts" --nick "$nick" "$@"
}

say "accounts made on different nodes; carol (n3) creates #study with alice and bob"
for nick in alice bob carol dave; do user "$nick" </dev/null >/dev/null 2>&1; done
echo '!group create study alice bob' | user carol >"$WORK/setup" 2>&1
sed 's/^/  carol  │ /' "$WORK/setup"
sleep 1.5 # every node has heard of every account and the group

say "they chat at once: alice → bob in private, carol → #study, dave and bob in public"
# talk NICK LINE-PREFIX: once everyone is logged in, N lines, one every
# 80 ms; then listen a while.
talk() {
    local nick=$1 prefix=$2
    (sleep 2; for i in $(seq 1 $N); do echo "$prefix $nick-$i"; sleep 0.08; done; sleep 8) |
        user "$nick" >"$WORK/$nick" 2>"$WORK/$nick.err" &
    eval "PID_OF_$nick=$!"
}
talk alice '!private bob'
talk bob ''
talk carol '!group study'
talk dave ''
# stored NICK: how many of NICK's messages the client was told are stored
# (a private one is "#N stored"; a public or group one is shown as "(you)").
stored() { grep -cE "#[0-9]+ stored$|\(you\).* $1-[0-9]+$" "$WORK/$1" || true; }
sleep 3 # 2 s to log in, then about a third of the messages
say "SIGKILL node n2 mid-conversation (bob's node)"
BIN="$BIN" bash "$ROOT/scripts/cluster.sh" kill "$CL" n2 | sed 's/^/  cluster │ /'
for nick in alice bob carol dave; do wait "$(eval echo "\$PID_OF_$nick")" || eval "FAILED_$nick=1"; done

# Public messages still unacknowledged when the connection dropped are
# shown as pending, then stored after the reconnect.
echo "  │ bob's messages in flight when n2 died (resent after the reconnect): $(grep -c 'pending)$' "$WORK/bob" || true)"

say "where each one was: the nodes they connected to, in order"
# node_of ADDR: the node listening on ADDR, or ADDR (HAProxy's front).
node_of() {
    local id
    for id in $NODE_IDS; do [ "$(eval echo "\$NODE_$id")" = "$1" ] && { echo "$id"; return; }; done
    echo "$1"
}
for nick in alice bob carol dave; do
    path=""
    for addr in $(grep -o 'connected to [0-9.:]*' "$WORK/$nick.err" | cut -d' ' -f3); do
        path="$path${path:+ → }$(node_of "$addr")"
    done
    [ "${SERVER[$nick]}" != "$FRONT" ] || path="HAProxy's front $FRONT (which node behind it is HAProxy's choice)"
    echo "  $(printf '%-7s' "$nick")│ $path"
done

say "what each one saw (first lines; the rest in demos/out/cluster/)"
for nick in alice bob carol dave; do
    cp "$WORK/$nick" "$OUT/$nick.out"
    cp "$WORK/$nick.err" "$OUT/$nick.err"
    grep -h 'reconnected\|connection lost' "$WORK/$nick.err" "$WORK/$nick" | sed "s/^/  $(printf '%-7s' "$nick")│ /" || true
    grep -v 'stored$' "$WORK/$nick" | sed -n '1,3p' | sed "s/^/  $(printf '%-7s' "$nick")│ /"
    echo "  $(printf '%-7s' "$nick")│ …"
done

say "checks"
# got READER PATTERN: READER's lines matching PATTERN, the numbers only.
got() { grep -o "$2-[0-9]*" "$WORK/$1" | sed 's/.*-//' || true; }
once_in_order() {
    local numbers
    numbers=$(got "$1" "$2")
    [ "$(wc -l <<<"$numbers")" -eq $N ] && [ -z "$(sort -n <<<"$numbers" | uniq -d)" ] &&
        sort -n -c <<<"$numbers"
}
# all_once SENDER READER…: every reader got SENDER's messages once, in order.
all_once() {
    local from=$1 reader
    shift
    for reader in "$@"; do once_in_order "$reader" "$from" || return 1; done
}
for nick in alice bob carol dave; do
    check "$nick exited 0 (each of the $N was stored before leaving)" test -z "$(eval echo "\${FAILED_$nick:-}")"
    check "$nick was told all $N were stored" test "$(stored "$nick")" -eq $N
done
check "bob's connection was cut by the kill" grep -q 'lost — reconnecting' "$WORK/bob.err"
check "bob reconnected by himself (to the next server in his list)" grep -qh 'reconnected' "$WORK/bob" "$WORK/bob.err"
check "bob got alice's $N private messages once each, in order" all_once alice bob
check "alice and bob got carol's $N #study messages once each, in order" all_once carol alice bob
check "alice, bob and carol got dave's $N public messages once each, in order" all_once dave alice bob carol
check "alice, carol and dave got bob's $N public messages (sent across the kill) once each, in order" \
    all_once bob alice carol dave
check "dave, not in #study, saw none of it" bash -c "! grep -q 'carol-[0-9]' '$WORK/dave'"
echo "  transcript and each client's output: demos/out/cluster/"
cat "$CL"/n*.log >"$WORK/server.log" 2>/dev/null || true # what finish shows on a failure
finish
