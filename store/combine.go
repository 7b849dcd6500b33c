package store

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// writeCombiner merges the single writes of different clients (every
// write at pipeline depth 1) into shared script calls: a script call costs
// Redis several times a SET. One call per slot is in flight; writes that
// arrive meanwhile wait, and the first of them sends them all as one call
// when it returns (group commit). A lone client never waits: with nothing
// in flight its write goes at once.
type writeCombiner struct {
	s     *Store
	mu    sync.Mutex
	slots map[int]*slotQueue
}

// slotQueue is one slot's writes waiting for the call in flight.
type slotQueue struct {
	busy    bool        // a call is in flight
	waiting []*writeRun // sent together when it returns
}

func newWriteCombiner(s *Store) *writeCombiner {
	return &writeCombiner{s: s, slots: make(map[int]*slotQueue)}
}

// write sends r, alone or merged with other clients' runs, and returns
// once r's results are in r.vals and r.err.
func (w *writeCombiner) write(ctx context.Context, r *writeRun) {
	w.mu.Lock()
	q := w.slots[r.slot]
	if q == nil {
		q = &slotQueue{}
		w.slots[r.slot] = q
	}
	if q.busy {
		r.ready = make(chan []*writeRun, 1)
		q.waiting = append(q.waiting, r)
		w.mu.Unlock()
		group := <-r.ready
		if group == nil {
			return // a leader sent r with its own group
		}
		w.lead(ctx, q, group) // r is the first of the next group: send it
		return
	}
	q.busy = true
	w.mu.Unlock()
	w.lead(ctx, q, []*writeRun{r})
}

// lead sends group as shared calls, then hands the runs that arrived
// meanwhile to the first of them, or marks the slot idle. The hand-off is
// deferred: should sending panic, the waiting clients still get an answer
// (errNoResult: whether their writes were applied is unknown) and the slot
// does not stay busy for ever.
func (w *writeCombiner) lead(ctx context.Context, q *slotQueue, group []*writeRun) {
	defer w.handOff(q, group)
	w.send(ctx, group)
}

func (w *writeCombiner) handOff(q *slotQueue, group []*writeRun) {
	for _, r := range group {
		if r.vals == nil && r.err == nil {
			r.err = errNoResult
		}
	}
	for _, r := range group[1:] {
		r.ready <- nil
	}
	w.mu.Lock()
	next := q.waiting
	q.waiting = nil
	if len(next) == 0 {
		q.busy = false
	}
	w.mu.Unlock()
	if len(next) > 0 {
		next[0].ready <- next
	}
}

// send runs group as setManyScript calls of at most maxRunKeys keys each,
// in one batch (which also recovers from NOSCRIPT), and gives every run its
// own results.
func (w *writeCombiner) send(ctx context.Context, group []*writeRun) {
	b := w.s.NewBatch()
	var calls []*redis.Cmd
	var owners [][]*writeRun
	for start := 0; start < len(group); {
		end, keys := start, 0
		for end < len(group) && (end == start || keys+len(group[end].keys) <= maxRunKeys) {
			keys += len(group[end].keys)
			end++
		}
		cmd := setManyCmd(group[start:end]...)
		b.add(cmd, false)
		calls = append(calls, cmd)
		owners = append(owners, group[start:end])
		start = end
	}
	_ = b.Exec(ctx) // each call's error is its own, read from it
	for i, cmd := range calls {
		vals, err := cmd.Slice()
		for _, r := range owners[i] {
			switch {
			case err != nil:
				r.err = err
			case len(vals) < len(r.keys):
				r.err = errNoResult
			default:
				r.vals, vals = vals[:len(r.keys)], vals[len(r.keys):]
			}
		}
	}
}
