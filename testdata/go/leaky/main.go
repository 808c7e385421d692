// Command leaky plants goroutine groups of known, distinct sizes for goroscope's goroutine tests
// and benchmarks — real leaks next to the long waits every healthy service has — prints one JSON
// line once they are all blocked, and then runs until SIGTERM/SIGINT (or SIGKILL). It never reads
// stdin.
//
// Each group is started by its own `go` statement and blocks in a named //go:noinline function.
// The `go` statement's line ends in a "create" marker comment and the exact line the group blocks
// on in a "block" marker comment, each followed by the kind (the marker comments in this
// program's files are the only text that uses the marker prefix). Tests find the markers by
// grepping the files, so keep each marked statement on one line.
//
// The static groups (this file) start in functions that take no arguments, so `go f()` starts
// them in f itself; growing.go and healthy.go also use `go f(x)`, which Go starts through a
// compiler-generated wrapper.
//
//	kind          count  leak?  start function (= blocking function unless noted)  blocks in
//	chan-send        37  stuck  main.leakChanSend    send on an unbuffered chan nobody receives
//	nil-chan         17  stuck  main.leakNilChan     receive on a nil channel
//	mutex            13  stuck  main.leakMutex       sync.Mutex.Lock on a mutex main holds forever
//	empty-select      9  stuck  main.leakEmptySelect select {}
//	chan-recv        23  no     main.leakChanRecv    receive on a chan nobody sends on (the shape
//	                                                 of an idle pool: a long wait, not a leak)
//	select           19  no     main.leakSelect      select on two never-ready chans, no default
//	waitgroup        11  no     main.leakWaitGroup   WaitGroup.Wait on a WaitGroup never done
//	net-read          7  no     main.leakNetRead     conn.Read on loopback TCP; the peer never writes
//	sleep             5  no     main.leakSleep       time.Sleep(24h)
//	deep              3  no     main.deepStart (blocks in main.deepRecurse, 40 frames deep)
//	syscall           2  no     main.leakSyscall     read(2) on a blocking pipe (syscall.go)
//	pool             15  no     main.poolWorker      job channel, a job every 100 ms (healthy.go)
//	ticker            4  no     main.tickerLoop      select loop on a 50 ms ticker (healthy.go)
//	accept            1  no     main.acceptLoop      Accept on a listener (healthy.go)
//	idle-conn         6  no     main.serveConn       reading idle keep-alive connections (healthy.go)
//	cond              8  no     main.condWaiter      sync.Cond.Wait, a Signal every 200 ms (healthy.go)
//	idle        -idle N  no     main.idleWait        receive on one shared chan (for scale)
//	reply-leak  growing  grows  main.replyWorker     chan send, -leak-rate a second (growing.go)
//	watch-leak  growing  grows  main.watch           chan receive, -leak-rate a second (growing.go)
//
// "stuck" groups wait on an operation healthy code does not wait on for long; "no" groups are
// long waits, which healthy services hold for hours; "grows" groups gain members that never
// finish. The accepted (server) side of every net-read connection is held by main in a global
// slice with no goroutine of its own; the listener is closed once all are accepted.
//
// Output, one line on stdout once every planted goroutine is blocked and runtime.GC() has run
// twice (so the runtime has recorded each one's waitsince):
//
//	{"ready":true,"pid":123,"planted":{"chan-recv":23,...},"total":184,"leak_rate":0,...}
//
// "planted" holds every static kind above; "idle" is present only when -idle is above 0.
//
// On SIGUSR1 it prints Go's own dump of every goroutine (runtime.Stack, the format of
// /debug/pprof/goroutine?debug=2) on stdout between a "--- goroutine dump ---" line and a
// "--- end of dump ---" line: the ground truth tests compare goroscope's stacks with.
//
// Flags:
//
//	-churn N       also start N short-lived goroutines per second (each lives about 1 ms, in
//	               main.churnOne, started from main.churnLoop); default 0
//	-idle N        also plant N goroutines blocked on one channel receive in main.idleWait; default 0
//	-gc-every D    run runtime.GC() every D (from main.gcLoop) so GC pause figures exist; default 0 = off
//	-leak-rate N   serve N leaking requests a second (growing.go); default 0
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Planted group sizes: distinct, so a group's size identifies it.
const (
	countChanSend  = 37
	countChanRecv  = 23
	countSelect    = 19
	countMutex     = 13
	countWaitGroup = 11
	countNetRead   = 7
	countSleep     = 5
	countDeep      = 3
	countNilChan   = 17
	countEmpty     = 9

	// deepFrames is how many main.deepRecurse frames a deep goroutine's stack holds.
	deepFrames = 40
)

