//go:build !cgo_mode

package main

func cgoValue() int { return 0 }
