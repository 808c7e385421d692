#!/usr/bin/env bash
# agent-overhead.sh: what `goroscope agent` costs with every collector on.
#
# Parts (all in one run, one agent per part):
#   idle   the agent on this host doing nothing in particular for IDLE_S seconds:
#          its CPU (user+system, from /proc/PID/stat) as % of one core, its
#          RSS (VmRSS at the end, VmHWM the peak), and the CPU its BPF programs
#          used (goroscope_bpf_program_cpu_seconds_total, in the kernel, on the
#          observed processes' time).
#   load   the same while the host is busy: `dd bs=1` (about 2-3 million
#          syscalls/s per copy, one copy per core) and `wrk` against
#          testdata/go/httpserver with `Connection: close`, so every request is
#          a new TCP connection (thousands per second).
#   With OTLP=both (the default) idle and load run twice, the second time with
#          `exporters.otlp` on (metrics and leak events over gRPC every 15 s, the
#          defaults) to a real OpenTelemetry Collector (scripts/otelcol.sh builds
#          it) that counts what it receives; OTLP=off or OTLP=on runs one of them.
#   scrape with `labels: [comm, pid]` and enough long-lived processes started
#          to make at least SERIES samples in /metrics: scrapes back to back for
#          SCRAPE_S seconds per format from one keep-alive wrk connection, p50/p99
#          from wrk --latency, text and OpenMetrics; the agent's RSS after.
#
# Goals: idle CPU < 1% of a core, RSS < 50 MB, scrape p99 < 50 ms.
#
# Usage: bench/agent-overhead.sh   (as root)
# Environment: GOROSCOPE_BIN (default: cargo build --release), IDLE_S (60),
#   LOAD_S (30), SERIES (10000), SCRAPE_S (20), PARTS ("idle load scrape"),
#   OTLP (both | off | on).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IDLE_S=${IDLE_S:-60}
LOAD_S=${LOAD_S:-30}
SERIES=${SERIES:-10000}
SCRAPE_S=${SCRAPE_S:-20}
PARTS=${PARTS:-idle load scrape}
OTLP=${OTLP:-both}
readonly WARMUP_S=5
readonly PORT=19949
readonly HTTP_PORT=19950
readonly OTLP_PORT=19951

if [ "$(id -u)" -ne 0 ]; then
    echo "agent-overhead: run as root (the agent loads BPF programs)" >&2
    exit 2
fi
for tool in curl wrk go; do
    command -v "$tool" >/dev/null || {
        echo "agent-overhead: $tool is missing (apt-get install curl wrk golang-go)" >&2
        exit 2
    }
done
if [ -z "${GOROSCOPE_BIN:-}" ]; then
    (cd "$root" && cargo build --release --locked -q -p goroscope)
    GOROSCOPE_BIN="${CARGO_TARGET_DIR:-$root/target}/release/goroscope"
fi

work="$(mktemp -d)"
pids_to_kill=()
collector=""
cleanup() {
    for p in "${pids_to_kill[@]}" $collector; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ticks="$(getconf CLK_TCK)"
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
rss_kb() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status"; }
metric_sum() { # sum of every sample of family $1 in a scrape
    curl -sf "http://127.0.0.1:$PORT/metrics" |
        awk -v n="$1" '$1 ~ "^"n"({|$)" { s += $NF } END { printf "%.6f\n", s }'
}

start_agent() { # $1: config file
    "$GOROSCOPE_BIN" agent --config "$1" 2>"$work/agent.log" &
    agent=$!
    pids_to_kill+=("$agent")
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "agent-overhead: the agent did not become ready:" >&2
    cat "$work/agent.log" >&2
    exit 1
}
stop_agent() { kill -TERM "$agent"; wait "$agent" 2>/dev/null || true; }

measure() { # $1: label, $2: seconds
    sleep "$WARMUP_S"
    local t0 b0 t1 b1
    t0="$(cpu_ticks "$agent")"
    b0="$(metric_sum goroscope_bpf_program_cpu_seconds_total)"
    sleep "$2"
    t1="$(cpu_ticks "$agent")"
    b1="$(metric_sum goroscope_bpf_program_cpu_seconds_total)"
    awk -v l="$1" -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" -v hz="$ticks" -v s="$2" \
        -v rss="$(rss_kb "$agent" VmRSS)" -v hwm="$(rss_kb "$agent" VmHWM)" 'BEGIN {
        printf "%-10s agent CPU %.3f%% of a core; BPF programs %.3f%% of a core; RSS %.1f MB (peak %.1f MB)\n",
            l, 100 * (t1 - t0) / hz / s, 100 * (b1 - b0) / s, rss / 1024, hwm / 1024 }'
}

cat >"$work/all.yaml" <<YAML
listen: 127.0.0.1:$PORT
YAML
cat >"$work/otlp.yaml" <<YAML
listen: 127.0.0.1:$PORT
exporters:
  otlp:
    endpoint: http://127.0.0.1:$OTLP_PORT
    protocol: grpc
