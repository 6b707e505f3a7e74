#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (real etcd, real kubectl).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

export CARGO_TERM_COLOR=never
# Incremental caches double the target directory and a one-off build gains nothing from them.
export CARGO_INCREMENTAL=0
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (binaries the integration tests spawn)"
cargo build --workspace --locked
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked -- --test-threads 4 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary, the last often a
# doc-test binary with 0 tests).
passed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
exit "$status"
