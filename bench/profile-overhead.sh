#!/usr/bin/env bash
# profile-overhead.sh: what `goroscope profile` costs, in one run.
#
#  1. Throughput of a CPU-bound Go program (testdata/go/cpuburn `work`, a fixed amount of
#     work whose time it prints) bare and while goroscope profiles the whole host at 99 Hz,
#     interleaved round by round so machine noise hits both alike (goal: >= 99 %).
#  2. goroscope's own CPU while sampling the whole host at 99 Hz for PROFILE_S seconds with a
#     CPU-bound Go program running, as a share of one core (goal <= 1 %), and its peak RSS
#     over the whole run, symbolization included (goal <= 50 MB).
#  3. Symbolizing a profile of about 100,000 samples (1000 Hz on every CPU, host-wide, with
#     a burner per CPU): the time goroscope reports for reading and symbolizing (goal < 1 s).
#
# Usage (as root): bench/profile-overhead.sh
# Environment:
#   ROUNDS=N          throughput rounds (default 7)
#   WORK_ROUNDS=N     cpuburn work rounds per run (default 400, about 2 s here)
#   PROFILE_S=N       seconds of the CPU/RSS run (default 30)
#   BIG_SAMPLES=N     samples wanted for the symbolization run (default 100000)
#   GOROSCOPE_BIN=P   use this goroscope binary instead of building one (release)
#
# CLI contract with goroscope: `goroscope profile` prints a stderr line starting with
# "goroscope: profiling" once sampling runs, ends cleanly on SIGINT, and its last summary line
# reads "N samples (M distinct stacks, symbolized in S s) from ...".

set -euo pipefail

ROUNDS=${ROUNDS:-7}
WORK_ROUNDS=${WORK_ROUNDS:-400}
PROFILE_S=${PROFILE_S:-30}
BIG_SAMPLES=${BIG_SAMPLES:-100000}

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/.." && pwd)

log() { echo "profile-overhead: $*"; }
die() {
    echo "profile-overhead: error: $*" >&2
    exit 1
}
for name in ROUNDS WORK_ROUNDS PROFILE_S BIG_SAMPLES; do
    [[ ${!name} =~ ^[1-9][0-9]*$ ]] || {
        echo "profile-overhead: $name must be a positive integer, got '${!name}'" >&2
        exit 2
    }
done
[[ $EUID -eq 0 ]] || die "run as root (goroscope loads BPF programs)"
[[ -x /usr/bin/time ]] || die "GNU time is needed for peak RSS (apt-get install time)"

go=$(command -v go || echo /usr/local/go/bin/go)
[[ -x $go ]] || die "no Go toolchain (go on PATH or /usr/local/go/bin/go)"

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/profile-overhead.XXXXXX")
background=()
cleanup() {
    for pid in "${background[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$tmpdir"
}
trap cleanup EXIT

if [[ -n ${GOROSCOPE_BIN:-} ]]; then
    goroscope=$GOROSCOPE_BIN
else
    log "building goroscope (release)"
    (cd "$repo_root" && cargo build --release -q -p goroscope)
    goroscope=$repo_root/target/release/goroscope
fi
[[ -x $goroscope ]] || die "no goroscope binary at $goroscope"
cpuburn=$tmpdir/cpuburn
(cd "$repo_root/testdata/go/cpuburn" && GOFLAGS=-buildvcs=false "$go" build -o "$cpuburn" .)
cpus=$(nproc)

# Starts goroscope profile with the given arguments in the background (its pid in
# $profile_pid; not in a subshell, so this shell can wait for it); waits until it samples.
profile_pid=""
start_profile() {
    local err=$1
    shift
    "$@" 2>"$err" &
    profile_pid=$!
    background+=("$profile_pid")
    for _ in $(seq 1 300); do
        grep -q '^goroscope: profiling' "$err" && return
        kill -0 "$profile_pid" 2>/dev/null || die "goroscope profile exited early: $(cat "$err")"
        sleep 0.1
    done
    die "goroscope profile did not start sampling within 30 s"
}

# SIGTERM, not SIGINT: a non-interactive shell starts background jobs with SIGINT ignored.
stop_profile() {
    kill -TERM "$profile_pid"
    wait "$profile_pid" || die "goroscope profile failed: $(cat "$1")"
}

median() {
    sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'
}

