#!/usr/bin/env bash
# demo-group: the instructor creates a class group and announces to it; a
# student asks a question and everyone in the group sees it; a student who
# is not in the group sees none of it; the console lists the group.
DEMO=demo-group
. "$(dirname "$0")/lib.sh" "$@"

say "a TLS server; the students ann, ben and eve have accounts"
start_server
client --nick pin </dev/null >/dev/null 2>&1 # pin the certificate once
for nick in ann ben eve; do client --nick "$nick" </dev/null >/dev/null 2>&1; done

say "ann, ben and eve are online; prof creates #class with ann and ben and announces"
(sleep 2; printf '#class can we use calculators?\n'; sleep 2) | client --nick ann >"$WORK/ann" 2>&1 &
A=$!
sleep 4 | client --nick ben >"$WORK/ben" 2>&1 &
B=$!
sleep 4 | client --nick eve >"$WORK/eve" 2>&1 &
E=$!
sleep 0.5
(printf '!group create class ann ben\n'; sleep 0.5
 printf '!group class exam on friday at 9, bring a pencil\n'; sleep 3) |
    client --nick prof >"$WORK/prof" 2>&1
wait $A $B $E
admin /groups
sleep 0.5

show prof "$WORK/prof"
show ann "$WORK/ann"
show ben "$WORK/ben"
show eve "$WORK/eve"
say "the console's /groups"
grep -A2 '^GROUP' "$WORK/server.out" | sed 's/^/  server │ /'

say "checks"
check "prof created the private group with ann and ben" \
    grep -q '\* created #class (private, 3 members, owner prof): ann, ben, prof' "$WORK/prof"
for who in ann ben; do
    check "$who sees the announcement" grep -q '\[#class\] prof: exam on friday at 9, bring a pencil' "$WORK/$who"
done
check "prof sees his own announcement" grep -q '\[#class\] prof (you): exam on friday' "$WORK/prof"
for who in prof ben; do
    check "$who sees ann's question" grep -q '\[#class\] ann: can we use calculators?' "$WORK/$who"
done
check "ann sees her question went to the group" grep -q '\[#class\] ann (you): can we use calculators?' "$WORK/ann"
check "eve, not in the group, sees none of it" \
    bash -c '! grep -q "#class" "'"$WORK"'/eve"'
check "the console lists #class: owner prof, private, 3 members" \
    grep -Eq '^#class +prof +private +3 ' "$WORK/server.out"
finish
