#!/usr/bin/env bash
# agent-soak.sh: `goroscope agent` with every collector on, under process churn, next to real
# Go services, for a long time. Checks what production needs: nothing lost, counts exact, memory
# bounded.
#
#   - Debian's prometheus and etcd run idle on loopback (real Go services the agent snapshots);
#   - a spawner starts RATE processes per second for SOAK_S seconds, each a copy of testload
#     under a unique name making 10 getppid calls;
#   - the agent's RSS is sampled every second.
#
# At the end, from one scrape of /metrics, these must hold exactly (N = RATE x SOAK_S):
#   process_execs_total{comm=CHILD} = N            process_exits_total{comm=CHILD,status="0"} = N
#   syscalls_total{comm=CHILD,syscall="execve"} = N  syscalls_total{comm=CHILD,syscall="getppid"} = 10 N
#   every series of CHILD has the spawner's cgroup   events_dropped_total = 0 (every stage)
#   both Go services are watched (go_goroutines)     peak RSS (VmHWM) <= MAX_RSS_MB
#   the agent's anonymous memory (heap, stacks, maps; RssAnon sampled every second) <= MAX_ANON_MB
# It prints each figure and exits 1 when one does not hold.
#
# Usage: bench/agent-soak.sh   (as root; a 10-minute soak by default)
# Environment: SOAK_S (600), RATE (200), INTERVAL (5s), MAX_RSS_MB (50), MAX_ANON_MB (40),
#   GO_SERVICES (1),
#   GOROSCOPE_BIN (default: cargo build --release), TESTLOAD_BIN (default: built with it).
# crates/goroscope/tests/agent_soak.rs runs it for 2 minutes in CI.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOAK_S=${SOAK_S:-600}
RATE=${RATE:-200}
INTERVAL=${INTERVAL:-5s}
MAX_RSS_MB=${MAX_RSS_MB:-50}
MAX_ANON_MB=${MAX_ANON_MB:-40}
GO_SERVICES=${GO_SERVICES:-1}

if [ "$(id -u)" -ne 0 ]; then
    echo "agent-soak: run as root (the agent loads BPF programs)" >&2
    exit 2
fi
for tool in curl awk; do
    command -v "$tool" >/dev/null || {
        echo "agent-soak: $tool is missing (apt-get install $tool)" >&2
        exit 2
    }
done
if [ "$GO_SERVICES" = 1 ]; then
    for tool in prometheus etcd; do
        command -v "$tool" >/dev/null || {
            echo "agent-soak: $tool is missing: run scripts/install-daemons.sh" >&2
            exit 2
        }
    done
fi
if [ -z "${GOROSCOPE_BIN:-}" ] || [ -z "${TESTLOAD_BIN:-}" ]; then
    (cd "$root" && cargo build --release --locked -q -p goroscope -p testload)
    GOROSCOPE_BIN="${GOROSCOPE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/goroscope}"
    TESTLOAD_BIN="${TESTLOAD_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/testload}"
fi

work="$(mktemp -d)"
pids_to_kill=()
cgroup=""
cleanup() {
    for p in "${pids_to_kill[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$cgroup" ] && rmdir "$cgroup2$cgroup" 2>/dev/null || true
    [ -n "${KEEP_WORK:-}" ] && echo "agent-soak: kept $work" || rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rss_kb() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status"; }
ticks="$(getconf CLK_TCK)"
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

port="$(free_port)"
if [ "$GO_SERVICES" = 1 ]; then
    p1="$(free_port)"
    mkdir -p "$work/prometheus"
    printf 'global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ["127.0.0.1:%s"]\n' "$p1" >"$work/prometheus/prometheus.yml"
    prometheus --config.file="$work/prometheus/prometheus.yml" --storage.tsdb.path="$work/prometheus/data" \
        --web.listen-address="127.0.0.1:$p1" >"$work/prometheus.log" 2>&1 &
    prometheus_pid=$!
    pids_to_kill+=("$prometheus_pid")
    e1="$(free_port)"
    e2="$(free_port)"
    etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$e1" \
        --advertise-client-urls "http://127.0.0.1:$e1" --listen-peer-urls "http://127.0.0.1:$e2" \
        --initial-advertise-peer-urls "http://127.0.0.1:$e2" \
        --initial-cluster "default=http://127.0.0.1:$e2" >"$work/etcd.log" 2>&1 &
    etcd_pid=$!
    pids_to_kill+=("$etcd_pid")
fi

cat >"$work/agent.yaml" <<YAML
listen: 127.0.0.1:$port
interval: $INTERVAL
collectors:
  network: { exclude: [] }
  go: { enabled: true, interval: 10s, discover_every: 5s }
labels: [comm, cgroup]
YAML
"$GOROSCOPE_BIN" agent --config "$work/agent.yaml" 2>"$work/agent.log" &
agent=$!
pids_to_kill+=("$agent")
for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$agent" 2>/dev/null || { echo "agent-soak: the agent exited:" >&2; cat "$work/agent.log" >&2; exit 1; }
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "agent-soak: the agent never became ready" >&2; exit 1; }

# The spawner and its children run in a cgroup of their own, so the cgroup label is checkable.
tag="gsk$$"
child="${tag}c"
mkdir -p "$work/bin"
cp "$TESTLOAD_BIN" "$work/bin/$child"
cp "$TESTLOAD_BIN" "$work/bin/${tag}s"
# The cgroup v2 hierarchy: /sys/fs/cgroup on most hosts, /sys/fs/cgroup/unified on hybrid ones.
cgroup2="$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' /proc/self/mountinfo)"
[ -n "$cgroup2" ] || { echo "agent-soak: no cgroup2 hierarchy is mounted" >&2; exit 2; }
cgroup="/goroscope-soak-$$"
mkdir "$cgroup2$cgroup"
n=$((RATE * SOAK_S))
cpu0="$(cpu_ticks "$agent")"
sh -c 'echo $$ > "$1/cgroup.procs" && exec "$2" spawn "$3" "$4" "$5" getppid 10' sh \
    "$cgroup2$cgroup" "$work/bin/${tag}s" "$RATE" "$n" "$work/bin/$child" &
