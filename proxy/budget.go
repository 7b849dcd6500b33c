package proxy

import "sync"

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
