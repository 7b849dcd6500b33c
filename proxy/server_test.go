package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store"
)

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	srv, served := serveUnmanaged(t, opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv
}

// serveUnmanaged starts a server on an embedded upstream and leaves its
// shutdown to the test; served receives what Serve returned.
func serveUnmanaged(t *testing.T, opts Options) (srv *Server, served <-chan error) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Mode: store.ModeEmbedded})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := commands.New(st, commands.Options{Policy: ttl.Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour}})
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	srv = New(eng, testOpts(opts))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	return srv, done
}

func dial(t *testing.T, network, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, cmd string) string {
	t.Helper()
	if _, err := io.WriteString(c, cmd); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%q: %v", cmd, err)
	}
	return strings.TrimSpace(line)
}

func TestMaxClients(t *testing.T) {
	srv := startServer(t, Options{MaxClients: 2})
	addr := srv.Addr().String()
	c1, r1 := dial(t, "tcp", addr)
	c2, r2 := dial(t, "tcp", addr)
	// Both must be registered before the third arrives.
	roundTrip(t, c1, r1, "PING\r\n")
	roundTrip(t, c2, r2, "PING\r\n")
	_, r3 := dial(t, "tcp", addr)
	line, _ := r3.ReadString('\n')
	if strings.TrimSpace(line) != "-ERR max number of clients reached" {
		t.Fatalf("third client got %q", line)
	}
	if _, err := r3.ReadByte(); err != io.EOF {
		t.Fatalf("third client not closed: %v", err)
	}
	if got := roundTrip(t, c1, r1, "PING\r\n"); got != "+PONG" {
		t.Fatalf("first client after refusal: %q", got)
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "sessproxy.sock")
	startServer(t, Options{Unix: sock})
	c, r := dial(t, "unix", sock)
	if got := roundTrip(t, c, r, "PING\r\n"); got != "+PONG" {
		t.Fatalf("PING over the unix socket: %q", got)
	}
}

func TestIdleTimeoutClosesIdleClients(t *testing.T) {
	srv := startServer(t, Options{IdleTimeout: 200 * time.Millisecond})
	c, r := dial(t, "tcp", srv.Addr().String())
	if got := roundTrip(t, c, r, "PING\r\n"); got != "+PONG" {
		t.Fatal(got)
	}
	start := time.Now()
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("idle client not closed: %v", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", waited)
	}
}

func TestOversizedRequestClosesOnlyThatClient(t *testing.T) {
	srv := startServer(t, Options{MaxRequestBytes: 4096})
	addr := srv.Addr().String()
	good, goodR := dial(t, "tcp", addr)
	bad, badR := dial(t, "tcp", addr)
	line := roundTrip(t, bad, badR, "*2\r\n$3\r\nGET\r\n$999999999999\r\n")
	if !strings.HasPrefix(line, "-ERR Protocol error: request larger than max_request_bytes") {
		t.Fatalf("oversized request answered %q", line)
	}
	if _, err := badR.ReadByte(); err != io.EOF {
		t.Fatalf("oversized client not closed: %v", err)
	}
	if got := roundTrip(t, good, goodR, "PING\r\n"); got != "+PONG" {
		t.Fatalf("other client: %q", got)
	}
}

