package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/internal/procmem"
)

// Frames an attacker sent before AUTH: the first four panicked in redcon's
// reader (its i+size+2 overflowed) and killed the process; the next two
// made it loop ~2^63 times on a goroutine nothing could stop.
var evilFrames = []string{
	"*1\r\n$9223372036854775807\r\n",
	"*1\r\n$9223372036854775806\r\n",
	"*1\r\n$9223372036854775790\r\n",
	"*2\r\n$3\r\nGET\r\n$9223372036854775807\r\n",
	"*9223372036854775807\r\n",
	"*3074457345618258603\r\n$4\r\nPING\r\n",
	"*1048577\r\n",
	"*2147483648\r\n$4\r\nPING\r\n",
	"*-9223372036854775809\r\n", // -2^63 itself Redis skips, as *-1

	"*1\r\n$-9223372036854775808\r\n",
	"*1\r\n$+9223372036854775807\r\n",
	"*01\r\n$0009223372036854775807\r\n",
	strings.Repeat("a ", 4096) + "\r\n",
}

// Each evil frame gets an error and a close, and leaves behind a proxy that
// answers another client at once and no goroutine of its own.
func TestHostileFramesLeaveTheProxyServing(t *testing.T) {
	cert, key := selfSigned(t)
	srv := startServer(t, Options{TLSCert: cert, TLSKey: key})
	addr := srv.Addr().String()
	good := dialTLS(t, addr)
	goodR := bufio.NewReader(good)
	ping := func() {
		t.Helper()
		start := time.Now()
		if _, err := io.WriteString(good, "PING\r\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := goodR.ReadString('\n'); err != nil || line != "+PONG\r\n" {
			t.Fatalf("other client's PING: %q, %v", line, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("other client's PING took %v", took)
		}
	}
	ping()
	baseline := runtime.NumGoroutine()
	for _, frame := range evilFrames {
		name := frame
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		evil := dialTLS(t, addr)
		if _, err := io.WriteString(evil, frame); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		line, err := bufio.NewReader(evil).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "-ERR Protocol error: ") {
			t.Fatalf("%q answered %q, %v; want a protocol error", name, line, err)
		}
		if _, err := evil.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("%q: client not closed: %v", name, err)
		}
		evil.Close()
		ping()
		waitGoroutines(t, baseline, name)
	}
}

// waitGoroutines polls until the goroutine count is back to baseline: a
// connection whose goroutine is still running (spinning in redcon's reader)
// never gets there.
func waitGoroutines(t *testing.T, baseline int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%q: %d goroutines, %d before:\n%s", what, runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Without a configured limit the scanner still runs, with the default.
func TestScannerIsAlwaysOn(t *testing.T) {
	srv := startServer(t, Options{MaxRequestBytes: -1})
	c, r := dial(t, "tcp", srv.Addr().String())
	line := roundTrip(t, c, r, "*1\r\n$9223372036854775807\r\n")
	if !strings.HasPrefix(line, "-ERR Protocol error: request larger than max_request_bytes (8388608)") {
		t.Fatalf("answered %q", line)
	}
	if _, err := net.Dial("tcp", srv.Addr().String()); err != nil {
		t.Fatalf("proxy gone: %v", err)
	}
}

// A payload nested millions of levels deep gets an error reply, and
// judging it costs the proxy no memory to speak of. The JSON validator
// used to recurse once per level: the SESS.FSET below grew the proxy's
// peak memory by more than half a gigabyte (a stack that deep), and 16 MiB
// of brackets overflowed the stack, killing the process.
func TestDeeplyNestedPayloadsCostNoStack(t *testing.T) {
	srv := startServer(t, Options{MaxRequestBytes: 8 << 20})
	c, r := dial(t, "tcp", srv.Addr().String())
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	deep := func(bytes int) string {
		n := bytes / 2
		return strings.Repeat("[", n) + strings.Repeat("]", n)
	}
	procmem.ResetPeak(t)
	before := procmem.Peak(t)
	for _, cmd := range [][]string{
		{"SESS.SET", "deep", `{"a":` + deep(1<<20-8) + `}`},
		{"SESS.FSET", "deep", "f", deep(6 << 20)},
	} {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(cmd))
		for _, arg := range cmd {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(arg), arg)
		}
		if got := roundTrip(t, c, r, b.String()); !strings.HasPrefix(got, "-ERR invalid session payload: ") {
			t.Errorf("%s of a deeply nested value: %q, want an invalid payload error", cmd[0], got)
		}
	}
	grew := procmem.Peak(t) - before
	t.Logf("peak memory grew by %d MiB", grew>>20)
	if grew > 256<<20 {
		t.Errorf("peak memory grew by %d MiB judging two payloads of 7 MiB together", grew>>20)
	}
}

