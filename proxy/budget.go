package proxy

import (
	"sync"
	"sync/atomic"
)

// budget is server.max_inflight_bytes: the bytes held, over all clients,
// for requests being run and for replies not yet written. A connection
// takes its batch's request bytes before the batch runs (acquire), waiting
// while the budget is spent, and so stops reading from its client: that is
// the backpressure. Reply bytes are taken as they arrive from Redis (take),
// without waiting, since they are in memory already; everything is
// released once the batch's replies are written.
//
// Waiters are served in order, so a large request is not starved by a
// stream of small ones. A request larger than what is left waits until it
// fits, or until nothing else is held: one holder may go over the budget
// on its own, so no request is too large to ever run (max_request_bytes
// bounds it instead).
type budget struct {
	max int64

	mu      sync.Mutex
	used    int64
	waiting []*budgetWaiter // first come, first served
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

func newBudget(max int64) *budget { return &budget{max: max} }

// fits says whether n more bytes may be held now.
func (b *budget) fits(n int64) bool { return b.used == 0 || b.used+n <= b.max }

// acquire waits until n bytes fit in the budget and takes them.
func (b *budget) acquire(n int64) {
	b.mu.Lock()
	if len(b.waiting) == 0 && b.fits(n) {
		b.used += n
		b.mu.Unlock()
		return
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiting = append(b.waiting, w)
	b.mu.Unlock()
	<-w.ready // release took the bytes for us
}

// tryAcquire takes n bytes if they fit now and no one is waiting: an
// event loop's common case, without a waiter to allocate.
func (b *budget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiting) == 0 && b.fits(n) {
		b.used += n
		return true
	}
	return false
}

// enqueue takes n bytes now if they fit and no one is waiting, or takes a
// place in the queue: for an event loop, which must not wait. Its client
// waits unread instead, and the loop checks granted each iteration.
func (b *budget) enqueue(n int64) *budgetWaiter {
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiting) == 0 && b.fits(n) {
		b.used += n
		close(w.ready)
		return w
	}
	b.waiting = append(b.waiting, w)
	return w
}

// granted says whether w's bytes are taken.
func (w *budgetWaiter) granted() bool {
	select {
	case <-w.ready:
		return true
	default:
		return false
	}
}

// cancel gives up w's place, or its bytes if they were granted.
func (b *budget) cancel(w *budgetWaiter) {
	b.mu.Lock()
	for i, q := range b.waiting {
		if q == w {
			b.waiting = append(b.waiting[:i], b.waiting[i+1:]...)
			b.mu.Unlock()
			return
		}
	}
	b.mu.Unlock()
	b.release(w.n) // granted meanwhile
}

// take holds n more bytes without waiting: bytes already in memory.
func (b *budget) take(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// release gives n bytes back and wakes the waiters that now fit.
func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	for len(b.waiting) > 0 && b.fits(b.waiting[0].n) {
		w := b.waiting[0]
		b.waiting[0] = nil
		b.waiting = b.waiting[1:]
		b.used += w.n
		close(w.ready)
	}
	b.mu.Unlock()
}

// held is the bytes held now, for tests and logs.
func (b *budget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// largeReads bounds how many clients may be part-way through reading a
// large request at once. The budget is taken when a batch runs, but a
// client's request is buffered until it is whole, and for a request of
// many small arguments its buffers and bookkeeping cost several times the request's
// bytes (three MGETs of 550,000 keys, 7.6 MB each, held about 110 MB
// before any of them could run). A client whose request passes
// largeRequestBytes waits for a slot before reading more of it, and gives
// the slot back once the batch holding that request has run (or the client
// has gone): what large requests hold while they are read is bounded by
// the slots, and the rest wait unread in the kernel, as the budget's
// backpressure does.
//
// Waiting cannot deadlock: a slot's holder needs nothing but its own
// client's bytes and then the budget, and a client waiting for a slot
// holds no budget (its previous batch released everything when it ended).
type largeReads chan struct{}

// largeRequestBytes is the size from which a request being read needs a
// slot: above session payloads (codec.max_payload_bytes defaults to 1 MiB)
// so ordinary traffic never waits for one.
const largeRequestBytes = 1 << 20

// largeReadCost is how many times its size a request of small arguments
// holds while it is read (a doubling read buffer or a copy of the
// request, and a slice header and two offsets per argument).
const largeReadCost = 6

// newLargeReads gives as many slots as requests of max_request_bytes fit
// in the budget at largeReadCost, and at least one.
func newLargeReads(opts Options) largeReads {
	return make(largeReads, max(1, opts.MaxInflightBytes/(largeReadCost*opts.MaxRequestBytes)))
}

// unfinishedBytes bounds what clients hold of requests they have not
// finished sending, which the budget cannot see: it takes a request's
// bytes once the request is whole. A client's unfinished request may hold
// clientMemory (the share of the Go memory limit each client has) without
// a charge, so session-sized requests, which arrive in one read, never
// touch it; past that, what its buffer holds is charged here as it grows,
// and given back once the request is whole (the budget then takes the
// whole request, as for any other) or the client has gone.
//
// While what is charged is at max (half of max_inflight_bytes), a client
// whose unfinished request is already charged is not read, and others read
// at most clientMemory of a request; request_timeout runs meanwhile, so a
// client that stopped sending part-way is closed and gives its bytes back.
// One client at a time (turn) may read on while it is full, so clients
// that each sent part of a request and wait for the others cannot all
// wait until they time out; one holding a large read's slot always reads
// on (largeReads bounds those).
type unfinishedBytes struct {
	max  int64
	used atomic.Int64
	turn chan struct{} // one client reading on past max

	mu   sync.Mutex
	room chan struct{} // closed, and replaced, when used falls below max
}

func newUnfinishedBytes(max int64) *unfinishedBytes {
	return &unfinishedBytes{max: max, turn: make(chan struct{}, 1), room: make(chan struct{})}
}

// full says whether clients must stop reading unfinished requests.
func (u *unfinishedBytes) full() bool { return u.used.Load() >= u.max }

// change charges n more bytes (fewer, for n < 0), which are in memory
// already: it never waits.
func (u *unfinishedBytes) change(n int64) {
	if n == 0 {
		return
	}
	if now := u.used.Add(n); n < 0 && now < u.max && now-n >= u.max {
		u.mu.Lock()
		close(u.room)
		u.room = make(chan struct{})
		u.mu.Unlock()
	}
}

// roomCh is closed once there may be room: for a goroutine to wait on
// after it found full.
func (u *unfinishedBytes) roomCh() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.full() {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return u.room
}

// tryTurn takes the turn to read on past max, if no one holds it.
func (u *unfinishedBytes) tryTurn() bool {
	select {
	case u.turn <- struct{}{}:
		return true
	default:
		return false
	}
}

func (u *unfinishedBytes) releaseTurn() { <-u.turn }
