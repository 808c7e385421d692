//go:build cgo_mode

package main

// static int cpuburn_value(void) { return 42; }
import "C"

func cgoValue() int { return int(C.cpuburn_value()) }