// A script nested thousands of levels deep gets Redis's compile error and
// costs the proxy no memory to speak of. gopher-lua's parser, which the
// proxy checks every script with, keeps a stack entry per level: 8 MiB of
// '(' grew the proxy by 4 GB and a few at once killed it. Redis itself
// compiles at most 200 levels.
func TestDeeplyNestedScriptsCostNoMemory(t *testing.T) {
	srv := startServer(t, Options{MaxRequestBytes: 8 << 20})
	c, r := dial(t, "tcp", srv.Addr().String())
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	const nesting = "-ERR Error compiling script (new function): user_script:1: chunk has too many syntax levels"
	deep := func(unit string, bytes int) string { return "return " + strings.Repeat(unit, bytes/len(unit)) }
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{"parentheses never closed", deep("(", 255<<10), nesting},
		{"tables never closed", deep("{", 255<<10), nesting},
		{"a chain of not", deep("not ", 255<<10), nesting},
		{"a chain of '..'", deep("a..", 255<<10) + "a", nesting},
		{"blocks never ended", strings.Repeat("do ", 85<<10), nesting},
		{"2 MiB of parentheses", deep("(", 2<<20), "-ERR script too large: "},
	}
	for _, tt := range tests {
		cmd := fmt.Sprintf("*3\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n0\r\n", len(tt.script), tt.script)
		debug.FreeOSMemory()
		procmem.ResetPeak(t)
		before := procmem.Peak(t)
		start := time.Now()
		got := roundTrip(t, c, r, cmd)
		grew := procmem.Peak(t) - before
		t.Logf("%s (%d bytes): %v, peak memory +%d MiB", tt.name, len(tt.script), time.Since(start).Round(time.Millisecond), grew>>20)
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("EVAL of %s: %q, want %q", tt.name, got, tt.want)
		}
		// The request itself is held a few times over while it is read.
		if limit := 16<<20 + 16*int64(len(tt.script)); grew > limit {
			t.Errorf("EVAL of %s: peak memory grew by %d MiB, want at most %d", tt.name, grew>>20, limit>>20)
		}
	}
	// What Redis compiles still runs.
	script := "return " + strings.Repeat("{", 50) + "1" + strings.Repeat("}", 50)
	script = "local t = " + script[len("return "):] + " for i = 1, 50 do t = t[1] end return t"
	cmd := fmt.Sprintf("*3\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n0\r\n", len(script), script)
	if got := roundTrip(t, c, r, cmd); got != ":1" {
		t.Errorf("EVAL of a script 50 levels deep: %q, want :1", got)
	}
}

// SESS.ALL stops fetching sessions once its reply cannot fit the client's
// max_client_reply_bytes: it gathered the whole namespace first, so any
// client, read-only included, could make the proxy hold every session in
// Redis at once.
func TestSessAllStopsAtTheReplyLimit(t *testing.T) {
	const limit = 1 << 20
	srv := startServer(t, Options{MaxClientReplyBytes: limit})
	c, r := dial(t, "tcp", srv.Addr().String())
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	const sessions = 640 // of 100 KiB: 64 MiB
	payload := `{"pad":"` + strings.Repeat("x", 100<<10) + `"}`
	var sets strings.Builder
	for i := range sessions {
		sets.WriteString(encodeRESP("SESS.SET", fmt.Sprintf("s%03d", i), payload))
	}
	if _, err := io.WriteString(c, sets.String()); err != nil {
		t.Fatal(err)
	}
	for range sessions {
		if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
			t.Fatalf("SESS.SET: %q, %v", line, err)
		}
	}
	debug.FreeOSMemory()
	procmem.ResetPeak(t)
	before := procmem.Peak(t)
	got := roundTrip(t, c, r, encodeRESP("SESS.ALL"))
	grew := procmem.Peak(t) - before
	t.Logf("SESS.ALL of %d sessions of 100 KiB, 1 MiB allowed: peak memory grew by %d MiB", sessions, grew>>20)
	if want := "-ERR reply larger than server.max_client_reply_bytes (" + strconv.Itoa(limit) + "): closing the connection"; got != want {
		t.Errorf("SESS.ALL: %q, want %q", got, want)
	}
	// Gathered whole: 208 MiB. Stopped after the first chunk (16
	// sessions): 73 MiB, most of it the embedded upstream's own work
	// listing 640 sessions in this process (about 130 MiB allocated
	// either way), none of it the gathered sessions.
	if grew > 128<<20 {
		t.Errorf("peak memory grew by %d MiB", grew>>20)
	}
}
