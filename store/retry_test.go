package store

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/sessproxy/sessproxy/integration/redistest"
)

// cutRelay is a TCP relay in front of a real Redis that, once armed, drops
// the connection that carries the next INCR when its reply comes back,
// instead of passing the reply on: Redis has run the command, the store
// never learns its outcome.
type cutRelay struct {
	ln    net.Listener
	armed atomic.Bool
	cuts  atomic.Int32
}

func startCutRelay(t *testing.T, upstream string) *cutRelay {
	t.Helper()
	r := &cutRelay{}
	r.ln = redistest.Relay(t, upstream, func(client, server net.Conn) {
		var incr atomic.Bool // an armed relay saw an INCR go out on it
		redistest.BothWays(func() { passCommands(server, client, isIncr, &r.armed, &incr) }, func() { r.replies(client, server, &incr) })
	})
	return r
}

// isIncr reports whether commands carry an INCR.
func isIncr(commands []byte) bool {
	return bytes.Contains(bytes.ToLower(commands), []byte("$4\r\nincr\r\n"))
}

// replies passes server's replies to client, but drops the connection
// instead of passing on the reply to a marked INCR.
func (r *cutRelay) replies(client, server net.Conn, incr *atomic.Bool) {
	defer client.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && incr.Load() {
			r.cuts.Add(1)
			server.Close()
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

// A command whose reply is lost with its connection has run once, and the
// store says it failed: it does not send it again. go-redis would, up to
// MaxRetries times, on a fresh connection; for a command forwarded from a
// client (INCR, HINCRBY, LPUSH, a script) that runs it twice behind the
// client's back, and the client, told it succeeded, cannot know. Whether to
// try again after an unknown outcome is the client's decision, as it is
// against Redis itself. Every mode's transport gets the same rule: lanes
// here, a cluster's node lanes (go-redis's cluster node clients never retry).
func TestLostReplyIsNotSentAgain(t *testing.T) {
	redistest.RequireBinaries(t)
	srv := redistest.Standalone(t)
	relay := startCutRelay(t, srv.Addr)
	ctx := context.Background()
	for _, auto := range []bool{true, false} {
		name := "lanes"
		if !auto {
			name = "no auto-pipelining"
		}
		t.Run(name, func(t *testing.T) {
			s, err := Open(ctx, Options{Mode: ModeStandalone, Addrs: []string{relay.ln.Addr().String()}, AutoPipeline: auto, Combine: auto})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			key := "counter:" + name
			relay.armed.Store(true)
			b := s.NewBatch()
			res := b.Forward(false, "incr", key)
			_ = b.Exec(ctx)
			v, err := res.Result()
			if relay.armed.Load() || relay.cuts.Load() == 0 {
				t.Fatal("the INCR's reply never came through the relay")
			}
			relay.cuts.Store(0)
			if err == nil {
				t.Errorf("INCR whose reply was lost answered %v, want an error", v)
			}
			got, err := srv.Command("GET", key)
			if err != nil {
				t.Fatal(err)
			}
			if got != "1" {
				t.Fatalf("INCR ran %s times in Redis for one request, want 1", got)
			}
		})
	}
}
