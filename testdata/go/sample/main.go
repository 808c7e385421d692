// Command sample is a small Go program for goroscope's binary-analysis tests: it has an inlined
// function, a goroutine started from a known line, and a global that is easy to find.
package main

import (
	"fmt"
	"os"
	"time"
)

var Counter int64

//go:noinline
func worker(ch chan int) {
	for v := range ch {
		Counter += int64(v)
	}
}

func double(x int) int { return x * 2 } // inlined into main

func main() {
	ch := make(chan int)
	go worker(ch) // sample:go-statement
	for i := 0; i < 3; i++ {
		ch <- double(i)
	}
	close(ch)
	if len(os.Args) > 1 && os.Args[1] == "wait" {
		fmt.Println("ready")
		time.Sleep(time.Hour)
	}
	fmt.Println(Counter, cgoValue())
}
