#!/usr/bin/env bash
# The tests: installs what is missing (scripts/setup.sh, idempotent), then checks formatting,
# lints, docs, an outside crate that depends on recrl-lib, and runs every test (unit,
# integration, the headless notebook tests), then a tiny sweep through a single-node Slurm.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Incremental artefacts only pay off on repeated edits; in a test run they are GBs of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "== cargo fmt --check"; cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy --workspace --all-targets -q -- -D warnings
echo "== cargo doc"; RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q
echo "== examples/use-as-dependency"
cargo run -q --manifest-path examples/use-as-dependency/Cargo.toml --target-dir target
echo "== structure: no function over 100 lines in recrl-lib/src, tests excepted (ARCHITECTURE.md)"
python3 scripts/longest_fns.py --top 3 --max 100 recrl-lib/src
echo "== explainer without the fast-decode feature"
cargo test -q -p recrl-lib --no-default-features --test explainer
echo "== cargo test"; cargo test --workspace
echo "== Slurm: a tiny sweep through a single-node Slurm (scripts/test_slurm.sh)"
bash scripts/test_slurm.sh
