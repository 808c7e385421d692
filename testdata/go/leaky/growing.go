package main

// Leaks the way they happen in production: a little more with every request. With -leak-rate N,
// N "requests" a second each leak two goroutines:
//
//	reply-leak  the request asks a worker for a reply and gives up at once (a timeout): the
//	            worker blocks forever on its unbuffered send (main.replyWorker, chan send).
//	watch-leak  the request starts a watcher ranging over a channel nobody ever closes
//	            (main.watch, chan receive).
//
// Both groups keep growing for as long as leaky runs. `go replyWorker(reply)` and
// `go watch(ch)` pass arguments, so Go starts them through a compiler-generated wrapper: the
// start function goroscope reports must still be main.replyWorker and main.watch.

import "time"

//go:noinline
func replyWorker(reply chan int) {
	reply <- 42 // goroscope:block reply-leak
}

//go:noinline
func watch(updates chan int) {
	for range updates { // goroscope:block watch-leak
	}
}

//go:noinline
func handleRequest() {
	reply := make(chan int)
	go replyWorker(reply) // goroscope:create reply-leak
	select {
	case <-reply:
	default: // gave up: nobody will ever receive the reply
	}
	go watch(make(chan int)) // goroscope:create watch-leak
}

// requestLoop serves perSecond requests a second.
//
//go:noinline
func requestLoop(perSecond int) {
	ticker := time.NewTicker(time.Second / time.Duration(perSecond))
	defer ticker.Stop()
	for range ticker.C {
		handleRequest()
	}
}
