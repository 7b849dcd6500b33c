// Command asyncfloor is an experiment beside bench/redconfloor, kept as the evidence
// for the README's "Next": how far a redcon-based proxy gets at pipeline depth 1 when
// the goroutine hand-offs per request go. Like redconfloor it forwards every command
// unchanged on one shared upstream connection, with no policy, but:
//   - the client's goroutine writes its commands upstream itself (no flusher
//     goroutine to wake), unless another client's write is under way, which then
//     takes them along;
//   - the upstream reader writes each reply straight to the client's socket (no
//     hand-back to the client's goroutine), once per client per read from Redis;
//   - with YIELD set, a client about to write upstream first yields, so the other
//     clients that netpoll woke with it append their commands to the same write.
//
// RESP2 only, no error handling to speak of, not run by make bench:
//
//	[YIELD=1] asyncfloor LISTEN_ADDR UPSTREAM_ADDR
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"

	"github.com/sessproxy/sessproxy/bench/internal/resp2"
	"github.com/tidwall/redcon"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "asyncfloor:", err)
		os.Exit(1)
	}
}

var yield = os.Getenv("YIELD") != ""

// quietConn skips the empty write redcon makes after a handler that wrote
// nothing (every handler here).
type quietConn struct{ net.Conn }

func (c quietConn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return c.Conn.Write(b)
}

type quietListener struct{ net.Listener }

func (l quietListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return quietConn{c}, nil
}

func run(args []string) error {
	up, err := dial(args[1])
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	go func() {
		up.failed <- redcon.Serve(quietListener{ln}, up.serve,
			func(conn redcon.Conn) bool { conn.SetContext(&client{nc: conn.NetConn()}); return true }, nil)
	}()
	return <-up.failed
}

type client struct {
	nc      net.Conn
	out     []byte
	touched bool
}

type upstream struct {
	conn    net.Conn
	mu      sync.Mutex
	pending []byte
	queue   []*client
	head    int
	writing bool
	spare   []byte
	failed  chan error
}

func dial(addr string) (*upstream, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	u := &upstream{conn: conn, failed: make(chan error, 3)}
	go u.read()
	return u, nil
}

func (u *upstream) serve(conn redcon.Conn, first redcon.Command) {
	c := conn.Context().(*client)
	cmds := append([]redcon.Command{first}, conn.ReadPipeline()...)
	u.mu.Lock()
	for _, cmd := range cmds {
		u.pending = append(u.pending, cmd.Raw...)
		u.queue = append(u.queue, c)
	}
	if u.writing {
		u.mu.Unlock()
		return
	}
	u.writing = true
	if yield {
		// Let the other clients that netpoll woke with this one append first.
		u.mu.Unlock()
		runtime.Gosched()
		u.mu.Lock()
	}
	for len(u.pending) > 0 {
		out := u.pending
		u.pending = u.spare[:0]
		u.mu.Unlock()
		if _, err := u.conn.Write(out); err != nil {
			u.failed <- err
			return
		}
		u.mu.Lock()
		u.spare = out
	}
	u.writing = false
	u.mu.Unlock()
}

func (u *upstream) pop() *client {
	u.mu.Lock()
	c := u.queue[u.head]
	u.queue[u.head] = nil
	u.head++
	if u.head == len(u.queue) {
		u.queue, u.head = u.queue[:0], 0
	}
	u.mu.Unlock()
	return c
}

func (u *upstream) read() {
	rd := bufio.NewReaderSize(u.conn, 64<<10)
	var touched []*client
	for {
		c := u.pop0(rd)
		if c == nil {
			return
		}
		var err error
		if c.out, err = resp2.AppendReply(rd, c.out); err != nil {
			u.failed <- err
			return
		}
		if !c.touched {
			c.touched = true
			touched = append(touched, c)
		}
		if rd.Buffered() == 0 {
			for _, t := range touched {
				t.nc.Write(t.out)
				t.out = t.out[:0]
				t.touched = false
			}
			touched = touched[:0]
		}
	}
}

// pop0 waits for the next reply to begin, then pops its client.
func (u *upstream) pop0(rd *bufio.Reader) *client {
	if _, err := rd.Peek(1); err != nil {
		u.failed <- err
		return nil
	}
	return u.pop()
}
