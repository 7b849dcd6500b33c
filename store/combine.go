package store

import (
	"context"
	"sync"
)

// groupCommit merges the one-command batches of different clients (every
// command at pipeline depth 1) into shared upstream calls, per slot. One
// call per slot is in flight; runs that arrive meanwhile wait, and the
// first of them sends them all as one call when it returns. A lone client
// never waits: with nothing in flight its run goes at once.
//
// Writes are merged into setManyScript calls (a script call costs Redis
// several times a SET), reads into MGETs. A batch of one such read or
// write goes to its combiner (Batch.Exec) with Options.Combine. Longer
// write runs already share a call, and holding them for a group commit
// measured slower (SET -P 16: 0.27 of direct Redis before, 0.20 with).
type groupCommit[R any] struct {
	mu       sync.Mutex
	slots    map[int]*slotQueue[R]
	newBatch func() *Batch
	// send sends group as shared calls on b, the slot's own batch, and
	// gives every run its result.
	send func(ctx context.Context, b *Batch, group []R)
	// noResult gives errNoResult to a run that send left without a result.
	noResult func(R)
}

// slotQueue is one slot's runs waiting for the call in flight.
//
// Only the run that leads the slot's current group touches batch and runs,
// so they are reused from group to group, and the group's slice becomes
// the next waiting list.
type slotQueue[R any] struct {
	busy    bool         // a call is in flight
	waiting []waiter[R]  // sent together when it returns
	spare   []waiter[R]  // a finished group's slice, for the next waiting list
	lone    [1]waiter[R] // the group of a run that found the slot idle
	batch   *Batch
	runs    []R
}

// waiter is a run waiting in a slotQueue, and how it learns its fate: nil
// when another run's group took it along, or the group it is first of and
// sends.
type waiter[R any] struct {
	run   R
	ready chan []waiter[R]
}

// do sends r, alone or merged with other clients' runs, and returns once
// send has given r its result.
func (g *groupCommit[R]) do(ctx context.Context, slot int, r R) {
	g.mu.Lock()
	if g.slots == nil {
		g.slots = make(map[int]*slotQueue[R])
	}
	q := g.slots[slot]
	if q == nil {
		q = &slotQueue[R]{}
		g.slots[slot] = q
	}
	if q.busy {
		w := waiter[R]{run: r, ready: make(chan []waiter[R], 1)}
		if q.waiting == nil {
			q.waiting, q.spare = q.spare, nil
		}
		q.waiting = append(q.waiting, w)
		g.mu.Unlock()
		if group := <-w.ready; group != nil {
			g.lead(ctx, q, group) // r is the first of the next group: send it
		}
		return
	}
	q.busy = true
	q.lone[0] = waiter[R]{run: r}
	g.mu.Unlock()
	g.lead(ctx, q, q.lone[:])
}

// lead sends group, then hands the runs that arrived meanwhile to the
// first of them, or marks the slot idle. The hand-off is deferred: should
// sending panic, the waiting clients still get an answer (errNoResult:
// whether their writes were applied is unknown) and the slot does not stay
// busy for ever.
func (g *groupCommit[R]) lead(ctx context.Context, q *slotQueue[R], group []waiter[R]) {
	q.runs = q.runs[:0]
	for _, w := range group {
		q.runs = append(q.runs, w.run)
	}
	if q.batch == nil {
		q.batch = g.newBatch()
		q.batch.grouped = true
	}
	defer g.handOff(q, group)
	g.send(ctx, q.batch, q.runs)
}

func (g *groupCommit[R]) handOff(q *slotQueue[R], group []waiter[R]) {
	for _, r := range q.runs {
		g.noResult(r)
	}
	clear(q.runs)
	for _, w := range group[1:] {
		w.ready <- nil
	}
	clear(group)
	g.mu.Lock()
	next := q.waiting
	q.waiting = nil
	if &group[0] != &q.lone[0] {
		q.spare = group[:0]
	}
	if len(next) == 0 {
		q.busy = false
	}
	g.mu.Unlock()
	if len(next) > 0 {
		next[0].ready <- next
	}
}

// newCombiner is a combiner of single reads or writes (opRead, opWrite)
// on s: the slot's batch plans a group as it would one client's
// consecutive reads or writes, into MGETs or setManyScript calls of at
// most maxRunKeys keys (plan.go), and delivers each its own result.
func newCombiner(s *Store) *groupCommit[op] {
	return &groupCommit[op]{
		newBatch: s.NewBatch,
		send:     sendGroup,
		noResult: func(op) {}, // a result slot is errNoResult until given one
	}
}

// sendGroup sends group, reads or writes of one slot, as one batch (which
// also recovers from NOSCRIPT and TRYAGAIN).
func sendGroup(ctx context.Context, b *Batch, group []op) {
	// Each operation is a different client's batch of one.
	for i := range group {
		b.SetParty(int64(i) + 1)
		b.ops = append(b.ops, group[i])
	}
	_ = b.Exec(ctx) // each operation's error is its own
}
