package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store"
	"github.com/tidwall/redcon"
)

// The fuzz targets of the request path: make test runs each briefly, make
// fuzz for FUZZTIME. A crasher becomes a fix and a file under
// testdata/fuzz/<target>/.

// encodeRESP is a request as a client library sends it.
func encodeRESP(args ...string) string {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	return b.String()
}

// requestSeeds are the hostile frames and valid traffic: every name the
// proxy serves (COMMAND LIST, so a new command is a new seed), bare and
// with arguments, and a few pipelines.
func requestSeeds(names []string) []string {
	seeds := append([]string(nil), evilFrames...)
	seeds = append(seeds,
		"PING\r\n", "PING\r\nECHO \"a b\"\r\n", "PING\r\nGET \"x\r\nPING\r\n", "\r\n", "*0\r\n", "*-1\r\n", "*0\r\n*-1\r\nPING\r\n", "*-0\r\n", "*1\r\n$-1\r\n",
		"*1\r\n$4\r\nPING", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", "*+1\r\n$+4\r\nPING\r\n", "*01\r\n$04\r\nPING\r\n",
		encodeRESP("MULTI")+encodeRESP("SET", "sess:mx", `{"a":1}`)+encodeRESP("EXEC"),
		strings.Repeat(encodeRESP("SESS.SET", "a", `{"a":1}`), 20)+encodeRESP("SESS.GET", "a")[:9],
	)
	for _, name := range names {
		seeds = append(seeds,
			encodeRESP(name),
			encodeRESP(name, "a"),
			encodeRESP(name, "a", `{"cookie":{"expires":"2099-01-01T00:00:00Z"},"user":{"id":1}}`),
			encodeRESP(name, "sess:a", "EX", "10")+encodeRESP(name, "a", "b", "c"),
		)
	}
	return seeds
}

// FuzzRequestScanner checks the scanner against redcon's reader: whatever
// the scanner lets through, redcon parses without a panic, in time bounded
// by the input, and without a protocol error of its own (but for inline
// quoting, which is redcon's to check); and how the bytes are split across
// reads changes nothing. Where Redis is stricter than redcon ("*+1",
// "$04"), the scanner follows Redis (FuzzHeaderInt), which only narrows
// what redcon sees; a request whose count is below 1, which Redis skips
// and redcon refuses, is not given to redcon (parseRequest), so not to
// its reader here either.
func FuzzRequestScanner(f *testing.F) {
	for _, s := range requestSeeds([]string{"PING", "SET", "MGET", "SESS.SET", "SESS.FSET"}) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 16
		whole := requestScanner{max: max}
		errWhole := whole.scan(data)
		bytewise := requestScanner{max: max}
		var errBytes error
		for i := 0; i < len(data) && errBytes == nil; i++ {
			errBytes = bytewise.scan(data[i : i+1])
		}
		if (errWhole == nil) != (errBytes == nil) || errWhole == nil && whole.state != bytewise.state {
			t.Fatalf("whole: %v (state %d); byte by byte: %v (state %d)", errWhole, whole.state, errBytes, bytewise.state)
		}
		if errWhole != nil {
			return
		}
		checkSpans(t, data)
		rd := redcon.NewReader(bytes.NewReader(withoutSkipped(t, data)))
		for batches := 0; ; batches++ {
			_, err := rd.ReadCommands()
			if errors.Is(err, io.EOF) || err != nil && strings.Contains(err.Error(), "unbalanced quotes") {
				return
			}
			if err != nil {
				t.Fatalf("redcon refused what the scanner let through: %v", err)
			}
			if batches > len(data) {
				t.Fatal("redcon's reader does not end")
			}
		}
	})
}

