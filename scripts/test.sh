#!/usr/bin/env bash
# The whole test suite (the README's test command). Needs root, and the
# packages from scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# The conformance tests drive the built binaries.
cargo build --workspace --bins
cargo test --workspace -- --test-threads=2
