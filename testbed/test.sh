#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and end-to-end tests.
# End-to-end tests need root (namespaces, raw sockets); CI runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash testbed/install-deps.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# Every fuzz target, bounded (~8 s each over its seeds; fuzz/README.md).
bash bench/fuzz.sh ci
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --profile "${NEXTEST_PROFILE:-default}" "$@"
else
  cargo test --locked -- --test-threads=1 "$@"
fi
