package store

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/integration/redistest"
)

// poisonRelay is a TCP relay in front of a real Redis that, once armed,
// answers the next command naming its marker key with its own bytes
// instead of Redis's reply, as a broken or hostile upstream (or a
// corrupted stream) would, then leaves the connection open and silent.
type poisonRelay struct {
	ln     net.Listener
	marker []byte
	reply  atomic.Value // []byte
	armed  atomic.Bool
	// hangUp: close the connection after the bytes, else stay silent.
	hangUp atomic.Bool
	sent   atomic.Int32
}

func startPoisonRelay(t *testing.T, upstream, marker string) *poisonRelay {
	t.Helper()
	r := &poisonRelay{marker: []byte("\r\n" + marker + "\r\n")}
	r.ln = redistest.Relay(t, upstream, func(client, server net.Conn) {
		var poisoned atomic.Bool
		named := func(b []byte) bool { return bytes.Contains(b, r.marker) }
		redistest.BothWays(func() { passCommands(server, client, named, &r.armed, &poisoned) }, func() { r.replies(client, server, &poisoned) })
	})
	return r
}

// replies passes server's replies on; on a poisoned connection it sends
// the relay's bytes instead and passes nothing more.
func (r *poisonRelay) replies(client, server net.Conn, poisoned *atomic.Bool) {
	defer client.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && poisoned.Load() {
			r.sent.Add(1)
			_, _ = client.Write(r.reply.Load().([]byte))
			if r.hangUp.Load() {
				return
			}
			_, _ = io.Copy(io.Discard, server)
			return
		}
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// An upstream reply whose header announces a huge bulk string or
// aggregate fails its connection with an error, at once, instead of
// making go-redis allocate what it announces: a `$1099511627776` ended
// the whole proxy with "fatal error: runtime: out of memory". The store
// serves the next command on a fresh connection.
func TestUpstreamReplyHeadersAreBounded(t *testing.T) {
	redistest.RequireBinaries(t)
	srv := redistest.Standalone(t)
	relay := startPoisonRelay(t, srv.Addr, "poison")
	ctx := context.Background()
	s, err := Open(ctx, Options{Mode: ModeStandalone, Addrs: []string{relay.ln.Addr().String()}, AutoPipeline: true, Combine: true, ReadTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tests := []struct {
		name, reply string
		get         bool // a session read (read raw), else a forwarded GET (go-redis's reader)
		hangUp      bool // the relay closes the connection after the reply
	}{
		{"forwarded, bulk of 2^40", "$1099511627776\r\n", false, false},
		{"session read, bulk of 2^40", "$1099511627776\r\n", true, false},
		{"forwarded, array of 2^40", "*1099511627776\r\n", false, false},
		{"forwarded, nested array of 2^36", "*2\r\n:1\r\n*68719476736\r\n", false, false},
		{"forwarded, map of 2^40 (RESP3)", "%1099511627776\r\n", false, false},
		{"forwarded, bulk length of 20 digits", "$99999999999999999999\r\n", false, false},
		{"forwarded, garbage", "?what\r\n", false, false},
		{"forwarded, closed mid-reply", "$10\r\nabc", false, true},
		{"session read, closed mid-reply", "$10\r\nabc", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			relay.reply.Store([]byte(tt.reply))
			relay.hangUp.Store(tt.hangUp)
			relay.armed.Store(true)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			b := s.NewBatch()
			var err error
			if tt.get {
				res := b.Get("poison")
				_ = b.Exec(ctx)
				_, err = res.Result()
			} else {
				res := b.Forward(true, "get", "poison")
				_ = b.Exec(ctx)
				_, err = res.Result()
			}
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			grew := int64(after.HeapSys) - int64(before.HeapSys)
			t.Logf("reply %q: %v after %v, heap %+d MiB", tt.reply, err, took.Round(time.Millisecond), grew>>20)
			if relay.sent.Load() == 0 {
				t.Fatal("the relay never answered the command")
			}
			relay.sent.Store(0)
			if err == nil || UpstreamReply(err) {
				t.Errorf("got %v, want an upstream failure", err)
			}
			if took > time.Second {
				t.Errorf("the error took %v, want it at once (before the read timeout)", took)
			}
			if grew > 64<<20 {
				t.Errorf("heap grew by %d MiB", grew>>20)
			}
			b = s.NewBatch()
			res := b.Forward(false, "set", "after", "1")
			_ = b.Exec(ctx)
			if _, err := res.Result(); err != nil {
				t.Errorf("the next command failed: %v", err)
			}
		})
	}
}

// The scanner passes every reply Redis sends, split anywhere across reads.
func TestReplyScannerPassesRedisReplies(t *testing.T) {
	stream := "+OK\r\n-ERR wrong\r\n:42\r\n$4\r\nhe\r\n\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n" +
		"*3\r\n$1\r\na\r\n*2\r\n:1\r\n_\r\n$-1\r\n%2\r\n+a\r\n:1\r\n+b\r\n,1.5\r\n" +
		"~1\r\n#t\r\n>3\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n$-1\r\n|1\r\n+ttl\r\n:3\r\n" +
		"=15\r\ntxt:Some string\r\n!9\r\nERR boom!\r\n(3492890328409238509324850943850943825024385\r\n" +
		"$536870912\r\n"
	for cut := 0; cut <= len(stream); cut++ {
		for cut2 := cut; cut2 <= len(stream); cut2 += 7 {
			var s replyScanner
			for _, part := range []string{stream[:cut], stream[cut:cut2], stream[cut2:]} {
				if _, err := s.scan([]byte(part)); err != nil {
					t.Fatalf("cut at %d and %d: %v", cut, cut2, err)
				}
			}
			if s.state != replyBulk || s.skip != 536870912+2 {
				t.Fatalf("cut at %d and %d: lost the framing (state %d, skip %d)", cut, cut2, s.state, s.skip)
			}
		}
	}
}
