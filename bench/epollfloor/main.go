//go:build linux

// Command epollfloor is twemproxy's design written in Go: one thread, one
// epoll loop, no goroutine per connection and no goroutine hand-off. Each
// client's commands are framed and appended, unchanged, to one shared
// upstream connection; each reply read back is appended to the output of
// the client at the head of the queue; at the end of every loop iteration
// the upstream and every client with replies get one write each. It
// answers a design question for issue 16: how much of sessproxy's CPU per
// request at pipeline depth 1 is the goroutine-per-connection model
// (redcon, Go's netpoller) rather than anything a Go program must pay. It
// speaks RESP2 arrays only and is not a product: an upstream failure ends
// the process.
//
//	epollfloor LISTEN_ADDR UPSTREAM_ADDR
package main

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/sessproxy/sessproxy/bench/internal/evloop"
	"github.com/sessproxy/sessproxy/bench/internal/resp2"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "epollfloor:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: epollfloor LISTEN_ADDR UPSTREAM_ADDR")
	}
	up, err := dial(args[1])
	if err != nil {
		return err
	}
	f := &floor{up: up}
	l, err := evloop.Listen(args[0], f)
	if err != nil {
		return err
	}
	if err := l.Watch(up, unix.EPOLLIN); err != nil {
		return err
	}
	return l.Run()
}

// owed is a run of replies due to one client, in upstream order.
type owed struct {
	c *evloop.Client
	n int
}

// floor forwards every client's commands on one upstream connection.
type floor struct {
	up          int
	upIn, upOut []byte
	upPolling   bool
	queue       []owed // replies the upstream owes, oldest first
	buf         [64 << 10]byte
}

func (f *floor) Open(*evloop.Loop, *evloop.Client)   {}
func (f *floor) Closed(*evloop.Loop, *evloop.Client) {} // replies still owed to it are dropped

// Read forwards every whole command in c.In. Anything else that frames
// (an empty array, a reply) closes the client: Redis would answer it with
// nothing, or drop the shared connection, and every later reply would go
// to the wrong client.
func (f *floor) Read(_ *evloop.Loop, c *evloop.Client) (int, error) {
	count := 0
	at, err := resp2.Commands(c.In, func([][]byte) { count++ })
	if err != nil {
		return 0, err
	}
	if count == 0 {
		return 0, nil
	}
	f.upOut = append(f.upOut, c.In[:at]...)
	if k := len(f.queue); k > 0 && f.queue[k-1].c == c {
		f.queue[k-1].n += count
	} else {
		f.queue = append(f.queue, owed{c, count})
	}
	return at, nil
}

// Ready reads the upstream once and hands each whole reply to the client
// owed it; EPOLLOUT only says the upstream can take the rest (Idle).
func (f *floor) Ready(l *evloop.Loop, _ int, events uint32) error {
	if events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
		return nil
	}
	n, err := unix.Read(f.up, f.buf[:])
	switch {
	case n == 0:
		return errors.New("upstream closed")
	case n < 0 && errors.Is(err, unix.EAGAIN):
		return nil
	case n < 0:
		return fmt.Errorf("read upstream: %w", err)
	}
	f.upIn = append(f.upIn, f.buf[:n]...)
	at := 0
	for at < len(f.upIn) {
		m, err := resp2.Frame(f.upIn[at:])
		if err != nil {
			return fmt.Errorf("read upstream: %w", err)
		}
		if m == 0 {
			break
		}
		if len(f.queue) == 0 {
			return errors.New("upstream sent a reply nobody asked for")
		}
		head := &f.queue[0]
		l.Write(head.c, f.upIn[at:at+m])
		if head.n--; head.n == 0 {
			f.queue = f.queue[1:]
		}
		at += m
	}
	f.upIn = append(f.upIn[:0], f.upIn[at:]...)
	return nil
}

// Idle writes what the iteration's clients sent upstream, in one write.
func (f *floor) Idle(l *evloop.Loop) error {
	if len(f.upOut) == 0 {
		return nil
	}
	n, err := unix.Write(f.up, f.upOut)
	if err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("write upstream: %w", err)
	}
	if n > 0 {
		f.upOut = append(f.upOut[:0], f.upOut[n:]...)
	}
	switch {
	case len(f.upOut) > 0 && !f.upPolling:
		f.upPolling = true
		return l.Modify(f.up, unix.EPOLLIN|unix.EPOLLOUT)
	case len(f.upOut) == 0 && f.upPolling:
		f.upPolling = false
		return l.Modify(f.up, unix.EPOLLIN)
	}
	return nil
}

// dial connects to the upstream with Go's dialer, then takes the socket
// over, non-blocking, for the loop.
func dial(addr string) (int, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return -1, err
	}
	f, err := conn.(*net.TCPConn).File() // a dup, in blocking mode
	conn.Close()
	if err != nil {
		return -1, err
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return -1, fmt.Errorf("dup: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return -1, fmt.Errorf("set non-blocking: %w", err)
	}
	return fd, nil
}
