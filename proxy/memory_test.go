//go:build !race

// The memory figures mean nothing under the race detector, whose shadow
// memory multiplies RSS; make test runs these tests in a build without it.

package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/internal/procmem"
)

// TestMain runs the memory tests with the shipped binary's GC target.
func TestMain(m *testing.M) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	os.Exit(m.Run())
}

// 10,000 idle clients must cost the proxy under 200 MB of RSS. The clients
// run in a child process (this test binary again, in
// TestMemoryIdleClientsHelper), so the figure is the proxy's own, and each
// process stays within its open-file limit.
func TestMemoryTenThousandIdleClients(t *testing.T) {
	const clients = 10000
	raiseFileLimit(t, clients+1000)
	srv := startServer(t, Options{MaxClients: clients + 10})
	// Freed memory back to the OS on both sides: the tests before this
	// one leave garbage that would otherwise leave the process meanwhile
	// and count against the clients (an event loop's client costs less
	// than that garbage).
	debug.FreeOSMemory()
	before := procmem.RSS(t)

	child := exec.Command(os.Args[0], "-test.run=^TestMemoryIdleClientsHelper$")
	child.Env = append(os.Environ(), "SESSPROXY_IDLE_ADDR="+srv.Addr().String(), "SESSPROXY_IDLE_CLIENTS="+strconv.Itoa(clients))
	hold, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		hold.Close() // the helper exits, closing its clients
		_ = child.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("client process: %q, %v", line, err)
	}
	debug.FreeOSMemory()
	grown := procmem.RSS(t) - before
	t.Logf("%d idle clients: proxy RSS grew by %.1f MB (%.1f KB per client)", clients, float64(grown)/(1<<20), float64(grown)/clients/1024)
	if grown > 200<<20 {
		t.Fatalf("%d idle clients cost %d MB, over 200 MB", clients, grown>>20)
	}
}

// TestMemoryIdleClientsHelper is the client side of TestMemoryTenThousandIdleClients,
// run in a child process; run directly it has nothing to do and passes.
func TestMemoryIdleClientsHelper(t *testing.T) {
	addr := os.Getenv("SESSPROXY_IDLE_ADDR")
	if addr == "" {
		return
	}
	clients, _ := strconv.Atoi(os.Getenv("SESSPROXY_IDLE_CLIENTS"))
	raiseFileLimit(t, uint64(clients)+100)
	conns := make([]net.Conn, 0, clients)
	reply := make([]byte, 7)
	for i := 0; i < clients; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns = append(conns, c)
		// A PING each, so every connection is accepted and served once.
		if _, err := io.WriteString(c, "PING\r\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "+PONG\r\n" {
			t.Fatalf("client %d: %q %v", i, reply, err)
		}
	}
	os.Stdout.WriteString("ready\n")
	_, _ = io.Copy(io.Discard, os.Stdin) // hold the connections until the parent is done
	for _, c := range conns {
		c.Close()
	}
}

// heapInUse is the live Go heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

func raiseFileLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= need {
		return
	}
	lim.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("need %d open files (hard limit %d): %v", need, lim.Max, err)
	}
}

// A client that pipelines a million commands and never reads its replies
// must not make the proxy buffer without bound: once the socket to the
// client is full, the proxy stops reading from it.
func TestMemoryUnreadReplies(t *testing.T) {
	srv := startServer(t, Options{})
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The Go heap, not RSS: where buffered replies would pile up, and not
	// blurred by memory the runtime has yet to return from earlier tests.
	before := heapInUse()
	const commands = 1_000_000
	cmd := []byte("*2\r\n$4\r\nECHO\r\n$64\r\n" + strings.Repeat("x", 64) + "\r\n")
	chunk := bytes.Repeat(cmd, 1000)
	written := make(chan int, 1)
	go func() {
		n := 0
		for n < commands {
			_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write(chunk); err != nil {
				break // the proxy stopped reading: backpressure
			}
			n += 1000
		}
		written <- n
	}()
	n := <-written
	grown := heapInUse() - before
	t.Logf("wrote %d of %d commands before the proxy stopped reading; heap grew by %.1f MB", n, commands, float64(grown)/(1<<20))
	if n >= commands {
		t.Fatalf("the proxy read all %d commands while no reply was read", commands)
	}
	if grown > 64<<20 {
		t.Fatalf("heap grew by %d MB with replies unread", grown>>20)
	}
	// The client can still read what was answered: nothing was dropped.
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "$64\r\n" {
		t.Fatalf("first reply %q, %v", line, err)
	}
}

// A client served by a goroutine (a goroutine per client, or one handed
// over by its event loop after MULTI, as here) keeps no more than a small
// read buffer once a large request of its has run. redcon's reader, which
// read these clients before, kept its buffer at twice the client's largest
// request until it left: 40 idle clients after one 4 MiB request each held
// over 320 MiB, past the Go memory limit's allowance.
func TestMemoryIdleClientsAfterALargeRequest(t *testing.T) {
	const (
		clients = 40
		request = 4 << 20
	)
	srv := startServer(t, Options{})
	big := setOf(request)
	grown := idleGrowth(t, srv, clients, func(i int, c net.Conn, r *bufio.Reader) {
		if got := roundTrip(t, c, r, "MULTI\r\n"); got != "+OK" {
			t.Fatalf("client %d: MULTI: %q", i, got)
		}
		if got := roundTrip(t, c, r, "DISCARD\r\n"); got != "+OK" {
			t.Fatalf("client %d: DISCARD: %q", i, got)
		}
		// Refused (a session payload is at most 1 MiB), but read whole first.
		if got := roundTrip(t, c, r, big); !strings.HasPrefix(got, "-ERR") {
			t.Fatalf("client %d: SET of 4 MiB: %q", i, got)
		}
	})
	t.Logf("%d idle clients after one %d MiB request each: proxy RSS grew by %.1f MB (%.0f KB per client)", clients, request>>20, float64(grown)/(1<<20), float64(grown)/clients/1024)
	if grown > 32<<20 {
		t.Fatalf("%d idle clients after one %d MiB request each hold %d MB", clients, request>>20, grown>>20)
	}
}