YAML
case "$OTLP" in
    off) configs=(all) ;;
    on) configs=(otlp) ;;
    both) configs=(all otlp) ;;
    *) echo "agent-overhead: OTLP must be off, on or both" >&2; exit 2 ;;
esac
if [ "$OTLP" != off ]; then
    otelcol="$(bash "$root/scripts/otelcol.sh")"
    cat >"$work/otelcol.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$OTLP_PORT
exporters:
  debug:
    verbosity: basic
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics: { receivers: [otlp], exporters: [debug] }
    logs: { receivers: [otlp], exporters: [debug] }
YAML
    "$otelcol" --config "$work/otelcol.yaml" >"$work/otelcol.log" 2>&1 &
    collector=$!
fi
label() { [ "$1" = otlp ] && echo "$2+otlp" || echo "$2"; }
otlp_report() { # what the agent says it exported, and what the Collector logged receiving
    [ "$1" = otlp ] || return 0
    local scrape
    scrape="$(curl -sf "http://127.0.0.1:$PORT/metrics")"
    awk '/^goroscope_export_(sent_items|dropped_items|retried_requests)_total\{/ && $NF > 0 {
            printf "      %s %s\n", $1, $NF }' <<<"$scrape"
    echo "      collector batches received so far: $(grep -c 'data points' "$work/otelcol.log" || true)"
}

if [[ " $PARTS " == *" idle "* ]]; then
    for c in "${configs[@]}"; do
        start_agent "$work/$c.yaml"
        measure "$(label "$c" idle)" "$IDLE_S"
        otlp_report "$c"
        stop_agent
    done
fi

if [[ " $PARTS " == *" load "* ]]; then
    for c in "${configs[@]}"; do
        (cd "$root/testdata/go/httpserver" && go build -o "$work/httpserver" .)
        "$work/httpserver" -addr "127.0.0.1:$HTTP_PORT" >/dev/null 2>&1 &
        pids_to_kill+=("$!")
        start_agent "$work/$c.yaml"
        for _ in $(seq "$(nproc)"); do
            (while :; do dd if=/dev/zero of=/dev/null bs=1 count=1000000 2>/dev/null; done) &
            pids_to_kill+=("$!")
        done
        wrk -t2 -c32 -d"$((LOAD_S + WARMUP_S + 5))s" -H "Connection: close" \
            "http://127.0.0.1:$HTTP_PORT/" >"$work/wrk.txt" 2>&1 &
        pids_to_kill+=("$!")
        measure "$(label "$c" load)" "$LOAD_S"
        otlp_report "$c"
        opened="$(curl -sf "http://127.0.0.1:$PORT/metrics" |
            awk '/^goroscope_tcp_connections_total\{/ && /direction="outbound"/ && /event="opened"/ { s += $NF } END { print s + 0 }')"
        echo "load  outbound TCP connections counted by the agent: $opened in $((LOAD_S + WARMUP_S)) s ($(awk -v o="$opened" -v s="$((LOAD_S + WARMUP_S))" 'BEGIN { printf "%.0f", o / s }')/s)"
        stop_agent
        for p in "${pids_to_kill[@]}"; do [ "$p" != "$agent" ] && kill "$p" 2>/dev/null || true; done
        pkill -f "dd if=/dev/zero of=/dev/null bs=1" 2>/dev/null || true
        pids_to_kill=()
    done
fi

if [[ " $PARTS " == *" scrape "* ]]; then
    cat >"$work/pid.yaml" <<YAML
listen: 127.0.0.1:$PORT
interval: 2s
labels: [comm, pid]
YAML
    start_agent "$work/pid.yaml"
    samples() { curl -sf "http://127.0.0.1:$PORT/metrics" | grep -vc '^#'; }
    spawned=0
    while [ "$(samples)" -lt "$SERIES" ]; do
        sleep 600 &
        pids_to_kill+=("$!")
        spawned=$((spawned + 1))
        sleep 2.2 # one collection: the new process's series appear
        [ "$spawned" -gt 2000 ] && { echo "agent-overhead: cannot reach $SERIES samples" >&2; exit 1; }
    done
    n="$(samples)"
    # One keep-alive client (wrk, one connection): a scrape per request, back to back, and no
    # process churn from the client itself.
    for format in text openmetrics; do
        accept="text/plain"
        [ "$format" = openmetrics ] && accept="application/openmetrics-text;version=1.0.0"
        wrk -t1 -c1 -d"${SCRAPE_S}s" --latency -H "Accept: $accept" \
            "http://127.0.0.1:$PORT/metrics" >"$work/scrape-$format.txt" 2>&1
        awk -v n="$n" -v f="$format" '
            /Requests\/sec/ { rps = $2 }
            $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
            END { printf "scrape %s: %d samples: p50 %s, p99 %s, %s scrapes/s\n", f, n, p50, p99, rps }' \
            "$work/scrape-$format.txt"
    done
    echo "scrape agent RSS with $n samples: $(awk '{ printf "%.1f MB", $1 / 1024 }' <<<"$(rss_kb "$agent" VmRSS)")"
    stop_agent
fi
