#!/usr/bin/env bash
# goroutines-overhead.sh: what watching a Go process's goroutines with
# `goroscope goroutines` costs the process, and what one snapshot costs
# goroscope.
#
# Parts (each round runs bare and observed back to back; the summary compares
# medians computed in this run):
#   churn     testdata/go/churn: goroutines started per second over 5s (it
#             churns on every CPU), bare vs while `goroscope goroutines --pid
#             PID --duration 600s --format json` watches it at its default
#             interval.
#   http      testdata/go/httpserver (each request starts and joins two
#             goroutines): requests/s under `wrk -t2 -c64 -d10s`, bare vs
#             observed the same way. One server serves every round.
#   snapshot  testdata/go/leaky with -idle 10000 and -idle 100000: `goroscope
#             goroutines --pid PID --duration 3s --interval 100ms --format
#             json`, reading .snapshots.read_seconds.p50/.max and
#             .goroutines.total from its JSON: ms per snapshot and per 10k
#             goroutines. Needs goroscope (skipped when MODES=bare).
#
# Goals: observed throughput >= 99% of bare (churn and http); a snapshot costs
# < 5 ms per 10k goroutines.
#
# Usage: bench/goroutines-overhead.sh   (as root if wrk must be installed or
#        reading another process's memory needs CAP_SYS_PTRACE)
# Environment:
#   ROUNDS=N          rounds to run (default 5)
#   MODES="..."       subset of "bare goroscope" (default: both; bare is
#                     always run)
#   PARTS="..."       subset of "churn http snapshot" (default: all)
#   GOROSCOPE_BIN=P   use this goroscope binary (default: build
#                     target/release/goroscope with cargo and use it)
#   CHURN_DURATION=D  churn's -duration (default 5s)
#   WRK_DURATION=D    wrk's -d (default 10s)
#   IDLE_SIZES="..."  leaky -idle sizes for the snapshot part
#                     (default "10000 100000")
#
# CLI contract with goroscope: `goroscope goroutines --pid PID --duration D
# [--interval I] --format json` prints one JSON document on stdout shaped
# {"snapshots":{"count":N,"read_seconds":{"p50":x,"max":y}},
#  "goroutines":{"total":N,...},...} when its duration is over, and does the
# same, exiting 0, on SIGINT.

set -euo pipefail

readonly CHURN_DELAY=1s          # churn waits this long before churning (observer attach time)
readonly OBSERVER_SETTLE_S=1     # http: wait this long after starting the observer
readonly READY_TIMEOUT_S=120     # a test program must be ready within this
readonly STOP_TIMEOUT_S=30
readonly SNAPSHOT_DURATION=3s
readonly SNAPSHOT_INTERVAL=100ms
readonly WRK_THREADS=2
readonly WRK_CONNECTIONS=64
readonly GOAL_THROUGHPUT_PCT=99
readonly GOAL_MS_PER_10K=5

ROUNDS=${ROUNDS:-5}
MODES=${MODES:-bare goroscope}
PARTS=${PARTS:-churn http snapshot}
CHURN_DURATION=${CHURN_DURATION:-5s}
WRK_DURATION=${WRK_DURATION:-10s}
IDLE_SIZES=${IDLE_SIZES:-10000 100000}

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/.." && pwd)

die() {
    echo "goroutines-overhead: error: $*" >&2
    exit 1
}

log() {
    echo "goroutines-overhead: $*"
}

usage_error() {
    echo "goroutines-overhead: $*" >&2
    exit 2
}

if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]]; then
    usage_error "ROUNDS must be a positive integer, got '$ROUNDS'"
fi
for mode in $MODES; do
    case $mode in
        bare | goroscope) ;;
        *) usage_error "unknown mode '$mode' in MODES (use bare, goroscope)" ;;
    esac
done
for part in $PARTS; do
    case $part in
        churn | http | snapshot) ;;
        *) usage_error "unknown part '$part' in PARTS (use churn, http, snapshot)" ;;
    esac
done
for size in $IDLE_SIZES; do
    [[ $size =~ ^[1-9][0-9]*$ ]] || usage_error "IDLE_SIZES must hold positive integers, got '$size'"
