//go:build linux

package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Event loops (server.event_loops). A goroutine per client costs, per
// request, a read that finds nothing before each wait and a park and a
// wake-up in Go's scheduler: about twice twemproxy's CPU per request at
// pipeline depth 1 (docs/performance.md, issue 16). A loop serves its
// clients from one goroutine, as twemproxy does from one thread: one
// level-triggered epoll set; each ready client read once per iteration;
// the whole commands of every client queued on one shared Round, executed
// once (one upstream round trip for all of them); each client's replies
// written. A deep round is executed on the loop's executor goroutine while
// the loop fills the next (loopRounds).
//
// A loop's client has the protections of a goroutine's: the request
// scanner, max_clients, the inflight budget (a client whose batch does not
// fit waits, unread), max_client_reply_bytes, request_timeout for requests
// and for replies, idle_timeout, the slots for large requests, the close
// reasons in the metrics, panic recovery and the shutdown drain. What the
// loop must not run (commands.NewPipelineIn: MULTI, WATCH, SUBSCRIBE,
// CLIENT TRACKING, scans of the whole keyspace) hands the client over, with
// everything it sent from that command on, to a goroutine of its own for
// the rest of its life (handOver). TLS clients are served by goroutines.

// loop is one event loop.
type loop struct {
	s  *Server
	ep int // epoll
	// epFile is ep in Go's poller, which the loop parks on when it has
	// nothing to do (wait).
	epFile *os.File
	epRaw  syscall.RawConn
	wake   int // eventfd: new clients, shutdown, a round executed
	buf    []byte
	rounds []*loopRound // all of them (loopRounds)
	// free are the rounds not in flight; the last is the one dispatch
	// fills.
	free     []*loopRound
	inflight int
	done     chan *loopRound // the rounds their executors have finished
	// tick is how often the timeouts are checked (0: never).
	tick      time.Duration
	lastSweep time.Time

	clients map[int]*loopClient
	ready   []*loopClient // clients with commands to run
	toArm   []*loopClient // whose epoll events may change (armAll)
	// largeWaiters are the clients waiting for a large read's slot,
	// retried every iteration (the rest are swept on the tick).
	largeWaiters []*loopClient
	// unfinishedWaiters are the clients not read while what unfinished
	// requests hold is at its bound (unfinishedBytes).
	unfinishedWaiters []*loopClient
	args              [][][]byte // scratch for Queue
	ends              []int      // scratch for the scanner
	spans             []argSpan  // scratch for the scanner
	spanEnds          []int      // scratch for the scanner

	drainSince time.Time // when the loop saw the server draining
	// partial counts clients part-way through sending a request; atomic
	// only so that a test can watch it from another goroutine.
	partial atomic.Int32
	// sent counts the rounds sent to an executor, overlapped the clients
	// queued while one was in flight; atomic only for the tests.
	sent, overlapped atomic.Int64

	mu      sync.Mutex // guards what other goroutines hand the loop
	inbox   []newClient
	aborted bool
	stopped bool
	closed  bool // ep and wake are closed: wakeUp must not write
	// failed: the loop stopped on an error; new clients go to the others.
	failed atomic.Bool
}

type newClient struct {
	fd          int
	addr, local string
}

// loopClient is one client of a loop.
type loopClient struct {
	s      *Server
	fd     int
	addr   string
	client *commands.Client
	pipe   *commands.Pipeline

	scanner requestScanner
	in      []byte        // the request in progress, after the last whole one
	cmds    []loopCommand // whole commands not yet run
	cmdSize int           // their arguments' bytes

	out     []byte // replies not yet written
	outHeld int64  // out's bytes held in the budget

	// The batch on the round: its request's bytes held in the budget,
	// the replies metered for it, how many commands it ran.
	cost    int64
	replies int64
	ran     int
	waiter  *budgetWaiter // its place in the budget's queue while blocked
	// The last batch's request cost and reply bytes (replyRatio).
	lastCost, lastReplies int64
	// outQueued is len(out) when its batch was queued, for Replies on the
	// executor's goroutine (the loop may drop out meanwhile: depart).
	outQueued int64
	// panicked: a panic on the executor's goroutine while finishing its
	// replies; the loop closes it once the round is done (recover).
	panicked any

	lastActive   time.Time // idle_timeout: its last read, or its last replies written
	requestStart time.Time // request_timeout, for a request being read
	wroteAt      time.Time // request_timeout, for replies being written
	largeWait    time.Time // waiting for a large read's slot since
	holdsLarge   bool
	// unfinishedHeld: in charges unfinishedBytes; unfinishedWait: not
	// read since, while it is full; holdsTurn: read on past it.
	unfinishedHeld int64
	unfinishedWait time.Time
	holdsTurn      bool
	partial        bool // counted in loop.partial

	events     uint32 // armed in epoll
	registered bool   // in epoll
	queued     bool   // in ready
	toArm      bool   // in toArm
	running    bool   // its batch is on a round in flight: the executor's until done
	// readable: epoll said it sent more while running; it is not read
	// (its commands are the executor's) and stops being watched until done.
	readable   bool
	blocked    bool // its batch did not fit in the budget
	overLimit  bool // past max_client_reply_bytes
	handoff    bool // its next command needs a goroutine of its own
	closeAfter bool // close once out is written
	discard    bool // run what it sent, answer no one: it has gone
	closed     bool
	// refusal is a request refused after cmds: its answer once they are
	// answered, then the close (refuse).
	refusal *limitError
}

// loopCommand is a whole command and the bytes it came in.
type loopCommand struct {
	args [][]byte
	raw  []byte
}