// Everything the leaked goroutines block on stays reachable from globals, so nothing is ever
// collected or finalized (a collected net.Conn would be closed by its finalizer).
var (
	chanSendCh  = make(chan int)
	chanRecvCh  = make(chan int)
	selectA     = make(chan int)
	selectB     = make(chan string)
	heldMutex   sync.Mutex
	neverDone   sync.WaitGroup
	deepCh      = make(chan int)
	idleCh      = make(chan struct{})
	nilCh       chan int   // never made: operations on it block forever
	clientConns []net.Conn // read by the net-read goroutines
	// netReadConns hands each net-read goroutine its connection.
	netReadConns = make(chan net.Conn, countNetRead)
	serverConns  []net.Conn // accepted side, held here with no goroutine
)

//go:noinline
func leakChanSend() {
	chanSendCh <- 1 // goroscope:block chan-send
}

//go:noinline
func leakChanRecv() {
	<-chanRecvCh // goroscope:block chan-recv
}

//go:noinline
func leakNilChan() {
	<-nilCh // goroscope:block nil-chan
}

//go:noinline
func leakEmptySelect() {
	select {} // goroscope:block empty-select
}

//go:noinline
func leakSelect() {
	select { // goroscope:block select
	case <-selectA:
	case <-selectB:
	}
}

//go:noinline
func leakMutex() {
	heldMutex.Lock() // goroscope:block mutex
	heldMutex.Unlock()
}

//go:noinline
func leakWaitGroup() {
	neverDone.Wait() // goroscope:block waitgroup
}

//go:noinline
func leakNetRead() {
	conn := <-netReadConns
	buf := make([]byte, 64)
	_, _ = conn.Read(buf) // goroscope:block net-read
}

//go:noinline
func leakSleep() {
	time.Sleep(24 * time.Hour) // goroscope:block sleep
}

//go:noinline
func deepStart() {
	deepRecurse(deepCh, deepFrames)
}

// deepRecurse calls itself until depth frames of it are on the stack, then blocks. The result is
// used after each call so the recursion cannot become a loop or a tail call.
//
//go:noinline
func deepRecurse(ch chan int, depth int) int {
	if depth > 1 {
		return deepRecurse(ch, depth-1) + 1
	}
	return <-ch // goroscope:block deep
}

//go:noinline
func idleWait() {
	<-idleCh // goroscope:block idle
}

// churnOne is one short-lived churn goroutine: it lives about a millisecond.
//
//go:noinline
func churnOne() {
	time.Sleep(time.Millisecond)
}

// churnLoop starts perSecond churnOne goroutines per second, in batches every 10 ms.
//
//go:noinline
func churnLoop(perSecond int) {
	start := time.Now()
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	var started int64
	for range ticker.C {
		due := int64(time.Since(start).Seconds() * float64(perSecond))
		for ; started < due; started++ {
			go churnOne()
		}
	}
}

// gcLoop runs a GC every period.
//
//go:noinline
func gcLoop(period time.Duration) {
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for range ticker.C {
		runtime.GC()
	}
}

// plantNetRead makes count loopback TCP connections; a goroutine reads from the client side of
// each, and main keeps the accepted side without ever writing to it.
func plantNetRead(count int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	for i := 0; i < count; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		s, err := ln.Accept()
		if err != nil {
			return err
		}
		clientConns = append(clientConns, c)
		netReadConns <- c
		serverConns = append(serverConns, s)
	}
	return nil
}

