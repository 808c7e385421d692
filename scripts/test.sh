#!/usr/bin/env bash
# The whole test suite, as root (integration tests load real BPF programs and
# fail, never skip, when they cannot): formatting, lints, then every test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/install-deps.sh
source scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
