#!/usr/bin/env bash
# Installs goroscope on this machine, as root: build dependencies, a release
# build, and the binary at /usr/local/bin/goroscope.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/install-deps.sh
source scripts/install-deps.sh
cargo build --release --locked -p goroscope
install -m 0755 target/release/goroscope /usr/local/bin/goroscope
echo "install: goroscope installed at /usr/local/bin/goroscope" >&2