spawner=$!
pids_to_kill+=("$spawner")
max_rss=0
max_anon=0
start=$(date +%s)
while kill -0 "$spawner" 2>/dev/null; do
    rss="$(rss_kb "$agent" VmRSS)"
    [ "$rss" -gt "$max_rss" ] && max_rss=$rss
    anon="$(rss_kb "$agent" RssAnon)"
    [ "$anon" -gt "$max_anon" ] && max_anon=$anon
    kill -0 "$agent" 2>/dev/null || { echo "agent-soak: the agent died:" >&2; cat "$work/agent.log" >&2; exit 1; }
    sleep 1
done
wait "$spawner" || { echo "agent-soak: the spawner failed" >&2; exit 1; }
elapsed=$(($(date +%s) - start))
cpu1="$(cpu_ticks "$agent")"

# Two collections after the last exit, every count must be exact.
interval_s="$(awk -v i="$INTERVAL" 'BEGIN { v = i + 0; if (i ~ /ms$/) v /= 1000; else if (i ~ /m$/) v *= 60; print v }')"
sleep "$(awk -v s="$interval_s" 'BEGIN { print 2 * s + 2 }')"
curl -sf "http://127.0.0.1:$port/metrics" >"$work/metrics.txt"
sum() { # family, then label filters as regexes that must all match the label set
    local family="$1"
    shift
    awk -v f="$family" -v filters="$*" '
        BEGIN { k = split(filters, want, " ") }
        index($0, f"{") == 1 {
            ok = 1
            for (i = 1; i <= k; i++) if (index($0, want[i]) == 0) ok = 0
            if (ok) s += $NF
        }
        END { printf "%.0f\n", s }' "$work/metrics.txt"
}
failures=0
expect() { # what, got, want
    if [ "$2" = "$3" ]; then
        printf 'ok    %-58s %s\n' "$1" "$2"
    else
        printf 'FAIL  %-58s %s (want %s)\n' "$1" "$2" "$3"
        failures=$((failures + 1))
    fi
}
c="comm=\"$child\""
expect "process_execs_total{$c}" "$(sum goroscope_process_execs_total "$c")" "$n"
expect "process_exits_total{$c,status=\"0\"}" "$(sum goroscope_process_exits_total "$c" 'status="0"')" "$n"
expect "syscalls_total{$c,syscall=\"execve\"}" "$(sum goroscope_syscalls_total "$c" 'syscall="execve"')" "$n"
expect "syscalls_total{$c,syscall=\"getppid\"}" "$(sum goroscope_syscalls_total "$c" 'syscall="getppid"')" "$((10 * n))"
expect "process_execs_total{$c} in cgroup $cgroup" \
    "$(sum goroscope_process_execs_total "$c" "cgroup=\"$cgroup\"")" "$n"
outside="$(awk -v c="$c" -v g="cgroup=\"$cgroup\"" '!/^#/ && index($0, c) && !index($0, g) { n++ } END { print n + 0 }' "$work/metrics.txt")"
expect "series of $child outside cgroup $cgroup" "$outside" 0
expect "events_dropped_total (every stage)" "$(sum goroscope_events_dropped_total)" 0
if [ "$GO_SERVICES" = 1 ]; then
    for p in "$prometheus_pid" "$etcd_pid"; do
        watched="$(awk -v p="pid=\"$p\"" 'index($0, "goroscope_go_goroutines{") == 1 && index($0, p) { n++ } END { print (n > 0) }' "$work/metrics.txt")"
        expect "Go service pid $p watched" "$watched" 1
    done
fi
hwm="$(rss_kb "$agent" VmHWM)"
rss="$(rss_kb "$agent" VmRSS)"
file="$(rss_kb "$agent" RssFile)"
awk -v r="$RATE" -v n="$n" -v e="$elapsed" -v hwm="$hwm" -v max="$max_rss" -v rss="$rss" \
    -v anon="$max_anon" -v file="$file" \
    -v t0="$cpu0" -v t1="$cpu1" -v hz="$ticks" 'BEGIN {
    printf "churn: %d processes at %d/s in %d s; agent CPU %.1f%% of a core\n", n, r, e, 100 * (t1 - t0) / hz / e
    printf "agent RSS: peak (VmHWM) %.1f MB, highest sampled %.1f MB, at the end %.1f MB\n", hwm / 1024, max / 1024, rss / 1024
    printf "agent RSS by kind: anonymous (heap, stacks) highest sampled %.1f MB; file-backed (its code) at the end %.1f MB\n", anon / 1024, file / 1024 }'
if [ "$hwm" -gt $((MAX_RSS_MB * 1024)) ]; then
    echo "FAIL  peak RSS above $MAX_RSS_MB MB"
    failures=$((failures + 1))
fi
if [ "$max_anon" -gt $((MAX_ANON_MB * 1024)) ]; then
    echo "FAIL  anonymous memory above $MAX_ANON_MB MB"
    failures=$((failures + 1))
fi
kill -TERM "$agent"
wait "$agent" || { echo "FAIL  the agent did not exit 0 on SIGTERM"; failures=$((failures + 1)); }
if [ "$failures" -gt 0 ]; then
    echo "agent-soak: $failures check(s) failed; the agent's log:"
    tail -n 20 "$work/agent.log"
    exit 1
fi
echo "agent-soak: every check passed"