func TestShutdownDeliversRepliesThenCloses(t *testing.T) {
	srv, served := serveUnmanaged(t, Options{})
	idle, idleR := dial(t, "tcp", srv.Addr().String())
	roundTrip(t, idle, idleR, "PING\r\n")
	busy, busyR := dial(t, "tcp", srv.Addr().String())
	// Small enough to arrive in one read: Shutdown promises replies to the
	// commands already read, not to bytes still in the socket.
	const n = 100
	pipeline := strings.Repeat("*3\r\n$8\r\nSESS.SET\r\n$1\r\na\r\n$2\r\n{}\r\n", n)
	if _, err := io.WriteString(busy, pipeline); err != nil {
		t.Fatal(err)
	}
	// Wait until the proxy is answering the pipeline, so it has been read.
	first, err := busyR.ReadString('\n')
	if err != nil || first != "+OK\r\n" {
		t.Fatalf("first reply %q, %v", first, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		if line, err := busyR.ReadString('\n'); err != nil || line != "+OK\r\n" {
			t.Fatalf("reply %d after shutdown: %q, %v", i, line, err)
		}
	}
	if _, err := busyR.ReadByte(); err != io.EOF {
		t.Fatalf("busy client not closed after its replies: %v", err)
	}
	if _, err := idleR.ReadByte(); err != io.EOF {
		t.Fatalf("idle client not closed: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting after shutdown")
	}
}

// A client part-way through sending a command when the server drains gets
// a moment to finish it: the whole command it sent before (held back for
// the rest of the pipeline) and the finished one are both answered, then
// the connection closes.
func TestShutdownLetsAStartedCommandFinish(t *testing.T) {
	srv, served := serveUnmanaged(t, Options{MaxRequestBytes: 1 << 20})
	c, r := dial(t, "tcp", srv.Addr().String())
	second := "*3\r\n$8\r\nSESS.SET\r\n$1\r\nb\r\n$2\r\n{}\r\n"
	if _, err := io.WriteString(c, "*3\r\n$8\r\nSESS.SET\r\n$1\r\na\r\n$2\r\n{}\r\n"+second[:20]); err != nil {
		t.Fatal(err)
	}
	// Wait until the proxy has read up to the middle of the second command.
	for deadline := time.Now().Add(5 * time.Second); !srv.anyMidRequest(); {
		if time.Now().After(deadline) {
			t.Fatal("the proxy never read the first command and a half")
		}
		time.Sleep(time.Millisecond)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	for !srv.draining.Load() {
		time.Sleep(time.Millisecond)
	}
	if _, err := io.WriteString(c, second[20:]); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
			t.Fatalf("reply %d: %q, %v; want +OK for both commands", i, line, err)
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("client not closed after its replies: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// anyMidRequest says whether some client has sent part of a command.
func (s *Server) anyMidRequest() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.midRequest() {
			return true
		}
	}
	return s.loopsMidRequest()
}

// testOpts serves the test's clients from event loops when
// SESSPROXY_TEST_EVENT_LOOPS says how many (make test runs this package
// both ways).
func testOpts(opts Options) Options {
	if n, err := strconv.Atoi(os.Getenv("SESSPROXY_TEST_EVENT_LOOPS")); err == nil && opts.EventLoops == 0 {
		opts.EventLoops = n
	}
	return opts
}

// A draining server writes every reply of the commands it ran, even to a
// client that reads them slowly and is part-way through sending its next
// command; only then, that command unfinished, is the client closed.
func TestShutdownWritesRepliesToASlowReader(t *testing.T) {
	srv, served := serveUnmanaged(t, Options{})
	c, r := dial(t, "tcp", srv.Addr().String())
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	value := `{"v":"` + strings.Repeat("x", 20<<10) + `"}`
	if got := roundTrip(t, c, r, "*3\r\n$3\r\nSET\r\n$8\r\nsess:big\r\n$"+strconv.Itoa(len(value))+"\r\n"+value+"\r\n"); got != "+OK" {
		t.Fatalf("SET: %q", got)
	}
	// More GETs than a pipeline holds back, so they run at once; their
	// replies (6 MB) fill the socket; then half a command.
	const gets = 300
	go io.WriteString(c, strings.Repeat("*2\r\n$3\r\nGET\r\n$8\r\nsess:big\r\n", gets)+"*2\r\n$3\r\nGET")
	for !srv.anyMidRequest() {
		time.Sleep(time.Millisecond)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	// Past the moment a draining server gives a half-sent command.
	time.Sleep(drainFinishRequest + 500*time.Millisecond)
	for i := range gets {
		if line, err := r.ReadString('\n'); err != nil || line != "$"+strconv.Itoa(len(value))+"\r\n" {
			t.Fatalf("reply %d: %q, %v", i, line, err)
		}
		if _, err := r.Discard(len(value) + 2); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after the replies: %v, want the connection closed", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
