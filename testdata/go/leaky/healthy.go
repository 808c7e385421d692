package main

// The healthy patterns every real service has, which wait for as long as they like and are not
// leaks: an idle worker pool on a job channel, ticker/select loops, an accept loop with idle
// keep-alive connections, and a condition-variable pool. Sizes are distinct from the planted
// groups' (see main.go); their "create" and "block" marker lines are in this file.
//
// Once everything is planted and blocked, startFeeders makes them live: a job every 100 ms for
// the pool, a Signal every 200 ms for the cond pool; the tickers fire every 50 ms on their own.

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	countPool     = 15
	countTicker   = 4
	countAccept   = 1
	countIdleConn = 6
	countCond     = 8
)

var (
	jobs      = make(chan int)
	jobsDone  atomic.Int64
	ticks     atomic.Int64
	condMu    sync.Mutex
	condCV    = sync.NewCond(&condMu)
	condWakes atomic.Int64
	// idleClients holds the client side of every idle connection, so none is closed.
	idleClients []net.Conn
	acceptLn    net.Listener
)

//go:noinline
func poolWorker() {
	for job := range jobs { // goroscope:block pool
		jobsDone.Add(int64(job))
	}
}

//go:noinline
func tickerLoop() {
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		select { // goroscope:block ticker
		case <-ticker.C:
			ticks.Add(1)
		case <-neverCh:
			return
		}
	}
}

// neverCh is never ready: the ticker loops' way out that nobody takes.
var neverCh = make(chan struct{})

//go:noinline
func acceptLoop(ln net.Listener) {
	for {
		conn, err := ln.Accept() // goroscope:block accept
		if err != nil {
			return
		}
		go serveConn(conn) // goroscope:create idle-conn
	}
}

// serveConn reads lines until the peer closes; the peers say hello once and then stay idle,
// like keep-alive clients between requests.
//
//go:noinline
func serveConn(conn net.Conn) {
	reader := bufio.NewReader(conn)
	for {
		if _, err := reader.ReadString('\n'); err != nil { // goroscope:block idle-conn
			return
		}
	}
}

//go:noinline
func condWaiter() {
	condMu.Lock()
	for {
		condCV.Wait() // goroscope:block cond
		condWakes.Add(1)
	}
}

// plantHealthy starts every healthy pattern and the idle connections.
func plantHealthy() error {
	for i := 0; i < countPool; i++ {
		go poolWorker() // goroscope:create pool
	}
	for i := 0; i < countTicker; i++ {
		go tickerLoop() // goroscope:create ticker
	}
	for i := 0; i < countCond; i++ {
		go condWaiter() // goroscope:create cond
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	acceptLn = ln
	go acceptLoop(ln) // goroscope:create accept
	for i := 0; i < countIdleConn; i++ {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		if _, err := conn.Write([]byte("hello\n")); err != nil {
			return err
		}
		idleClients = append(idleClients, conn)
	}
	return nil
}

// startFeeders gives the pool a job every 100 ms and the cond pool a Signal every 200 ms.
func startFeeders() {
	go func() {
		for range time.Tick(100 * time.Millisecond) {
			jobs <- 1
		}
	}()
	go func() {
		for range time.Tick(200 * time.Millisecond) {
			condMu.Lock()
			condCV.Signal()
			condMu.Unlock()
		}
	}()
}
