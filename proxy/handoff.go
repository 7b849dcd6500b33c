package proxy

import (
	"net"
	"sync"
)

// handoffListener is how an event loop hands a client over to a goroutine
// of its own (loop.handOver): serveGoroutines serves it as one more listener, whose
// connections are the loops' clients, already counted and with their state
// (guardedConn.handedOver), instead of new ones.
type handoffListener struct {
	s     *Server
	conns chan *guardedConn

	once sync.Once
	done chan struct{}
}

func newHandoffListener(s *Server) *handoffListener {
	return &handoffListener{s: s, conns: make(chan *guardedConn, 64), done: make(chan struct{})}
}

// give queues a client for serveGoroutines's accept loop.
func (h *handoffListener) give(c *guardedConn) { h.conns <- c }

// Accept returns the next client handed over. Once closed it still
// returns the ones handed over meanwhile, and fails only when every client
// has left, so that Serve returns only then (drainListener).
func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
	}
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.s.allGone:
		return nil, net.ErrClosed
	}
}

// Close makes Accept fail once the server has no client left.
func (h *handoffListener) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoffListener) Addr() net.Addr { return &net.UnixAddr{Name: "handoff", Net: "unix"} }
