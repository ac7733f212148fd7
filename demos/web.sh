#!/usr/bin/env bash
# demo-web: two people in a browser (headless Chromium) and one in the
# terminal client chat in public, in private and in a group, send a file
# each way with the hashes checked, and live through a kill -9 of the
# server: the pages reconnect by themselves and show nothing twice. The
# story is server/examples/web_demo.rs (the browser tests' harness); the
# screenshots of the pages at each step go to demos/out/web/.
set -euo pipefail
DEMO=demo-web
BIN=$(cd "${1:-target/debug}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/demos/out/web
CARGO=${CARGO:-cargo}

# Built with the same profile as the binaries it is given.
profile=()
[ "$(basename "$BIN")" = release ] && profile=(--release)
(cd "$ROOT" && "$CARGO" build -q "${profile[@]}" -p chat-server -p chat-client --bins --example web_demo)
status=0
"$BIN/examples/web_demo" "$BIN" "$OUT" || status=$?

# The demo's own checks passed; now that the screenshots are real pictures.
if [ "$status" -eq 0 ]; then
    for png in "$OUT"/*.png; do
        [ -e "$png" ] || continue
        if [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" != 89504e470d0a1a0a ] || [ "$(stat -c %s "$png")" -lt 5000 ]; then
            printf '  \033[31mFAIL\033[0m %s is not a screenshot of a page\n' "$(basename "$png")"
            status=1
        fi
    done
fi
if [ "$status" -ne 0 ]; then
    printf '\n\033[31m%s failed (exit %d)\033[0m\n' "$DEMO" "$status"
    exit 1
fi
