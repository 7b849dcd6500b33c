//go:build !race

package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/internal/procmem"
	"github.com/sessproxy/sessproxy/store"
)

// realProxy serves opts on a real redis-server, as cmd/sessproxy runs it
// (its Go memory limit included).
func realProxy(t *testing.T, opts Options) *Server {
	t.Helper()
	rs := redistest.Standalone(t)
	return realProxyOn(t, opts, store.Options{Mode: store.ModeStandalone, Addrs: []string{rs.Addr}}, 0)
}

// realProxyOn is realProxy on the upstream up names, with ttl.idle idle
// (0: none).
func realProxyOn(t *testing.T, opts Options, up store.Options, idle time.Duration) *Server {
	t.Helper()
	up.AutoPipeline, up.Combine = true, true
	st, err := store.Open(context.Background(), up)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := commands.New(st, commands.Options{Policy: ttl.Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour, Idle: idle}})
	old := debug.SetMemoryLimit(MemoryLimit(opts))
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	return startServerOn(t, eng, opts)
}

// Hostile round 6: what Redis answered a small request was read whole
// before the client's reply limit or the in-flight budget was consulted.
// 300 GETs of one 1 MB session (8 KB of request), pipelined or queued in
// a transaction, grew the proxy's peak RSS by about 593 MiB for a client
// allowed 1 MiB of replies. A plain read's value is now charged to its
// client's reply room before it is read (store.Room), and skipped past it;
// in a Redis Cluster and under ttl.idle too, where reads were read whole
// until session 18.
func TestMemoryRepliesFromRedisAreBoundedByTheReplyLimit(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		repliesBounded(t, func(t *testing.T, opts Options) *Server { return realProxy(t, opts) })
	})
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.Cluster(t)
		repliesBounded(t, func(t *testing.T, opts Options) *Server {
			return realProxyOn(t, opts, store.Options{Mode: store.ModeCluster, Addrs: cl.Addrs}, 0)
		})
	})
	// With ttl.idle every read is a script that slides the TTL.
	t.Run("sliding", func(t *testing.T) {
		repliesBounded(t, func(t *testing.T, opts Options) *Server {
			rs := redistest.Standalone(t)
			return realProxyOn(t, opts, store.Options{Mode: store.ModeStandalone, Addrs: []string{rs.Addr}}, time.Hour)
		})
	})
}

// repliesBounded reads a 1 MB session 300 times in one small request
// through a proxy made by serve, each way a read's value can be the
// client's reply.
func repliesBounded(t *testing.T, serve func(*testing.T, Options) *Server) {
	const limit = 1 << 20
	const gets = 300
	for _, tc := range []struct{ name, setup, cmd string }{
		{"pipelined", "", strings.Repeat(encodeRESP("GET", "sess:big"), gets)},
		{"mget", "", encodeRESP(append([]string{"MGET"}, strings.Split(strings.Repeat("sess:big ", gets-1)+"sess:big", " ")...)...)},
		{"transaction", encodeRESP("MULTI") + strings.Repeat(encodeRESP("GET", "sess:big"), gets), encodeRESP("EXEC")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, Options{MaxClientReplyBytes: limit}).Addr().String()
			c, r := dial(t, "tcp", addr)
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			payload := `{"v":"` + strings.Repeat("x", 1000<<10) + `"}`
			if got := roundTrip(t, c, r, encodeRESP("SET", "sess:big", payload)); got != "+OK" {
				t.Fatalf("SET: %q", got)
			}
			line, grew := replyPeak(t, c, r, tc.setup, gets+1, tc.cmd)
			t.Logf("%s: %d reads of a 1 MB session, %d bytes of replies allowed: %.60q, peak RSS +%d MiB", subtest(t), gets, limit, line, grew>>20)
			wantReplyLimit(t, line)
			// The default budget (max_inflight_bytes) and one value, with 50 MB to spare.
			if grew > 64<<20+1<<20+50<<20 {
				t.Errorf("peak RSS grew by %d MiB for a client allowed 1 MiB of replies", grew>>20)
			}
		})
	}
}

// Hostile round 7: a hash session's reads went around that bound. Their
// replies (a script's, for the tombstone check) were read whole, so 300
// pipelined HGETs of a 1 MB field (an 8 KB request), one HMGET naming it
// 300 times (2 KB; a hash command takes up to 7,900 arguments), 300
// HGETALLs of that hash and 300 HGETs queued in a transaction each grew
// the proxy's peak RSS by 295 to 297 MiB for a client allowed 1 MiB of
// replies, 300 SESS.GETs of it by 417 MiB (under ttl.idle too). Their
// values are now charged to the client's room as they stream in
// (store.HashReadReply): +1 to +6 MiB.
func TestMemoryHashReadsAreBoundedByTheReplyLimit(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		hashRepliesBounded(t, func(t *testing.T, opts Options) *Server { return realProxy(t, opts) })
	})
	t.Run("sliding", func(t *testing.T) {
		hashRepliesBounded(t, func(t *testing.T, opts Options) *Server {
			rs := redistest.Standalone(t)
			return realProxyOn(t, opts, store.Options{Mode: store.ModeStandalone, Addrs: []string{rs.Addr}}, time.Hour)
		})
	})
}

