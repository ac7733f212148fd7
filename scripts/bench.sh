#!/usr/bin/env bash
# Runs every chat-bench scenario (issue 6), each against a fresh release
# chat-server on 127.0.0.1, prints the results and writes them into
# docs/performance.md between the markers <!-- bench:begin --> and
# <!-- bench:end --> (the rest of that file is left alone).
#
# Usage: scripts/bench.sh                  (what `make bench` runs)
#        BENCH_ONLY="fanout latency" scripts/bench.sh   (a subset; the doc is
#        then not touched unless BENCH_WRITE=1)
#        BENCH_ROUNDS=1 scripts/bench.sh     (each scenario once; default 3,
#        and the table shows each figure's median and range)
#        BENCH_REDIS=0 scripts/bench.sh      (without the Redis column)
#        BENCH_REDIS_ROUNDS=1 scripts/bench.sh  (Redis runs per scenario;
#        default: as many as ours)
#        BENCH_REDIS_TLS=0 scripts/bench.sh  (Redis in plaintext only)
#        BENCH_WS=0 scripts/bench.sh         (without the WebSocket runs)
#
# Beside Redis (issue 18): when `redis-server` is on PATH (Debian/Ubuntu:
# `apt-get install redis-server`; the script starts its own, never the
# system service), every scenario that has a pub/sub counterpart (fanout,
# latency, bigroom, plaintext connections, pairs) also runs against a fresh
# redis-server on 127.0.0.1 (`chat-bench --target redis`), interleaved with
# ours (ours run 1, Redis run 1, ours run 2, ...), and a second table gives
# ours ÷ Redis for every figure (the median of the per-run ratios). Without
# redis-server that column is skipped with one line saying so. When the
# package has TLS built in (probed: a redis-server started with --tls-port
# must listen), the TLS connections runs also run against Redis's own TLS
# port (`chat-bench --target redis --tls`, the certificate made by
# `chat-bench cert` in the run's temporary directory); without it that row
# is skipped with one line saying so. BENCH_REDIS_TLS=0 leaves it out.
#
# Beside WebSocket (issue 19): fanout and latency also run with half the
# clients (and half the senders) speaking over a WebSocket on the same port
# (`chat-bench --websocket-share 0.5`, as the browser's page does), against
# the same fresh server with the same flags, interleaved with the all-TCP
# runs (TCP run 1, [Redis run 1,] WebSocket run 1, TCP run 2, ...); a third
# table puts the two side by side.
#
# Beside a cluster (issue 17): fanout and latency also run against a fresh
# 3-node cluster on this machine (`scripts/cluster.sh start DIR 3`: a
# private PostgreSQL and 3 `chat-server --cluster` nodes, with the same
# flags), the clients spread round robin over the nodes (`chat-bench
# --server a,b,c`, so two thirds of the deliveries cross nodes), interleaved
# with the single-server runs; a fourth table puts them side by side: ack
# latency p50/p99, messages/s through PostgreSQL, cross-node latency,
# PostgreSQL's CPU. BENCH_CLUSTER=0 leaves it out; without PostgreSQL it is
# skipped with one line saying so.
#
# Exits non-zero when a scenario fails to run; a missed target is reported
# in the table, not enforced.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DOC=${BENCH_DOC:-$ROOT/docs/performance.md}
ONLY=${BENCH_ONLY:-}
# The machine is noisy: every scenario runs this many times (each against a
# fresh server) and the table quotes medians.
ROUNDS=${BENCH_ROUNDS:-3}
SERVER=$ROOT/target/release/chat-server
BENCH=$ROOT/target/release/chat-bench
REDIS=
REDIS_ROUNDS=${BENCH_REDIS_ROUNDS:-$ROUNDS}
REDIS_NOTE=
# The scenarios that also run with half the clients over WebSocket.
WS_SCENARIOS=" fanout latency "
[ "${BENCH_WS:-1}" = 0 ] && WS_SCENARIOS=
WS_SHARE=0.5
# The scenarios that also run against a 3-node cluster.
CLUSTER_SCENARIOS=" fanout latency "
CLUSTER_NODES=3
CLUSTER_NOTE=
if [ "${BENCH_CLUSTER:-1}" = 0 ]; then
    CLUSTER_SCENARIOS=
    CLUSTER_NOTE="Cluster runs skipped (BENCH_CLUSTER=0)."