done
duration_re='^[0-9]+(\.[0-9]+)?(ms|s|m)$'
[[ $CHURN_DURATION =~ $duration_re ]] || usage_error "CHURN_DURATION must look like 5s, got '$CHURN_DURATION'"
[[ $WRK_DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || usage_error "WRK_DURATION must look like 10s, got '$WRK_DURATION'"

want_mode() {
    [[ " $MODES " == *" $1 "* ]]
}
want_part() {
    [[ " $PARTS " == *" $1 "* ]]
}

# --- dependencies ------------------------------------------------------------

# wrk first: installing it is the one thing that needs root regardless.
if want_part http && ! command -v wrk >/dev/null; then
    if [[ $EUID -ne 0 ]]; then
        die "wrk is not installed; run as root to have it installed (apt-get install wrk), or install it"
    fi
    log "installing wrk (apt-get install wrk)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq wrk >/dev/null
    command -v wrk >/dev/null || die "wrk is still missing after apt-get install wrk"
fi
command -v python3 >/dev/null || die "python3 is needed to read JSON"

go=""
if command -v go >/dev/null; then
    go=$(command -v go)
elif [[ -x /usr/local/go/bin/go ]]; then
    go=/usr/local/go/bin/go
else
    die "no Go toolchain (go on PATH or /usr/local/go/bin/go)"
fi

# --- background processes and cleanup ---------------------------------------

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/goroutines-overhead.XXXXXX")
target_pid=""    # the Go program being measured (churn or leaky)
target_name=""
server_pid=""    # httpserver, alive for the whole http part
observer_pid=""  # goroscope watching a target

# Background jobs of a non-interactive shell start with SIGINT ignored; undo
# that when coreutils' env can, so SIGINT reaches goroscope either way.
launcher=()
if env --default-signal=INT true 2>/dev/null; then
    launcher=(env --default-signal=INT)
fi

# Sends signal $2 to pid $1, waits up to $3 seconds for it to exit, then
# SIGKILLs it. Sets stop_status to its exit status.
stop_pid() {
    local pid=$1 signal=$2 timeout_s=$3 waited=0
    stop_status=0
    [[ -n $pid ]] || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= timeout_s * 10)); then
            echo "goroutines-overhead: pid $pid ignored SIG$signal for ${timeout_s}s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    wait "$pid" 2>/dev/null || stop_status=$?
}

