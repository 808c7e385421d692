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
# With OTLP=1 the agent also exports over gRPC every OTLP_INTERVAL to a real OpenTelemetry
# Collector (scripts/otelcol.sh builds it) whose file exporter writes what arrives, and these
# must hold too, summed over the per-process resources the Collector received:
#   goroscope.process.execs{CHILD} = N   goroscope.process.exits{CHILD,status="0"} = N
#   goroscope.syscalls{CHILD,syscall="getppid"} = 10 N
#   goroscope_export_dropped_items_total = 0 and goroscope_export_rejected_items_total = 0
# (a child live at an export is its own resource; the others, started and ended between two
# exports, are folded into the host's series of their comm).
# It prints each figure and exits 1 when one does not hold.
#
# Usage: bench/agent-soak.sh   (as root; a 10-minute soak by default)
# Environment: SOAK_S (600), RATE (200), INTERVAL (5s), MAX_RSS_MB (50), MAX_ANON_MB (40),
#   GO_SERVICES (1), OTLP (0 or 1), OTLP_INTERVAL (10s),
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
OTLP=${OTLP:-0}
OTLP_INTERVAL=${OTLP_INTERVAL:-10s}

if [ "$(id -u)" -ne 0 ]; then
    echo "agent-soak: run as root (the agent loads BPF programs)" >&2
    exit 2
fi
for tool in curl awk python3; do
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
if [ "$OTLP" = 1 ]; then
    otelcol="$(bash "$root/scripts/otelcol.sh")"
    otlp_port="$(free_port)"
    cat >"$work/otelcol.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$otlp_port
exporters:
  file:
    path: $work/otlp.jsonl
    format: json
    flush_interval: 1s
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics: { receivers: [otlp], exporters: [file] }
    logs: { receivers: [otlp], exporters: [file] }
YAML
    "$otelcol" --config "$work/otelcol.yaml" >"$work/otelcol.log" 2>&1 &
    pids_to_kill+=("$!")
    for _ in $(seq 300); do
        grep -q "Everything is ready" "$work/otelcol.log" && break
        sleep 0.1
    done
    grep -q "Everything is ready" "$work/otelcol.log" || {
        echo "agent-soak: the OpenTelemetry Collector did not start:" >&2
        cat "$work/otelcol.log" >&2
        exit 1
    }
    cat >>"$work/agent.yaml" <<YAML
exporters:
  otlp:
    endpoint: http://127.0.0.1:$otlp_port
    protocol: grpc
    interval: $OTLP_INTERVAL
YAML
fi
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
if [ "$OTLP" = 1 ]; then
    expect "export_dropped_items_total" "$(sum goroscope_export_dropped_items_total)" 0
    expect "export_rejected_items_total" "$(sum goroscope_export_rejected_items_total)" 0
    # What the Collector received: each child's last cumulative value, summed. The last
    # export after the last exit can take up to OTLP_INTERVAL plus a flush to arrive.
    otlp_sums() {
        python3 - "$work/otlp.jsonl" "$child" <<'PY'
import json, sys
path, child = sys.argv[1], sys.argv[2]
wanted = {"goroscope.process.execs": None, "goroscope.process.exits": ("status", "0"),
          "goroscope.syscalls": ("syscall", "getppid")}
# Cumulative series: the latest value of each (resource, metric, attributes), by time.
last = {}
with open(path) as lines:
    for line in lines:
        try:
            batch = json.loads(line)
        except ValueError:
            continue  # the line the exporter is still writing
        for resource in batch.get("resourceMetrics", []):
            attrs = {a["key"]: next(iter(a["value"].values()))
                     for a in resource.get("resource", {}).get("attributes", [])}
            own = attrs.get("process.executable.name") == child
            identity = tuple(sorted(attrs.items()))
            for scope in resource.get("scopeMetrics", []):
                for metric in scope.get("metrics", []):
                    if metric["name"] not in wanted:
                        continue
                    only = wanted[metric["name"]]
                    for point in metric.get("sum", {}).get("dataPoints", []):
                        labels = {a["key"]: next(iter(a["value"].values()))
                                  for a in point.get("attributes", [])}
                        # A child's own resource, or the host's series of its comm (children
                        # that started and ended between two exports, folded).
                        if not own and labels.get("comm") != child:
                            continue
                        if only and labels.get(only[0]) != only[1]:
                            continue
                        key = (metric["name"], identity, tuple(sorted(labels.items())))
                        at = int(point.get("timeUnixNano", 0))
                        value = int(point.get("asInt", point.get("asDouble", 0)))
                        if key not in last or at >= last[key][0]:
                            last[key] = (at, value)
totals = {name: 0 for name in wanted}
for (name, _, _), (_, value) in last.items():
    totals[name] += value
print(" ".join(str(totals[name]) for name in wanted))
PY
    }
    otlp_wait_s="$(awk -v i="$OTLP_INTERVAL" 'BEGIN { v = i + 0; if (i ~ /ms$/) v /= 1000; else if (i ~ /m$/) v *= 60; print int(v) + 10 }')"
    want="$n $n $((10 * n))"
    for _ in $(seq "$otlp_wait_s"); do
        got="$(otlp_sums)"
        [ "$got" = "$want" ] && break
        sleep 1
    done
    read -r otlp_execs otlp_exits otlp_getppid <<<"$got"
    expect "OTLP goroscope.process.execs{$child}" "$otlp_execs" "$n"
    expect "OTLP goroscope.process.exits{$child,status=0}" "$otlp_exits" "$n"
    expect "OTLP goroscope.syscalls{$child,syscall=getppid}" "$otlp_getppid" "$((10 * n))"
    printf 'otlp: the Collector wrote %.1f MB of JSON; agent sent %s items in %s requests\n' \
        "$(awk -v b="$(stat -c %s "$work/otlp.jsonl")" 'BEGIN { print b / 1048576 }')" \
        "$(sum goroscope_export_sent_items_total)" "$(sum goroscope_export_sent_requests_total)"
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