// openLoops opens server.event_loops loops.
func (s *Server) openLoops() error {
	tick := time.Duration(0)
	for _, t := range []time.Duration{s.opts.IdleTimeout, s.opts.RequestTimeout} {
		if t > 0 && (tick == 0 || t/10 < tick) {
			tick = t / 10
		}
	}
	if tick != 0 {
		tick = min(max(tick, time.Millisecond), 100*time.Millisecond)
	}
	n := s.opts.EventLoops
	if n == 0 {
		// The other half of the CPUs runs go-redis's readers and writers,
		// the collector, and the goroutines of handed-over and TLS
		// clients. One on two CPUs: a second loop overlaps Redis's work
		// with the proxy's (a loop waits for each round's replies) and
		// served 20-45% more writes at -P 16 there, but cost 6-19% more
		// CPU per request and 0.8-1.3 ms more p99 at -P 1, where web apps'
		// session stores live (docs/performance.md, session 14);
		// server.event_loops = 2 asks for it.
		n = max(1, runtime.GOMAXPROCS(0)/2)
	}
	for range max(n, 0) {
		l := &loop{s: s, buf: make([]byte, 64<<10), tick: tick, clients: map[int]*loopClient{}, done: make(chan *loopRound, loopRounds)}
		for range loopRounds {
			r := &loopRound{round: s.engine.NewRound(), jobs: make(chan struct{}, 1)}
			l.rounds = append(l.rounds, r)
			l.free = append(l.free, r)
		}
		var err error
		if l.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			s.closeLoops()
			return fmt.Errorf("server.event_loops: epoll_create: %w", err)
		}
		// Non-blocking, so that os.NewFile puts it in Go's poller.
		_ = unix.SetNonblock(l.ep, true)
		l.epFile = os.NewFile(uintptr(l.ep), "epoll")
		if l.epRaw, err = l.epFile.SyscallConn(); err != nil {
			l.epFile.Close()
			s.closeLoops()
			return fmt.Errorf("server.event_loops: %w", err)
		}
		if l.wake, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
			l.epFile.Close()
			s.closeLoops()
			return fmt.Errorf("server.event_loops: eventfd: %w", err)
		}
		s.loops = append(s.loops, l)
		if err := l.ctl(unix.EPOLL_CTL_ADD, l.wake, unix.EPOLLIN); err != nil {
			s.closeLoops()
			return err
		}
	}
	if len(s.loops) > 0 {
		s.handoff = newHandoffListener(s)
	}
	return nil
}

// closeLoops closes loops that never ran (Listen failed).
func (s *Server) closeLoops() {
	for _, l := range s.loops {
		l.closeFds()
	}
	s.loops = nil
}

// closeFds closes the loop's epoll and eventfd, once: a wakeUp after that
// must not write to a descriptor number the process has given to another
// file since.
func (l *loop) closeFds() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		l.epFile.Close()
		unix.Close(l.wake)
	}
}

// acceptToLoops accepts ln's clients and gives each, as a bare file
// descriptor, to a loop in turn.
func (s *Server) acceptToLoops(ln *drainListener) error {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			if s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors, most likely: the clients already
			// served go on, and so does accepting, a moment later.
			s.log.Warn("accept failed", zap.Error(err))
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !s.admit(c, func() { s.loopers++ }) {
			c.Close()
			continue
		}
		l := s.pickLoop()
		if l == nil {
			s.log.Error("client closed: every event loop has stopped")
			c.Close()
			s.loopClientLeft()
			continue
		}
		addr, local := c.RemoteAddr().String(), c.LocalAddr().String()
		fd, err := detach(c)
		if err != nil {
			s.log.Warn("client closed: cannot take its connection", zap.Error(err))
			s.loopClientLeft()
			continue
		}
		l.add(newClient{fd: fd, addr: addr, local: local})
	}
}

// pickLoop is the next loop in turn that has not failed; nil when none is
// left.
func (s *Server) pickLoop() *loop {
	for range s.loops {
		if l := s.loops[int(s.nextLoop.Add(1))%len(s.loops)]; !l.failed.Load() {
			return l
		}
	}
	return nil
}

// detach takes c's file descriptor out of Go's poller and closes c: a
// duplicate, non-blocking, owned by the caller.
func detach(c net.Conn) (int, error) {
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("cannot serve a %T from an event loop", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// loopClientLeft uncounts a loop's client.
func (s *Server) loopClientLeft() {
	s.mu.Lock()
	s.loopers--
	s.lastOneOut()
	s.mu.Unlock()
}

// add gives the loop a new client, from the accepting goroutine.
func (l *loop) add(nc newClient) {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		unix.Close(nc.fd)
		l.s.loopClientLeft()
		return
	}
	l.inbox = append(l.inbox, nc)
	l.mu.Unlock()
	l.wakeUp()
}

// wakeUp makes the loop look at its inbox and the server's state.
func (l *loop) wakeUp() {
	one := [8]byte{1}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		_, _ = unix.Write(l.wake, one[:])
	}
}

// abort makes the loop close every client at once and stop (Shutdown gave
// up waiting).
func (l *loop) abort() {
	l.mu.Lock()
	l.aborted = true
	l.mu.Unlock()
	l.wakeUp()
}