stop_target() {
    stop_pid "$target_pid" TERM "$STOP_TIMEOUT_S"
    target_pid=""
    if ((stop_status != 0)); then
        die "$target_name exited with status $stop_status on SIGTERM (expected 0)"
    fi
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    if [[ -n $observer_pid ]]; then
        echo "goroutines-overhead: stopping goroscope (pid $observer_pid)" >&2
        stop_pid "$observer_pid" INT 5
    fi
    if [[ -n $target_pid ]]; then
        stop_pid "$target_pid" TERM 5
    fi
    if [[ -n $server_pid ]]; then
        stop_pid "$server_pid" TERM 5
    fi
    rm -rf -- "$tmpdir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Waits until file $1 has a line matching the extended regex $2, while pid $3
# ($4 names it) stays alive, for at most $5 seconds.
wait_for_line() {
    local file=$1 pattern=$2 pid=$3 what=$4 timeout_s=$5 waited=0
    until grep -Eq -- "$pattern" "$file" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            local status=0
            wait "$pid" 2>/dev/null || status=$?
            echo "--- $what output ---" >&2
            cat -- "$file" "$file.err" >&2 2>/dev/null || true
            die "$what (pid $pid) exited with status $status before printing /$pattern/"
        fi
        if ((waited >= timeout_s * 10)); then
            echo "--- $what output ---" >&2
            cat -- "$file" "$file.err" >&2 2>/dev/null || true
            die "$what (pid $pid) did not print /$pattern/ within ${timeout_s}s"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# Prints the value at dotted path $2 (e.g. snapshots.read_seconds.p50) of the
# JSON in file $1: the whole file, or else its last line that parses.
json_get() {
    python3 -c '
import json, sys
text = open(sys.argv[1]).read()
try:
    doc = json.loads(text)
except ValueError:
    doc = None
    for line in reversed(text.splitlines()):
        try:
            doc = json.loads(line)
            break
        except ValueError:
            pass
    if doc is None:
        sys.exit("no JSON in " + sys.argv[1])
for key in sys.argv[2].split("."):
    if not isinstance(doc, dict) or key not in doc:
        sys.exit("no ." + sys.argv[2] + " in " + sys.argv[1])
    doc = doc[key]
print(doc)
' "$1" "$2"
}

# --- goroscope observer ------------------------------------------------------

# Starts `goroscope goroutines` watching pid $1 at its default interval.
start_observer() {
    : >"$tmpdir/observer.out"
    : >"$tmpdir/observer.err"
    "${launcher[@]}" "$goroscope" goroutines --pid "$1" --duration 600s --format json \
        >"$tmpdir/observer.out" 2>"$tmpdir/observer.err" &
    observer_pid=$!
}

observer_failed() {
    echo "--- goroscope stdout ---" >&2
    cat -- "$tmpdir/observer.out" >&2
    echo "--- goroscope stderr ---" >&2
    cat -- "$tmpdir/observer.err" >&2
    die "$*"
}

# Dies unless the observer is still running (it must watch the whole run).
check_observer_alive() {
    if ! kill -0 "$observer_pid" 2>/dev/null; then
        local status=0
        wait "$observer_pid" 2>/dev/null || status=$?
        observer_pid=""
        observer_failed "goroscope exited early (status $status) while it should be observing"
    fi
}

# Stops the observer with SIGINT and checks its JSON; sets observer_snapshots.
stop_observer() {
    check_observer_alive
    stop_pid "$observer_pid" INT "$STOP_TIMEOUT_S"
    observer_pid=""
    if ((stop_status != 0)); then
        observer_failed "goroscope exited with status $stop_status after SIGINT (expected 0)"
    fi
    observer_snapshots=$(json_get "$tmpdir/observer.out" snapshots.count) ||
        observer_failed "goroscope's output has no .snapshots.count"
}

# --- statistics --------------------------------------------------------------

median() {
    # shellcheck disable=SC2086 # word splitting of the list is intended
    printf '%s\n' $1 | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR % 2) { printf "%.9g", v[(NR + 1) / 2] }
            else { printf "%.9g", (v[NR / 2] + v[NR / 2 + 1]) / 2 }
        }'
}

maximum() {
    # shellcheck disable=SC2086 # word splitting of the list is intended
    printf '%s\n' $1 | sort -g | tail -n 1
}

# Prints "P% of bare, meets goal (>= G%)" or "... misses goal ...".
throughput_verdict() {
    awk -v observed="$1" -v bare="$2" -v goal="$GOAL_THROUGHPUT_PCT" 'BEGIN {
        pct = 100 * observed / bare
        printf "%.1f%% of bare, %s (>= %d%%)", pct, (pct >= goal ? "meets goal" : "MISSES goal"), goal
    }'
}

# --- setup -------------------------------------------------------------------

goroscope=""
if want_mode goroscope; then
    if [[ -n ${GOROSCOPE_BIN:-} ]]; then
        goroscope=$GOROSCOPE_BIN
        log "using GOROSCOPE_BIN=$goroscope (not building)"
    else
        log "building goroscope (cargo build --release -p goroscope)"
        (cd -- "$repo_root" && cargo build --release -p goroscope) ||
            die "cargo build failed"
        goroscope=$repo_root/target/release/goroscope
    fi
    [[ -x $goroscope ]] || die "$goroscope is not an executable file"
fi

bindir=$tmpdir/bin
mkdir -p "$bindir"
log "building the Go programs with $("$go" version)"
for program in churn httpserver leaky; do
    (cd -- "$repo_root/testdata/go/$program" &&
        GOFLAGS=-buildvcs=false GOTOOLCHAIN=local "$go" build -o "$bindir/$program" .) ||
        die "go build of testdata/go/$program failed"
done

modes=(bare)
want_mode goroscope && modes+=(goroscope)
log "$ROUNDS round(s), modes: ${modes[*]}, parts: $PARTS, $(nproc) CPU(s)"

# --- part: churn -------------------------------------------------------------

