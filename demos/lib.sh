# Shared helpers for the demos: start a real server on a free port, run
# clients, check outcomes, print a transcript. Source it; $1 is the bin dir.
set -euo pipefail

BIN=$(cd "${1:-target/debug}" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/chat-demo.XXXXXX")
FAILURES=0
SERVER_PID=

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    jobs -p | xargs -r kill 2>/dev/null || true
    # Also the `sleep`s that fed listening clients: they hold our stderr
    # open, and whoever reads it would wait for them.
    pkill -P $$ 2>/dev/null || true
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# start_server [flags…]: a server on 127.0.0.1 (port $BIND_PORT, or any free
# one) with its data directory in $WORK/data (kept across restarts); sets
# PORT. Its stdin is a FIFO so `admin` can type console commands.
start_server() {
    rm -f "$WORK/console"
    mkfifo "$WORK/console"
    "$BIN/chat-server" --bind "127.0.0.1:${BIND_PORT:-0}" --data-dir "$WORK/data" "$@" \
        <"$WORK/console" >"$WORK/server.out" 2>"$WORK/server.log" &
    SERVER_PID=$!
    exec 9>"$WORK/console"
    for _ in $(seq 100); do
        PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/server.out" 2>/dev/null | cut -d: -f2 || true)
        [ -n "$PORT" ] && break
        sleep 0.05
    done
    [ -n "$PORT" ] || { cat "$WORK/server.log"; echo "server did not start"; exit 1; }
    sed 's/^/  server │ /' "$WORK/server.out"
}

# kill9_server: SIGKILL, as a crash or a power cut would stop it.
kill9_server() {
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    exec 9>&-
}

# free_port: a TCP port nobody listens on now, for a server that must come
# back on the same port.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# admin COMMAND: type a command at the server's console.
admin() { echo "$*" >&9; }

# client [flags…]: the chat client, talking to the demo server. Every demo
# user's password is "pw-" and their nickname, given as CHAT_PASSWORD.
client() {
    local nick= prev=
    for arg in "$@"; do
        [ "$prev" = --nick ] && nick=$arg
        prev=$arg
    done
    CHAT_PASSWORD="pw-$nick" "$BIN/chat-client" --server "127.0.0.1:$PORT" \
        --known-hosts "$WORK/known_hosts" "$@"
}

# show NAME FILE: print a client's transcript.
show() { sed "s/^/  $(printf '%-7s' "$1")│ /" "$2"; }

# check DESCRIPTION COMMAND…: run a check, print PASS or FAIL.
check() {
    local what=$1
    shift
    if "$@"; then
        printf '  \033[32mPASS\033[0m %s\n' "$what"
    else
        printf '  \033[31mFAIL\033[0m %s\n' "$what"
        FAILURES=$((FAILURES + 1))
    fi
}

# finish: the demo's verdict and exit status.
finish() {
    if [ "$FAILURES" -eq 0 ]; then
        printf '\n\033[32m%s: all checks passed\033[0m\n' "$DEMO"
    else
        printf '\n\033[31m%s: %d check(s) failed\033[0m\n' "$DEMO" "$FAILURES"
        echo "server log:"; tail -20 "$WORK/server.log"
        exit 1
    fi
}