func (l *loop) ctl(op, fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := unix.EpollCtl(l.ep, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// run serves until the server has drained. Its rounds' executors live as
// long as it does.
func (l *loop) run() error {
	defer l.closeFds()
	for _, r := range l.rounds {
		go l.executor(r)
	}
	defer func() {
		for _, r := range l.rounds {
			close(r.jobs)
		}
	}()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := l.wait(events)
		if err != nil {
			// Not expected (a bad descriptor, a kernel refusal): this
			// loop's clients are closed, the other loops serve on.
			l.failed.Store(true)
			l.s.log.Error("event loop stopped", zap.Error(err))
			l.closeAll()
			return fmt.Errorf("event loop: %w", err)
		}
		now := time.Now()
		for _, ev := range events[:max(n, 0)] {
			fd := int(ev.Fd)
			if fd == l.wake {
				var b [8]byte
				_, _ = unix.Read(l.wake, b[:])
				continue
			}
			if c := l.clients[fd]; c != nil {
				l.event(c, ev.Events, now)
			}
		}
		if l.takeInbox(now) {
			l.closeAll()
			return nil
		}
		l.collect()
		l.dispatch(now)
		if len(l.largeWaiters) > 0 {
			l.retryLarge(now)
		}
		if len(l.unfinishedWaiters) > 0 {
			l.retryUnfinished(now)
		}
		if l.tick > 0 && now.Sub(l.lastSweep) >= l.tick || l.s.draining.Load() {
			l.sweep(now)
		}
		l.armAll()
		if l.s.draining.Load() && len(l.clients) == 0 && l.stop() {
			return nil
		}
	}
}

// wait returns the events ready, waiting at most waitMillis for some. It
// waits parked in Go's poller, not in epoll_wait: a goroutine blocked in a
// system call keeps its P until the runtime's monitor takes it back (up to
// 10 ms when idle), and while the loop held it that way, no thread was
// left to poll the network for the process's other goroutines — a
// go-redis client in the same process, a TLS client, /metrics — which
// then waited for the monitor, about 8 ms a request.
func (l *loop) wait(events []unix.EpollEvent) (int, error) {
	n, err := unix.EpollWait(l.ep, events, 0)
	if errors.Is(err, unix.EINTR) {
		n, err = 0, nil
	}
	ms := l.waitMillis()
	if n > 0 || ms == 0 || err != nil {
		return max(n, 0), err
	}
	deadline := time.Time{}
	if ms > 0 {
		deadline = time.Now().Add(time.Duration(ms) * time.Millisecond)
	}
	_ = l.epFile.SetReadDeadline(deadline)
	var werr error
	err = l.epRaw.Read(func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		return n > 0 || (werr != nil && !errors.Is(werr, unix.EINTR))
	})
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("wait for epoll: %w", err)
	case werr != nil:
		return 0, fmt.Errorf("epoll_wait: %w", werr)
	}
	return n, nil
}

// waitMillis is how long epoll_wait may sleep: until the next sweep, or a
// moment while some client waits for the budget or a large read's slot,
// which other goroutines give back without waking the loop.
func (l *loop) waitMillis() int {
	for _, c := range l.ready {
		if !c.blocked {
			return 0
		}
	}
	switch {
	case len(l.ready) > 0 || len(l.largeWaiters) > 0 || len(l.unfinishedWaiters) > 0:
		return 1
	case l.s.draining.Load():
		return 10
	case l.tick > 0 && len(l.clients) > 0:
		return int(max(l.tick/time.Millisecond, 1))
	}
	return -1
}

// takeInbox registers new clients; true: the loop must stop at once.
func (l *loop) takeInbox(now time.Time) bool {
	l.mu.Lock()
	inbox, aborted := l.inbox, l.aborted
	l.inbox = nil
	l.mu.Unlock()
	for _, nc := range inbox {
		l.register(nc, now)
	}
	return aborted
}

// register makes nc one of the loop's clients.
func (l *loop) register(nc newClient, now time.Time) {
	c := &loopClient{s: l.s, fd: nc.fd, addr: nc.addr, scanner: requestScanner{max: l.s.opts.MaxRequestBytes, trackEnds: true, trackSpans: true}, lastActive: now}
	c.client = l.s.engine.Connect(nc.addr, nc.local)
	defer l.recover(c)
	c.pipe = l.s.engine.NewPipelineIn(c.client, l.rounds[0].round) // Join picks each batch's
	c.pipe.SetMeter(c)
	l.clients[c.fd] = c
	if err := l.ctl(unix.EPOLL_CTL_ADD, c.fd, unix.EPOLLIN); err != nil {
		l.s.log.Warn("client closed: cannot watch its connection", zap.Error(err))
		l.close(c)
		return
	}
	c.registered, c.events = true, unix.EPOLLIN
}

// stop ends a drained loop unless a client arrived meanwhile.
func (l *loop) stop() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.inbox) > 0 {
		return false
	}
	l.stopped = true
	return true
}

// event handles what epoll reported for c.
func (l *loop) event(c *loopClient, ev uint32, now time.Time) {
	defer l.recover(c)
	if ev&unix.EPOLLOUT != 0 {
		l.flush(c, now)
	}
	if c.closed {
		return
	}
	switch {
	case ev&unix.EPOLLIN != 0 && c.events&unix.EPOLLIN != 0 && c.running:
		// More while its batch is out: read once it is done; unwatched
		// till then, or level-triggered epoll would report it again and
		// again (armAll).
		c.readable = true
		l.arm(c)
	case ev&unix.EPOLLIN != 0 && c.events&unix.EPOLLIN != 0:
		l.read(c, now)
	case ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 && len(c.out) == 0:
		// Reported whatever was armed: the client is gone.
		l.depart(c)
	}
}

// recover is the last line for a bug in the loop: drop the client, keep
// serving the others.
func (l *loop) recover(c *loopClient) {
	if r := recover(); r != nil {
		l.s.log.Error("panic serving client", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
		if !c.closed && len(c.out) == 0 {
			_, _ = unix.Write(c.fd, []byte("-"+msgInternal+"\r\n"))
		}
		c.running, c.discard, c.cmds = false, false, nil
		l.close(c)
	}
}

// read reads what the client sent, once, and cuts it into whole commands.
func (l *loop) read(c *loopClient, now time.Time) {
	buf := l.buf
	if l.s.unfinished.full() && !c.holdsLarge && !c.holdsTurn {
		// What unfinished requests hold is at its bound: a request this
		// read leaves unfinished must fit in the client's share.
		buf = buf[:max(clientMemory-len(c.in), 0)]
		if len(buf) == 0 {
			l.waitUnfinished(c, now)
			l.settle(c, now)
			return
		}
	}
	n, err := unix.Read(c.fd, buf)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return
	}
	if n <= 0 {
		l.depart(c) // it left, or its connection failed
		return
	}
	c.lastActive = now
	data := l.buf[:n]
	begun := c.scanner.begun
	sc := &c.scanner
	sc.ends, sc.spans, sc.spanEnds = l.ends[:0], l.spans[:0], l.spanEnds[:0]
	lerr := sc.scan(data)
	ends, spans, spanEnds := sc.ends, sc.spans, sc.spanEnds
	l.ends, l.spans, l.spanEnds = ends[:0], spans[:0], spanEnds[:0]
	sc.ends, sc.spans, sc.spanEnds = nil, nil, nil
	// On a refusal too, the requests that ended before the refused one
	// are the client's (refuse).
	if len(ends) > 0 {
		if err := l.cut(c, data, ends, spans, spanEnds); err != nil {
			lerr = err // it came before the scanner's refusal, if any
		}
	} else if lerr == nil {
		c.in = append(c.in, data...)
	}
	if lerr != nil {
		var le *limitError
		errors.As(lerr, &le)
		l.refuse(c, le)
		l.settle(c, now)
		return
	}
	mid := c.scanner.state != scanStart
	if mid && c.scanner.begun != begun {
		c.requestStart = now
	}
	l.setPartial(c, mid)
	if mid && !c.holdsLarge && c.scanner.size >= largeRequestBytes {
		l.takeLarge(c, now)
	}
	l.holdUnfinished(c)
	if c.unfinishedHeld > 0 && l.s.unfinished.full() {
		l.waitUnfinished(c, now)
	}
	l.settle(c, now)
}

