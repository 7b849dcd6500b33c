//go:build !pprof

package main

// startProfiling does nothing unless built with -tags pprof (pprof.go).
func startProfiling() {}
