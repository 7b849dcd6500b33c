package integration

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
)

// redisCLI runs redis-cli once against the proxy and returns its output.
func (p *proxyHandle) redisCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(p.port)}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func testRedisCLI(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)

	tests := []struct {
		args []string
		want string // the whole output
	}{
		{[]string{"SESS.SET", "cli1", `{"a":1}`}, "OK\n"},
		{[]string{"SESS.GET", "cli1"}, `{"a":1}` + "\n"},
		{[]string{"SET", "sess:cli2", `{"b":2}`}, "OK\n"},
		{[]string{"GET", "sess:cli2"}, `{"b":2}` + "\n"},
		{[]string{"PING"}, "PONG\n"},
		{[]string{"--no-raw", "PING"}, "PONG\n"},
		{[]string{"--no-raw", "SESS.GET", "cli1"}, `"{\"a\":1}"` + "\n"},
		{[]string{"--no-raw", "SESS.GET", "missing"}, "(nil)\n"},
		{[]string{"--no-raw", "SESS.EXISTS", "cli1", "missing"}, "(integer) 1\n"},
		{[]string{"DEL", "sess:cli1"}, "1\n"},
		{[]string{"SESS.GET", "cli1"}, "\n"},
	}
	for _, tt := range tests {
		out, err := p.redisCLI(t, tt.args...)
		if err != nil || out != tt.want {
			t.Errorf("redis-cli %q = %q, %v; want %q", tt.args, out, err, tt.want)
		}
	}

	out, err := p.redisCLI(t, "TTL", "sess:cli2")
	if n, perr := strconv.Atoi(strings.TrimSpace(out)); err != nil || perr != nil || n <= 0 || n > 86400 {
		t.Errorf("redis-cli TTL sess:cli2 = %q, %v; want a positive TTL", out, err)
	}

	// Error replies: redis-cli prints them, with "(error) " only on a
	// terminal or with --no-raw; in raw mode it adds an empty line, as it
	// does for Redis itself. (redis-cli 7.0 exits 0 all the same.)
	errs := []struct {
		args []string
		want string
	}{
		{[]string{"FOO", "bar"}, "ERR unknown or unsupported command 'FOO'"},
		{[]string{"FLUSHALL"}, "ERR unknown or unsupported command 'FLUSHALL'"},
		{[]string{"GET", "plain"}, "NOPERM key 'plain' is outside the session namespace"},
		{[]string{"SET", "sess:cli1", `{"a":2}`}, "TOMBSTONE session cli1 was destroyed"},
		{[]string{"--no-raw", "SESS.SET", "cli3", "nope"}, "(error) ERR invalid session payload: not valid JSON"},
	}
	for _, tt := range errs {
		out, err := p.redisCLI(t, tt.args...)
		if line := strings.TrimRight(out, "\n"); !strings.HasPrefix(line, tt.want) || strings.Contains(line, "\n") {
			t.Errorf("redis-cli %q = %q (exit %v); want one line starting %q", tt.args, out, err, tt.want)
		}
	}
}

func testMaxRequestBytes(t *testing.T, up *upstream) {
	const limit = 64 << 10
	p := startProxy(t, up, func(_ *commands.Options, o *proxy.Options) { o.MaxRequestBytes = limit })
	// A client connected before the oversized requests keeps working.
	other := p.conn(t)
	wantReply(t, other, "PONG", "PING")

	requests := []struct {
		name string
		req  []byte
	}{
		{"declared-bulk", []byte("*2\r\n$3\r\nGET\r\n$999999999999\r\n")},
		{"declared-count", []byte("*999999999\r\n")},
		{"large-value", encode("SET", "sess:big", jsonOfSize(100<<10))},
		{"many-args", encode(append([]string{"MGET"}, strings.Split(strings.Repeat("sess:k ", 20000), " ")...)...)},
	}
	for _, tt := range requests {
		t.Run(tt.name, func(t *testing.T) {
			rc := p.raw(t)
			// Written in the background: the proxy may close before
			// reading all of it, which fails the write.
			go func() { _, _ = rc.nc.Write(tt.req) }()
			line, err := rc.r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "-ERR Protocol error") {
				t.Fatalf("reply to an oversized request = %q, %v; want -ERR Protocol error…", line, err)
			}
			rc.wantEOF()
			wantReply(t, other, "OK", "SESS.SET", "other", `{}`)
		})
	}
	p.wantMissing(t, "sess:big")

	// A request under the limit is served.
	ok := jsonOfSize(10 << 10)
	rc := p.raw(t)
	wantRaw(t, rc, status("OK"), "SET", "sess:ok", ok)
	wantRaw(t, rc, ok, "GET", "sess:ok")
	p.wantStored(t, "sess:ok", ok)
	wantReply(t, other, "PONG", "PING")
}

func testGracefulShutdown(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	const n = 200

	// The stats counter counts dispatched commands: once it has grown by n
	// (plus the INFO polls themselves) the proxy has read every one of them.
	probe := p.raw(t)
	processed := func() int64 {
		t.Helper()
		info, ok := probe.do("INFO", "stats").(string)
		if !ok {
			t.Fatalf("INFO stats: not a bulk string")
		}
		for _, l := range strings.Split(info, "\r\n") {
			if v, found := strings.CutPrefix(l, "total_commands_processed:"); found {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("total_commands_processed %q: %v", v, err)
				}
				return n
			}
		}
		t.Fatalf("INFO stats lacks total_commands_processed:\n%s", info)
		return 0
	}
	base := processed()

	client := p.raw(t)
	var req []byte
	for i := 0; i < n; i += 2 {
		key := fmt.Sprintf("sess:gs-%d", i)
		req = append(req, encode("SET", key, fmt.Sprintf(`{"i":%d}`, i))...)
		req = append(req, encode("GET", key)...)
	}
	client.write(req)

	deadline := time.Now().Add(10 * time.Second)
	for polls := int64(1); ; polls++ {
		if processed()-base-polls >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy did not read %d pipelined commands within 10s", n)
		}
	}
	probe.nc.Close()

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- p.srv.Shutdown(ctx)
	}()

	for i := 0; i < n; i += 2 {
		if got, err := client.read(); err != nil || got != status("OK") {
			t.Fatalf("reply %d = %#v, %v; want +OK", i, got, err)
		}
		want := fmt.Sprintf(`{"i":%d}`, i)
		if got, err := client.read(); err != nil || got != want {
			t.Fatalf("reply %d = %#v, %v; want %s", i+1, got, err, want)
		}
	}
	client.wantEOF()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if keys := p.allKeys(t); len(keys) != n/2 {
		t.Errorf("upstream holds %d keys, want %d", len(keys), n/2)
	}

	// New connections are refused.
	if nc, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		nc.Close()
		t.Errorf("dial after Shutdown succeeded")
	}
}
