//go:build pprof

package main

// Built with -tags pprof, sessproxy serves net/http/pprof on
// SESSPROXY_PPROF (default 127.0.0.1:6060), for profiling under load.

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func startProfiling() {
	addr := os.Getenv("SESSPROXY_PPROF")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