elif ! command -v pg_config >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    && ! command -v initdb >/dev/null 2>&1; then
    CLUSTER_SCENARIOS=
    CLUSTER_NOTE="PostgreSQL not found: apt-get install postgresql to measure a cluster; skipping the cluster runs"
    echo "bench: $CLUSTER_NOTE"
fi
if [ "${BENCH_REDIS:-1}" = 0 ]; then
    REDIS_NOTE="Redis column skipped (BENCH_REDIS=0)."
elif REDIS=$(command -v redis-server); then
    REDIS_VERSION=$("$REDIS" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
else
    REDIS=
    REDIS_NOTE="redis-server not found: apt-get install redis-server to measure beside Redis; skipping that column"
    echo "bench: $REDIS_NOTE"
fi

cargo build --release -q -p chat-server -p chat-bench

# 10,000 clients need 10,000 descriptors in each process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10100 ]; then
    echo "bench: warning: open-file limit $(ulimit -n) is below 10,100; the connections runs will fall short" >&2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/chat-bench.XXXXXX")
SERVER_PID=
REDIS_PID=
CLUSTER_DIR=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
    if [ -n "$CLUSTER_DIR" ]; then bash "$ROOT/scripts/cluster.sh" stop "$CLUSTER_DIR/c" >/dev/null 2>&1 || true; fi
    if [ -n "$REDIS_PID" ]; then kill -KILL "$REDIS_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
RESULTS=$TMP/results.jsonl
# Redis's TLS port, when the package has TLS: its certificate and key.
REDIS_TLS=
REDIS_TLS_DIR=$TMP/redis-tls
REDIS_TLS_NOTE=
REDIS_RESULTS=$TMP/redis.jsonl
WS_RESULTS=$TMP/websocket.jsonl
CLUSTER_RESULTS=$TMP/cluster.jsonl
: >"$CLUSTER_RESULTS"
: >"$RESULTS"
: >"$REDIS_RESULTS"
: >"$WS_RESULTS"

# Every server's flags beside --bind, --data-dir, TLS and hashes (see below).
LOAD_FLAGS=(--queue-limit 8388608 --login-timeout 300 --auth-queue 100000 --log-level warn
    --max-connections-per-ip 12000 --max-connections 12000 --flood-rate 0
    --registrations-per-hour 0)

# start_server plaintext|tls: a fresh server with its own data directory;
# sets SERVER_PID and PORT.
start_server() {
    local tls_flag=--no-tls
    [ "$1" = tls ] && tls_flag=
    local dir
    dir=$(mktemp -d "$TMP/server.XXXX")
    # The port is read from here, maybe before the server has opened it.
    : >"$dir/stdout"
    # stdin from /dev/null: the console reads commands until EOF, then idles.
    # HASHES=owasp keeps the server's default password-hash cost; otherwise
    # registrations are made cheap, since the scenarios measure the chat.
    # Every client connects from 127.0.0.1, 10,000 at once: the connection
    # caps (16 per address, 10,000 in all) are lifted. The keepalive stays:
    # no scenario leaves a client silent for its 150 s.
    local hash_flags=(--argon2-memory 8 --argon2-iterations 1)
    [ "${HASHES:-}" = owasp ] && hash_flags=()
    # --auth-queue: thousands of clients register at once, which a server
    # would otherwise refuse beyond 256 waiting logins (busy); and from one
    # address, beyond 100 an hour (--registrations-per-hour).
    "$SERVER" --bind 127.0.0.1:0 --data-dir "$dir/data" $tls_flag "${hash_flags[@]}" \
        "${LOAD_FLAGS[@]}" </dev/null >"$dir/stdout" 2>"$dir/stderr" &
    SERVER_PID=$!
    SERVER_DIR=$dir
    PORT=
    for _ in $(seq 200); do
        PORT=$(sed -n 's/^chat-server listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$dir/stdout")
        [ -n "$PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench: the server did not start:" >&2
    cat "$dir/stdout" "$dir/stderr" >&2
    return 1
}

# stop_server: SIGTERM, then up to 10 s for it to finish, then SIGKILL.
stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "bench: the server did not stop within 10 s of SIGTERM; killing it" >&2
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# The redis-server flags: loopback only, nothing written to disk (no RDB
# snapshots, no AOF), room for 10,000 clients; otherwise Redis's defaults
# (one I/O thread, pubsub output buffers 32 MB hard / 8 MB for 60 s).
REDIS_FLAGS=(--bind 127.0.0.1 --protected-mode yes --save '' --appendonly no
    --maxclients 12000 --daemonize no --loglevel warning)

# Its TLS port's flags (with --port 0: TLS only): our certificate's kind
# of key, no client certificates; otherwise Redis's TLS defaults (TLS 1.2
# and 1.3, OpenSSL's suites in the client's order, session caching on).
REDIS_TLS_FLAGS=(--tls-cert-file "$REDIS_TLS_DIR/cert.pem" --tls-key-file "$REDIS_TLS_DIR/key.pem"
    --tls-ca-cert-file "$REDIS_TLS_DIR/cert.pem" --tls-auth-clients no)

# start_redis [plaintext|tls]: a fresh redis-server in its own directory on
# a free port (with tls, its TLS port alone); sets REDIS_PID and REDIS_PORT.
start_redis() {
    local dir attempt port_flags
    dir=$(mktemp -d "$TMP/redis.XXXX")
    REDIS_DIR=$dir
    for attempt in $(seq 20); do
        REDIS_PORT=$((20000 + RANDOM % 40000))
        # Taken by something else: try another.
        if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then continue; fi
        port_flags=(--port "$REDIS_PORT")
        [ "${1:-plaintext}" = tls ] && port_flags=(--port 0 --tls-port "$REDIS_PORT" "${REDIS_TLS_FLAGS[@]}")
        "$REDIS" "${port_flags[@]}" --dir "$dir" --logfile "$dir/log" "${REDIS_FLAGS[@]}" \
            </dev/null >"$dir/stdout" 2>"$dir/stderr" &
        REDIS_PID=$!
        for _ in $(seq 100); do
            kill -0 "$REDIS_PID" 2>/dev/null || break
            if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then return 0; fi
            sleep 0.05
        done
        kill -KILL "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=
    done
    echo "bench: redis-server did not start:" >&2
    cat "$dir/log" "$dir/stderr" >&2 2>/dev/null || true
    return 1
}

stop_redis() {
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
}

# run_cluster NAME ARGS...: one run against a fresh plaintext cluster of
# CLUSTER_NODES nodes (scripts/cluster.sh), the clients spread over them; a
# failure is reported and ends that scenario's cluster runs.
run_cluster() {
    local name=$1
    shift
    CLUSTER_DIR=$(mktemp -d "$TMP/cluster.XXXX")
    # PostgreSQL runs as its own user (initdb refuses root): it must reach
    # its data directory through these.
    chmod 755 "$TMP" "$CLUSTER_DIR"
    local out=$CLUSTER_DIR/bench.out status=0
    if ! NODE_ARGS="--no-tls --argon2-memory 8 --argon2-iterations 1 ${LOAD_FLAGS[*]}" \
        BIN="$ROOT/target/release" bash "$ROOT/scripts/cluster.sh" start "$CLUSTER_DIR/c" "$CLUSTER_NODES" \
        >"$CLUSTER_DIR/start.log" 2>&1; then
        echo "bench: the cluster did not start:" >&2
        tail -20 "$CLUSTER_DIR/start.log" >&2
        FAILED+=("$name (cluster)")
        bash "$ROOT/scripts/cluster.sh" stop "$CLUSTER_DIR/c" >/dev/null 2>&1 || true
        CLUSTER_DIR=
        return 1
    fi
    # shellcheck disable=SC1091
    . "$CLUSTER_DIR/c/cluster.env"
    local pids=() id var
    for id in $NODE_IDS; do var=PID_$id; pids+=("${!var}"); done
    "$BENCH" --server "$NODE_ADDRS" --server-pid "$(IFS=,; echo "${pids[*]}")" --db-pid "$PID_PG" "$@" \
        | tee "$out" || status=$?
    bash "$ROOT/scripts/cluster.sh" stop "$CLUSTER_DIR/c" >/dev/null 2>&1 || true
    if [ "$status" -ne 0 ] || ! grep -q '^JSON ' "$out"; then
        echo "bench: $name (cluster) failed (exit $status)" >&2
        for id in $NODE_IDS; do tail -5 "$CLUSTER_DIR/c/$id.log" >&2 2>/dev/null || true; done
        FAILED+=("$name (cluster)")
        CLUSTER_DIR=
        return 1
    fi
    grep '^JSON ' "$out" | tail -1 >>"$CLUSTER_RESULTS"
    CLUSTER_DIR=
}

FAILED=()
COMMANDS=()
CLUSTER_COMMANDS=()
REDIS_COMMANDS=()
WS_COMMANDS=()
# run NAME plaintext|tls ARGS...: ROUNDS runs of one scenario, each against a
# fresh server (and its Redis and WebSocket runs, interleaved).
run() {
    local name=$1 transport=$2
    shift 2
    if [ -n "$ONLY" ] && ! [[ " $ONLY " == *" $name "* ]]; then return 0; fi
    local tls_arg=()
    [ "$transport" = tls ] && tls_arg=(--tls)
    COMMANDS+=("chat-bench --server 127.0.0.1:PORT --server-pid PID ${tls_arg[*]:+${tls_arg[*]} }$*")
    # Redis has a counterpart for the pub/sub scenarios (TLS: at its TLS
    # port, when it has one).
    local redis=
    if [ -n "$REDIS" ] && [ "$name" != file ] && { [ "$transport" = plaintext ] || [ -n "$REDIS_TLS" ]; }; then
        redis=1
        REDIS_COMMANDS+=("chat-bench --server 127.0.0.1:PORT --server-pid PID --target redis ${tls_arg[*]:+${tls_arg[*]} }$*")
    fi
    local ws=
    if [[ "$WS_SCENARIOS" == *" $name "* ]]; then
        ws=1
        WS_COMMANDS+=("chat-bench --server 127.0.0.1:PORT --server-pid PID ${tls_arg[*]:+${tls_arg[*]} }--websocket-share $WS_SHARE $*")
    fi
    local cluster=
    if [[ "$CLUSTER_SCENARIOS" == *" $name "* ]] && [ "$transport" = plaintext ]; then
        cluster=1
        CLUSTER_COMMANDS+=("chat-bench --server NODE1,NODE2,NODE3 --server-pid PID1,PID2,PID3 --db-pid POSTMASTER $*")
    fi
    local round
    for round in $(seq "$ROUNDS"); do
        echo "== $name ($transport), run $round of $ROUNDS: chat-bench ${tls_arg[*]:+${tls_arg[*]} }$*"
        run_once "$name" "$transport" "$RESULTS" "$@" || return 0
        if [ -n "$redis" ] && [ "$round" -le "$REDIS_ROUNDS" ]; then
            echo "== $name (Redis, $transport), run $round of $REDIS_ROUNDS: chat-bench --target redis ${tls_arg[*]:+${tls_arg[*]} }$*"
            run_redis "$name" "$transport" "$@" || redis=
        fi
        if [ -n "$ws" ]; then
            echo "== $name ($transport, $WS_SHARE over WebSocket), run $round of $ROUNDS: chat-bench ${tls_arg[*]:+${tls_arg[*]} }--websocket-share $WS_SHARE $*"
            run_once "$name" "$transport" "$WS_RESULTS" --websocket-share "$WS_SHARE" "$@" || ws=
        fi
        if [ -n "$cluster" ]; then
            echo "== $name ($CLUSTER_NODES-node cluster), run $round of $ROUNDS: chat-bench --server NODE1,NODE2,NODE3 $*"
            run_cluster "$name" "$@" || cluster=
        fi
    done
}

# run_redis NAME plaintext|tls ARGS...: one run against a fresh
# redis-server; a failure is reported, and ends that scenario's Redis runs.
run_redis() {
    local name=$1 transport=$2
    shift 2
    local tls_arg=()
    [ "$transport" = tls ] && tls_arg=(--tls)
    start_redis "$transport" || { FAILED+=("$name (Redis)"); return 1; }
    local out=$REDIS_DIR/bench.out status=0
    "$BENCH" --server "127.0.0.1:$REDIS_PORT" --server-pid "$REDIS_PID" --target redis "${tls_arg[@]}" "$@" \
        | tee "$out" || status=$?
    stop_redis
    if [ "$status" -ne 0 ] || ! grep -q '^JSON ' "$out"; then
        echo "bench: $name (Redis) failed (exit $status)" >&2
        tail -20 "$REDIS_DIR/log" >&2 2>/dev/null || true
        FAILED+=("$name (Redis)")
        return 1
    fi
    grep '^JSON ' "$out" | tail -1 >>"$REDIS_RESULTS"
}

# run_once NAME plaintext|tls RESULTS ARGS...: one run, its JSON line
# appended to RESULTS; fails if it did not run.
run_once() {
    local name=$1 transport=$2 results=$3
    shift 3
    local label=$transport
    [[ " $* " == *" --websocket-share "* ]] && label="$transport, WebSocket"
    local tls_arg=()
    [ "$transport" = tls ] && tls_arg=(--tls)
    start_server "$transport"
    local out=$SERVER_DIR/bench.out status=0
    "$BENCH" --server "127.0.0.1:$PORT" --server-pid "$SERVER_PID" "${tls_arg[@]}" "$@" \
        | tee "$out" || status=$?
    stop_server
    if [ "$status" -ne 0 ] || ! grep -q '^JSON ' "$out"; then
        echo "bench: $name ($label) failed (exit $status)" >&2
        if [ -s "$SERVER_DIR/stderr" ]; then
            echo "server stderr:" >&2
            tail -20 "$SERVER_DIR/stderr" >&2
        fi
        FAILED+=("$name ($label)")
        return 1
    fi
    grep '^JSON ' "$out" | tail -1 >>"$results"
}

# Does this redis-server have TLS? Started on a TLS port alone, it must
# listen there (a package built without TLS refuses the flags and exits)
# and let one TLS client subscribe.
if [ -n "$REDIS" ] && [ "${BENCH_REDIS_TLS:-1}" = 0 ]; then
    REDIS_TLS_NOTE="Redis over TLS skipped (BENCH_REDIS_TLS=0)."
elif [ -n "$REDIS" ]; then
    mkdir -p "$REDIS_TLS_DIR"
    "$BENCH" cert "$REDIS_TLS_DIR" >/dev/null
    if ! start_redis tls 2>/dev/null; then
        REDIS_TLS_NOTE="redis-server $REDIS_VERSION has no TLS (it did not listen on --tls-port: $(cat "$REDIS_DIR/stderr" "$REDIS_DIR/log" 2>/dev/null | tail -1 || true)); skipping Redis over TLS"
    elif "$BENCH" --server "127.0.0.1:$REDIS_PORT" --target redis --tls --timeout 5 connections --clients 1 --hold 0 \
        2>&1 | grep -q '^JSON .*"clients_logged_in":1,'; then
        REDIS_TLS=1
    else
        REDIS_TLS_NOTE="redis-server $REDIS_VERSION listened on --tls-port but no TLS client could subscribe there; skipping Redis over TLS"
    fi
    if [ -n "$REDIS_PID" ]; then stop_redis; fi
    if [ -n "$REDIS_TLS_NOTE" ]; then echo "bench: $REDIS_TLS_NOTE"; fi
fi

STARTED=$(date +%s)
run fanout plaintext fanout --clients 100 --senders 10 --duration 10 --size 64
run latency plaintext latency --clients 100 --senders 10 --rate 1000 --duration 10 --size 64
run bigroom plaintext bigroom --clients 1000 --senders 5 --rate 200 --duration 10 --size 64
run connections plaintext connections --clients 10000 --timeout 90
run connections-tls tls connections --clients 10000 --timeout 90
run pairs plaintext pairs --clients 1000 --duration 10 --size 64
# One 1 GiB file up into the spool and down out of it, private messages
# timed meanwhile (plaintext: the file path, not TLS, is measured).
run file plaintext file --size 1GiB --rate 200
# Registrations at the server's default (OWASP) argon2id cost: the one
# figure the cheap hashes above leave out. Not in the summary table.
LOGINS_LINE=
if [ -z "$ONLY" ] || [[ " $ONLY " == *" logins "* ]]; then
    echo "== logins (plaintext, default argon2id cost): chat-bench connections --clients 100"
    HASHES=owasp start_server plaintext
    "$BENCH" --server "127.0.0.1:$PORT" --server-pid "$SERVER_PID" connections --clients 100 --timeout 120 \
        >"$SERVER_DIR/bench.out" 2>&1 || true
    stop_server
    secs=$(sed -n 's/^JSON .*"connect_s":\([0-9.]*\).*/\1/p' "$SERVER_DIR/bench.out")
    if [ -n "$secs" ]; then
        LOGINS_LINE="- Registrations at the default argon2id cost (19 MiB, 2 iterations; \`chat-bench connections --clients 100\` against a server without the cheap-hash flags): 100 new accounts logged in in ${secs} s ($(awk "BEGIN{printf \"%.0f\", 100/$secs}")/s, one hashing thread)."
        echo "$LOGINS_LINE"
    else
        FAILED+=("logins (owasp)")
    fi
fi
ELAPSED=$(($(date +%s) - STARTED))

TABLE=$("$BENCH" summary "$RESULTS")
echo
echo "$TABLE"
echo
# beside VAR SUBCOMMAND RUNS TITLE [NOTE]: when the file RUNS holds runs,
# `chat-bench SUBCOMMAND` sets ours beside them: the table goes into VAR
# and is printed under TITLE; without runs VAR is empty and NOTE, if
# any, is said.
beside() {
    local var=$1 subcommand=$2 runs=$3 title=$4 note=${5:-} table=
    if [ -s "$runs" ]; then
        table=$("$BENCH" "$subcommand" "$RESULTS" "$runs")
        printf '%s\n\n%s\n\n' "$title" "$table"
    elif [ -n "$note" ]; then
        echo "bench: $note"
    fi
    printf -v "$var" '%s' "$table"
}
beside COMPARE compare "$REDIS_RESULTS" \
    "Beside Redis $REDIS_VERSION (ours ÷ Redis: the median of the per-run ratios):" "$REDIS_NOTE"
beside TRANSPORTS transports "$WS_RESULTS" "Half the clients over WebSocket beside all over TCP:"
beside CLUSTER_TABLE cluster "$CLUSTER_RESULTS" \
    "A $CLUSTER_NODES-node cluster on PostgreSQL beside one server:" "$CLUSTER_NOTE"
echo "bench: ${ELAPSED} s for the scenarios"

# The "Latest run" section, with what it ran on.
write_section() {
    local cores model commit
    cores=$(nproc 2>/dev/null || echo '?')
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if ! git diff --quiet HEAD 2>/dev/null; then commit="$commit (with uncommitted changes)"; fi
    echo "<!-- bench:begin -->"
    echo "<!-- Written by scripts/bench.sh (make bench); edits between these markers are overwritten. -->"
    echo "## Latest run"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Commit: \`$commit\`"
    echo "- Machine: $cores cores, ${model:-unknown CPU}, $(uname -sr); server and chat-bench share the cores, over loopback"
    echo "- Command: \`make bench\` (\`scripts/bench.sh\`), ${ELAPSED} s; each scenario against a fresh"
    echo "  \`chat-server --bind 127.0.0.1:0 --no-tls --argon2-memory 8 --argon2-iterations 1 --queue-limit 8388608 --login-timeout 300 --auth-queue 100000 --log-level warn --max-connections-per-ip 12000 --max-connections 12000 --flood-rate 0 --registrations-per-hour 0\`"
    echo "  (without \`--no-tls\` for TLS), each $ROUNDS times (a fresh server each time), in this order:"
    local c
    for c in "${COMMANDS[@]}"; do echo "  - \`$c\`"; done
    if [ ${#FAILED[@]} -gt 0 ]; then
        echo "- **Failed to run:** ${FAILED[*]}"
    fi
    echo
    echo "Latency is end to end: send time in the payload to the read that"
    echo "brought it, for every delivery. In fanout and pairs the senders keep a"
    echo "window of unanswered messages full, so latency there is queueing"
    echo "(window ÷ throughput), not a target. Each figure is the median of the"
    echo "runs, with their range; counts that must be zero are the worst run's."
    echo
    echo "$TABLE"
    echo
    [ -n "$LOGINS_LINE" ] && { echo "$LOGINS_LINE"; echo; }
    echo "Every message in these runs is durable before its ack and its delivery:"
    echo "written to SQLite (WAL, synchronous=FULL) by the dispatcher, one fsync"
    echo "per batch of everything that arrived meanwhile."
    echo
    echo "### Beside Redis (issue 18)"
    echo
    if [ -n "$COMPARE" ]; then
        echo "The same scenarios against a fresh \`redis-server\` $REDIS_VERSION (Debian's"
        echo "package) each time, interleaved with ours (ours run 1, Redis run 1, ours"
        echo "run 2, ...), $REDIS_ROUNDS Redis runs per scenario:"
        echo "\`redis-server --port PORT --dir TMP $(printf '%q ' "${REDIS_FLAGS[@]}" | sed 's/ $//')\`"
        echo "(no snapshots, no AOF: nothing Redis delivers is durable, where every"
        echo "message of ours is in SQLite before anyone gets it). Every client"
        echo "SUBSCRIBEs on one connection (to the room's channel; in pairs to its own),"
        echo "every sender PUBLISHes on a second one; a PUBLISH reply is its ack. A"
        echo "login of ours registers a new account (argon2id at the cheap cost above,"
        echo "a row in SQLite); a Redis \"login\" is the SUBSCRIBE's confirmation."
        if [ -n "$REDIS_TLS" ]; then
            echo "Over TLS Redis listens on its TLS port alone (\`--port 0 --tls-port PORT"
            echo "$(printf '%q ' "${REDIS_TLS_FLAGS[@]}" | sed "s|$REDIS_TLS_DIR|TMP|g; s/ $//")\`, the certificate"
            echo "from \`chat-bench cert TMP\`: ECDSA P-256 as ours), and chat-bench connects to"
            echo "both with the same rustls client (no certificate check, no resumption)."
        elif [ -n "$REDIS_TLS_NOTE" ]; then
            echo "$REDIS_TLS_NOTE"
        fi
        for c in "${REDIS_COMMANDS[@]}"; do echo "  - \`$c\`"; done
        echo
        echo "Server CPU per delivery is utime+stime of the server process"
        echo "(\`/proc/PID/stat\`) over the sending window ÷ deliveries in it: it does not"
        echo "depend on the CPU chat-bench takes. ours ÷ Redis is the median of the"
        echo "per-run ratios (our run k ÷ Redis run k), so it need not equal the ratio"
        echo "of the medians."
        echo
        echo "$COMPARE"
    else
        echo "${REDIS_NOTE:-${REDIS_TLS_NOTE:-No Redis runs.}}"
    fi
    echo
    echo "### Half the clients over WebSocket (issue 19)"
    echo
    if [ -n "$TRANSPORTS" ]; then
        echo "The same scenarios, the same server flags, with half the clients (and"
        echo "half the senders) speaking over a WebSocket on the server's port, as the"
        echo "browser's page does; each run interleaved with the all-TCP run of the"
        echo "same round. WebSocket ÷ TCP is the median of the per-round ratios."
        for c in "${WS_COMMANDS[@]}"; do echo "  - \`$c\`"; done
        echo
        echo "$TRANSPORTS"
    else
        if [ -z "$WS_SCENARIOS" ]; then echo "No WebSocket runs (BENCH_WS=0)."; else echo "No WebSocket runs."; fi
    fi
    echo
    echo "### A $CLUSTER_NODES-node cluster (issue 17)"
    echo
    if [ -n "$CLUSTER_TABLE" ]; then
        echo "The same scenarios against a fresh cluster each time (\`scripts/cluster.sh"
        echo "start DIR $CLUSTER_NODES\`: a private PostgreSQL and $CLUSTER_NODES \`chat-server --cluster\` nodes"
        echo "with the flags above, plaintext), client i on node i mod $CLUSTER_NODES, interleaved"
        echo "with the one-server runs. Messages/s in a cluster all went through"
        echo "PostgreSQL (each a row, committed before its ack); PostgreSQL CPU is the"
        echo "postmaster and its backends (\`/proc\`) over the sending window."
        for c in "${CLUSTER_COMMANDS[@]}"; do echo "  - \`$c\`"; done
        echo
        echo "$CLUSTER_TABLE"
    else
        echo "${CLUSTER_NOTE:-No cluster runs.}"
    fi
    echo
    echo "<details><summary>Raw results (one JSON line per run)</summary>"
    echo
    echo '```'
    cat "$RESULTS"
    echo '```'
    if [ -s "$REDIS_RESULTS" ]; then
        echo
        echo 'Redis:'
        echo
        echo '```'
        cat "$REDIS_RESULTS"
        echo '```'
    fi
    if [ -s "$CLUSTER_RESULTS" ]; then
        echo
        echo 'Cluster:'
        echo
        echo '```'
        cat "$CLUSTER_RESULTS"
        echo '```'
    fi
    if [ -s "$WS_RESULTS" ]; then
        echo
        echo 'Half over WebSocket:'
        echo
        echo '```'
        cat "$WS_RESULTS"
        echo '```'
    fi
    echo
    echo "</details>"
    echo "<!-- bench:end -->"
}

if [ -z "$ONLY" ] || [ "${BENCH_WRITE:-0}" = 1 ]; then
    SECTION=$TMP/section.md
    write_section >"$SECTION"
    if [ ! -f "$DOC" ]; then
        printf '# Performance\n\n<!-- bench:begin -->\n<!-- bench:end -->\n' >"$DOC"
    fi
    if ! grep -q '<!-- bench:begin -->' "$DOC" || ! grep -q '<!-- bench:end -->' "$DOC"; then
        printf '\n<!-- bench:begin -->\n<!-- bench:end -->\n' >>"$DOC"
    fi
    # Replace what lies between the markers (markers included) by the section.
    awk -v section="$SECTION" '
        /<!-- bench:begin -->/ { while ((getline line < section) > 0) print line; skip = 1; next }
        /<!-- bench:end -->/ { skip = 0; next }
        !skip { print }
    ' "$DOC" >"$TMP/doc.md"
    cp "$TMP/doc.md" "$DOC"
    echo "bench: wrote the latest run to ${DOC#"$ROOT"/}"
fi

if [ ${#FAILED[@]} -gt 0 ]; then
    echo "bench: failed to run: ${FAILED[*]}" >&2
    exit 1
fi