// holdUnfinished charges what c's unfinished request holds past
// clientMemory to unfinishedBytes, and gives it back, and the turn, once
// the request is whole: the budget takes it from there.
func (l *loop) holdUnfinished(c *loopClient) {
	held := int64(0)
	if c.mid() && cap(c.in) > clientMemory {
		held = int64(cap(c.in))
	}
	l.s.unfinished.change(held - c.unfinishedHeld)
	c.unfinishedHeld = held
	if held == 0 && c.holdsTurn {
		c.holdsTurn = false
		l.s.unfinished.releaseTurn()
	}
}

// dropUnfinished gives back what c's unfinished request held, and the
// turn: it has gone, or moves to a goroutine.
func (l *loop) dropUnfinished(c *loopClient) {
	c.in = nil
	l.holdUnfinished(c)
	if c.holdsTurn {
		c.holdsTurn = false
		l.s.unfinished.releaseTurn()
	}
}

// waitUnfinished stops reading c while unfinished requests hold their
// bound, unless it may read on: it holds a large read's slot, or takes the
// turn. Its request_timeout runs meanwhile (sweepClient).
func (l *loop) waitUnfinished(c *loopClient, now time.Time) {
	if c.holdsLarge || c.holdsTurn || !c.unfinishedWait.IsZero() {
		return
	}
	if l.s.unfinished.tryTurn() {
		c.holdsTurn = true
		return
	}
	c.unfinishedWait = now
	l.unfinishedWaiters = append(l.unfinishedWaiters, c)
}

// retryUnfinished reads on the clients waiting for room in
// unfinishedBytes once there is some, or one that takes the turn.
func (l *loop) retryUnfinished(now time.Time) {
	waiting := l.unfinishedWaiters[:0]
	for _, c := range l.unfinishedWaiters {
		if c.closed || c.unfinishedWait.IsZero() {
			continue
		}
		switch {
		case c.discard, c.holdsLarge, !l.s.unfinished.full():
		case l.s.unfinished.tryTurn():
			c.holdsTurn = true
		default:
			waiting = append(waiting, c)
			continue
		}
		c.unfinishedWait = time.Time{}
		l.settle(c, now)
	}
	clear(l.unfinishedWaiters[len(waiting):])
	l.unfinishedWaiters = waiting
}

// cut turns the whole requests that end in data (at ends) into commands.
// They get one copy of their bytes, which their arguments point into
// until they have run; what follows the last is kept for the next read.
// A request begun in data takes its arguments from the scanner's spans
// (the scanner accepts exactly what redcon parses: FuzzRequestScanner),
// all of them in one slice allocated per read; redcon parses the rest,
// inline requests and one begun in an earlier read. An error is the
// refusal of a request (unbalanced quotes), after the commands before it.
func (l *loop) cut(c *loopClient, data []byte, ends []int, spans []argSpan, spanEnds []int) error {
	last := ends[len(ends)-1]
	base := len(c.in)
	chunk := make([]byte, base+last)
	copy(chunk, c.in)
	copy(chunk[base:], data[:last])
	c.in = append(c.in[:0], data[last:]...)
	if cap(c.in) > clientMemory && len(c.in) <= clientMemory/2 {
		// Grown for a request that spanned reads: an idle client keeps no
		// more than the Go memory limit allows it (at 64 KiB, 500 clients
		// idle after a 60 KiB request each kept 37.7 KB apiece:
		// TestMemoryIdleClientsAfterARequestThatSpannedReads), nor does
		// one that has begun its next request.
		c.in = bytes.Clone(c.in)
	}
	all := make([][]byte, spanEnds[len(spanEnds)-1])
	start, from := 0, 0
	for k, e := range ends {
		raw := chunk[start : base+e]
		start = base + e
		to := spanEnds[k]
		var args [][]byte
		if raw[0] == '*' && (k > 0 || base == 0) {
			for j, sp := range spans[from:to] {
				at := base + sp.at
				all[from+j] = chunk[at : at+sp.n : at+sp.n]
			}
			args = all[from:to:to]
		} else {
			var err error
			if args, err = parseRequest(raw); err != nil {
				return err
			}
		}
		from = to
		if len(args) == 0 {
			continue // an empty inline line or *0, which Redis skips too
		}
		c.cmds = append(c.cmds, loopCommand{args: args, raw: raw})
		for _, a := range args {
			c.cmdSize += len(a)
		}
	}
	return nil
}

// refuse stops reading a client that sent a request that broke a limit or
// the protocol. As Redis does, the commands it sent whole before that
// request run and are answered first, in order, then the refusal, then the
// close (settle); a goroutine's client the same (Server.readFailed).
func (l *loop) refuse(c *loopClient, le *limitError) {
	l.dropUnfinished(c)
	// Nothing more is read: the refused request is the last, and no
	// command waits for the rest of a pipeline (holding).
	c.scanner.state = scanStart
	l.setPartial(c, false)
	c.refusal, c.closeAfter = le, true
}

