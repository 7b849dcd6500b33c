//go:build !race

package proxy

import (
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/internal/procmem"
)

// Hostile round 6: a request still being read was outside
// max_inflight_bytes. 200 clients that each sent the first 1,000,000 bytes
// of an EXISTS of many small keys held +233 MiB with a 64 MiB budget;
// clients past 1 MiB waiting for a large-request slot held as much each
// (600 of them +628 MiB), and were never closed while they waited. What a
// client has read of an unfinished request past clientMemory is now
// charged to half the budget (partialReads), and a client stops being
// read while that is full.
func TestMemoryPartialRequestsAreBounded(t *testing.T) {
	const clients = 200
	const budget = 64 << 20
	tests := []struct {
		name string
		sent int // bytes of the request each client sends before it stops
	}{
		{"under the large-request size", 1_000_000},
		{"waiting for a large-request slot", largeRequestBytes + 200_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raiseFileLimit(t, clients+1000)
			srv := realProxy(t, Options{MaxInflightBytes: budget, RequestTimeout: 30 * time.Second})
			addr := srv.Addr().String()
			var req strings.Builder
			fmt.Fprintf(&req, "*%d\r\n$6\r\nEXISTS\r\n", 200001)
			for i := range 200000 {
				k := fmt.Sprintf("sess:%07d", i)
				fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(k), k)
			}
			prefix := []byte(req.String()[:tt.sent]) // one copy for every client
			debug.FreeOSMemory()
			before := procmem.RSS(t)
			conns := make([]net.Conn, clients)
			t.Cleanup(func() {
				for _, c := range conns {
					if c != nil {
						c.Close()
					}
				}
			})
			// Each client writes on its own: a client the proxy does not
			// read blocks once the socket's buffers are full.
			var wg sync.WaitGroup
			for i := range conns {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				conns[i] = c
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
					_, _ = c.Write(prefix)
				}()
			}
			wg.Wait()
			// The proxy reads the clients until what their unfinished
			// requests hold reaches its bound, and then no further.
			for deadline := time.Now().Add(10 * time.Second); !srv.unfinished.full(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("unfinished requests hold %d bytes after 10 s, bound %d", srv.unfinished.used.Load(), srv.unfinished.max)
				}
			}
			grew := procmem.RSS(t) - before
			t.Logf("%d clients each %d bytes into a request of small arguments, max_inflight_bytes %d MiB: RSS +%d MiB", clients, tt.sent, budget>>20, grew>>20)
			if grew > budget+50<<20 {
				t.Errorf("partial requests held %d MiB, over max_inflight_bytes (%d MiB) + 50 MB", grew>>20, budget>>20)
			}
		})
	}
}

// Clients that fill what unfinished requests may hold and stop there are
// closed by request_timeout although the proxy no longer reads them, and
// then a client with a request past clientMemory is served: a full bound
// stalls requests, it does not stop them for good.
func TestMemoryPartialRequestsTimeOut(t *testing.T) {
	const stalled = 40
	srv := realProxy(t, Options{MaxInflightBytes: 2 << 20, RequestTimeout: 500 * time.Millisecond})
	addr := srv.Addr().String()
	part := []byte("*2\r\n$4\r\nPING\r\n$200000\r\n" + strings.Repeat("x", 100_000))
	conns := make([]net.Conn, stalled)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
		go func() {
			_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
			_, _ = c.Write(part)
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); !srv.unfinished.full(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("unfinished requests hold %d bytes, bound %d", srv.unfinished.used.Load(), srv.unfinished.max)
		}
	}
	start := time.Now()
	buf := make([]byte, 512)
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, err := c.Read(buf); err != nil {
				if time.Since(start) > 9*time.Second {
					t.Fatalf("stalled client %d not closed: %v", i, err)
				}
				break
			}
		}
	}
	t.Logf("%d clients stalled on a full bound were closed within %v (request_timeout 500ms)", stalled, time.Since(start).Round(10*time.Millisecond))
	c, r := dial(t, "tcp", addr)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	value := strings.Repeat("y", 100_000)
	if got := roundTrip(t, c, r, encodeRESP("ECHO", value)); got != "$100000" {
		t.Fatalf("ECHO of 100 KB after the stalled clients left: %.40q", got)
	}
}
