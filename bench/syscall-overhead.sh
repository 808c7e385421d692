#!/usr/bin/env bash
# syscall-overhead.sh: how much slower a syscall-heavy workload runs while
# goroscope traces the whole host, compared with running it untraced, under
# empty programs on the same two hooks (the floor of any syscall timer), under
# libbpf-tools `syscount -L` and under an equivalent bpftrace script.
#
# Workload: dd if=/dev/zero of=/dev/null bs=1 count=2000000 (one read and one
# write per byte: 4 million syscalls). Each round runs the modes back to
# back (bare, floor, goroscope, syscount, bpftrace), so machine noise hits
# every mode alike; the summary compares medians.
#
# Usage (as root): bench/syscall-overhead.sh
# Environment:
#   ROUNDS=N          rounds to run (default 7)
#   MODES="..."       subset of "bare floor goroscope syscount bpftrace"
#                     (default: all; bare is always run, the ratios need it)
#   GOROSCOPE_BIN=P   use this goroscope binary instead of building one
#   FLOOR_BIN=P       use this syscall_floor example binary instead of building it
#
# CLI contract with goroscope: `goroscope syscalls --duration 600s --format
# json` prints a stderr line starting with "goroscope: attached" once its
# probes are live, and exits cleanly on SIGINT.

set -euo pipefail

readonly DD_COUNT=2000000
readonly WORKLOAD=(dd if=/dev/zero of=/dev/null bs=1 count="$DD_COUNT")
readonly ATTACH_TIMEOUT_S=30
readonly STOP_TIMEOUT_S=60
readonly BPFTRACE_PROG='tracepoint:raw_syscalls:sys_enter { @start[tid] = nsecs; }
tracepoint:raw_syscalls:sys_exit /@start[tid]/ {
  @lat[pid, args->id] = hist(nsecs - @start[tid]);
  delete(@start[tid]);
}'

ROUNDS=${ROUNDS:-7}
MODES=${MODES:-bare floor goroscope syscount bpftrace}

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/.." && pwd)

die() {
    echo "syscall-overhead: error: $*" >&2
    exit 1
}

log() {
    echo "syscall-overhead: $*"
}

if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]]; then
    echo "syscall-overhead: ROUNDS must be a positive integer, got '$ROUNDS'" >&2
    exit 2
fi
for mode in $MODES; do
    case $mode in
        bare | floor | goroscope | syscount | bpftrace) ;;
        *)
            echo "syscall-overhead: unknown mode '$mode' in MODES (use bare, floor, goroscope, syscount, bpftrace)" >&2
            exit 2
            ;;
    esac
done
want_mode() {
    [[ " $MODES " == *" $1 "* ]]
}

if [[ $EUID -ne 0 ]]; then
    die "must run as root (eBPF tracing needs it)"
fi

# --- background processes and cleanup ---------------------------------------

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/syscall-overhead.XXXXXX")
tracer_pid=""  # goroscope or bpftrace, whichever is running now
tracer_name=""

# Background jobs of a non-interactive shell start with SIGINT ignored; undo
# that when coreutils' env can, so SIGINT reaches the tracers either way.
launcher=()
if env --default-signal=INT true 2>/dev/null; then
    launcher=(env --default-signal=INT)
fi

