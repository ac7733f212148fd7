#!/usr/bin/env bash
# The long fuzzing run (`make fuzz`; docs/security.md, "Fuzzing").
#
# 1. The libFuzzer targets `decode` and `driver`, FUZZ_SECONDS each
#    (default 300), coverage-guided. Built on stable Rust with the same
#    instrumentation flags cargo-fuzz uses, minus the sanitizer (which needs
#    nightly; chat-common has no unsafe code for one to watch). Skipped,
#    with a note, if they cannot be built (no C++ compiler for libFuzzer).
# 2. The property tests of chat-common in release mode, PROP_SECONDS each
#    (default 60), on fresh random cases until the time is up.
#
# Prints how many executions each ran; any failure makes it exit non-zero,
# leaving the input in fuzz/artifacts/<target>/ (libFuzzer; replay it with
# `fuzz/target/<host>/release/<target> <file>`) or the shrunk case in the
# test's output (property tests). Logs: fuzz/target/*.log.
set -uo pipefail

cd "$(dirname "$0")"
FUZZ_SECONDS=${FUZZ_SECONDS:-300}
PROP_SECONDS=${PROP_SECONDS:-60}
host=$(rustc -vV | sed -n 's/^host: //p')
mkdir -p target
summary=target/summary.log
: >"$summary"
failed=0
say() { echo "$*" | tee -a "$summary"; }

# What `cargo fuzz build -s none` passes; --target keeps it off build scripts.
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
if cargo build --release --target "$host" --bins; then
    unset RUSTFLAGS
    for target in decode driver; do
        case $target in
            decode) max_len=4096 ;;
            driver) max_len=16384 ;;
        esac
        mkdir -p "corpus/$target" "artifacts/$target"
        echo "libFuzzer: $target for $FUZZ_SECONDS s (log: fuzz/target/$target.log)"
        "target/$host/release/$target" "corpus/$target" "seeds/$target" \
            -dict=json.dict -max_len=$max_len -timeout=10 -rss_limit_mb=1024 \
            -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
            -artifact_prefix="artifacts/$target/" >"target/$target.log" 2>&1
        status=$?
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "target/$target.log")
        cov=$(grep -E '^#[0-9]+' "target/$target.log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+')
        if [ "$status" -eq 0 ]; then
            say "libfuzzer $target: ${runs:-?} executions in $FUZZ_SECONDS s, no failure ($cov)"
        else
            failed=1
            say "libfuzzer $target: FAILED after ${runs:-?} executions (exit $status): see fuzz/artifacts/$target/ and fuzz/target/$target.log"
            tail -40 "target/$target.log"
        fi
    done
else
    unset RUSTFLAGS
    say "libfuzzer: the targets did not build here; property tests only"
fi

echo "property tests: $PROP_SECONDS s each (log: fuzz/target/props.log)"
(cd .. && CHAT_FUZZ_SECONDS=$PROP_SECONDS cargo test --release -p chat-common --tests -- --nocapture) \
    >target/props.log 2>&1
status=$?
sed -n 's/^.*fuzz: /proptest /p' target/props.log | tee -a "$summary"
if [ "$status" -ne 0 ]; then
    failed=1
    say "property tests: FAILED (exit $status): see fuzz/target/props.log"
    grep -A12 'minimal failing input\|panicked' target/props.log | tail -40
fi
total=$(sed -nE 's/.*: ([0-9]+) (executions|cases) in.*/\1/p' "$summary" | awk '{ n += $1 } END { print n + 0 }')
say "total: ${total:-0} executions; $([ $failed -eq 0 ] && echo 'no failures' || echo 'FAILURES')"
exit $failed
