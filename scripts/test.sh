#!/usr/bin/env bash
# The whole test suite (the README's test command). Needs root, and the
# packages from scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# The conformance tests drive the built binaries.
cargo build --workspace --bins
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Every test binary runs, whatever fails first: one failure must not hide
# the rest of the suite.
cargo test --workspace --no-fail-fast -- --test-threads=2 2>&1 | tee "$log" || status=$?
# The deployable static runtime must pass our spec-conformance suite too.
if bash scripts/build-static-runtime.sh -q >/dev/null; then
  ./target/debug/spec-conformance --runtime strata-static=target/static-runtime/strata-runtime \
    > target/spec-conformance-static.tap 2>&1 || status=1
  tail -1 target/spec-conformance-static.tap | tee -a "$log"
else
  echo "static runtime build failed" | tee -a "$log"
  status=1
fi
# One closing line for the whole run (cargo ends on a doc-test summary).
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' \
  <(sed 's/;//g' "$log")
exit "$status"
