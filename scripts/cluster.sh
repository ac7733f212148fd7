#!/usr/bin/env bash
# A chat cluster on this machine, on 127.0.0.1 only: a private PostgreSQL,
# N chat-server nodes on it (--cluster) and HAProxy in front of them.
#
#   bash scripts/cluster.sh start DIR [NODES=3]   start everything; DIR/cluster.env
#   bash scripts/cluster.sh stop DIR              stop everything started in DIR
#   bash scripts/cluster.sh kill DIR nK           SIGKILL node nK (a crash)
#   bash scripts/cluster.sh restart DIR nK        start node nK again, same port
#   bash scripts/cluster.sh run [NODES=3]         start in a temp dir, say how to
#                                                 connect, stop all on Ctrl-C
#
# Environment: BIN (the chat-server's directory, default target/release),
# NODE_ARGS (more flags for every node, e.g. --no-tls), FRONT_PER_ADDR
# (HAProxy refuses more than this many connections at once from one
# address; default 0: no cap). DIR/cluster.env (sourceable) holds PGPORT,
# PGURL, NODE_IDS, NODE_ADDRS (a client's --server list), NODE_nK, FRONT
# (empty without haproxy), CERT, FINGERPRINT and the pids (PID_PG, PID_nK,
# PID_HAPROXY). Logs: DIR/nK.log, DIR/pg.log, DIR/haproxy.log.
#
# Every node serves the same certificate (n1's, made at its first start), so
# a client that pinned it may land on any node.
set -euo pipefail

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# die MESSAGE: say it and fail; a half-started cluster is stopped first.
die() {
    echo "cluster.sh: $*" >&2
    [ -n "${STARTING:-}" ] && STARTING= && stop_all >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The PostgreSQL programs: pg_config's bindir, or the newest Debian one.
pg_bin() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir)
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return; }
    die "PostgreSQL not found (pg_config, /usr/lib/postgresql/*/bin, PATH): apt-get install postgresql"
}