// answerRefusal queues the answer to c's refused request, its commands
// before it answered: the close follows once it is written.
func (l *loop) answerRefusal(c *loopClient, now time.Time) {
	le := c.refusal
	c.refusal = nil
	l.s.log.Warn("client closed: request refused", zap.String("addr", c.addr), zap.String("reason", le.msg), zap.Int64("max_request_bytes", l.s.opts.MaxRequestBytes))
	if le.tooLarge {
		l.s.engine.Closed(commands.CloseRequestTooLarge)
	} else {
		l.s.engine.Closed(commands.CloseProtocolError)
	}
	if len(c.out) == 0 {
		c.wroteAt = now // the answer waits for the client from now
	}
	l.queueOut(c, []byte("-"+le.msg+"\r\n"))
}

// takeLarge takes a slot for reading a large request, or stops reading the
// client until one is free (largeReads).
func (l *loop) takeLarge(c *loopClient, now time.Time) {
	select {
	case l.s.large <- struct{}{}:
		c.holdsLarge = true
		if !c.largeWait.IsZero() {
			// The wait is the proxy's, not the client's.
			c.requestStart = c.requestStart.Add(now.Sub(c.largeWait))
			c.largeWait = time.Time{}
		}
	default:
		if c.largeWait.IsZero() {
			c.largeWait = now
			l.largeWaiters = append(l.largeWaiters, c)
		}
	}
}

// retryLarge gives the clients waiting for a large read's slot another
// try, in the order they began waiting.
func (l *loop) retryLarge(now time.Time) {
	waiting := l.largeWaiters[:0]
	for _, c := range l.largeWaiters {
		if c.closed || c.largeWait.IsZero() {
			continue
		}
		l.retryClientLarge(c, now)
		if !c.largeWait.IsZero() {
			waiting = append(waiting, c)
		}
	}
	clear(l.largeWaiters[len(waiting):])
	l.largeWaiters = waiting
}

func (l *loop) retryClientLarge(c *loopClient, now time.Time) {
	defer l.recover(c)
	if c.discard {
		c.largeWait = time.Time{} // gone: it reads nothing more
		return
	}
	l.takeLarge(c, now)
	if c.largeWait.IsZero() { // it got a slot
		l.settle(c, now)
	}
}

func (c *loopClient) releaseLarge(s *Server) {
	if c.holdsLarge {
		c.holdsLarge = false
		<-s.large
	}
}

// Replies is commands.Meter: reply bytes a command fetched for the client
// before its batch's end (the chunks of a large MGET).
func (c *loopClient) Replies(n int64) bool {
	c.s.budget.take(n)
	c.replies += n
	if c.replies+c.outQueued > c.s.opts.MaxClientReplyBytes {
		c.overLimit = true
	}
	return !c.overLimit
}

// ReplyRoom is commands.Meter: what the client's limit leaves once what
// it had unsent when its batch was queued is taken.
func (c *loopClient) ReplyRoom() int64 { return c.s.opts.MaxClientReplyBytes - c.outQueued }

// ReplyTooLarge is commands.Meter: the batch built replies past the limit.
func (c *loopClient) ReplyTooLarge() { c.overLimit = true }

// setPartial keeps loop.partial.
func (l *loop) setPartial(c *loopClient, mid bool) {
	if mid != c.partial {
		c.partial = mid
		if mid {
			l.partial.Add(1)
		} else {
			l.partial.Add(-1)
		}
	}
}

// mid says whether the client is part-way through sending a request.
func (c *loopClient) mid() bool { return c.scanner.state != scanStart }

// replyRatio is connState.replyRatio.
func (c *loopClient) replyRatio() int64 { return replyRatio(c.lastCost, c.lastReplies) }

// holding says whether its commands wait for the rest of a pipeline the
// client is part-way through sending (Server.handle).
func (c *loopClient) holding() bool {
	return c.mid() && !c.discard && len(c.cmds) <= maxHeldCommands && c.cmdSize <= maxHeldBytes && int64(c.cmdSize)*c.replyRatio() <= maxHeldReplyBytes
}

func (c *loopClient) runnable() bool {
	return len(c.cmds) > 0 && !c.running && !c.handoff && (c.discard || len(c.out) == 0 && !c.holding())
}

func (c *loopClient) wantsRead() bool {
	return !c.discard && !c.closeAfter && !c.handoff && !c.running && !c.blocked &&
		len(c.out) == 0 && c.largeWait.IsZero() && c.unfinishedWait.IsZero() && (len(c.cmds) == 0 || c.holding())
}

// settle decides what comes next for c: close it, hand it over, run its
// commands, and which events to watch.
func (l *loop) settle(c *loopClient, now time.Time) {
	if c.closed || c.running {
		return
	}
	if c.refusal != nil && len(c.cmds) == 0 && !c.discard {
		l.answerRefusal(c, now)
		l.flush(c, now) // which settles c again
		return
	}
	switch {
	case len(c.out) > 0:
	case c.handoff && c.discard, len(c.cmds) == 0 && (c.discard || c.closeAfter):
		// Gone, or refused; what it sent whole and the loop must not
		// run runs on a goroutine, unanswered (close).
		l.close(c)
		return
	case c.handoff:
		l.handOver(c, now)
		return
	}
	if c.runnable() && !c.queued {
		c.queued = true
		l.ready = append(l.ready, c)
	}
	l.arm(c)
}

// arm marks c's epoll events for a look at the end of the iteration: a
// client served in one iteration (read, run, answered) ends it wanting
// what it wanted before, so at pipeline depth 1 no epoll_ctl is made.
func (l *loop) arm(c *loopClient) {
	if !c.toArm {
		c.toArm = true
		l.toArm = append(l.toArm, c)
	}
}

// armAll watches, for every client marked, what it is waiting for.
func (l *loop) armAll() {
	for _, c := range l.toArm {
		c.toArm = false
		if c.closed || !c.registered || c.running && !c.readable {
			// A running client stays watched as it was: at depth 1 it
			// sends nothing more until answered, and no epoll_ctl is made.
			continue
		}
		var want uint32
		if c.wantsRead() {
			want |= unix.EPOLLIN
		}
		if len(c.out) > 0 {
			want |= unix.EPOLLOUT
		}
		if want == c.events {
			continue
		}
		if want&unix.EPOLLIN != 0 && c.events&unix.EPOLLIN == 0 {
			c.lastActive = time.Now() // idle_timeout counts from here
		}
		c.events = want
		_ = l.ctl(unix.EPOLL_CTL_MOD, c.fd, want)
	}
	clear(l.toArm)
	l.toArm = l.toArm[:0]
}

