// Command cpuburn spends CPU in known proportions for goroscope's profiler tests.
//
//	cpuburn split [SECONDS PROFILE]  one goroutine: hot (3n steps) then cold (n steps), forever,
//	                                 n drawn anew each round between 2 and 6 units; with SECONDS
//	                                 and PROFILE, also its own runtime/pprof CPU profile of the
//	                                 first SECONDS, written to PROFILE
//	cpuburn work ROUNDS              ROUNDS rounds of hot then cold, then prints the time taken
//	                                 in nanoseconds and exits (for overhead benchmarks)
//	cpuburn labels                   two goroutines taking turns under pprof.Do labels:
//	                                 tenant=alpha burns 2×turn units per turn, tenant=beta
//	                                 1×turn
//
// Each prints the ready line {"ready":true} (labels: then "alpha goid=N" and "beta goid=M") once
// burning; split with a PROFILE prints "profiled" once it is written. Every line of step's body is
// marked `cpuburn:step`, and the go statements of labels `cpuburn:create alpha|beta`.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// unit is the number of mixing steps in one unit of work (about 0.7 ms on the test machines).
const unit = 300000

// A split whose rounds all took the same time would be sampled at the same few points of its
// round, over and over, whenever the round is close to a small multiple of the sampling period
// over a small number: a 2.8 ms round sampled every 1.003 ms (997 Hz) lands on only 14 points of
// it, which makes 3:1 read as 2.5 or 3.7 depending on where the first sample fell (what the
// tests saw). So split draws each round's length, keeping hot at exactly three times cold.
// Where a sample falls in the phase it begins or ends is still chance, so the share is off by
// up to a sample per phase: long rounds (4 units on average, 11 ms) keep that small.

// turn is how many times its units each labels worker burns per turn. Each turn also pays for a
// handover (a channel send, a wakeup, often a move to another thread), the same for both
// workers, which pulls their shares towards 1:1: with 1, alpha:beta in 2.5 s profiles on a
// loaded machine ranged 1.77 to 2.09; with 10, 1.94 to 2.06.
const turn = 10

var sink uint64

// step is small enough that the compiler inlines it into its callers.
func step(x uint64) uint64 {
	x ^= x << 13 // cpuburn:step
	x ^= x >> 7  // cpuburn:step
	x ^= x << 17 // cpuburn:step
	return x     // cpuburn:step
}

//go:noinline
func hot(x uint64, n int) uint64 {
	for i := 0; i < 3*n; i++ {
		x = step(x)
	}
	return x
}

//go:noinline
func cold(x uint64, n int) uint64 {
	for i := 0; i < n; i++ {
		x = step(x)
	}
	return x
}

//go:noinline
func burn(units int, x uint64) uint64 {
	for i := 0; i < units*unit; i++ {
		x = step(x)
	}
	return x
}

func goid() int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	fields := strings.Fields(string(buf))
	id, _ := strconv.Atoi(fields[1])
	return id
}

func split() {
	if len(os.Args) > 3 {
		seconds, err := strconv.ParseFloat(os.Args[2], 64)
		if err != nil {
			panic(err)
		}
		out, err := os.Create(os.Args[3])
		if err != nil {
			panic(err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			panic(err)
		}
		go func() {
			time.Sleep(time.Duration(seconds * float64(time.Second)))
			pprof.StopCPUProfile()
			out.Close()
			fmt.Println("profiled")
		}()
	}
	fmt.Println(`{"ready":true}`)
	x := uint64(88172645463325252)
	// The round lengths come from a generator of their own, so the work stays the same.
	r := uint64(0x9e3779b97f4a7c15)
	for {
		r = step(r)
		n := 2*unit + int(r%(4*unit))
		x = hot(x, n)
		x = cold(x, n)
		sink = x
	}
}

func work() {
	rounds, err := strconv.Atoi(os.Args[2])
	if err != nil {
		panic(err)
	}
	started := time.Now()
	x := uint64(88172645463325252)
	for i := 0; i < rounds; i++ {
		x = hot(x, unit)
		x = cold(x, unit)
	}
	sink = x
	fmt.Println(time.Since(started).Nanoseconds())
}

func labels() {
	alphaTurn, betaTurn := make(chan struct{}), make(chan struct{})
	ids := make(chan string, 2)
	worker := func(tenant string, units int, mine, theirs chan struct{}) {
		pprof.Do(context.Background(), pprof.Labels("tenant", tenant), func(context.Context) {
			ids <- fmt.Sprintf("%s goid=%d", tenant, goid())
			x := uint64(units) + 1
			for range mine {
				x = burn(units, x)
				sink = x
				theirs <- struct{}{}
			}
		})
	}
	go worker("alpha", 2*turn, alphaTurn, betaTurn) // cpuburn:create alpha
	go worker("beta", 1*turn, betaTurn, alphaTurn)  // cpuburn:create beta
	first, second := <-ids, <-ids
	fmt.Println(`{"ready":true}`)
	fmt.Println(first)
	fmt.Println(second)
	alphaTurn <- struct{}{}
	select {}
}

func main() {
	_ = cgoValue()
	mode := "split"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "split":
		split()
	case "labels":
		labels()
	case "work":
		work()
	default:
		fmt.Fprintln(os.Stderr, "usage: cpuburn split [SECONDS PROFILE] | work ROUNDS | labels")
		os.Exit(2)
	}
}
