#!/usr/bin/env bash
# offcpu-overhead.sh: what a host-wide off-CPU profile costs a context-switch storm.
#
# `perf bench sched pipe` (two threads passing a byte back and forth, nothing but context
# switches) is timed bare and while `goroscope profile --kind offcpu` runs host-wide,
# interleaved round by round so machine noise hits both alike. Prints the median time per
# switch pair in each mode and their ratio. The worst case for the off-CPU sampler: every
# switch-out of a followed thread takes its kernel and user stacks.
#
# Usage (as root): bench/offcpu-overhead.sh
# Environment:
#   ROUNDS=N          rounds (default 5)
#   LOOPS=N           perf bench loops per run (default 200000)
#   GOROSCOPE_BIN=P   use this goroscope binary instead of building one (release)

set -euo pipefail

ROUNDS=${ROUNDS:-5}
LOOPS=${LOOPS:-200000}
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/.." && pwd)

die() {
    echo "offcpu-overhead: error: $*" >&2
    exit 1
}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ $LOOPS =~ ^[1-9][0-9]*$ ]] || die "LOOPS must be a positive integer, not '$LOOPS'"
[[ $EUID -eq 0 ]] || die "run as root: the off-CPU sampler loads BPF programs"
command -v perf >/dev/null || die "perf is missing: apt-get install linux-perf"

bin=${GOROSCOPE_BIN:-}
if [[ -z $bin ]]; then
    (cd "$repo_root" && cargo build --release -p goroscope >&2)
    bin="$repo_root/target/release/goroscope"
fi
[[ -x $bin ]] || die "no goroscope binary at $bin"

work=$(mktemp -d)
profiler=
cleanup() {
    [[ -n $profiler ]] && kill -TERM "$profiler" 2>/dev/null && wait "$profiler" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# Microseconds per operation, from perf's "N usecs/op" line.
pipe_us() {
    perf bench sched pipe -l "$LOOPS" 2>&1 | awk '/usecs\/op/ { print $1 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$work/bare"
: >"$work/offcpu"
for round in $(seq "$ROUNDS"); do
    pipe_us >>"$work/bare"
    "$bin" profile --kind offcpu --duration 600s -o "$work/offcpu.pb.gz" 2>"$work/err" &
    profiler=$!
    for _ in $(seq 100); do
        grep -q "^goroscope: profiling" "$work/err" && break
        kill -0 "$profiler" 2>/dev/null || die "goroscope profile exited: $(cat "$work/err")"
        sleep 0.1
    done
    grep -q "^goroscope: profiling" "$work/err" || die "goroscope profile did not start: $(cat "$work/err")"
    pipe_us >>"$work/offcpu"
    kill -TERM "$profiler"
    wait "$profiler" || die "goroscope profile failed: $(cat "$work/err")"
    profiler=
    echo "offcpu-overhead: round $round: bare $(tail -1 "$work/bare") us/op, offcpu $(tail -1 "$work/offcpu") us/op"
done
bare=$(median <"$work/bare")
offcpu=$(median <"$work/offcpu")
awk -v b="$bare" -v o="$offcpu" -v r="$ROUNDS" 'BEGIN {
    printf "offcpu-overhead: perf bench sched pipe: bare %.2f us/op, under a host-wide off-CPU profile %.2f us/op: %.2fx (median of %d rounds)\n", b, o, o / b, r
}'
