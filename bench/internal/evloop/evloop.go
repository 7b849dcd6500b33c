//go:build linux

// Package evloop is the event loop of the bench's epoll floors: one
// thread, one level-triggered epoll set, no goroutine per connection. It
// accepts clients, reads each ready one once per iteration and hands its
// bytes to a Handler, then, at the end of the iteration, gives the Handler
// its turn (Idle) and writes every client that has output, once. It is for
// measuring a design (docs/performance.md, issue 16), not a server: it
// has no limits, no timeouts and no TLS.
package evloop

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"

	"golang.org/x/sys/unix"
)

// Client is one accepted connection.
type Client struct {
	fd int
	// In holds what was read and not yet consumed by Handler.Read.
	In      []byte
	out     []byte
	dirty   bool // out has bytes to write this iteration
	polling bool // EPOLLOUT is armed: out did not fit in the socket
	closed  bool
	closing bool // close once out is written (CloseAfterWrite)
	// State is the Handler's own, per client.
	State any
}

// Handler is what a floor does with its clients' bytes.
type Handler interface {
	// Open is called for a new client.
	Open(l *Loop, c *Client)
	// Read is called when c.In has grown; it consumes what it can by
	// returning how many bytes of c.In it took, or an error to close c.
	Read(l *Loop, c *Client) (int, error)
	// Ready is called for a descriptor added with Watch.
	Ready(l *Loop, fd int, events uint32) error
	// Idle is called at the end of every iteration, before the clients
	// with output are written.
	Idle(l *Loop) error
	// Closed is called once for a client the loop closed.
	Closed(l *Loop, c *Client)
}

// Loop is one event loop; Run serves until a Handler fails.
type Loop struct {
	ep, lfd int
	h       Handler
	clients map[int]*Client
	dirty   []*Client
	buf     []byte
}

// Listen opens the loop's listener on addr (IPv4 host:port).
func Listen(addr string, h Handler) (*Loop, error) {
	l := &Loop{h: h, clients: map[int]*Client{}, buf: make([]byte, 64<<10)}
	var err error
	if l.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	if l.lfd, err = listen(addr); err != nil {
		return nil, err
	}
	return l, l.Watch(l.lfd, unix.EPOLLIN)
}

// Watch adds fd (non-blocking) to the loop; Handler.Ready gets its events.
func (l *Loop) Watch(fd int, events uint32) error { return l.ctl(unix.EPOLL_CTL_ADD, fd, events) }

// Modify changes the events a watched fd is reported for.
func (l *Loop) Modify(fd int, events uint32) error { return l.ctl(unix.EPOLL_CTL_MOD, fd, events) }

func (l *Loop) ctl(op, fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := unix.EpollCtl(l.ep, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// Write queues b for c, written at the end of the iteration.
func (l *Loop) Write(c *Client, b []byte) {
	if c.closed {
		return
	}
	c.out = append(c.out, b...)
	l.markDirty(c)
}

func (l *Loop) markDirty(c *Client) {
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
}

// CloseAfterWrite closes c once what is queued for it is written (QUIT).
func (l *Loop) CloseAfterWrite(c *Client) {
	c.closing = true
	l.markDirty(c)
}

// Run serves, on the calling goroutine locked to its thread.
func (l *Loop) Run() error {
	runtime.LockOSThread()
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
			if fd == l.lfd {
				l.accept()
				continue
			}
			c := l.clients[fd]
			if c == nil {
				if err := l.h.Ready(l, fd, ev.Events); err != nil {
					return err
				}
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				l.markDirty(c)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
				l.read(c)
			}
		}
		if err := l.h.Idle(l); err != nil {
			return err
		}
		l.flush()
	}
}

func (l *Loop) accept() {
	for {
		fd, _, err := unix.Accept4(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or a failed accept: the listener stays armed
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if l.Watch(fd, unix.EPOLLIN) != nil {
			unix.Close(fd)
			continue
		}
		c := &Client{fd: fd}
		l.clients[fd] = c
		l.h.Open(l, c)
	}
}

// read reads once (level-triggered: epoll reports the rest).
func (l *Loop) read(c *Client) {
	n, err := unix.Read(c.fd, l.buf)
	if n <= 0 {
		if n == 0 || !errors.Is(err, unix.EAGAIN) {
			l.Close(c)
		}
		return
	}
	c.In = append(c.In, l.buf[:n]...)
	took, err := l.h.Read(l, c)
	if err != nil {
		l.Close(c)
		return
	}
	c.In = append(c.In[:0], c.In[took:]...)
}

func (l *Loop) flush() {
	for _, c := range l.dirty {
		c.dirty = false
		if !c.closed && len(c.out) == 0 && c.closing {
			l.Close(c)
		}
		if c.closed || len(c.out) == 0 {
			continue
		}
		n, err := unix.Write(c.fd, c.out)
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			l.Close(c)
			continue
		}
		if n > 0 {
			c.out = append(c.out[:0], c.out[n:]...)
		}
		if len(c.out) == 0 && c.closing {
			l.Close(c)
			continue
		}
		switch {
		case len(c.out) > 0 && !c.polling:
			c.polling = true
			_ = l.Modify(c.fd, unix.EPOLLIN|unix.EPOLLOUT)
		case len(c.out) == 0 && c.polling:
			c.polling = false
			_ = l.Modify(c.fd, unix.EPOLLIN)
		}
	}
	l.dirty = l.dirty[:0]
}

// Close forgets a client.
func (l *Loop) Close(c *Client) {
	if c.closed {
		return
	}
	c.closed = true
	delete(l.clients, c.fd)
	_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	unix.Close(c.fd)
	l.h.Closed(l, c)
}

func listen(addr string) (int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return -1, fmt.Errorf("listen address %q: want IPv4 host:port", addr)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return -1, fmt.Errorf("bind %s: %w", addr, err)
	}
	if err := unix.Listen(fd, 1024); err != nil {
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	return fd, nil
}