# --- 1. throughput --------------------------------------------------------------------------
log "throughput: $ROUNDS rounds of cpuburn work $WORK_ROUNDS, bare and under goroscope profile (host-wide, 99 Hz)"
: >"$tmpdir/bare" >"$tmpdir/profiled"
for round in $(seq 1 "$ROUNDS"); do
    bare=$("$cpuburn" work "$WORK_ROUNDS")
    start_profile "$tmpdir/round.err" "$goroscope" profile --duration 600s --output "$tmpdir/round.pb.gz"
    profiled=$("$cpuburn" work "$WORK_ROUNDS")
    stop_profile "$tmpdir/round.err"
    echo "$bare" >>"$tmpdir/bare"
    echo "$profiled" >>"$tmpdir/profiled"
    log "  round $round: bare $((bare / 1000000)) ms, profiled $((profiled / 1000000)) ms"
done
bare_median=$(median <"$tmpdir/bare")
profiled_median=$(median <"$tmpdir/profiled")
throughput=$(awk -v b="$bare_median" -v p="$profiled_median" 'BEGIN {printf "%.2f", 100 * b / p}')

# --- 2. own CPU and peak RSS ------------------------------------------------------------------
log "own cost: host-wide profile at 99 Hz for ${PROFILE_S}s with cpuburn split running"
"$cpuburn" split >/dev/null &
background+=("$!")
burner=$!
/usr/bin/time -f '%M %e' -o "$tmpdir/time.out" \
    "$goroscope" profile --duration "${PROFILE_S}s" --output "$tmpdir/own.pb.gz" 2>"$tmpdir/own.err" &
timed=$!
background+=("$timed")
goroscope_pid=""
for _ in $(seq 1 300); do
    goroscope_pid=$(pgrep -P "$timed" -x goroscope || true)
    [[ -n $goroscope_pid ]] && grep -q '^goroscope: profiling' "$tmpdir/own.err" && break
    sleep 0.1
done
[[ -n $goroscope_pid ]] || die "goroscope profile did not start: $(cat "$tmpdir/own.err")"
ticks() { awk '{print $14 + $15}' "/proc/$goroscope_pid/stat"; }
sleep 2
first=$(ticks)
first_at=$(date +%s.%N)
sleep $((PROFILE_S - 4))
last=$(ticks)
last_at=$(date +%s.%N)
wait "$timed" || die "goroscope profile failed: $(cat "$tmpdir/own.err")"
kill "$burner" 2>/dev/null || true
hz=$(getconf CLK_TCK)
cpu_share=$(awk -v a="$first" -v b="$last" -v s="$first_at" -v e="$last_at" -v hz="$hz" \
    'BEGIN {printf "%.3f", 100 * (b - a) / hz / (e - s)}')
read -r peak_kb _ <"$tmpdir/time.out"
peak_mb=$(awk -v k="$peak_kb" 'BEGIN {printf "%.1f", k / 1024}')

# --- 3. symbolizing a big profile -------------------------------------------------------------
big_s=$(((BIG_SAMPLES + 1000 * cpus - 1) / (1000 * cpus)))
log "symbolization: host-wide profile at 1000 Hz for ${big_s}s with $cpus burners"
for _ in $(seq 1 "$cpus"); do
    "$cpuburn" split >/dev/null &
    background+=("$!")
done
"$goroscope" profile --frequency 1000 --duration "${big_s}s" --output "$tmpdir/big.pb.gz" 2>"$tmpdir/big.err" ||
    die "goroscope profile failed: $(cat "$tmpdir/big.err")"
summary=$(grep -E '^goroscope: [0-9]+ samples \(' "$tmpdir/big.err" | tail -1)
[[ -n $summary ]] || die "no summary line in: $(cat "$tmpdir/big.err")"
big_samples=$(sed -E 's/^goroscope: ([0-9]+) samples.*/\1/' <<<"$summary")
big_stacks=$(sed -E 's/.*\(([0-9]+) distinct stacks.*/\1/' <<<"$summary")
symbolize_s=$(sed -E 's/.*symbolized in ([0-9.]+)s.*/\1/' <<<"$summary")
"$go" tool pprof -top "$tmpdir/big.pb.gz" >/dev/null 2>"$tmpdir/pprof.err" ||
    die "go tool pprof cannot read the profile: $(cat "$tmpdir/pprof.err")"

echo
echo "| measure | value | goal |"
echo "| --- | --- | --- |"
echo "| cpuburn throughput under host-wide profiling at 99 Hz (median of $ROUNDS, $((bare_median / 1000000)) ms bare vs $((profiled_median / 1000000)) ms) | ${throughput} % | >= 99 % |"
echo "| goroscope CPU while sampling at 99 Hz, host-wide | ${cpu_share} % of a core | <= 1 % |"
echo "| goroscope peak RSS, ${PROFILE_S}s profile including symbolization | ${peak_mb} MB | <= 50 MB |"
echo "| reading + symbolizing $big_samples samples ($big_stacks distinct stacks) | ${symbolize_s} s | < 1 s |"