# Sends SIGINT to the running tracer and waits up to $1 seconds for it,
# then SIGKILLs it. Sets stop_status to its exit status.
stop_tracer() {
    local timeout_s=$1 pid=$tracer_pid waited=0
    stop_status=0
    [[ -n $pid ]] || return 0
    kill -INT "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= timeout_s * 10)); then
            echo "syscall-overhead: $tracer_name (pid $pid) ignored SIGINT for ${timeout_s}s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    wait "$pid" 2>/dev/null || stop_status=$?
    tracer_pid=""
    tracer_name=""
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    if [[ -n $tracer_pid ]]; then
        echo "syscall-overhead: stopping $tracer_name (pid $tracer_pid)" >&2
        stop_tracer 5
    fi
    rm -rf -- "$tmpdir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- timing ------------------------------------------------------------------

# Runs the workload once and sets elapsed_ns to its wall time, measured with
# a monotonic clock (python3's perf_counter_ns; `date +%s%N` without it).
# Everything here runs in the main shell (no $(...) around the mode
# functions), so the EXIT trap always knows which tracer is running.
elapsed_ns=0
time_workload() {
    local ns
    if command -v python3 >/dev/null; then
        ns=$(python3 -c '
import subprocess, sys, time
start = time.perf_counter_ns()
rc = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL).returncode
print(time.perf_counter_ns() - start)
sys.exit(rc)
' "${WORKLOAD[@]}" 2>"$tmpdir/dd.log") || {
            cat "$tmpdir/dd.log" >&2
            die "workload failed"
        }
    else
        local start end
        start=$(date +%s%N)
        "${WORKLOAD[@]}" </dev/null 2>"$tmpdir/dd.log" || {
            cat "$tmpdir/dd.log" >&2
            die "workload failed"
        }
        end=$(date +%s%N)
        ns=$((end - start))
    fi
    grep -q "^$DD_COUNT+0 records out" "$tmpdir/dd.log" || {
        cat "$tmpdir/dd.log" >&2
        die "dd did not copy $DD_COUNT records"
    }
    elapsed_ns=$ns
}

# --- modes -------------------------------------------------------------------

run_bare() {
    time_workload
}

# Starts a tracer in the background ($1: name, $2: a line its output starts
# with once its probes are live, $3: the file that output goes to, then the
# command), waits for that line, times the workload, stops the tracer.
run_traced() {
    local name=$1 marker=$2 out=$3 waited=0
    shift 3
    : >"$out"
    "${launcher[@]}" "$@" >"$out" 2>&1 &
    tracer_pid=$!
    tracer_name=$name
    until grep -q "^$marker" "$out"; do
        if ! kill -0 "$tracer_pid" 2>/dev/null; then
            local status=0
            wait "$tracer_pid" || status=$?
            tracer_pid=""
            echo "--- $name output ---" >&2
            cat "$out" >&2
            die "$name exited with status $status before attaching"
        fi
        if ((waited >= ATTACH_TIMEOUT_S * 10)); then
            echo "--- $name output ---" >&2
            cat "$out" >&2
            die "$name did not print '$marker' within ${ATTACH_TIMEOUT_S}s"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done

    time_workload

    stop_tracer "$STOP_TIMEOUT_S"
    if ((stop_status != 0)); then
        echo "--- $name output ---" >&2
        cat "$out" >&2
        die "$name exited with status $stop_status after SIGINT"
    fi
}

run_floor() {
    run_traced floor "goroscope: attached" "$tmpdir/floor.out" "$floor"
}

run_goroscope() {
    # Its JSON report goes to the same file as its stderr: only the marker matters.
    run_traced goroscope "goroscope: attached" "$tmpdir/goroscope.out" \
        "$goroscope" syscalls --duration 600s --format json
}

run_syscount() {
    # libbpf-tools prints "Tracing syscalls" after attaching; stdbuf makes it visible at once.
    run_traced syscount "Tracing syscalls" "$tmpdir/syscount.out" stdbuf -oL "$syscount" -L
}

run_bpftrace() {
    local out=$tmpdir/bpftrace.out err=$tmpdir/bpftrace.err waited=0
    : >"$out"
    : >"$err"
    "${launcher[@]}" bpftrace "$tmpdir/lat.bt" >"$out" 2>"$err" &
    tracer_pid=$!
    tracer_name=bpftrace
    until grep -q '^Attaching' "$out"; do
        if ! kill -0 "$tracer_pid" 2>/dev/null; then
            local status=0
            wait "$tracer_pid" || status=$?
            tracer_pid=""
            echo "--- bpftrace stdout/stderr ---" >&2
            cat "$out" "$err" >&2
            die "bpftrace exited with status $status before attaching"
        fi
        if ((waited >= ATTACH_TIMEOUT_S * 10)); then
            echo "--- bpftrace stdout/stderr ---" >&2
            cat "$out" "$err" >&2
            die "bpftrace did not print 'Attaching' within ${ATTACH_TIMEOUT_S}s"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    # "Attaching" comes just before the probes attach; give them time.
    sleep 1

    time_workload

    # Its exit output (every histogram) is discarded.
    stop_tracer "$STOP_TIMEOUT_S"
}