// hashRepliesBounded reads a 1 MB field of a hash session 300 times in
// one small request through a proxy made by serve, each way a hash read
// can be the client's reply.
func hashRepliesBounded(t *testing.T, serve func(*testing.T, Options) *Server) {
	const limit = 1 << 20
	const reads = 300
	for _, tc := range []struct{ name, setup, cmd string }{
		{"hget", "", strings.Repeat(encodeRESP("HGET", "sess:h", "f"), reads)},
		{"hmget", "", encodeRESP(append([]string{"HMGET", "sess:h"}, strings.Split(strings.Repeat("f ", reads-1)+"f", " ")...)...)},
		{"hgetall", "", strings.Repeat(encodeRESP("HGETALL", "sess:h"), reads)},
		{"sess.get", "", strings.Repeat(encodeRESP("SESS.GET", "h"), reads)},
		{"transaction", encodeRESP("MULTI") + strings.Repeat(encodeRESP("HGET", "sess:h", "f"), reads), encodeRESP("EXEC")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, Options{MaxClientReplyBytes: limit}).Addr().String()
			c, r := dial(t, "tcp", addr)
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			if got := roundTrip(t, c, r, encodeRESP("HSET", "sess:h", "f", strings.Repeat("x", 1000<<10))); got != ":1" {
				t.Fatalf("HSET: %q", got)
			}
			line, grew := replyPeak(t, c, r, tc.setup, reads+1, tc.cmd)
			t.Logf("%s: %d reads of a 1 MB hash field, %d bytes of replies allowed: %.60q, peak RSS +%d MiB", subtest(t), reads, limit, line, grew>>20)
			wantReplyLimit(t, line)
			if grew > 64<<20+1<<20+50<<20 {
				t.Errorf("peak RSS grew by %d MiB for a client allowed 1 MiB of replies", grew>>20)
			}
		})
	}
}

// replyPeak sends setup, whose queued commands are each answered +OK or
// +QUEUED, then cmd, and returns the first line of cmd's reply and how
// much the proxy's peak RSS grew while cmd was answered.
func replyPeak(t *testing.T, c net.Conn, r *bufio.Reader, setup string, queued int, cmd string) (string, int64) {
	t.Helper()
	if setup != "" {
		if _, err := io.WriteString(c, setup); err != nil {
			t.Fatal(err)
		}
		for range queued {
			if line, err := r.ReadString('\n'); err != nil || (line != "+OK\r\n" && line != "+QUEUED\r\n") {
				t.Fatalf("queueing: %q, %v", line, err)
			}
		}
	}
	debug.FreeOSMemory()
	procmem.ResetPeak(t)
	before := procmem.Peak(t)
	if _, err := io.WriteString(c, cmd); err != nil {
		t.Fatal(err)
	}
	line, _ := r.ReadString('\n')
	_, _ = io.Copy(io.Discard, r)
	return line, procmem.Peak(t) - before
}

// wantReplyLimit checks line is the reply limit's error.
func wantReplyLimit(t *testing.T, line string) {
	t.Helper()
	if !strings.HasPrefix(line, "-ERR reply larger than server.max_client_reply_bytes") {
		t.Errorf("first reply line %.60q, want the reply limit's error", line)
	}
}

// subtest is t's name below its test's: "cluster/mget".
func subtest(t *testing.T) string {
	_, name, _ := strings.Cut(t.Name(), "/")
	return name
}

// A client's script builds its reply in Redis from a few bytes of text:
// read whole, one EVAL of a 52-byte script returning 4,000,000 strings of
// two bytes grew the proxy's peak RSS by 328 MiB, whatever the client's
// reply limit (replies may announce 33 million elements). Now its reply is
// read raw against the client's room, each array charged its elements'
// slots, and nothing more is kept past it.
func TestMemoryScriptRepliesAreBoundedByTheReplyLimit(t *testing.T) {
	const limit = 1 << 20
	script := "local t={} for i=1,4000000 do t[i]='ab' end return t"
	for _, tc := range []struct{ name, setup, cmd string }{
		{"eval", "", encodeRESP("EVAL", script, "0")},
		{"transaction", encodeRESP("MULTI") + encodeRESP("EVAL", script, "0"), encodeRESP("EXEC")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := realProxy(t, Options{MaxClientReplyBytes: limit}).Addr().String()
			c, r := dial(t, "tcp", addr)
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			line, grew := replyPeak(t, c, r, tc.setup, 2, tc.cmd)
			t.Logf("%s: a %d-byte script returning 4,000,000 strings, %d bytes of replies allowed: %.60q, peak RSS +%d MiB", tc.name, len(script), limit, line, grew>>20)
			wantReplyLimit(t, line)
			if grew > 50<<20 {
				t.Errorf("peak RSS grew by %d MiB for a client allowed 1 MiB of replies", grew>>20)
			}
		})
	}
}
