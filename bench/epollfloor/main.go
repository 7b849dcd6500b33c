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
	"net/netip"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/sessproxy/sessproxy/bench/internal/resp2"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "epollfloor:", err)
		os.Exit(1)
	}
}

// client is one accepted connection.
type client struct {
	fd      int
	in, out []byte
	dirty   bool // out has bytes to write this iteration
	polling bool // EPOLLOUT is armed: out did not fit in the socket
	closed  bool
}

// owed is a run of replies due to one client, in upstream order.
type owed struct {
	c *client
	n int
}

type loop struct {
	ep, lfd, up int
	clients     map[int]*client
	upIn, upOut []byte
	upPolling   bool
	queue       []owed // replies the upstream owes, oldest first
	dirty       []*client
	buf         []byte
}

func run(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: epollfloor LISTEN_ADDR UPSTREAM_ADDR")
	}
	runtime.LockOSThread()
	l := &loop{clients: map[int]*client{}, buf: make([]byte, 64<<10)}
	var err error
	if l.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("epoll_create: %w", err)
	}
	if l.lfd, err = listen(args[0]); err != nil {
		return err
	}
	if l.up, err = dial(args[1]); err != nil {
		return err
	}
	for _, fd := range []int{l.lfd, l.up} {
		if err := l.ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN); err != nil {
			return err
		}
	}
	return l.serve()
}

func (l *loop) ctl(op, fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := unix.EpollCtl(l.ep, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

func (l *loop) serve() error {
	events := make([]unix.EpollEvent, 512)
	for {
		n, err := unix.EpollWait(l.ep, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			switch {
			case fd == l.lfd:
				l.accept()
			case fd == l.up:
				if ev.Events&unix.EPOLLOUT != 0 {
					l.upPolling = false // flushUpstream re-arms it if still needed
				}
				if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
					if err := l.readUpstream(); err != nil {
						return err
					}
				}
			default:
				c := l.clients[fd]
				if c == nil {
					continue
				}
				if ev.Events&unix.EPOLLOUT != 0 && !c.dirty {
					c.dirty = true
					l.dirty = append(l.dirty, c)
				}
				if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
					l.readClient(c)
				}
			}
		}
		if err := l.flushUpstream(); err != nil {
			return err
		}
		l.flushClients()
	}
}

func (l *loop) accept() {
	for {
		fd, _, err := unix.Accept4(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or a failed accept: the listener stays armed
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if l.ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN) != nil {
			unix.Close(fd)
			continue
		}
		l.clients[fd] = &client{fd: fd}
	}
}

// readClient reads once (level-triggered: epoll reports the rest) and
// forwards every whole command.
func (l *loop) readClient(c *client) {
	n, err := unix.Read(c.fd, l.buf)
	if n <= 0 {
		if n == 0 || !errors.Is(err, unix.EAGAIN) {
			l.close(c)
		}
		return
	}
	c.in = append(c.in, l.buf[:n]...)
	at, count := 0, 0
	for at < len(c.in) {
		m, err := resp2.Frame(c.in[at:])
		if err != nil {
			l.close(c)
			return
		}
		if m == 0 {
			break
		}
		at += m
		count++
	}
	if count == 0 {
		return
	}
	l.upOut = append(l.upOut, c.in[:at]...)
	c.in = append(c.in[:0], c.in[at:]...)
	if k := len(l.queue); k > 0 && l.queue[k-1].c == c {
		l.queue[k-1].n += count
	} else {
		l.queue = append(l.queue, owed{c, count})
	}
}

// readUpstream reads once and hands each whole reply to the client owed it.
func (l *loop) readUpstream() error {
	n, err := unix.Read(l.up, l.buf)
	switch {
	case n == 0:
		return errors.New("upstream closed")
	case n < 0 && errors.Is(err, unix.EAGAIN):
		return nil
	case n < 0:
		return fmt.Errorf("read upstream: %w", err)
	}
	l.upIn = append(l.upIn, l.buf[:n]...)
	at := 0
	for at < len(l.upIn) {
		m, err := resp2.Frame(l.upIn[at:])
		if err != nil {
			return fmt.Errorf("read upstream: %w", err)
		}
		if m == 0 {
			break
		}
		if len(l.queue) == 0 {
			return errors.New("upstream sent a reply nobody asked for")
		}
		head := &l.queue[0]
		if c := head.c; !c.closed {
			c.out = append(c.out, l.upIn[at:at+m]...)
			if !c.dirty {
				c.dirty = true
				l.dirty = append(l.dirty, c)
			}
		}
		if head.n--; head.n == 0 {
			l.queue = l.queue[1:]
		}
		at += m
	}
	l.upIn = append(l.upIn[:0], l.upIn[at:]...)
	return nil
}

func (l *loop) flushUpstream() error {
	if len(l.upOut) == 0 {
		return nil
	}
	n, err := unix.Write(l.up, l.upOut)
	if err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("write upstream: %w", err)
	}
	if n > 0 {
		l.upOut = append(l.upOut[:0], l.upOut[n:]...)
	}
	if len(l.upOut) > 0 && !l.upPolling {
		l.upPolling = true
		return l.ctl(unix.EPOLL_CTL_MOD, l.up, unix.EPOLLIN|unix.EPOLLOUT)
	}
	if len(l.upOut) == 0 && l.upPolling {
		l.upPolling = false
		return l.ctl(unix.EPOLL_CTL_MOD, l.up, unix.EPOLLIN)
	}
	return nil
}

func (l *loop) flushClients() {
	for _, c := range l.dirty {
		c.dirty = false
		if c.closed || len(c.out) == 0 {
			continue
		}
		n, err := unix.Write(c.fd, c.out)
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			l.close(c)
			continue
		}
		if n > 0 {
			c.out = append(c.out[:0], c.out[n:]...)
		}
		switch {
		case len(c.out) > 0 && !c.polling:
			c.polling = true
			_ = l.ctl(unix.EPOLL_CTL_MOD, c.fd, unix.EPOLLIN|unix.EPOLLOUT)
		case len(c.out) == 0 && c.polling:
			c.polling = false
			_ = l.ctl(unix.EPOLL_CTL_MOD, c.fd, unix.EPOLLIN)
		}
	}
	l.dirty = l.dirty[:0]
}

// close forgets a client; replies still owed to it are read and dropped.
func (l *loop) close(c *client) {
	if c.closed {
		return
	}
	c.closed = true
	delete(l.clients, c.fd)
	_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	unix.Close(c.fd)
}

func listen(addr string) (int, error) {
	sa, err := sockaddr(addr)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, sa); err != nil {
		return -1, fmt.Errorf("bind %s: %w", addr, err)
	}
	if err := unix.Listen(fd, 1024); err != nil {
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	return fd, nil
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

func sockaddr(addr string) (*unix.SockaddrInet4, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("listen address %q: want IPv4 host:port", addr)
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}, nil
}