# --- setup -------------------------------------------------------------------

floor=""
if want_mode floor; then
    if [[ -n ${FLOOR_BIN:-} ]]; then
        floor=$FLOOR_BIN
        log "using FLOOR_BIN=$floor (not building)"
    else
        log "building the floor (cargo build --release -p goroscope-bpf --example syscall_floor)"
        (cd -- "$repo_root" && cargo build --release -p goroscope-bpf --example syscall_floor) ||
            die "cargo build failed"
        floor=$repo_root/target/release/examples/syscall_floor
    fi
    [[ -x $floor ]] || die "$floor is not an executable file"
fi

# libbpf-tools' syscount (Debian installs it as /usr/sbin/syscount; bcc's is syscount-bpfcc).
syscount=""
syscount_note=""
if ! want_mode syscount; then
    syscount_note="not in MODES"
elif syscount=$(command -v syscount) && ! "$syscount" --help 2>&1 | grep -q -- '--latency'; then
    syscount_note="$syscount is not libbpf-tools' syscount"
    syscount=""
elif [[ -z $syscount ]]; then
    syscount_note="libbpf-tools' syscount is not on PATH (apt-get install libbpf-tools)"
fi
if [[ -z $syscount ]]; then
    log "syscount mode skipped: $syscount_note"
fi

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

use_bpftrace=0
bpftrace_note=""
if ! want_mode bpftrace; then
    bpftrace_note="not in MODES"
elif ! command -v bpftrace >/dev/null; then
    bpftrace_note="bpftrace is not on PATH"
else
    use_bpftrace=1
    if [[ ! -d /sys/kernel/tracing/events ]]; then
        log "mounting tracefs on /sys/kernel/tracing (bpftrace tracepoints need it; left mounted)"
        mount -t tracefs nodev /sys/kernel/tracing ||
            die "could not mount tracefs on /sys/kernel/tracing"
    fi
    printf '%s\n' "$BPFTRACE_PROG" >"$tmpdir/lat.bt"
fi
if ((!use_bpftrace)); then
    log "bpftrace mode skipped: $bpftrace_note"
fi

modes=(bare)
want_mode floor && modes+=(floor)
want_mode goroscope && modes+=(goroscope)
[[ -n $syscount ]] && modes+=(syscount)
((use_bpftrace)) && modes+=(bpftrace)

log "workload: ${WORKLOAD[*]} ($((2 * DD_COUNT)) syscalls), $ROUNDS round(s), modes: ${modes[*]}"

# --- rounds ------------------------------------------------------------------

declare -A times=()  # mode -> space-separated nanoseconds
for mode in "${modes[@]}"; do
    times[$mode]=""
done

fmt_s() {
    awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'
}

for ((round = 1; round <= ROUNDS; round++)); do
    for mode in "${modes[@]}"; do
        "run_$mode"
        times[$mode]+="$elapsed_ns "
        printf 'round %d/%d  %-10s %8s s\n' "$round" "$ROUNDS" "$mode" "$(fmt_s "$elapsed_ns")"
    done
done

# --- summary -----------------------------------------------------------------

median() {
    # shellcheck disable=SC2086 # word splitting of the list is intended
    printf '%s\n' $1 | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR % 2) { printf "%.0f", v[(NR + 1) / 2] }
            else { printf "%.0f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }
        }'
}

declare -A med=()
echo
echo "median wall time over $ROUNDS round(s):"
for mode in "${modes[@]}"; do
    med[$mode]=$(median "${times[$mode]}")
    printf '  %-10s %8s s\n' "$mode" "$(fmt_s "${med[$mode]}")"
done

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
}
summary=""
for mode in "${modes[@]}"; do
    [[ $mode == bare ]] && continue
    summary+="${summary:+, }$mode $(ratio "${med[$mode]}" "${med[bare]}")"
done
[[ -n $syscount_note && -z $syscount ]] && summary+=", syscount skipped ($syscount_note)"
((use_bpftrace)) || summary+=", bpftrace skipped ($bpftrace_note)"
echo "slowdown: $summary (median of $ROUNDS rounds, dd bs=1 count=$DD_COUNT)"
