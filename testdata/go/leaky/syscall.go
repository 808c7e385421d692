package main

// Goroutines blocked in a raw system call: a read on a blocking pipe nobody writes to. Their
// state is "syscall" and, before Go 1.23, nothing saves their frame pointer on the way in: Go's
// own traceback (and goroscope) unwind them from g.syscallsp/syscallpc.

import "syscall"

const countSyscall = 2

// syscallPipe holds both ends of the pipe forever.
var syscallPipe [2]int

//go:noinline
func leakSyscall() {
	buf := make([]byte, 1)
	_, _ = syscall.Read(syscallPipe[0], buf) // goroscope:block syscall
}

// plantSyscall makes the pipe and starts the readers.
func plantSyscall() error {
	if err := syscall.Pipe(syscallPipe[:]); err != nil {
		return err
	}
	for i := 0; i < countSyscall; i++ {
		go leakSyscall() // goroscope:create syscall
	}
	return nil
}
