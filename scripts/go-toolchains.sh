#!/usr/bin/env bash
# Installs every Go toolchain the tests build their Go programs with: Debian's golang-go (Go 1.19),
# the machine's own Go, and released toolchains fetched through the Go module proxy (GOTOOLCHAIN).
# The list lives in crates/gotest/src/lib.rs (TOOLCHAINS); keep the two in step.
set -euo pipefail

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
    echo "go-toolchains: no Go toolchain on PATH; install Go (https://go.dev/dl) first" >&2
    exit 1
fi
# The machine's own Go runs the GOTOOLCHAIN downloads; prefer it over Debian's /usr/bin/go (1.19).
if [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; else GO=$(command -v go); fi

if [ ! -x /usr/lib/go-1.19/bin/go ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq golang-go >/dev/null
fi

for version in go1.20.14 go1.21.13 go1.22.12 go1.23.12 go1.24.13 go1.25.14 go1.26.8 go1.27.4; do
    GOTOOLCHAIN=$version "$GO" version
done
/usr/lib/go-1.19/bin/go version
"$GO" version
