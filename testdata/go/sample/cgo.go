//go:build cgo_mode

package main

// static int sample_value(void) { return 42; }
import "C"

func cgoValue() int { return int(C.sample_value()) }