// plant starts every leak group (and idle goroutines when idle > 0).
func plant(idle int) error {
	for i := 0; i < countChanSend; i++ {
		go leakChanSend() // goroscope:create chan-send
	}
	for i := 0; i < countChanRecv; i++ {
		go leakChanRecv() // goroscope:create chan-recv
	}
	for i := 0; i < countSelect; i++ {
		go leakSelect() // goroscope:create select
	}
	heldMutex.Lock() // held by main forever
	for i := 0; i < countMutex; i++ {
		go leakMutex() // goroscope:create mutex
	}
	neverDone.Add(1) // never done
	for i := 0; i < countWaitGroup; i++ {
		go leakWaitGroup() // goroscope:create waitgroup
	}
	if err := plantNetRead(countNetRead); err != nil {
		return fmt.Errorf("loopback TCP: %v", err)
	}
	for range clientConns {
		go leakNetRead() // goroscope:create net-read
	}
	for i := 0; i < countSleep; i++ {
		go leakSleep() // goroscope:create sleep
	}
	for i := 0; i < countDeep; i++ {
		go deepStart() // goroscope:create deep
	}
	for i := 0; i < countNilChan; i++ {
		go leakNilChan() // goroscope:create nil-chan
	}
	for i := 0; i < countEmpty; i++ {
		go leakEmptySelect() // goroscope:create empty-select
	}
	for i := 0; i < idle; i++ {
		go idleWait() // goroscope:create idle
	}
	if err := plantSyscall(); err != nil {
		return fmt.Errorf("pipe: %v", err)
	}
	if err := plantHealthy(); err != nil {
		return fmt.Errorf("healthy patterns: %v", err)
	}
	return nil
}

// kindOfFunction maps the innermost main-package function of a blocked goroutine to its kind.
var kindOfFunction = map[string]string{
	"main.leakChanSend":    "chan-send",
	"main.leakChanRecv":    "chan-recv",
	"main.leakSelect":      "select",
	"main.leakMutex":       "mutex",
	"main.leakWaitGroup":   "waitgroup",
	"main.leakNetRead":     "net-read",
	"main.leakSleep":       "sleep",
	"main.deepRecurse":     "deep",
	"main.idleWait":        "idle",
	"main.leakNilChan":     "nil-chan",
	"main.leakEmptySelect": "empty-select",
	"main.leakSyscall":     "syscall",
	"main.poolWorker":      "pool",
	"main.tickerLoop":      "ticker",
	"main.acceptLoop":      "accept",
	"main.serveConn":       "idle-conn",
	"main.condWaiter":      "cond",
}

// allStacks returns runtime.Stack for every goroutine.
func allStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// blockedCounts counts, per kind, the goroutines that are parked (not running, runnable or being
// moved; in a syscall only for the syscall kind) with that kind's function as their innermost
// main-package frame.
func blockedCounts() map[string]int {
	counts := map[string]int{}
	for _, block := range strings.Split(allStacks(), "\n\n") {
		lines := strings.Split(block, "\n")
		header := lines[0]
		open, end := strings.IndexByte(header, '['), strings.IndexByte(header, ']')
		if !strings.HasPrefix(header, "goroutine ") || open < 0 || end < open {
			continue
		}
		state := header[open+1 : end]
		if i := strings.IndexByte(state, ','); i >= 0 {
			state = state[:i]
		}
		switch state {
		case "running", "runnable", "copystack", "preempted", "idle", "dead":
			continue
		}
		for _, line := range lines[1:] {
			if strings.HasPrefix(line, "main.") {
				function := line
				if i := strings.IndexByte(function, '('); i >= 0 {
					function = function[:i]
				}
				if kind, ok := kindOfFunction[function]; ok && (state == "syscall") == (kind == "syscall") {
					counts[kind]++
				}
				break
			}
		}
	}
	return counts
}