declare -A churn_rates=()  # mode -> space-separated goroutines/s
run_churn() {
    local mode=$1 out=$tmpdir/churn.out
    : >"$out"
    target_name=churn
    "$bindir/churn" -duration "$CHURN_DURATION" -delay "$CHURN_DELAY" -wait \
        </dev/null >"$out" 2>"$out.err" &
    target_pid=$!
    if [[ $mode == goroscope ]]; then
        start_observer "$target_pid"
    fi
    wait_for_line "$out" '"goroutines_per_second"' "$target_pid" churn "$READY_TIMEOUT_S"
    local note=""
    if [[ $mode == goroscope ]]; then
        stop_observer
        note="  ($observer_snapshots snapshots)"
    fi
    stop_target
    local rate
    rate=$(json_get "$out" goroutines_per_second) || die "cannot read churn's result"
    churn_rates[$mode]+="$rate "
    printf 'round %d/%d  churn %-10s %12.0f goroutines/s%s\n' "$round" "$ROUNDS" "$mode" "$rate" "$note"
}

if want_part churn; then
    for mode in "${modes[@]}"; do churn_rates[$mode]=""; done
    for ((round = 1; round <= ROUNDS; round++)); do
        for mode in "${modes[@]}"; do
            run_churn "$mode"
        done
    done
fi

# --- part: http --------------------------------------------------------------

declare -A http_rates=()  # mode -> space-separated requests/s
url=""

# Runs wrk against $url for $1 and sets wrk_rate (requests/s) and wrk_note.
run_wrk() {
    local out=$tmpdir/wrk.out
    wrk "-t$WRK_THREADS" "-c$WRK_CONNECTIONS" "-d$1" "$url" >"$out" 2>&1 || {
        cat -- "$out" >&2
        die "wrk failed"
    }
    wrk_rate=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    [[ -n $wrk_rate ]] || {
        cat -- "$out" >&2
        die "no Requests/sec in wrk's output"
    }
    wrk_note=$(grep -E '^ *(Socket errors|Non-2xx or 3xx responses):' "$out" | tr -s ' ' | paste -sd ';' - || true)
}

run_http() {
    local mode=$1 note=""
    if [[ $mode == goroscope ]]; then
        start_observer "$server_pid"
        sleep "$OBSERVER_SETTLE_S"
        check_observer_alive
    fi
    run_wrk "$WRK_DURATION"
    if [[ $mode == goroscope ]]; then
        stop_observer
        note="  ($observer_snapshots snapshots)"
    fi
    if [[ -n $wrk_note ]]; then
        note+="  wrk: $wrk_note"
    fi
    http_rates[$mode]+="$wrk_rate "
    printf 'round %d/%d  http  %-10s %12.0f requests/s%s\n' "$round" "$ROUNDS" "$mode" "$wrk_rate" "$note"
}

if want_part http; then
    for mode in "${modes[@]}"; do http_rates[$mode]=""; done
    server_out=$tmpdir/httpserver.out
    : >"$server_out"
    "$bindir/httpserver" -addr 127.0.0.1:0 </dev/null >"$server_out" 2>"$server_out.err" &
    server_pid=$!
    wait_for_line "$server_out" '"ready":true' "$server_pid" httpserver "$READY_TIMEOUT_S"
    url="http://$(json_get "$server_out" addr)/"
    log "httpserver (pid $server_pid) at $url; warming up (wrk 2s)"
    run_wrk 2s
    for ((round = 1; round <= ROUNDS; round++)); do
        for mode in "${modes[@]}"; do
            run_http "$mode"
        done
    done
    stop_pid "$server_pid" TERM "$STOP_TIMEOUT_S"
    server_pid=""
    ((stop_status == 0)) || die "httpserver exited with status $stop_status on SIGTERM (expected 0)"
fi

# --- part: snapshot cost -----------------------------------------------------

