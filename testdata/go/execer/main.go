// Command execer is a Go program that exec's another program under its own pid, for goroscope's
// tests of targets that exec: it parks a known number of goroutines, prints its ready line, and
// on SIGUSR1 replaces itself with the program named by its arguments (another Go binary, or a
// non-Go one such as /bin/sleep). After the exec the pid is the same, the memory is not.
//
//	execer PROGRAM [ARGS...]
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Parked is how many goroutines wait forever on a channel receive before the exec.
const Parked = 25

func park(ch chan struct{}) {
	<-ch // execer:block
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: execer PROGRAM [ARGS...]")
		os.Exit(2)
	}
	never := make(chan struct{})
	for i := 0; i < Parked; i++ {
		go park(never)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGUSR1)
	line, _ := json.Marshal(map[string]interface{}{"ready": true, "pid": os.Getpid(), "parked": Parked})
	fmt.Println(string(line))
	<-signals
	err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
	fmt.Fprintf(os.Stderr, "execer: exec %s: %v\n", os.Args[1], err)
	os.Exit(1)
}
