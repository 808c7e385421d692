#!/usr/bin/env bash
# Installs every Go toolchain the tests build their Go programs with: Debian's golang-go (Go 1.19),
# the machine's own Go, and released toolchains fetched through the Go module proxy (GOTOOLCHAIN).
# The list lives in crates/gotest/src/lib.rs (TOOLCHAINS); keep the two in step.
set -euo pipefail

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
    echo "go-toolchains: no Go toolchain on PATH; install Go (https://go.dev/dl) first" >&2
    exit 1
fi
GO=$(command -v go || echo /usr/local/go/bin/go)

if [ ! -x /usr/lib/go-1.19/bin/go ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q golang-go >/dev/null
fi

for version in go1.20.14 go1.21.13 go1.22.12 go1.23.12 go1.24.13 go1.25.14 go1.27.4; do
    GOTOOLCHAIN=$version "$GO" version
done
/usr/lib/go-1.19/bin/go version
"$GO" version
