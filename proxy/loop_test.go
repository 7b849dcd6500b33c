//go:build linux

package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// loopsMidRequest says whether some loop's client has sent part of a
// command.
func (s *Server) loopsMidRequest() bool {
	for _, l := range s.loops {
		if l.partial.Load() > 0 {
			return true
		}
	}
	return false
}

// served counts the clients served by goroutines and by loops.
func (s *Server) served() (goroutines, loops int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns), s.loopers
}

// waitServed polls until the server serves the clients it should.
func waitServed(t *testing.T, srv *Server, goroutines, loops int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		g, l := srv.served()
		if g == goroutines && l == loops {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("clients served by goroutines %d, by loops %d; want %d and %d", g, l, goroutines, loops)
		}
		time.Sleep(time.Millisecond)
	}
}

// readLines reads n reply lines.
func readLines(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var got []string
	for range n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, strings.TrimSpace(line))
	}
	return got
}

// With server.event_loops, plaintext clients are served by the loops, on
// TCP and on the unix socket, and a pipeline many times larger than one read
// comes back whole and in order.
func TestEventLoopsServeClients(t *testing.T) {
	sock := t.TempDir() + "/s.sock"
	srv := startServer(t, Options{EventLoops: 2, Unix: sock})
	c, r := dial(t, "tcp", srv.Addr().String())
	u, ur := dial(t, "unix", sock)
	if got := roundTrip(t, u, ur, "PING\r\n"); got != "+PONG" {
		t.Fatalf("PING over the unix socket: %q", got)
	}
	var req strings.Builder
	// Over 300 KB of requests, several reads; not more: under -race and beside
	// the other packages' tests a pair takes up to a few milliseconds.
	const n = 5000
	for i := range n {
		req.WriteString(respCommand("SET", fmt.Sprint("sess:k", i), fmt.Sprintf(`{"n":%d}`, i)))
		req.WriteString(respCommand("GET", fmt.Sprint("sess:k", i)))
	}
	go io.WriteString(c, req.String())
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	for i := range n {
		got := readLines(t, r, 3)
		v := fmt.Sprintf(`{"n":%d}`, i)
		if want := []string{"+OK", fmt.Sprint("$", len(v)), v}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("command pair %d: %q, want %q", i, got, want)
		}
	}
	waitServed(t, srv, 0, 2)
}

// A command the loop must not run (MULTI, WATCH, SUBSCRIBE, CLIENT
// TRACKING…) moves its client to a goroutine of its own before it runs,
// with everything the client sent after it, whole or not: the replies come
// in order, and nothing is lost or read twice.
func TestEventLoopHandsOverAClientForATransaction(t *testing.T) {
	srv := startServer(t, Options{EventLoops: 1})
	c, r := dial(t, "tcp", srv.Addr().String())
	other, otherR := dial(t, "tcp", srv.Addr().String())
	if got := roundTrip(t, other, otherR, "PING\r\n"); got != "+PONG" {
		t.Fatal(got)
	}
	waitServed(t, srv, 0, 2)
	// More commands than are held for the rest of a pipeline (so they
	// run at once), MULTI and a transaction in the same read, the last
	// command cut in two.
	exec := "*1\r\n$4\r\nEXEC\r\n"
	pings := strings.Repeat("PING\r\n", maxHeldCommands+10)
	if _, err := io.WriteString(c, pings+respCommand("SET", "sess:a", "{}")+"MULTI\r\n"+respCommand("SET", "sess:b", "{}")+"GET sess:a\r\n"+exec[:7]); err != nil {
		t.Fatal(err)
	}
	for i := range maxHeldCommands + 10 {
		if got := readLines(t, r, 1)[0]; got != "+PONG" {
			t.Fatalf("PING %d: %q", i, got)
		}
	}
	if got := readLines(t, r, 1)[0]; got != "+OK" {
		t.Fatalf("SET: %q", got)
	}
	// The goroutine holds what came with the half command, as it does
	// for a client of its own (Server.handle).
	waitServed(t, srv, 1, 1)
	if _, err := io.WriteString(c, exec[7:]); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, r, 7); fmt.Sprint(got) != "[+OK +QUEUED +QUEUED *2 +OK $2 {}]" {
		t.Fatalf("the transaction: %q", got)
	}
	if got := roundTrip(t, c, r, "GET sess:b\r\n"); got != "$2" {
		t.Fatalf("GET b after the transaction: %q", got)
	}
	readLines(t, r, 1)
	// The client that stayed on the loop is still served there.
	if got := roundTrip(t, other, otherR, "GET sess:b\r\n"); got != "$2" {
		t.Fatalf("the loop's other client: %q", got)
	}
}

