#!/usr/bin/env bash
# Prints the path of the OpenTelemetry Collector goroscope's OTLP tests run,
# building it from testdata/otelcol (the Collector's own Go modules, pinned in its
# go.mod and go.sum) only when it is missing or its sources changed. The binary is
# target/otelcol/<release>/otelcol; the build goes to a temporary name and is
# renamed, under a lock, so concurrent callers build it once and never see half a
# file. It needs Go 1.26 or newer: built with the newest toolchain the Go test
# programs use (go1.27.4 through GOTOOLCHAIN, fetched by scripts/go-toolchains.sh
# or here through the module proxy).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/testdata/otelcol"
toolchain=go1.27.4  # crates/gotest's NEWEST_TOOLCHAIN

if [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; else GO=$(command -v go || true); fi
if [ -z "$GO" ]; then
    echo "otelcol: no Go toolchain on PATH; install Go (https://go.dev/dl) first" >&2
    exit 1
fi

release="$(awk '$1 == "go.opentelemetry.io/collector/otelcol" { print $2 }' "$src/go.mod")"
if [ -z "$release" ]; then
    echo "otelcol: $src/go.mod does not require go.opentelemetry.io/collector/otelcol" >&2
    exit 1
fi
out_dir="$root/target/otelcol/$release"
binary="$out_dir/otelcol"
# What the binary was built from: a changed main.go, requirement or go.sum
# rebuilds it (go.mod's comment lines do not count).
sources="$(cd "$src" && { grep -v '^//' go.mod; cat go.sum ./*.go; } | sha256sum | cut -d' ' -f1) $toolchain"

mkdir -p "$out_dir"
exec 9>"$out_dir/.lock"
flock 9
if [ -x "$binary" ] && [ "$(cat "$out_dir/sources" 2>/dev/null)" = "$sources" ]; then
    echo "$binary"
    exit 0
fi

temporary="$out_dir/.otelcol.$$"
trap 'rm -f "$temporary"' EXIT
echo "otelcol: building the OpenTelemetry Collector $release with $toolchain (once; a few minutes)" >&2
(cd "$src" && GOTOOLCHAIN=$toolchain GOFLAGS=-mod=readonly CGO_ENABLED=0 \
    "$GO" build -trimpath -ldflags="-s -w" -o "$temporary" .) >&2
mv -f "$temporary" "$binary"
echo "$sources" >"$out_dir/sources"
echo "$binary"
