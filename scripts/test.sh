#!/usr/bin/env bash
# The whole test suite, as root (integration tests load real BPF programs and
# fail, never skip, when they cannot): formatting, lints, then every test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/install-deps.sh
source scripts/install-deps.sh
# The Go toolchains (1.19 to 1.27) the goroutine tests build their Go programs with.
bash scripts/go-toolchains.sh >/dev/null
# The OpenTelemetry Collector the OTLP tests run (built once, a few minutes cold,
# before the timed tests; cached in target/otelcol/).
bash scripts/otelcol.sh >/dev/null
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# Doc tests are left out: the crates have none, and their empty run would be
# the last summary line printed.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --no-fail-fast --workspace --lib --bins --tests 2>&1 | tee "$log" || status=$?
awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
        }
    }
    END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