// CLIENT TRACKING moves its client to a goroutine, which carries the
// invalidation pushes; a client that only reads and writes stays on the
// loop.
func TestEventLoopHandsOverATrackingClient(t *testing.T) {
	srv := startServer(t, Options{EventLoops: 1})
	c, r := dial(t, "tcp", srv.Addr().String())
	w, wr := dial(t, "tcp", srv.Addr().String())
	if _, err := io.WriteString(c, "HELLO 3\r\nPING\r\n"); err != nil {
		t.Fatal(err)
	}
	for line := ""; line != "+PONG"; {
		line = readLines(t, r, 1)[0] // HELLO's map, then PING's reply
	}
	if got := roundTrip(t, c, r, "CLIENT TRACKING on\r\n"); got != "+OK" {
		t.Fatalf("CLIENT TRACKING on: %q", got)
	}
	if got := roundTrip(t, c, r, "GET sess:t\r\n"); got != "_" {
		t.Fatalf("GET: %q", got)
	}
	waitServed(t, srv, 1, 1)
	if got := roundTrip(t, w, wr, "SET sess:t {}\r\n"); got != "+OK" {
		t.Fatalf("SET by the other client: %q", got)
	}
	if got := readLines(t, r, 4); fmt.Sprint(got) != "[>2 $10 invalidate *1]" {
		t.Fatalf("push: %q", got)
	}
}

// A client that leaves while its commands wait for the budget, or in the
// middle of a request, leaves nothing held: the budget and the client
// count go back to zero.
func TestEventLoopClientsLeaveNothingHeld(t *testing.T) {
	srv := startServer(t, Options{EventLoops: 2, MaxInflightBytes: 1 << 10})
	var conns []net.Conn
	for i := range 20 {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		big := strings.Repeat("x", 4<<10)
		fmt.Fprintf(c, "*3\r\n$3\r\nSET\r\n$2\r\nk%d\r\n$%d\r\n%s\r\n*2\r\n$3\r\nGET\r\n$2\r\nk%d\r\n*3\r\n$3\r\nSET", i%10, len(big), big, i%10)
		conns = append(conns, c)
	}
	waitServed(t, srv, 0, 20)
	for _, c := range conns {
		c.Close()
	}
	waitServed(t, srv, 0, 0)
	for deadline := time.Now().Add(5 * time.Second); srv.budget.held() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("budget held %d after every client left", srv.budget.held())
		}
		time.Sleep(time.Millisecond)
	}
}

