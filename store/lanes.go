package store

import (
	"context"
	"runtime"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// lanes are the store's shared upstream pipelines outside a cluster
// (upstream.auto_pipeline on a single server or behind Sentinel): the
// transport (send.go) of every batch but a node's or a transaction's. Every
// client's batch joins the queue of one lane; the client that finds its
// lane idle sends what is queued there as one pipeline on its own
// goroutine — writes it, reads every reply into its command — and then
// wakes the clients whose commands rode along, while those that queued
// meanwhile go next as the following pipeline (groupCommit). A request
// costs at most one goroutine hand-off, none for the client that sends:
// go-redis's auto-pipeliner took two (to its writer goroutine, and back
// from its reader), and on a 2-core machine those wake-ups cost more CPU
// per request than the proxy's own work (docs/performance.md).
//
// One lane carries one pipeline at a time. A client's batches are
// sequential (the next waits for Exec), so a client keeps its order
// whichever lane it uses; each batch has one lane for its life.
//
// A cluster keeps go-redis's auto-pipeliner, which routes each command to
// its node and follows MOVED and ASK.
type lanes struct {
	queue *groupCommit[*laneReq]
	n     uint32
	next  atomic.Uint32
}

// laneReq is one batch's commands waiting in, or sent by, a lane.
type laneReq struct {
	cmds []redis.Cmder
	sent bool
}

// laneCount is how many pipelines may be in flight at once: one per two
// of the process's CPUs (one on a 2-core machine, where a second lane
// measured no faster), at least one.
func laneCount() int {
	return max(1, runtime.GOMAXPROCS(0)/2)
}

func newLanes(s *Store, n int) *lanes {
	node := s.client.(*redis.Client)
	return &lanes{
		n: uint32(n),
		queue: &groupCommit[*laneReq]{
			newBatch: func() *Batch { return s.nodeBatch(node) },
			send:     sendLane,
			noResult: func(r *laneReq) {
				if !r.sent { // sending panicked: whether each ran is unknown
					for _, cmd := range r.cmds {
						cmd.SetErr(errNoResult)
					}
				}
			},
		},
	}
}

// pick is the lane of a new batch, round robin.
func (l *lanes) pick() int {
	return int(l.next.Add(1) % l.n)
}

// laneTransport is a batch's way onto its lane: it sends the batch's
// commands, alone or in one pipeline with the batches queued there, and
// returns once each has its reply.
type laneTransport struct {
	lanes *lanes
	lane  int
	req   laneReq // reused from send to send: a batch sends one at a time
}

func (t *laneTransport) send(ctx context.Context, cmds []redis.Cmder) {
	t.req.cmds, t.req.sent = cmds, false
	t.lanes.queue.do(ctx, t.lane, &t.req)
	t.req.cmds = nil
}

// sendLane sends group as one pipeline on b, the lane's own node batch.
// Each command's error is its own, read from it.
func sendLane(ctx context.Context, b *Batch, group []*laneReq) {
	pipe := b.out.t.(pipeTransport).pipe
	for _, r := range group {
		for _, cmd := range r.cmds {
			_ = pipe.Process(ctx, cmd)
		}
	}
	_, _ = pipe.Exec(ctx)
	for _, r := range group {
		r.sent = true
	}
}