declare -A snap_p50=() snap_max=() snap_total=() snap_count=()  # size -> lists
run_snapshot() {
    local size=$1 out=$tmpdir/leaky.out result=$tmpdir/snapshot.json err=$tmpdir/snapshot.err
    : >"$out"
    target_name=leaky
    "$bindir/leaky" -idle "$size" </dev/null >"$out" 2>"$out.err" &
    target_pid=$!
    wait_for_line "$out" '"ready":true' "$target_pid" "leaky -idle $size" "$READY_TIMEOUT_S"
    local status=0
    timeout --foreground -k 5 120 "$goroscope" goroutines --pid "$target_pid" \
        --duration "$SNAPSHOT_DURATION" --interval "$SNAPSHOT_INTERVAL" --format json \
        >"$result" 2>"$err" </dev/null || status=$?
    if ((status != 0)); then
        echo "--- goroscope stdout ---" >&2
        cat -- "$result" >&2
        echo "--- goroscope stderr ---" >&2
        cat -- "$err" >&2
        die "goroscope goroutines exited with status $status on leaky -idle $size"
    fi
    stop_target
    local p50 max total count
    p50=$(json_get "$result" snapshots.read_seconds.p50) || die "goroscope's output has no .snapshots.read_seconds.p50"
    max=$(json_get "$result" snapshots.read_seconds.max) || die "goroscope's output has no .snapshots.read_seconds.max"
    total=$(json_get "$result" goroutines.total) || die "goroscope's output has no .goroutines.total"
    count=$(json_get "$result" snapshots.count) || die "goroscope's output has no .snapshots.count"
    if ((total < size)); then
        echo "goroutines-overhead: warning: goroscope saw $total goroutines in leaky -idle $size" >&2
    fi
    snap_p50[$size]+="$p50 "
    snap_max[$size]+="$max "
    snap_total[$size]+="$total "
    snap_count[$size]+="$count "
    awk -v r="$round" -v n="$ROUNDS" -v s="$size" -v p="$p50" -v m="$max" -v t="$total" -v c="$count" 'BEGIN {
        printf "round %d/%d  snapshot idle %-7d p50 %8.3f ms  max %8.3f ms  (%d goroutines, %d snapshots)\n",
            r, n, s, 1000 * p, 1000 * m, t, c
    }'
}

snapshot_note=""
if want_part snapshot; then
    if ! want_mode goroscope; then
        snapshot_note="skipped (needs goroscope; MODES=$MODES)"
        log "snapshot part $snapshot_note"
    else
        for ((round = 1; round <= ROUNDS; round++)); do
            for size in $IDLE_SIZES; do
                run_snapshot "$size"
            done
        done
    fi
fi

# --- summary -----------------------------------------------------------------

echo
echo "summary (medians over $ROUNDS round(s), $(nproc) CPU(s), $("$go" version | awk '{ print $3 }')):"

# Prints the rows of a throughput table from associative array $1 (by name).
throughput_summary() {
    local -n rates=$1
    local unit=$2 bare observed
    bare=$(median "${rates[bare]}")
    printf '  %-10s %14.0f %s\n' bare "$bare" "$unit"
    if want_mode goroscope; then
        observed=$(median "${rates[goroscope]}")
        printf '  %-10s %14.0f %s   %s\n' goroscope "$observed" "$unit" "$(throughput_verdict "$observed" "$bare")"
    else
        echo "  goroscope  skipped (MODES=$MODES)"
    fi
}

if want_part churn; then
    echo "churn (testdata/go/churn -duration $CHURN_DURATION, goroscope at its default interval):"
    throughput_summary churn_rates goroutines/s
fi
if want_part http; then
    echo "http (wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$WRK_DURATION on testdata/go/httpserver, goroscope at its default interval):"
    throughput_summary http_rates requests/s
fi
if want_part snapshot; then
    echo "snapshot cost (goroscope goroutines --interval $SNAPSHOT_INTERVAL --duration $SNAPSHOT_DURATION on testdata/go/leaky -idle N):"
    if [[ -n $snapshot_note ]]; then
        echo "  $snapshot_note"
    else
        printf '  %-8s %11s %10s %11s %11s %14s\n' "idle N" goroutines snapshots "p50 ms" "max ms" "p50 ms/10k"
        for size in $IDLE_SIZES; do
            awk -v s="$size" -v t="$(median "${snap_total[$size]}")" -v c="$(median "${snap_count[$size]}")" \
                -v p="$(median "${snap_p50[$size]}")" -v m="$(maximum "${snap_max[$size]}")" \
                -v goal="$GOAL_MS_PER_10K" 'BEGIN {
                per10k = 1000 * p * 10000 / t
                printf "  %-8d %11d %10d %11.3f %11.3f %14.3f   %s (< %g ms per 10k)\n",
                    s, t, c, 1000 * p, 1000 * m, per10k, (per10k < goal ? "meets goal" : "MISSES goal"), goal
            }'
        done
        echo "  (p50: median over rounds of each run's p50; max: largest over all rounds)"
    fi
fi