# as_pg COMMAND…: run as the unprivileged user PostgreSQL runs as (initdb
# refuses root): `postgres` when we are root, else ourselves.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# alive PID: the process exists.
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# state KEY [VALUE]: read or write DIR/state/KEY.
state() {
    if [ $# -eq 2 ]; then echo "$2" >"$DIR/state/$1"; else cat "$DIR/state/$1" 2>/dev/null || true; fi
}

# write_env: DIR/cluster.env from the state files.
write_env() {
    local ids addrs="" id
    ids=$(state node_ids)
    {
        echo "PGPORT=$(state pgport)"
        echo "PGURL=postgres://postgres@127.0.0.1:$(state pgport)/chat"
        echo "NODE_IDS=\"$ids\""
        for id in $ids; do
            echo "NODE_$id=127.0.0.1:$(state "port_$id")"
            addrs="$addrs${addrs:+,}127.0.0.1:$(state "port_$id")"
        done
        echo "NODE_ADDRS=$addrs"
        echo "FRONT=$(state front)"
        echo "CERT=$(state cert)"
        echo "FINGERPRINT=$(state fingerprint)"
        echo "PID_PG=$(state pid_pg)"
        for id in $ids; do echo "PID_$id=$(state "pid_$id")"; done
        echo "PID_HAPROXY=$(state pid_haproxy)"
    } >"$DIR/cluster.env.tmp"
    mv "$DIR/cluster.env.tmp" "$DIR/cluster.env"
}

start_pg() {
    local bin port
    bin=$(pg_bin)
    port=$(free_port)
    mkdir -p "$DIR/pg"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$DIR" "$DIR/pg"
        runuser -u postgres -- test -w "$DIR/pg" ||
            die "the postgres user cannot reach $DIR (a parent directory is closed to it): use one under /tmp"
    fi
    as_pg "$bin/initdb" -D "$DIR/pg/data" -U postgres -A trust -E UTF8 --no-locale >"$DIR/pg.log" 2>&1 \
        || { cat "$DIR/pg.log" >&2; die "initdb failed"; }
    as_pg "$bin/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/log" -w -t 30 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $DIR/pg -c max_connections=300" start >>"$DIR/pg.log" 2>&1 \
        || { cat "$DIR/pg.log" "$DIR/pg/log" >&2; die "PostgreSQL did not start"; }
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres chat >>"$DIR/pg.log" 2>&1 \
        || { cat "$DIR/pg.log" >&2; die "createdb failed"; }
    state pgbin "$bin"
    state pgport "$port"
    state pid_pg "$(head -1 "$DIR/pg/data/postmaster.pid")"
}

# start_node nK: the node on its port (chosen at its first start), then wait
# until it says it listens and accepts a connection.
start_node() {
    local id=$1 port tls=()
    port=$(state "port_$id")
    [ -n "$port" ] || { port=$(free_port); state "port_$id" "$port"; }
    alive "$(state "pid_$id")" && die "$id is already running (pid $(state "pid_$id"))"
    # Every node after the first serves the first one's certificate.
    if [ -n "$(state cert)" ] && [ "$id" != "$(state first)" ]; then
        tls=(--tls-cert "$(state cert)" --tls-key "$(state key)")
    fi
    mkdir -p "$DIR/$id" "$DIR/spool"
    : >"$DIR/$id.out"
    # shellcheck disable=SC2086 # NODE_ARGS is a list of flags
    setsid "$BIN/chat-server" --cluster "postgres://postgres@127.0.0.1:$(state pgport)/chat" \
        --node-id "$id" --spool-dir "$DIR/spool" --data-dir "$DIR/$id" --bind "127.0.0.1:$port" \
        "${tls[@]}" ${NODE_ARGS:-} </dev/null >>"$DIR/$id.out" 2>>"$DIR/$id.log" &
    state "pid_$id" $!
    for _ in $(seq 300); do
        if grep -q "listening on 127.0.0.1:$port" "$DIR/$id.out" 2>/dev/null \
            && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            break
        fi
        alive "$(state "pid_$id")" || { tail -20 "$DIR/$id.log" >&2; die "$id exited"; }
        sleep 0.1
    done
    grep -q "listening on" "$DIR/$id.out" || { tail -20 "$DIR/$id.log" >&2; die "$id did not start in 30 s"; }
    if [ -z "$(state cert)" ] && [ -f "$DIR/$id/cert.pem" ]; then
        state first "$id"
        state cert "$DIR/$id/cert.pem"
        state key "$DIR/$id/key.pem"
        state fingerprint "$(grep -o 'SHA-256 [0-9A-Fa-f:]*' "$DIR/$id.out" | head -1 | cut -d' ' -f2)"
    fi
    echo "$id listening on 127.0.0.1:$port (pid $(state "pid_$id"))"
}

start_haproxy() {
    local front id cap=${FRONT_PER_ADDR:-0} maxconn
    # Two descriptors per proxied connection, within this shell's limit.
    maxconn=$((($(ulimit -n) - 100) / 2))
    [ "$maxconn" -le 20000 ] || maxconn=20000
    if ! command -v haproxy >/dev/null 2>&1; then
        echo "haproxy not found (apt-get install haproxy): no front port; clients use the server list NODE_ADDRS"
        state front ""
        return
    fi
    front=$(free_port)
    {
        echo "# Written by scripts/cluster.sh: TCP to the nodes, fewest connections first."
        echo "global"
        echo "    maxconn $maxconn"
        echo "defaults"
        echo "    mode tcp"
        echo "    timeout connect 2s"
        echo "    timeout client 1h"
        echo "    timeout server 1h"
        echo "frontend chat"
        echo "    bind 127.0.0.1:$front"
        if [ "$cap" -gt 0 ]; then
            echo "    # The per-address cap for the whole cluster (each node's own is per node)."
            echo "    stick-table type ip size 100k expire 30s store conn_cur"
            echo "    tcp-request connection track-sc0 src"
            echo "    tcp-request connection reject if { sc_conn_cur(0) gt $cap }"
        fi
        echo "    default_backend nodes"
        echo "backend nodes"
        echo "    balance leastconn"
        for id in $(state node_ids); do
            echo "    server $id 127.0.0.1:$(state "port_$id") check inter 1s fall 2 rise 2"
        done
    } >"$DIR/haproxy.cfg"
    haproxy -c -q -f "$DIR/haproxy.cfg" || die "haproxy refused $DIR/haproxy.cfg"
    setsid haproxy -f "$DIR/haproxy.cfg" </dev/null >>"$DIR/haproxy.log" 2>&1 &
    state pid_haproxy $!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$front") 2>/dev/null && break
        alive "$(state pid_haproxy)" || { cat "$DIR/haproxy.log" >&2; die "haproxy exited"; }
        sleep 0.1
    done
    state front "127.0.0.1:$front"
    echo "haproxy on 127.0.0.1:$front (pid $(state pid_haproxy))"
}

# stop_pid PID: SIGTERM, then SIGKILL after 5 s.
stop_pid() {
    local pid=$1
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

stop_all() {
    local id
    stop_pid "$(state pid_haproxy)"
    for id in $(state node_ids); do stop_pid "$(state "pid_$id")" & done
    wait
    if [ -n "$(state pgbin)" ] && [ -f "$DIR/pg/data/postmaster.pid" ]; then
        as_pg "$(state pgbin)/pg_ctl" -D "$DIR/pg/data" -m fast -w stop >>"$DIR/pg.log" 2>&1 || true
    fi
    echo "cluster in $DIR stopped"
}

cmd=${1:-}
# run: the foreground cluster of `make run-cluster`, in a directory of its own.
if [ "$cmd" = run ]; then
    run_dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-cluster.XXXXXX")
    trap 'trap - EXIT INT TERM; echo; bash "$0" stop "$run_dir"; rm -rf "$run_dir"; exit 0' EXIT INT TERM
    bash "$0" start "$run_dir" "${2:-3}"
    # shellcheck disable=SC1091
    . "$run_dir/cluster.env"
    echo
    if [ -n "$FRONT" ]; then
        echo "Connect through HAProxy:   make run-client ARGS=\"--server $FRONT\""
    fi
    echo "Or with the server list:   make run-client ARGS=\"--server $NODE_ADDRS\""
    echo "Certificate (every node):  SHA-256 $FINGERPRINT"
    echo "Kill a node:               bash scripts/cluster.sh kill $run_dir n1   (restart: … restart $run_dir n1)"
    echo "Logs in $run_dir; Ctrl-C stops everything."
    while sleep 3600; do :; done
fi
[ $# -ge 2 ] || usage
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
BIN=$(cd "${BIN:-target/release}" 2>/dev/null && pwd) || die "no directory ${BIN:-target/release} (BIN): build first"

case "$cmd" in
    start)
        nodes=${3:-3}
        [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "NODES must be a positive number, not '$nodes'"
        [ -x "$BIN/chat-server" ] || die "no $BIN/chat-server: build it first (cargo build --release)"
        [ -e "$DIR/cluster.env" ] && die "$DIR already holds a cluster (stop it, or use an empty directory)"
        mkdir -p "$DIR/state"
        STARTING=1
        state node_ids "$(seq -f 'n%g' 1 "$nodes" | tr '\n' ' ' | sed 's/ $//')"
        start_pg
        echo "PostgreSQL on 127.0.0.1:$(state pgport) (data in $DIR/pg)"
        for id in $(state node_ids); do start_node "$id"; write_env; done
        start_haproxy
        write_env
        STARTING=
        echo "cluster up: $DIR/cluster.env"
        ;;
    stop)
        [ -d "$DIR/state" ] || die "no cluster in $DIR"
        stop_all
        ;;
    kill | restart)
        [ $# -eq 3 ] || usage
        id=$3
        [ -d "$DIR/state" ] || die "no cluster in $DIR"
        [[ " $(state node_ids) " == *" $id "* ]] || die "no node '$id' (nodes: $(state node_ids))"
        if [ "$cmd" = kill ]; then
            pid=$(state "pid_$id")
            alive "$pid" || die "$id is not running"
            kill -KILL "$pid"
            while alive "$pid"; do sleep 0.05; done
            state "pid_$id" ""
            echo "$id killed (SIGKILL, pid $pid)"
        else
            start_node "$id"
        fi
        write_env
        ;;
    *) usage ;;
esac
