#!/bin/sh
# test.sh OUT CACHE: the app's tests; counts its runs in the cache mount.
set -eu
out=$1 cache=$2
"$out/hello" | grep -q "hello from" || { echo "hello is broken" >&2; exit 1; }
test -x "$out/serve"
echo run >> "$cache/test-runs"
echo "tests passed (run $(wc -l < "$cache/test-runs") with this cache)"
