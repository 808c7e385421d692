#!/usr/bin/env bash
# Regenerates crates/goroscope-gobin/src/offsets_table.rs: builds testdata/go/sample with DWARF using
# one toolchain per Go release line goroscope's tables cover (go1.19 … go1.27), reads the runtime
# struct offsets from each binary's DWARF with the gen_offsets example, and writes the table.
# The toolchains are the ones scripts/go-toolchains.sh installs (keep in step with
# crates/gotest/src/lib.rs). The tests in crates/goroscope-gobin/tests/offsets.rs check that the
# table still matches the DWARF of every toolchain.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SAMPLE="$REPO_ROOT/testdata/go/sample"
OUTPUT="$REPO_ROOT/crates/goroscope-gobin/src/offsets_table.rs"
HOST_GO=/usr/local/go/bin/go
[ -x "$HOST_GO" ] || HOST_GO=$(command -v go)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The newest point release of each line that the tests also build.
TOOLCHAINS=(go1.19.8 go1.20.14 go1.21.13 go1.22.12 go1.23.12 go1.24.13 go1.25.14 go1.26.8 go1.27.4)

args=()
for version in "${TOOLCHAINS[@]}"; do
    binary="$WORK/sample-$version"
    if [ "$version" = go1.19.8 ]; then
        # Debian's golang-go; GOTOOLCHAIN=go1.19.x cannot be fetched (toolchain switching starts at 1.21).
        (cd "$SAMPLE" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false /usr/lib/go-1.19/bin/go build -o "$binary" .)
    else
        (cd "$SAMPLE" && GOTOOLCHAIN=$version GOFLAGS=-buildvcs=false "$HOST_GO" build -o "$binary" .)
    fi
    built=$(GOTOOLCHAIN=local "$HOST_GO" version "$binary" | awk '{print $2}')
    if [ "$built" != "$version" ]; then
        echo "gen-go-offsets: $binary was built by $built, not $version" >&2
        exit 1
    fi
    line=${version#go}
    line=${line%.*}
    args+=("$line=$binary")
done

cd "$REPO_ROOT"
cargo run --quiet -p goroscope-gobin --example gen_offsets -- "${args[@]}" >"$WORK/offsets_table.rs"
rustfmt --edition 2021 "$WORK/offsets_table.rs"
mv "$WORK/offsets_table.rs" "$OUTPUT"
echo "gen-go-offsets: wrote $OUTPUT (${#TOOLCHAINS[@]} release lines)"