// respCommand is args as a RESP request.
func respCommand(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// A client refused for breaking the protocol after a command the loop
// hands over (MULTI) is answered as Redis answers it: the commands before
// the refused request, on the loop and then on the goroutine it is handed
// over to, then the refusal, then the close. The refusal used to come
// alone, those commands run unanswered.
func TestEventLoopRefusalFollowsTheCommandsHandedOver(t *testing.T) {
	srv := startServer(t, Options{EventLoops: 1})
	c, r := dial(t, "tcp", srv.Addr().String())
	if _, err := io.WriteString(c, "*1\r\n$4\r\nPING\r\n*1\r\n$5\r\nMULTI\r\n*2\r\n$3\r\nGET\r\n$"); err != nil {
		t.Fatal(err)
	}
	for !srv.anyMidRequest() {
		time.Sleep(time.Millisecond)
	}
	if _, err := io.WriteString(c, "x\r\n"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(readLines(t, r, 3), " "), "+PONG +OK -ERR Protocol error: invalid bulk length"; got != want {
		t.Fatalf("answered %q, want %q", got, want)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after the refusal: %v, want the connection closed", err)
	}
	waitServed(t, srv, 0, 0)
}

// A client that leaves part-way through a command, after whole commands
// the loop must hand over (KEYS), has them all run, unanswered, as Redis
// would have run them: the loop runs what it may, a goroutine the rest.
func TestEventLoopDepartedClientsCommandsAllRun(t *testing.T) {
	srv := startServer(t, Options{EventLoops: 1})
	c, _ := dial(t, "tcp", srv.Addr().String())
	if _, err := io.WriteString(c, respCommand("SET", "sess:a", "{}")+"KEYS *\r\n"+respCommand("SET", "sess:b", "{}")+"*2\r\n$3\r\nGET"); err != nil {
		t.Fatal(err)
	}
	for !srv.anyMidRequest() {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	waitServed(t, srv, 0, 0)
	o, or := dial(t, "tcp", srv.Addr().String())
	for _, k := range []string{"sess:a", "sess:b"} {
		if got := roundTrip(t, o, or, "EXISTS "+k+"\r\n"); got != ":1" {
			t.Errorf("EXISTS %s after the client left: %s, want :1", k, got)
		}
	}
}

// Deep pipelines from many clients go out on the loop's executor, and the
// clients that become ready while a round is in flight are queued on the
// next one, a client at depth 1 among them (a small round the loop
// executes itself): every client gets every reply, whole and in order.
func TestEventLoopOverlapsRounds(t *testing.T) {
	srv := startServer(t, Options{EventLoops: 1})
	const clients, batches, pairs = 8, 5, 80 // 160 commands a batch: minSentRound
	var wg sync.WaitGroup
	errs := make(chan error, clients+1)
	for i := range clients {
		wg.Go(func() { errs <- pipelinePairs(srv.Addr().String(), i, batches, pairs) })
	}
	stop := make(chan struct{})
	pinged := make(chan error, 1)
	go func() { pinged <- pingUntil(srv.Addr().String(), stop) }()
	wg.Wait()
	close(stop)
	errs <- <-pinged
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	l := srv.loops[0]
	if l.sent.Load() == 0 || l.overlapped.Load() == 0 {
		t.Errorf("rounds sent to the executor %d, clients queued while one was in flight %d; want both above 0", l.sent.Load(), l.overlapped.Load())
	}
}

// pipelinePairs sends batches of pairs SET and GET of client i's keys, one
// batch at a time, and checks each reply.
func pipelinePairs(addr string, i, batches, pairs int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for b := range batches {
		var req strings.Builder
		for j := range pairs {
			key := fmt.Sprintf("sess:c%d:%d", i, j)
			req.WriteString(respCommand("SET", key, fmt.Sprintf(`{"b":%d}`, b)))
			req.WriteString(respCommand("GET", key))
		}
		if _, err := io.WriteString(c, req.String()); err != nil {
			return err
		}
		for j := range pairs {
			value := fmt.Sprintf(`{"b":%d}`, b)
			want := []string{"+OK", fmt.Sprintf("$%d", len(value)), value}
			for _, w := range want {
				line, err := r.ReadString('\n')
				if err != nil {
					return fmt.Errorf("client %d, batch %d, pair %d: %w", i, b, j, err)
				}
				if got := strings.TrimSpace(line); got != w {
					return fmt.Errorf("client %d, batch %d, pair %d: %q, want %q", i, b, j, got, w)
				}
			}
		}
	}
	return nil
}

// A client that sends a deep pipeline and leaves at once, its round maybe
// in flight, has every command run, as Redis would have.
func TestEventLoopClientLeavingADeepPipelineHasItRun(t *testing.T) {
	srv := startServer(t, Options{EventLoops: 1})
	const n = 300
	var req strings.Builder
	keys := []string{"EXISTS"}
	for i := range n {
		key := fmt.Sprint("sess:left", i)
		req.WriteString(respCommand("SET", key, "{}"))
		keys = append(keys, key)
	}
	c, _ := dial(t, "tcp", srv.Addr().String())
	if _, err := io.WriteString(c, req.String()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitServed(t, srv, 0, 0)
	o, or := dial(t, "tcp", srv.Addr().String())
	if got := roundTrip(t, o, or, respCommand(keys...)); got != fmt.Sprintf(":%d", n) {
		t.Errorf("EXISTS of the %d keys after the client left: %s", n, got)
	}
}

// pingUntil sends PING after PING until stop, each answered within 5s.
func pingUntil(addr string, stop <-chan struct{}) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for n := 0; ; n++ {
		select {
		case <-stop:
			return nil
		default:
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "PING\r\n"); err != nil {
			return err
		}
		if line, err := r.ReadString('\n'); err != nil || line != "+PONG\r\n" {
			return fmt.Errorf("PING %d: %q, %v", n, line, err)
		}
	}
}

// A command queued while a deep round is in flight, alone on the next
// round (too small for the executor), is run once the deep round is back,
// with no other client to send anything after it.
func TestEventLoopRunsASmallRoundQueuedBehindADeepOne(t *testing.T) {
	srv := startServer(t, Options{EventLoops: 1})
	deep, dr := dial(t, "tcp", srv.Addr().String())
	probe, pr := dial(t, "tcp", srv.Addr().String())
	var req strings.Builder
	const n = 2 * minSentRound
	for i := range n {
		req.WriteString(respCommand("SET", fmt.Sprint("sess:deep", i), "{}"))
	}
	for try := range 20 {
		if _, err := io.WriteString(deep, req.String()); err != nil {
			t.Fatal(err)
		}
		_ = probe.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(probe, "PING\r\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := pr.ReadString('\n'); err != nil || line != "+PONG\r\n" {
			t.Fatalf("try %d: PING sent behind %d SETs: %q, %v", try, n, line, err)
		}
		for i, got := range readLines(t, dr, n) {
			if got != "+OK" {
				t.Fatalf("try %d: SET %d: %q", try, i, got)
			}
		}
	}
}

// A round goes to the executor for deep pipelines, not for many clients
// at depth 1, nor for a few commands.
func TestLoopRoundDeep(t *testing.T) {
	clients := func(n int) []*loopClient { return make([]*loopClient, n) }
	for _, tt := range []struct {
		commands, clients int
		want              bool
	}{
		{minSentRound, 1, true},
		{16 * 50, 50, true},           // 50 clients at depth 16
		{256, 256, false},             // 256 clients at depth 1
		{minSentRound - 1, 1, false},  // a shallow round
		{minSentDepth * 40, 40, true}, // 160 commands, 4 a client
	} {
		r := &loopRound{commands: tt.commands, running: clients(tt.clients)}
		if got := r.deep(); got != tt.want {
			t.Errorf("a round of %d commands from %d clients: deep %v, want %v", tt.commands, tt.clients, got, tt.want)
		}
	}
}
