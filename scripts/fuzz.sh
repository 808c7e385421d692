#!/usr/bin/env bash
# Fuzzes goroscope-gobin's binary parsers (build info and .gopclntab) with cargo-fuzz.
#
#   scripts/fuzz.sh [SECONDS]     run each target for SECONDS (default 60)
#
# Installs a nightly toolchain and cargo-fuzz when missing. New inputs go to
# crates/goroscope-gobin/fuzz/work/<target> (ignored by git); the committed seeds in
# crates/goroscope-gobin/fuzz/corpus/<target> are only read. Crashes are saved under
# crates/goroscope-gobin/fuzz/artifacts/<target> and make the script fail.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
crate="$root/crates/goroscope-gobin"
targets=(buildinfo_parse pclntab_parse)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo +nightly install cargo-fuzz --locked
fi

cd "$crate"
status=0
summary=""
for target in "${targets[@]}"; do
    work="$crate/fuzz/work/$target"
    mkdir -p "$work"
    log="$(mktemp)"
    echo "== fuzzing $target for ${seconds}s"
    if ! cargo +nightly fuzz run "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tee "$log"; then
        status=1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    summary+="$target: ${runs:-?} executions"$'\n'
    rm -f "$log"
done
printf '%s' "$summary"
if [ "$status" -ne 0 ]; then
    echo "a fuzz target failed: see crates/goroscope-gobin/fuzz/artifacts/" >&2
fi
exit "$status"