// dumpOnRequest prints Go's own goroutine dump for every request.
//
//go:noinline
func dumpOnRequest(requests chan os.Signal) {
	for range requests {
		fmt.Printf("--- goroutine dump ---\n%s\n--- end of dump ---\n", allStacks())
	}
}

// waitBlocked waits until every planted goroutine is parked, for at most timeout.
func waitBlocked(want map[string]int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		got := blockedCounts()
		missing := ""
		for kind, n := range want {
			if got[kind] != n {
				missing += fmt.Sprintf(" %s %d/%d", kind, got[kind], n)
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("goroutines not blocked after %v (kind blocked/planted):%s", timeout, missing)
		}
		time.Sleep(delay)
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

type readyLine struct {
	Ready          bool           `json:"ready"`
	Pid            int            `json:"pid"`
	Planted        map[string]int `json:"planted"`
	Total          int            `json:"total"`
	ChurnPerSecond int            `json:"churn_per_second"`
	LeakRate       int            `json:"leak_rate"`
	GCEverySeconds float64        `json:"gc_every_seconds"`
	GoVersion      string         `json:"go_version"`
	Cgo            bool           `json:"cgo"`
}

func main() {
	churn := flag.Int("churn", 0, "also start `N` short-lived (~1 ms) goroutines per second")
	idle := flag.Int("idle", 0, "also plant `N` goroutines blocked in main.idleWait")
	gcEvery := flag.Duration("gc-every", 0, "run runtime.GC() every `D` (0: never)")
	leakRate := flag.Int("leak-rate", 0, "serve `N` leaking requests a second")
	flag.Parse()
	if *churn < 0 || *idle < 0 || *gcEvery < 0 || *leakRate < 0 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	// Registered first, so a SIGTERM during planting also ends the process cleanly.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	dumpRequests := make(chan os.Signal, 1)
	signal.Notify(dumpRequests, syscall.SIGUSR1)

	cgo := cgoValue() == 42

	planted := map[string]int{
		"chan-send":    countChanSend,
		"chan-recv":    countChanRecv,
		"select":       countSelect,
		"mutex":        countMutex,
		"waitgroup":    countWaitGroup,
		"net-read":     countNetRead,
		"sleep":        countSleep,
		"deep":         countDeep,
		"nil-chan":     countNilChan,
		"empty-select": countEmpty,
		"syscall":      countSyscall,
		"pool":         countPool,
		"ticker":       countTicker,
		"accept":       countAccept,
		"idle-conn":    countIdleConn,
		"cond":         countCond,
	}
	if *idle > 0 {
		planted["idle"] = *idle
	}
	if err := plant(*idle); err != nil {
		fmt.Fprintln(os.Stderr, "leaky:", err)
		os.Exit(1)
	}
	if err := waitBlocked(planted, 60*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "leaky:", err)
		os.Exit(1)
	}
	// The GC records waitsince for goroutines it finds blocked; twice, so the second cycle sees
	// everything the first one might have raced with.
	runtime.GC()
	runtime.GC()

	if *churn > 0 {
		go churnLoop(*churn)
	}
	if *gcEvery > 0 {
		go gcLoop(*gcEvery)
	}
	startFeeders()
	if *leakRate > 0 {
		go requestLoop(*leakRate)
	}

	total := 0
	for _, n := range planted {
		total += n
	}
	line, err := json.Marshal(readyLine{
		Ready:          true,
		Pid:            os.Getpid(),
		Planted:        planted,
		Total:          total,
		ChurnPerSecond: *churn,
		LeakRate:       *leakRate,
		GCEverySeconds: gcEvery.Seconds(),
		GoVersion:      runtime.Version(),
		Cgo:            cgo,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(line))
	go dumpOnRequest(dumpRequests)

	<-stop
	runtime.KeepAlive(clientConns)
	runtime.KeepAlive(serverConns)
	runtime.KeepAlive(idleClients)
	runtime.KeepAlive(acceptLn)
	os.Exit(0)
}
