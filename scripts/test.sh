#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (real etcd, real kubectl).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (binaries the integration tests spawn)"
cargo build --workspace --locked
echo "== cargo test"
cargo test --workspace --locked -- --test-threads 4
