package redistest

import (
	"net"
	"sync"
	"testing"
)

// ServeConns listens on a free 127.0.0.1 port and runs serve on each
// connection it accepts, on a goroutine of its own; keep hands serve's
// own connections (a relay's to its upstream) to the cleanup, which closes
// the listener and every connection and waits for serve's goroutines. The
// fake servers tests put in place of Redis (a relay that cuts or poisons
// replies, a lying sentinel, a node that redirects to itself) stand on it.
func ServeConns(t testing.TB, serve func(c net.Conn, keep func(net.Conn))) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	keep := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			keep(c)
			wg.Go(func() { serve(c, keep) })
		}
	})
	return ln
}

// Relay is ServeConns passing each connection on to one of its own to
// upstream: pass runs until both directions are done.
func Relay(t testing.TB, upstream string, pass func(client, server net.Conn)) net.Listener {
	t.Helper()
	return ServeConns(t, func(client net.Conn, keep func(net.Conn)) {
		server, err := net.Dial("tcp", upstream)
		if err != nil {
			client.Close()
			return
		}
		keep(server)
		pass(client, server)
	})
}

// BothWays runs commands and replies at once and returns when both have.
func BothWays(commands, replies func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		commands()
	}()
	replies()
	<-done
}
