// Command redconfloor is the leanest proxy the project's stack allows: redcon reads
// the clients' commands, and every command is forwarded unchanged on one shared
// upstream connection, in arrival order, with no policy, no decoding and no
// go-redis. Whoever submits appends to one write buffer that a flusher goroutine
// writes in one syscall per wake-up; one reader goroutine frames each reply and
// hands its bytes back. `make bench` runs it beside sessproxy: what it reaches is
// the ceiling of a redcon-based proxy on the machine at hand. It speaks RESP2 only
// and is not a product: an upstream failure ends the process, and at most 65536
// commands may be in flight (clients × pipeline depth; `make bench` has 800).
//
//	redconfloor LISTEN_ADDR UPSTREAM_ADDR
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/sessproxy/sessproxy/bench/internal/resp2"
	"github.com/tidwall/redcon"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "redconfloor:", err)
		os.Exit(1)
	}
}

// run serves until the listener or the upstream connection fails.
func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: redconfloor LISTEN_ADDR UPSTREAM_ADDR")
	}
	up, err := dial(args[1])
	if err != nil {
		return err
	}
	go func() {
		up.failed <- redcon.ListenAndServe(args[0], up.serve,
			func(conn redcon.Conn) bool { conn.SetContext(&client{}); return true }, nil)
	}()
	return <-up.failed
}

// request is one forwarded command waiting for its reply.
type request struct {
	reply []byte
	done  chan struct{}
}

// client is a connection's reusable requests.
type client struct{ reqs []*request }

// upstream is the shared connection.
type upstream struct {
	conn    net.Conn
	mu      sync.Mutex
	pending []byte        // commands not yet written
	inOrder chan *request // requests in the order their commands were appended
	wake    chan struct{} // the flusher has something to write
	failed  chan error    // the first failure ends run
}

func dial(addr string) (*upstream, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	u := &upstream{
		conn:    conn,
		inOrder: make(chan *request, 1<<16),
		wake:    make(chan struct{}, 1),
		failed:  make(chan error, 3),
	}
	go u.flush()
	go u.read()
	return u, nil
}

// serve forwards a client's pipelined commands and writes the replies in order.
func (u *upstream) serve(conn redcon.Conn, first redcon.Command) {
	c := conn.Context().(*client)
	cmds := append([]redcon.Command{first}, conn.ReadPipeline()...)
	for len(c.reqs) < len(cmds) {
		c.reqs = append(c.reqs, &request{done: make(chan struct{}, 1)})
	}
	u.mu.Lock()
	for i, cmd := range cmds {
		u.pending = append(u.pending, cmd.Raw...)
		u.inOrder <- c.reqs[i]
	}
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default: // a wake-up is already due; it will take these too
	}
	for i := range cmds {
		<-c.reqs[i].done
		conn.WriteRaw(c.reqs[i].reply)
	}
}

// flush writes whatever has been appended since its last write, in one syscall.
func (u *upstream) flush() {
	var spare []byte
	for range u.wake {
		u.mu.Lock()
		out := u.pending
		u.pending = spare[:0]
		u.mu.Unlock()
		if _, err := u.conn.Write(out); err != nil {
			u.failed <- fmt.Errorf("write upstream: %w", err)
			return
		}
		spare = out
	}
}

// read hands each reply to the request at the head of the queue.
func (u *upstream) read() {
	rd := bufio.NewReaderSize(u.conn, 64<<10)
	var buf []byte
	for {
		var err error
		if buf, err = resp2.AppendReply(rd, buf[:0]); err != nil {
			u.failed <- fmt.Errorf("read upstream: %w", err)
			return
		}
		r := <-u.inOrder
		r.reply = append(r.reply[:0], buf...)
		r.done <- struct{}{}
	}
}