// A loop has two rounds. A round of deep pipelines (at least minSentRound
// commands, minSentDepth a client on average) goes to its executor, and
// while it is in flight the loop reads the clients that become ready and
// queues them on the other; that one goes out the moment the first is
// back, before the first's clients are answered. A loop that waited for
// each round's replies left Redis idle while it read, queued and
// answered, and itself idle while Redis worked (docs/performance.md,
// sessions 14 and 15). Any other round the loop executes itself, as
// before: at depth 1 the two goroutine hand-offs, and the loop's wake-ups
// for each client answered that sends its next command, cost more than
// the overlap bought: 9-35% fewer SETs and GETs a second with 50 clients
// when every round went to the executor (bench/results run 63), up to 15%
// with 256 clients when rounds of 128 went (run 64).
const (
	loopRounds   = 2
	minSentRound = 128
	minSentDepth = 4
)

// loopRound is one of a loop's rounds: the clients whose batches it
// carries. A running client's pipeline and commands are the round's
// executor's until the round is done; the loop neither reads it nor queues
// it meanwhile.
type loopRound struct {
	round   *commands.Round
	running []*loopClient
	// commands: how many its clients queued on it.
	commands int
	fetched  int64 // reply bytes received executing it, for the budget
	jobs     chan struct{}
}

// dispatch queues the commands of every ready client on the round being
// filled and, when no round is in flight, starts it.
func (l *loop) dispatch(now time.Time) {
	if len(l.free) == 0 {
		return
	}
	r := l.free[len(l.free)-1]
	if len(l.ready) > 0 {
		ready := l.ready
		l.ready = nil
		for _, c := range ready {
			c.queued = false
			if c.closed || !c.runnable() {
				continue
			}
			l.queue(r, c, now)
			if l.inflight > 0 && c.running {
				l.overlapped.Add(1)
			}
		}
		clear(ready)
	}
	if l.inflight == 0 {
		l.start(r, true)
	}
}

// deep says whether r goes to its executor: deep pipelines, not many
// clients at depth 1.
func (r *loopRound) deep() bool {
	return r.commands >= minSentRound && r.commands >= minSentDepth*len(r.running)
}

// start sends r to its executor if it is deep, or, if inline allows,
// executes it on the loop and answers its clients.
func (l *loop) start(r *loopRound, inline bool) {
	switch {
	case len(r.running) == 0:
	case r.deep():
		l.free = l.free[:len(l.free)-1]
		l.inflight++
		l.sent.Add(1)
		r.jobs <- struct{}{}
	case inline:
		l.free = l.free[:len(l.free)-1]
		l.execute(r)
		l.completeRound(r)
	}
}

// executor executes r each time the loop hands it over, gives it back and
// wakes the loop.
func (l *loop) executor(r *loopRound) {
	for range r.jobs {
		l.execute(r)
		l.done <- r
		l.wakeUp()
	}
}

// execute executes r's round and the follow-ups its replies need (the
// check after a miss), all of its clients' together, one execution per
// pass.
func (l *loop) execute(r *loopRound) {
	l.exec(r.round)
	for pass := 0; pass < maxFollowUpPasses && l.finishPass(r); pass++ {
		l.exec(r.round)
	}
	r.fetched = r.round.TakeReplyBytes()
}

// collect answers the clients of the round its executor is done with, after
// sending the round filled meanwhile: Redis serves that one while the loop
// writes the replies.
func (l *loop) collect() {
	select {
	case r := <-l.done:
		l.inflight--
		if len(l.free) > 0 {
			l.start(l.free[len(l.free)-1], false) // another waits for dispatch
		}
		l.completeRound(r)
	default:
	}
}

// completeRound answers r's clients and frees r.
func (l *loop) completeRound(r *loopRound) {
	l.s.budget.take(r.fetched)
	// The replies wait for their clients from now, not from before the
	// round (request_timeout, idle_timeout).
	now := time.Now()
	for _, c := range r.running {
		switch {
		case c.panicked != nil:
			l.closePanicked(c)
		case !c.closed:
			l.complete(c, now)
		}
	}
	l.s.budget.release(r.fetched)
	l.freeRound(r)
}

// freeRound empties r and puts it first among the free rounds, not last:
// the last is the one being filled, which may already hold clients.
func (l *loop) freeRound(r *loopRound) {
	clear(r.running)
	r.running, r.fetched, r.commands = r.running[:0], 0, 0
	l.free = slices.Insert(l.free, 0, r)
}

// awaitRounds waits for every round in flight and frees it unanswered:
// the loop is closing every client at once.
func (l *loop) awaitRounds() {
	for l.inflight > 0 {
		l.inflight--
		l.freeRound(<-l.done)
	}
}

// queue puts c's next batch on the round: its commands whose replies are
// expected (at its last ratio) to stay under maxHeldReplyBytes, once their
// request's bytes fit in the budget.
func (l *loop) queue(r *loopRound, c *loopClient, now time.Time) {
	defer l.recover(c)
	n, est := 0, int64(0)
	for n < len(c.cmds) && (n == 0 || est <= maxHeldReplyBytes) {
		est += requestCost([][][]byte{c.cmds[n].args}) * c.replyRatio()
		n++
	}
	args := l.args[:0]
	for _, cmd := range c.cmds[:n] {
		args = append(args, cmd.args)
	}
	cost := requestCost(args)
	if c.waiter == nil && !l.s.budget.tryAcquire(cost) {
		// A place in the budget's queue, first come first served with
		// the goroutines' clients; the same commands are tried until
		// then (the client is not read meanwhile).
		c.waiter = l.s.budget.enqueue(cost)
	}
	if c.waiter != nil {
		if !c.waiter.granted() {
			c.blocked = true
			c.queued = true
			l.ready = append(l.ready, c) // tried again next iteration
			l.arm(c)
			clear(args)
			return
		}
		cost, c.waiter = c.waiter.n, nil
	}
	c.blocked, c.cost = false, cost
	c.outQueued = int64(len(c.out))
	c.pipe.Join(r.round)
	c.ran = c.pipe.Queue(l.s.ctx, args)
	clear(args)
	l.args = args[:0]
	if c.ran < n && !c.client.Closing() {
		// The next command needs a goroutine of its own: the client
		// moves to one, or, gone, has it run there unanswered (close).
		c.handoff = true
	}
	if c.ran == 0 {
		l.s.budget.release(c.cost)
		c.cost = 0
		l.settle(c, now)
		return
	}
	c.running = true
	r.running = append(r.running, c)
	r.commands += c.ran
}

