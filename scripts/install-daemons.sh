#!/usr/bin/env bash
# Installs the real Go daemons the real_daemons test compares goroscope against, on Debian 12, as
# root: prometheus, etcd-server (etcd), caddy and prometheus-node-exporter (all go1.19.8, stripped,
# cgo). The test starts its own instances on loopback; the packaged services must not run, so
# during the install /usr/sbin/policy-rc.d answers 101 ("action forbidden") to every request to
# start a service (an existing policy-rc.d is put back afterwards, a created one removed).
# Idempotent: installs only what is missing. Runs under an exclusive lock, so parallel callers
# install once. Fails if a packaged instance (one running as the package's service user) is running.
set -euo pipefail

packages=(prometheus etcd-server caddy prometheus-node-exporter)
binaries=(/usr/bin/prometheus /usr/bin/etcd /usr/bin/caddy /usr/bin/prometheus-node-exporter)
service_users=(prometheus etcd caddy)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-daemons: run as root (sudo $0)" >&2
    exit 2
fi

mkdir -p /run/lock
exec 9>/run/lock/goroscope-install-daemons.lock
flock 9

missing=()
for package in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
    guard=/usr/sbin/policy-rc.d
    backup=""
    if [ -e "$guard" ]; then
        backup="$(mktemp)"
        cp -p "$guard" "$backup"
    fi
    restore_guard() {
        if [ -n "$backup" ]; then
            cp -p "$backup" "$guard"
            rm -f "$backup"
        else
            rm -f "$guard"
        fi
    }
    trap restore_guard EXIT
    printf '#!/bin/sh\n# Written by goroscope scripts/install-daemons.sh for the length of an install.\nexit 101\n' >"$guard"
    chmod 755 "$guard"

    echo "install-daemons: installing ${missing[*]} (services kept stopped)" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get update -qq; then
        echo "install-daemons: apt-get update failed" >&2
        exit 1
    fi
    if ! apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >/dev/null; then
        echo "install-daemons: apt-get install ${missing[*]} failed" >&2
        exit 1
    fi
    restore_guard
    trap - EXIT
fi

for binary in "${binaries[@]}"; do
    if [ ! -x "$binary" ]; then
        echo "install-daemons: $binary is missing after the install" >&2
        exit 1
    fi
done

# A packaged instance runs one of the binaries as its service user (the systemd units and init
# scripts say User=prometheus, etcd or caddy). Instances the tests start run as root.
running=()
for proc in /proc/[0-9]*; do
    exe="$(readlink "$proc/exe" 2>/dev/null || true)"
    for binary in "${binaries[@]}"; do
        [ "$exe" = "$binary" ] || continue
        uid="$(awk '/^Uid:/ { print $2 }' "$proc/status" 2>/dev/null || true)"
        user="$(getent passwd "$uid" | cut -d: -f1 || true)"
        for service_user in "${service_users[@]}"; do
            if [ "$user" = "$service_user" ]; then
                running+=("PID ${proc#/proc/} ($binary as $user)")
            fi
        done
    done
done
if [ "${#running[@]}" -gt 0 ]; then
    echo "install-daemons: packaged instances are running: ${running[*]}." >&2
    echo "install-daemons: stop them (systemctl stop prometheus etcd caddy prometheus-node-exporter)" >&2
    exit 1
fi
