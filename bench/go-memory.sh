#!/usr/bin/env bash
# go-memory.sh: the agent's memory with real Go services on the host.
#
# Starts Debian's prometheus and etcd (go1.19.8, stripped, ~50 MB and ~21 MB binaries) idle on
# loopback, as tests/real_daemons.rs does, then runs `goroscope agent` with every collector on
# (Go snapshots every second) for DURATION_S seconds and prints, from /proc/PID/status, its peak
# RSS (VmHWM), its RSS at the end (VmRSS, split into RssAnon and RssFile) and the largest VmRSS
# sampled every 0.5 s; and checks that both daemons were watched the whole time
# (goroscope_go_processes). With BEFORE_BIN set, that binary is measured too, alternating with
# the new one ROUNDS times, in one run (the machine is noisy).
#
# Goal: peak RSS <= 50 MB for the whole agent.
#
# Usage: bench/go-memory.sh   (as root; scripts/install-daemons.sh installs the daemons)
# Environment: GOROSCOPE_BIN (default: cargo build --release), BEFORE_BIN (unset), DURATION_S
#   (30), ROUNDS (2), ALL_PROCESSES (0: only the two daemons are targets; 1: the whole host).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION_S=${DURATION_S:-30}
ROUNDS=${ROUNDS:-2}
readonly PROM_PORT=19961 ETCD_PORT=19962 ETCD_PEER=19963 AGENT_PORT=19964

if [ "$(id -u)" -ne 0 ]; then
    echo "go-memory: run as root (the agent loads BPF programs)" >&2
    exit 2
fi
for tool in curl /usr/bin/prometheus /usr/bin/etcd; do
    command -v "$tool" >/dev/null || {
        echo "go-memory: $tool is missing (scripts/install-daemons.sh; apt-get install curl)" >&2
        exit 2
    }
done
if [ -z "${GOROSCOPE_BIN:-}" ]; then
    (cd "$root" && cargo build --release --locked -q -p goroscope)
    GOROSCOPE_BIN="${CARGO_TARGET_DIR:-$root/target}/release/goroscope"
fi

work="$(mktemp -d)"
pids_to_kill=()
cleanup() {
    for p in "${pids_to_kill[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:$PROM_PORT']
YAML
/usr/bin/prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!
pids_to_kill+=("$prometheus_pid")
/usr/bin/etcd --data-dir "$work/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER" >"$work/etcd.log" 2>&1 &
etcd_pid=$!
pids_to_kill+=("$etcd_pid")
for url in "http://127.0.0.1:$PROM_PORT/metrics" "http://127.0.0.1:$ETCD_PORT/metrics"; do
    for _ in $(seq 100); do curl -fs -o /dev/null "$url" && break; sleep 0.2; done
    curl -fs -o /dev/null "$url" || { echo "go-memory: $url never answered" >&2; exit 1; }
done
sleep 3 # let them settle

# Only the two daemons are targets (every collector still on), so other Go programs on a shared
# machine do not change the figure; ALL_PROCESSES=1 watches the whole host instead.
targets="targets: { pids: [$prometheus_pid, $etcd_pid] }"
[ "${ALL_PROCESSES:-0}" = 1 ] && targets=""
cat >"$work/agent.yaml" <<YAML
listen: 127.0.0.1:$AGENT_PORT
interval: 1s
collectors:
  go: { interval: 1s, discover_every: 2s }
$targets
YAML

status_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

# measure LABEL BINARY: one agent run; prints one result line.
measure() {
    local label=$1 bin=$2
    "$bin" agent --config "$work/agent.yaml" >"$work/agent.out" 2>"$work/agent.err" &
    local pid=$!
    pids_to_kill+=("$pid")
    for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$AGENT_PORT/readyz" && break; sleep 0.2; done
    local max_rss=0 watched_min=99 end=$((SECONDS + DURATION_S)) next_scrape=$((SECONDS + 5))
    while [ "$SECONDS" -lt "$end" ]; do
        local rss
        rss=$(status_kb "$pid" VmRSS)
        [ "$rss" -gt "$max_rss" ] && max_rss=$rss
        if [ "$SECONDS" -ge "$next_scrape" ]; then
            local watched
            watched=$(curl -fs "http://127.0.0.1:$AGENT_PORT/metrics" |
                awk '/^goroscope_go_processes\{.*comm="(prometheus|etcd)"/ { n += $NF } END { print n + 0 }')
            [ "$watched" -lt "$watched_min" ] && watched_min=$watched
            next_scrape=$((SECONDS + 5))
        fi
        sleep 0.5
    done
    local hwm rss anon file
    hwm=$(status_kb "$pid" VmHWM)
    rss=$(status_kb "$pid" VmRSS)
    anon=$(status_kb "$pid" RssAnon)
    file=$(status_kb "$pid" RssFile)
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    printf '%-7s peak VmHWM %6.1f MB   max sampled VmRSS %6.1f MB   end VmRSS %6.1f MB (anon %5.1f, file %5.1f)   Go daemons watched: %s of 2\n' \
        "$label" "$(echo "$hwm/1024" | bc -l)" "$(echo "$max_rss/1024" | bc -l)" "$(echo "$rss/1024" | bc -l)" \
        "$(echo "$anon/1024" | bc -l)" "$(echo "$file/1024" | bc -l)" "$watched_min"
    if [ "$watched_min" -lt 2 ]; then
        echo "go-memory: the agent ($label) did not watch both daemons:" >&2
        cat "$work/agent.err" >&2
        exit 1
    fi
}

echo "go-memory: prometheus and etcd idle on loopback; agent with every collector on, Go every 1s; ${DURATION_S}s per run"
for _ in $(seq "$ROUNDS"); do
    if [ -n "${BEFORE_BIN:-}" ]; then measure before "$BEFORE_BIN"; fi
    measure after "$GOROSCOPE_BIN"
done
