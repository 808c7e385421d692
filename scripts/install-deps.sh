#!/usr/bin/env bash
# Installs what building and testing goroscope needs on a Debian machine, as
# root: clang (compiles the BPF programs), libelf and zlib (libbpf), pkg-config,
# bpftool (tests check no program stays loaded), bpftrace (the benchmark's
# reference), Debian's Go 1.19 (the oldest Go the goroutine tests build with) and
# setpriv, and Prometheus (the agent's tests scrape it with a real server and check
# its output with promtool; installed without its recommended node exporter).
# scripts/test.sh also fetches the other Go toolchains the tests use
# (scripts/go-toolchains.sh). Idempotent: installs only what is missing.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (sudo $0)" >&2
    exit 2
fi

need=()
command -v clang >/dev/null || need+=(clang)
command -v llvm-strip >/dev/null || need+=(llvm)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v bpftool >/dev/null || need+=(bpftool)
command -v bpftrace >/dev/null || need+=(bpftrace)
dpkg -s libelf-dev >/dev/null 2>&1 || need+=(libelf-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
[ -x /usr/lib/go-1.19/bin/go ] || need+=(golang-go)
command -v setpriv >/dev/null || need+=(util-linux)
command -v chromium >/dev/null || need+=(chromium)  # the HTML report's tests open it headless

if [ "${#need[@]}" -gt 0 ]; then
    echo "install-deps: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    echo "install-deps: installing prometheus" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || {
    echo "install-deps: no Rust toolchain found; install rustup (https://rustup.rs) first" >&2
    exit 1
}
