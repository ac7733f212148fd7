#!/usr/bin/env bash
# demo-offline: the instructor writes to a student who is offline; the
# message is stored (the instructor is told so), survives a server restart,
# and reaches the student at their next login, marked as received while away.
DEMO=demo-offline
. "$(dirname "$0")/lib.sh" "$@"

say "a TLS server; the student registered earlier and is offline now"
BIND_PORT=$(free_port) # the same address after the restart
start_server
client --nick student </dev/null >"$WORK/student-first" 2>&1

say "the instructor writes to the student"
printf '!private student please read chapter 3 before Monday\n' |
    client --nick instructor >"$WORK/instructor" 2>&1
show instructor "$WORK/instructor"

say "the server is restarted (cleanly); the message waits in its database"
admin /stats
sleep 0.5
admin /quit
wait "$SERVER_PID" 2>/dev/null || true
exec 9>&-
cp "$WORK/server.out" "$WORK/server.before"
start_server

say "the student logs in later"
client --nick student </dev/null >"$WORK/student" 2>&1
show student "$WORK/student"
client --nick student </dev/null >"$WORK/student-again" 2>&1

say "checks"
check "the instructor is told it is stored for the offline student" \
    grep -q '\* #1 stored for student (offline)' "$WORK/instructor"
check "the console counted one message stored for an offline user" \
    grep -q '^stored for offline users: 1' "$WORK/server.before"
check "the student is told a message waited" \
    grep -q '\* 1 message while you were away' "$WORK/student"
check "the student receives it, from the instructor, marked as received while away" \
    grep -q '\[private from instructor\] please read chapter 3 before Monday (while you were away)' "$WORK/student"
check "it is shown once" \
    test "$(grep -c 'please read chapter 3' "$WORK/student")" -eq 1
check "logging in once more does not show it again (the client acknowledged it)" \
    bash -c '! grep -q "chapter 3" "'"$WORK"'/student-again"'
finish
