// Command churn measures goroutine throughput: GOMAXPROCS workers each start short goroutines
// (which only call wg.Done) in batches as fast as they can for -duration, then it prints one line
//
//	{"goroutines_per_second":X,"goroutines":N,"seconds":S,"workers":W,...}
//
// and exits (or, with -wait, stays alive and idle until SIGTERM/SIGINT, so an observer attached
// to it can be stopped while the process still exists).
//
// Flags:
//
//	-duration D   how long to churn (default 5s)
//	-delay D      sleep D before starting (time for an observer to attach; default 0)
//	-batch N      goroutines per worker batch (default 256)
//	-wait         after printing the result, wait for SIGTERM/SIGINT before exiting
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type result struct {
	GoroutinesPerSecond float64 `json:"goroutines_per_second"`
	Goroutines          int64   `json:"goroutines"`
	Seconds             float64 `json:"seconds"`
	Workers             int     `json:"workers"`
	Pid                 int     `json:"pid"`
	GoVersion           string  `json:"go_version"`
	Cgo                 bool    `json:"cgo"`
}

// worker starts batches of batch goroutines and waits for each batch until stop is set; it adds
// the number it started to total.
//
//go:noinline
func worker(batch int, stop *int32, total *int64) {
	var wg sync.WaitGroup
	var n int64
	for atomic.LoadInt32(stop) == 0 {
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go func() {
				wg.Done()
			}()
		}
		wg.Wait()
		n += int64(batch)
	}
	atomic.AddInt64(total, n)
}

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long to churn")
	delay := flag.Duration("delay", 0, "sleep `D` before starting")
	batch := flag.Int("batch", 256, "goroutines per worker batch")
	wait := flag.Bool("wait", false, "after printing the result, wait for SIGTERM/SIGINT")
	flag.Parse()
	if *duration <= 0 || *delay < 0 || *batch <= 0 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	stopSignal := make(chan os.Signal, 1)
	signal.Notify(stopSignal, syscall.SIGTERM, syscall.SIGINT)
	cgo := cgoValue() == 42

	if *delay > 0 {
		select {
		case <-time.After(*delay):
		case <-stopSignal:
			os.Exit(0)
		}
	}

	workers := runtime.GOMAXPROCS(0)
	var stop int32
	var total int64
	var done sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		done.Add(1)
		go func() {
			defer done.Done()
			worker(*batch, &stop, &total)
		}()
	}
	select {
	case <-time.After(*duration):
	case <-stopSignal:
		os.Exit(0)
	}
	atomic.StoreInt32(&stop, 1)
	done.Wait()
	elapsed := time.Since(start).Seconds()

	line, err := json.Marshal(result{
		GoroutinesPerSecond: float64(total) / elapsed,
		Goroutines:          total,
		Seconds:             elapsed,
		Workers:             workers,
		Pid:                 os.Getpid(),
		GoVersion:           runtime.Version(),
		Cgo:                 cgo,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(line))
	if *wait {
		<-stopSignal
	}
}