// checkSpans holds the arguments the event loop takes from the scanner's
// spans (loop.cut) to redcon's parse of each whole request data begins.
func checkSpans(t *testing.T, data []byte) {
	s := requestScanner{max: 1 << 16, trackEnds: true, trackSpans: true}
	if err := s.scan(data); err != nil {
		t.Fatalf("scanning with spans: %v", err)
	}
	start, from := 0, 0
	for k, e := range s.ends {
		raw := data[start:e]
		start = e
		to := s.spanEnds[k]
		spans := s.spans[from:to]
		from = to
		if raw[0] != '*' || countBelowOne(raw) {
			if len(spans) != 0 {
				t.Fatalf("inline request %q has spans %v", raw, spans)
			}
			continue
		}
		cmd, err := redcon.Parse(raw)
		if err != nil {
			t.Fatalf("redcon.Parse(%q): %v", raw, err)
		}
		if len(spans) != len(cmd.Args) {
			t.Fatalf("%q: %d spans, redcon parses %d arguments", raw, len(spans), len(cmd.Args))
		}
		for i, sp := range spans {
			if got := data[sp.at : sp.at+sp.n]; !bytes.Equal(got, cmd.Args[i]) {
				t.Fatalf("%q: argument %d is %q by its span, %q by redcon", raw, i, got, cmd.Args[i])
			}
		}
	}
}

// countBelowOne says whether raw, a whole multibulk request the scanner
// passed, has a count below 1 (*0, *-1), which Redis skips.
func countBelowOne(raw []byte) bool {
	n, err := strconv.ParseInt(string(raw[1:bytes.IndexByte(raw, '\r')]), 10, 64)
	return err == nil && n <= 0
}

// withoutSkipped is data, which the scanner passed, without the requests
// whose count is below 1.
func withoutSkipped(t *testing.T, data []byte) []byte {
	s := requestScanner{max: 1 << 16, trackEnds: true}
	if err := s.scan(data); err != nil {
		t.Fatalf("scanning with ends: %v", err)
	}
	var out []byte
	start := 0
	for _, e := range s.ends {
		if raw := data[start:e]; raw[0] != '*' || !countBelowOne(raw) {
			out = append(out, raw...)
		}
		start = e
	}
	return append(out, data[start:]...)
}

// FuzzServerConnection sends each input to a real server over TCP, as
// one client that then stops sending: the request path whole (guardedConn,
// requestReader or an event loop, the pipeline, the engine on its
// embedded upstream).
// Every input gets its replies and a close, no connection outlives its
// client, and the process survives.
func FuzzServerConnection(f *testing.F) {
	st, err := store.Open(context.Background(), store.Options{Mode: store.ModeEmbedded})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	eng := commands.New(st, commands.Options{Policy: ttl.Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour}})
	srv := New(eng, testOpts(Options{Listen: "127.0.0.1:0", MaxRequestBytes: 1 << 16, RequestTimeout: 2 * time.Second}))
	if err := srv.Listen(); err != nil {
		f.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			f.Errorf("shutdown: %v", err)
		}
		<-served
	})
	addr := srv.Addr().String()
	for _, s := range requestSeeds(commandList(f, addr)) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		read := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c)
			read <- err
		}()
		// The proxy may close before it has read everything: a refused
		// request. Only the close matters.
		_, _ = c.Write(data)
		_ = c.(*net.TCPConn).CloseWrite()
		var timeout net.Error
		if err := <-read; errors.As(err, &timeout) && timeout.Timeout() {
			t.Fatal("the proxy neither answered and closed nor closed")
		}
		c.Close()
		for deadline := time.Now().Add(5 * time.Second); srv.connCount() > 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections outlived their client", srv.connCount())
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// commandList asks the proxy for the names it serves.
func commandList(tb testing.TB, addr string) []string {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, encodeRESP("COMMAND", "LIST")); err != nil {
		tb.Fatal(err)
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil || head[0] != '*' {
		tb.Fatalf("COMMAND LIST: %q, %v", head, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	names := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if _, err := r.ReadString('\n'); err != nil { // $len
			tb.Fatal(err)
		}
		name, err := r.ReadString('\n')
		if err != nil {
			tb.Fatal(err)
		}
		names = append(names, strings.TrimSpace(name))
	}
	if n < 40 {
		tb.Fatalf("COMMAND LIST has %d names", n)
	}
	return names
}
