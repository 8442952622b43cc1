#!/usr/bin/env bash
# The project's test command: installs the integration-test dependencies (idempotent, fast when
# present), then runs every test of the workspace. Extra arguments go to `cargo test`
# (e.g. `scripts/test.sh --test harness_smoke`, or a test-name filter).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

echo "==== test dependencies ===="
scripts/install-test-deps.sh

if [[ $# -gt 0 ]]; then
    echo "==== cargo test $* ===="
    exec cargo test "$@"
fi

echo "==== kclient unit tests (python) ===="
.tools/venv/bin/python -m unittest discover -s tests/client -p 'test_*.py'

# Doc tests first (--all-targets skips them), so the closing lines are the main run's.
echo "==== cargo test --workspace --doc ===="
cargo test --workspace --doc

# tests/bench_cli.rs runs the rdkafka baseline binary, which `cargo test` does not build.
echo "==== cargo build -p kferry-baseline ===="
cargo build -p kferry-baseline

echo "==== cargo test --workspace --all-targets ===="
cargo test --workspace --all-targets
