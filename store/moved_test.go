package store

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/integration/redistest"
)

// movedNode is a fake cluster node that serves every slot by CLUSTER
// SLOTS, loads scripts, and answers every other command with a MOVED to
// itself: a redirect loop no real node makes, but a node with a stale or
// corrupted configuration can.
type movedNode struct {
	ln       net.Listener
	commands atomic.Int64 // commands answered MOVED
}

func startMovedNode(t *testing.T) *movedNode {
	t.Helper()
	n := &movedNode{}
	n.ln = redistest.ServeConns(t, func(c net.Conn, _ func(net.Conn)) {
		defer c.Close()
		addr := c.LocalAddr().String() // the listener's
		host, port, _ := net.SplitHostPort(addr)
		r := bufio.NewReader(c)
		for {
			args, err := redistest.ReadCommand(r)
			if err != nil {
				return
			}
			name := strings.ToLower(args[0])
			var reply string
			switch {
			case name == "ping":
				reply = "+PONG\r\n"
			case name == "client", name == "readonly", name == "readwrite", name == "select", name == "auth":
				reply = "+OK\r\n"
			case name == "cluster" && strings.EqualFold(args[1], "slots"):
				reply = fmt.Sprintf("*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$%d\r\n%s\r\n:%s\r\n$40\r\n%s\r\n",
					len(host), host, port, strings.Repeat("a", 40))
			case name == "script" && strings.EqualFold(args[1], "load"):
				sum := sha1.Sum([]byte(args[2]))
				reply = "$40\r\n" + hex.EncodeToString(sum[:]) + "\r\n"
			case name == "hello":
				reply = "-ERR unknown command 'hello'\r\n"
			default:
				n.commands.Add(1)
				reply = "-MOVED 0 " + addr + "\r\n"
			}
			if _, err := c.Write([]byte(reply)); err != nil {
				return
			}
		}
	})
	return n
}

// A node that answers MOVED to itself gets each command a bounded number
// of times (the lane's try, then go-redis's MaxRedirects), and the client
// its MOVED at once: 10 sends of a one-command batch, 18 of a two-slot
// one, in about 5 ms (as on main).
func TestMovedToItselfIsBounded(t *testing.T) {
	node := startMovedNode(t)
	ctx := context.Background()
	s, err := Open(ctx, Options{Mode: ModeCluster, Addrs: []string{node.ln.Addr().String()}, AutoPipeline: true, Combine: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, tt := range []struct {
		name string
		run  func(b *Batch) func() error
	}{
		{"session read", func(b *Batch) func() error {
			r := b.Get("sess:a")
			return func() error { _, err := r.Result(); return err }
		}},
		{"forwarded", func(b *Batch) func() error {
			r := b.Forward(false, "set", "x", "1")
			return func() error { _, err := r.Result(); return err }
		}},
		{"two slots", func(b *Batch) func() error {
			r := b.Forward(false, "set", "x", "1")
			b.Forward(false, "set", "y", "1")
			return func() error { _, err := r.Result(); return err }
		}},
	} {
		before := node.commands.Load()
		start := time.Now()
		b := s.NewBatch()
		result := tt.run(b)
		_ = b.Exec(ctx)
		err := result()
		took, sends := time.Since(start), node.commands.Load()-before
		t.Logf("%s: %v after %v; the node answered MOVED %d times", tt.name, err, took.Round(time.Millisecond), sends)
		if err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
			t.Errorf("%s: got %v, want the MOVED", tt.name, err)
		}
		if sends > 40 || took > time.Second {
			t.Errorf("%s: %d sends in %v, want a bounded few", tt.name, sends, took)
		}
	}
}
