//go:build cgo_mode

package main

// static int labels_cgo_value(void) { return 42; }
import "C"

// cgoValue calls into C once at start so cgo builds really link and run C code.
func cgoValue() int { return int(C.labels_cgo_value()) }