// setOf is a SET of sess:big to a value of n bytes.
func setOf(n int) string {
	value := strings.Repeat("x", n)
	return "*3\r\n$3\r\nSET\r\n$8\r\nsess:big\r\n$" + strconv.Itoa(len(value)) + "\r\n" + value + "\r\n"
}

// idleGrowth connects clients to srv, runs each on its connection, and
// returns how much the process's RSS grew with them all connected and
// idle; they are closed when the test ends.
func idleGrowth(t *testing.T, srv *Server, clients int, each func(i int, c net.Conn, r *bufio.Reader)) int64 {
	t.Helper()
	debug.FreeOSMemory()
	before := procmem.RSS(t)
	for i := range clients {
		c, r := dial(t, "tcp", srv.Addr().String())
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		each(i, c, r)
	}
	debug.FreeOSMemory()
	return procmem.RSS(t) - before
}

// midRequest says whether some client has sent part of a command, whichever
// way it is served.
func (s *Server) midRequest() bool {
	if s.loopsMidRequest() {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for gc := range s.conns {
		if gc.midRequest() {
			return true
		}
	}
	return false
}

// An idle client keeps no more of a request that spanned reads than the
// Go memory limit allows a client (16 KiB): an event loop kept up to
// 64 KiB of one (37.7 KB a client in this test, 5.1 KB now).
func TestMemoryIdleClientsAfterARequestThatSpannedReads(t *testing.T) {
	const (
		clients = 500
		request = 60 << 10
	)
	srv := startServer(t, Options{})
	big := setOf(request)
	half := len(big) / 2
	grown := idleGrowth(t, srv, clients, func(i int, c net.Conn, r *bufio.Reader) {
		if _, err := io.WriteString(c, big[:half]); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); !srv.midRequest(); time.Sleep(100 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatalf("client %d: the proxy never read the first half of its request", i)
			}
		}
		// Refused (not a JSON session), after it is read whole.
		if got := roundTrip(t, c, r, big[half:]); !strings.HasPrefix(got, "-ERR") {
			t.Fatalf("client %d: SET of %d KiB: %q", i, request>>10, got)
		}
	})
	t.Logf("%d idle clients after one %d KiB request each, sent in two halves: proxy RSS grew by %.1f MB (%.1f KB per client)", clients, request>>10, float64(grown)/(1<<20), float64(grown)/clients/1024)
	// A goroutine's client costs about 11–15 KB idle whatever it sent
	// (its stack, its 4 KiB read buffer); one that keeps the request's
	// buffer costs more than half the request.
	if grown > clients*request/2 {
		t.Fatalf("%d idle clients hold %.1f MB, over %d KiB each: they keep their request's buffer", clients, float64(grown)/(1<<20), request>>11)
	}
}

// A client that streams small commands keeps a read buffer the size of
// its largest request, not of its stream. redcon's reader, which read
// goroutine-served clients (TLS, event_loops = -1, or any client after one
// SCAN, MULTI, WATCH…) before requestReader, doubled its buffer whenever a
// read filled it with part of a command at its end, without moving what
// it had consumed out of the way: 4 clients that streamed 14 MB of PINGs
// each held +151 MiB of heap once idle (hostile round 5; +0 MiB now).
func TestMemoryPipelinedSmallCommandsDoNotGrowTheReadBuffer(t *testing.T) {
	srv := startServer(t, Options{})
	const clients = 4
	const n = 1000000 // 14 bytes each: 14 MB a client
	cmd := "*1\r\n$4\r\nPING\r\n"
	debug.FreeOSMemory()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapInuse
	stream := strings.Repeat(cmd, n)
	for range clients {
		c, r := dial(t, "tcp", srv.Addr().String())
		_ = c.SetDeadline(time.Now().Add(120 * time.Second))
		// SCAN hands the client to a goroutine of its own.
		if _, err := io.WriteString(c, "*2\r\n$4\r\nSCAN\r\n$1\r\n0\r\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadString('\n'); err != nil { // *2
			t.Fatal(err)
		}
		for range 3 { // $1 0 *0 (the embedded upstream is empty)
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		go io.WriteString(c, stream)
		buf := make([]byte, 64<<10)
		want := n * len("+PONG\r\n")
		for got := 0; got < want; {
			k, err := r.Read(buf)
			if err != nil {
				t.Fatalf("after %d bytes: %v", got, err)
			}
			got += k
		}
	}
	stream = ""
	runtime.GC()
	runtime.ReadMemStats(&ms)
	held := int64(ms.HeapInuse) - int64(heap0)
	t.Logf("%d idle clients after streaming %d MB of PINGs each: heap in use +%d MiB", clients, n*len(cmd)/1e6, held>>20)
	if held > 32<<20 {
		t.Errorf("%d idle clients hold %d MiB", clients, held>>20)
	}
}
