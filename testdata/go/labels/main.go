// Command labels plants goroutines with known pprof labels (and goroutines without any) for
// goroscope's label-reading tests, prints one JSON line once they are all parked, and then runs
// until SIGTERM/SIGINT (or SIGKILL). It never reads stdin.
//
// Every planted goroutine reports its goroutine id and the labels Go itself says it carries
// (pprof.ForLabels on the context whose labels it runs under), then blocks on a channel receive
// that never completes:
//
//	kind       count  how its labels were set                                 labels
//	do             4  pprof.Do(bg, Labels("tenant","alpha","worker",N)) in    tenant, worker
//	                  the goroutine itself, parked inside f
//	inherited      6  started (two per set) inside pprof.Do(bg,               tenant, worker
//	                  Labels("tenant","beta","worker",N)) run by main; the
//	                  two of a pair share one label set
//	nested         1  pprof.Do inside pprof.Do; the inner "tenant" overrides  region, shard, tenant
//	nine           1  SetGoroutineLabels with 9 labels (a map's 9th entry      9 labels
//	                  grows it past one bucket before Go 1.24)
//	grow           1  SetGoroutineLabels with 14 labels (the 14th entry       14 labels
//	                  starts a growth its insertion may leave half done)
//	set            1  SetGoroutineLabels with 27 labels, among them an empty  27 labels
//	                  value, a 1024-byte value, non-ASCII text, bytes that
//	                  are not UTF-8 and a quote and a backslash (before Go
//	                  1.24 the 27th entry grows the map from 4 buckets to 8,
//	                  and an insertion evacuates at most 2 old buckets: the
//	                  growth stays half done for good)
//	empty-set      1  SetGoroutineLabels(WithLabels(bg, Labels())): a label   none
//	                  set that holds nothing
//	cleared        1  labels set, then SetGoroutineLabels(bg)                 none
//	after-do       1  pprof.Do returned before it parked                      none
//	plain          3  never had labels                                        none
//
// Output, one line on stdout once every planted goroutine is parked:
//
//	{"ready":true,"pid":123,"go_version":"go1.22.12","cgo":false,"main_goid":1,
//	 "goroutines":[{"goid":18,"kind":"do","labels":[["74656e616e74","616c706861"],...]},...]}
//
// Label keys and values are hex-encoded, so bytes that are not UTF-8 reach the test exactly.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// planted is one goroutine as the ready line describes it.
type planted struct {
	Goid   uint64      `json:"goid"`
	Kind   string      `json:"kind"`
	Labels [][2]string `json:"labels"`
}

// never is received from by every planted goroutine; nothing sends on it.
var never = make(chan struct{})

// currentGoid is the running goroutine's id, from the header runtime.Stack prints.
func currentGoid() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	fields := strings.Fields(strings.TrimPrefix(string(buf), "goroutine "))
	if len(fields) == 0 {
		panic("no goroutine header in " + string(buf))
	}
	id, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		panic(err)
	}
	return id
}

// describe is the running goroutine as planted under ctx's labels (none for a nil ctx).
func describe(kind string, ctx context.Context) planted {
	p := planted{Goid: currentGoid(), Kind: kind, Labels: [][2]string{}}
	if ctx != nil {
		pprof.ForLabels(ctx, func(key, value string) bool {
			p.Labels = append(p.Labels, [2]string{hex.EncodeToString([]byte(key)), hex.EncodeToString([]byte(value))})
			return true
		})
	}
	return p
}

// park reports the goroutine and blocks forever.
//
//go:noinline
func park(report chan<- planted, p planted) {
	report <- p
	<-never
}

