#!/usr/bin/env bash
# demo-concurrency: 200 clients are connected at once (TLS), each posts a
# line; an observer receives all 200, and every client exits cleanly.
DEMO=demo-concurrency
. "$(dirname "$0")/lib.sh" "$@"
N=200

say "a TLS server with two I/O worker threads"
# All $N come from 127.0.0.1: lift the cap of 16 connections per address.
start_server --workers 2 --max-connections-per-ip 1000 --registrations-per-hour 0
client --nick pin </dev/null >/dev/null 2>&1 # pin the certificate once

say "an observer joins, then $N clients connect, post, and stay until all are in"
# The observer reads its input from a FIFO held open by fd 8: closing it
# later is its end of input, and it leaves.
mkfifo "$WORK/observer.in"
client --nick observer <"$WORK/observer.in" >"$WORK/observer" 2>&1 &
OBS=$!
exec 8>"$WORK/observer.in"
sleep 0.5
# Each client's input ends when the gate opens: opening the FIFO to read
# waits for a writer, and reading gets its end at once when it closes (a
# loop polling a file every 0.2 s was 1,000 process starts a second, which
# starved the server on a busy 2-core machine).
mkfifo "$WORK/gate"
start=$(date +%s%N)
pids=()
for i in $(seq 1 $N); do
    (
        printf 'hello from user%s\n' "$i"
        cat "$WORK/gate"
    ) | client --nick "user$i" >"$WORK/user$i" 2>&1 &
    pids+=($!)
done
for _ in $(seq 600); do
    [ "$(grep -c '> hello from user' "$WORK/observer")" -ge "$N" ] && break
    sleep 0.1
done
echo "  all connected and posted after $((($(date +%s%N) - start) / 1000000)) ms"
admin /stats
printf '!online\n' | client --nick counter >"$WORK/counter" 2>&1
sleep 0.5
exec 7>"$WORK/gate" # every reader's open completes …
sleep 0.5
exec 7>&-           # … and every reader sees the end
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
sleep 0.5
exec 8>&-
wait $OBS 2>/dev/null || true
grep -A3 '^connections' "$WORK/server.out" | sed 's/^/  admin    │ /' || true
grep ' joined$\| left' "$WORK/observer" | cut -c1-110 | head -6 | sed 's/^/  observer │ /'
echo "  …"
sed 's/^/  counter  │ /' "$WORK/counter" | cut -c1-110

say "checks"
check "all $N clients exited with status 0" test "$failed" -eq 0
check "the observer received all $N messages" \
    test "$(grep -c '> hello from user' "$WORK/observer")" -eq "$N"
check "everyone is online at once: !online counts $((N + 2)) (with observer and counter)" \
    grep -q "\* $((N + 2)) online:" "$WORK/counter"
joins=$(grep -c ' joined$' "$WORK/observer" || true)
check "arrivals were combined: $N arrivals in $joins presence lines" test "$joins" -lt $((N / 4))
check "every client saw its own message" \
    bash -c 'for i in $(seq 1 '"$N"'); do grep -q "(you)> hello from user$i" "'"$WORK"'/user$i" || exit 1; done'
check "the console counted $((N + 1)) users logged in at once" \
    grep -q "^connections: [0-9]* ($((N + 1)) logged in," "$WORK/server.out"
finish