// maxFollowUpPasses bounds the rounds of follow-ups run for every client
// at once; Complete finishes, client by client, whatever is left.
const maxFollowUpPasses = 4

// finishPass runs a pass of the pending replies of r's clients; it says
// whether some queued a follow-up.
func (l *loop) finishPass(r *loopRound) (more bool) {
	for _, c := range r.running {
		if l.finishClientPass(c) {
			more = true
		}
	}
	return more
}

// finishClientPass runs on the executor's goroutine: a panic is logged
// there, and the loop closes the client once the round is done
// (closePanicked).
func (l *loop) finishClientPass(c *loopClient) (more bool) {
	if c.panicked != nil {
		return false
	}
	defer func() {
		if p := recover(); p != nil {
			l.s.log.Error("panic serving client", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			c.panicked = p
		}
	}()
	return c.pipe.FinishPass()
}

// closePanicked closes a client whose replies panicked on the executor's
// goroutine, as recover does on the loop's.
func (l *loop) closePanicked(c *loopClient) {
	c.panicked = nil
	if !c.closed && len(c.out) == 0 {
		_, _ = unix.Write(c.fd, []byte("-"+msgInternal+"\r\n"))
	}
	c.running, c.discard, c.cmds = false, false, nil
	l.close(c)
}

// exec executes a round.
func (l *loop) exec(round *commands.Round) {
	defer func() {
		// Each command's result says what became of it; Complete answers.
		if r := recover(); r != nil {
			l.s.log.Error("panic executing a round", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
		}
	}()
	round.Exec(l.s.ctx)
}

// complete writes c's replies, after the round has executed.
func (l *loop) complete(c *loopClient, now time.Time) {
	defer l.recover(c)
	mark := len(c.out)
	if mark == 0 {
		c.wroteAt = now // the replies wait for the client from now
	}
	c.pipe.Complete(func(b []byte) {
		if !c.discard {
			c.out = append(c.out, b...)
		}
	})
	c.running, c.readable = false, false
	produced := int64(len(c.out) - mark)
	l.s.budget.take(produced)
	c.outHeld += produced
	l.s.budget.release(c.cost + c.replies)
	c.lastCost, c.lastReplies = c.cost, produced+c.replies
	c.cost, c.replies = 0, 0
	for _, cmd := range c.cmds[:c.ran] {
		for _, a := range cmd.args {
			c.cmdSize -= len(a)
		}
	}
	c.cmds = append(c.cmds[:0], c.cmds[c.ran:]...)
	clear(c.cmds[len(c.cmds):cap(c.cmds)])
	if len(c.cmds) == 0 && cap(c.cmds) > 256 {
		c.cmds = nil
	}
	if !c.mid() {
		c.releaseLarge(l.s) // its large request, if any, has run
	}
	switch {
	case c.discard && (c.overLimit || c.client.Closing()):
		// Gone: no one to tell; what is left is dropped.
		c.cmds, c.cmdSize, c.handoff = nil, 0, false
	case c.overLimit || produced > l.s.opts.MaxClientReplyBytes:
		l.s.log.Warn("client closed: unsent replies over the limit", zap.String("addr", c.addr), zap.Int64("max_client_reply_bytes", l.s.opts.MaxClientReplyBytes))
		l.s.engine.Closed(commands.CloseReplyLimit)
		l.s.budget.release(produced)
		c.outHeld -= produced
		c.out = c.out[:mark]
		l.queueOut(c, []byte(errReplyLimit(l.s.opts.MaxClientReplyBytes)))
		c.cmds, c.cmdSize, c.handoff, c.closeAfter, c.refusal = nil, 0, false, true, nil
	case c.client.Closing():
		// QUIT: its reply, then the close; as in Redis, a request
		// refused after it goes unanswered.
		c.cmds, c.cmdSize, c.handoff, c.closeAfter, c.refusal = nil, 0, false, true, nil
	}
	l.flush(c, now)
}

// queueOut adds b to what c is sent, held in the budget until written.
func (l *loop) queueOut(c *loopClient, b []byte) {
	c.out = append(c.out, b...)
	l.s.budget.take(int64(len(b)))
	c.outHeld += int64(len(b))
}

// flush writes what c has queued, as much as its socket takes.
func (l *loop) flush(c *loopClient, now time.Time) {
	if c.closed {
		return
	}
	if c.discard && !c.closeAfter {
		l.dropOut(c)
	}
	written := 0
	for written < len(c.out) {
		n, err := unix.Write(c.fd, c.out[written:])
		if n > 0 {
			written += n
			c.wroteAt = now // a piece taken: the next has request_timeout
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			l.s.budget.release(int64(written))
			c.outHeld -= int64(written)
			c.out = c.out[written:]
			l.depart(c)
			return
		}
	}
	if written > 0 {
		l.s.budget.release(int64(written))
		c.outHeld -= int64(written)
		if written == len(c.out) {
			c.out = c.out[:0]
			if cap(c.out) > flushBytes {
				c.out = nil
			}
			c.lastActive = now
		} else {
			c.out = append(c.out[:0], c.out[written:]...)
		}
	}
	l.settle(c, now)
}

// dropOut forgets what c was to be sent.
func (l *loop) dropOut(c *loopClient) {
	l.s.budget.release(c.outHeld)
	c.outHeld, c.out = 0, nil
}

// depart handles a client that has gone, or is being closed: what it sent
// whole still runs, unanswered, as Redis would have run it; then it is
// closed.
func (l *loop) depart(c *loopClient) {
	if c.closed {
		return
	}
	c.discard, c.closeAfter = true, false
	l.dropUnfinished(c)
	l.dropOut(c)
	if c.registered {
		// Stop epoll reporting its hang-up while its commands wait.
		_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
		c.registered, c.events = false, 0
	}
	l.settle(c, time.Now())
}

// close closes c and gives back everything it held.
func (l *loop) close(c *loopClient) {
	if c.closed {
		return
	}
	c.closed = true
	if c.registered {
		_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	}
	unix.Close(c.fd)
	delete(l.clients, c.fd)
	l.setPartial(c, false)
	l.dropOut(c)
	if !c.running {
		l.s.budget.release(c.cost + c.replies)
		c.cost, c.replies = 0, 0
	}
	if c.waiter != nil {
		l.s.budget.cancel(c.waiter)
		c.waiter = nil
	}
	c.releaseLarge(l.s)
	cmds := c.cmds
	c.cmds = nil
	l.dropUnfinished(c)
	if c.discard && len(cmds) > 0 {
		// Whole commands of a client that has gone, which the loop must
		// not run (a transaction, a keyspace walk): they run, unanswered,
		// as Redis would have run them, on a goroutine of their own.
		held := make([][][]byte, len(cmds))
		for i, cmd := range cmds {
			held[i] = cmd.args
		}
		l.s.runDeparted(c.client, l.s.engine.NewPipeline(c.client), held, l.s.loopClientLeft)
		return
	}
	l.s.engine.Disconnect(c.client)
	l.s.loopClientLeft()
}

// closeAll closes every client at once.
func (l *loop) closeAll() {
	l.awaitRounds()
	for _, c := range l.clients {
		c.running, c.discard, c.cmds = false, false, nil
		l.close(c)
	}
	l.mu.Lock()
	l.stopped = true
	inbox := l.inbox
	l.inbox = nil
	l.mu.Unlock()
	for _, nc := range inbox {
		unix.Close(nc.fd)
		l.s.loopClientLeft()
	}
}

// handOver moves c to a goroutine of its own, with what it sent from its
// next command on: the loop must not run that command. Its replies so far
// are written; its requests already scanned are not scanned again; a
// request refused after them is answered there, after them.
func (l *loop) handOver(c *loopClient, now time.Time) {
	var prefix []byte
	for _, cmd := range c.cmds {
		prefix = append(prefix, cmd.raw...)
	}
	prefix = append(prefix, c.in...)
	l.dropUnfinished(c)
	if c.registered {
		_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
		c.registered = false
	}
	delete(l.clients, c.fd)
	l.setPartial(c, false)
	c.closed = true
	f := os.NewFile(uintptr(c.fd), c.addr)
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		l.s.log.Warn("client closed: cannot hand it over to a goroutine", zap.String("addr", c.addr), zap.Error(err))
		c.releaseLarge(l.s)
		l.s.engine.Disconnect(c.client)
		l.s.loopClientLeft()
		return
	}
	// gc's scanner starts afresh at the prefix's first request, which it
	// scans again for where its requests end (guardedConn.Read).
	gc := l.s.guard(nc)
	gc.partial.Store(c.mid())
	gc.requestStart, gc.holdsLarge, gc.prefix = c.requestStart, c.holdsLarge, prefix
	if c.refusal != nil {
		// The goroutine answers the commands handed over, then this.
		gc.refused = c.refusal
	}
	st := l.s.newConnState(c.client, gc)
	st.lastCost, st.lastReplies = c.lastCost, c.lastReplies
	gc.handedOver = st
	l.s.mu.Lock()
	l.s.loopers--
	l.s.conns[gc] = struct{}{}
	l.s.mu.Unlock()
	l.s.handoff.give(gc)
}

// sweep applies the timeouts and the drain.
func (l *loop) sweep(now time.Time) {
	l.lastSweep = now
	draining := l.s.draining.Load()
	if draining && l.drainSince.IsZero() {
		l.drainSince = now
	}
	for _, c := range l.clients {
		l.sweepClient(c, now, draining)
	}
}

// sweepClient applies the timeouts and the drain to c.
func (l *loop) sweepClient(c *loopClient, now time.Time, draining bool) {
	defer l.recover(c)
	rt, idle := l.s.opts.RequestTimeout, l.s.opts.IdleTimeout
	reading := c.events&unix.EPOLLIN != 0
	switch {
	case c.running:
	case len(c.out) > 0 && rt > 0 && now.Sub(c.wroteAt) >= rt:
		l.s.log.Warn("client closed: replies not taken in time", zap.String("addr", c.addr), zap.Duration("request_timeout", rt))
		l.s.engine.Closed(commands.CloseWriteTimeout)
		l.depart(c)
	case c.discard, !c.largeWait.IsZero():
	case (reading || !c.unfinishedWait.IsZero()) && c.mid() && rt > 0 && now.Sub(c.requestStart) >= rt:
		l.s.log.Warn("client closed: request not completed in time", zap.String("addr", c.addr), zap.Duration("request_timeout", rt))
		l.s.engine.Closed(commands.CloseRequestTimeout)
		l.depart(c)
	case reading && idle > 0 && now.Sub(c.lastActive) >= idle && !draining:
		l.s.engine.Closed(commands.CloseIdleTimeout)
		l.depart(c)
	case draining && (reading || !c.unfinishedWait.IsZero()) && c.mid() && now.Sub(l.drainSince) >= drainFinishRequest:
		// Past the moment given to finish a command: the commands
		// before it run, unanswered.
		l.depart(c)
	case draining && !c.mid() && len(c.out) == 0 && len(c.cmds) == 0 && !c.handoff && !c.blocked:
		l.depart(c) // at rest
	}

}