// manyLabels is n key/value pairs ("k00", "v00"), ...
func manyLabels(n int) []string {
	pairs := make([]string, 0, 2*n)
	for i := 0; i < n; i++ {
		pairs = append(pairs, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%02d", i))
	}
	return pairs
}

//go:noinline
func doWorker(n int, report chan<- planted) {
	pprof.Do(context.Background(), pprof.Labels("tenant", "alpha", "worker", strconv.Itoa(n)), func(ctx context.Context) {
		park(report, describe("do", ctx))
	})
}

//go:noinline
func inheritedWorker(ctx context.Context, report chan<- planted) {
	park(report, describe("inherited", ctx))
}

//go:noinline
func nestedWorker(report chan<- planted) {
	outer := pprof.Labels("tenant", "gamma", "region", "eu")
	pprof.Do(context.Background(), outer, func(ctx context.Context) {
		pprof.Do(ctx, pprof.Labels("tenant", "delta", "shard", "7"), func(ctx context.Context) {
			park(report, describe("nested", ctx))
		})
	})
}

//go:noinline
func setWorker(kind string, pairs []string, report chan<- planted) {
	ctx := pprof.WithLabels(context.Background(), pprof.Labels(pairs...))
	pprof.SetGoroutineLabels(ctx)
	park(report, describe(kind, ctx))
}

//go:noinline
func clearedWorker(report chan<- planted) {
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("tenant", "zeta")))
	pprof.SetGoroutineLabels(context.Background())
	park(report, describe("cleared", nil))
}

//go:noinline
func afterDoWorker(report chan<- planted) {
	pprof.Do(context.Background(), pprof.Labels("tenant", "eta"), func(context.Context) {})
	park(report, describe("after-do", nil))
}

//go:noinline
func plainWorker(report chan<- planted) {
	park(report, describe("plain", nil))
}

// oddLabels are 27 labels with every kind of text a label may hold.
func oddLabels() []string {
	pairs := manyLabels(22)
	return append(pairs,
		"empty", "",
		"long", strings.Repeat("x", 1024),
		"text", "żółw 🐢",
		"bytes", "\xff\xfe\x00z",
		"quote", `a"b\c`,
	)
}

// plant starts every planted goroutine and returns how many there are.
func plant(report chan<- planted) int {
	count := 0
	for i := 0; i < 4; i++ {
		go doWorker(i, report)
		count++
	}
	for i := 0; i < 3; i++ {
		pprof.Do(context.Background(), pprof.Labels("tenant", "beta", "worker", strconv.Itoa(i)), func(ctx context.Context) {
			go inheritedWorker(ctx, report)
			go inheritedWorker(ctx, report)
		})
		count += 2
	}
	go nestedWorker(report)
	go setWorker("nine", manyLabels(9), report)
	go setWorker("grow", manyLabels(14), report)
	go setWorker("set", oddLabels(), report)
	go setWorker("empty-set", nil, report)
	go clearedWorker(report)
	go afterDoWorker(report)
	count += 7
	for i := 0; i < 3; i++ {
		go plainWorker(report)
		count++
	}
	return count
}

// waitParked waits until every goroutine in goids is blocked on a channel receive.
func waitParked(goids map[uint64]bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1<<20)
	for {
		dump := string(buf[:runtime.Stack(buf, true)])
		parked := 0
		for _, block := range strings.Split(dump, "\n\n") {
			header := strings.SplitN(block, "\n", 2)[0]
			open := strings.IndexByte(header, '[')
			if !strings.HasPrefix(header, "goroutine ") || open < 0 {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSpace(header[len("goroutine "):open]), 10, 64)
			if err == nil && goids[id] && strings.HasPrefix(header[open:], "[chan receive") {
				parked++
			}
		}
		if parked == len(goids) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d planted goroutines parked after %v", parked, len(goids), timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type readyLine struct {
	Ready      bool      `json:"ready"`
	Pid        int       `json:"pid"`
	GoVersion  string    `json:"go_version"`
	Cgo        bool      `json:"cgo"`
	MainGoid   uint64    `json:"main_goid"`
	Goroutines []planted `json:"goroutines"`
}

func main() {
	// Registered before any labels exist, so the signal goroutine inherits none.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	cgo := cgoValue() == 42

	report := make(chan planted)
	count := plant(report)
	goroutines := make([]planted, 0, count)
	goids := make(map[uint64]bool, count)
	for len(goroutines) < count {
		p := <-report
		goroutines = append(goroutines, p)
		goids[p.Goid] = true
	}
	if err := waitParked(goids, 30*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "labels:", err)
		os.Exit(1)
	}
	line, err := json.Marshal(readyLine{
		Ready:      true,
		Pid:        os.Getpid(),
		GoVersion:  runtime.Version(),
		Cgo:        cgo,
		MainGoid:   currentGoid(),
		Goroutines: goroutines,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(line))
	<-stop
	os.Exit(0)
}
