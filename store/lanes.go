package store

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
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
// In a cluster each master has lanes of its own (clusterTransport): a wave
// of commands that all fall in one slot goes on a lane of that slot's
// master, everything else through go-redis's auto-pipeliner.
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
// of the process's CPUs, at least one, and at least asked (Options.Lanes).
// A goroutine per client measured no faster with a second lane on two
// CPUs, and SET -P 1 slower (fewer commands share a pipeline); but two
// event loops there (server.event_loops = 2) each wait for their round's
// replies, and with one lane the second loop's round waited for the
// first's while Redis idled (docs/performance.md, session 14).
func laneCount(asked int) int {
	return max(1, runtime.GOMAXPROCS(0)/2, asked)
}

func newLanes(s *Store, node *redis.Client, n int) *lanes {
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

func (t *laneTransport) send(ctx context.Context, cmds []redis.Cmder, _ string) {
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

// clusterLanes are the lanes of each master of a cluster, keyed by
// go-redis's client of the node: a node go-redis replaces (its address
// left the cluster and came back) gets new lanes.
type clusterLanes struct {
	s     *Store
	n     int
	next  atomic.Uint32
	mu    sync.RWMutex
	nodes map[*redis.Client]*lanes
}

// pick is the lane, of whichever master, of a new batch, round robin.
func (c *clusterLanes) pick() int {
	return int(c.next.Add(1) % uint32(c.n))
}

// maxClusterLanes bounds the lanes kept: past it they are dropped and made
// again as used (nodes come and go with failovers and resharding). A
// cluster of more masters than that would remake them needlessly often.
const maxClusterLanes = 64

func (c *clusterLanes) of(node *redis.Client) *lanes {
	c.mu.RLock()
	l := c.nodes[node]
	c.mu.RUnlock()
	if l != nil {
		return l
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l = c.nodes[node]; l == nil {
		if len(c.nodes) >= maxClusterLanes {
			c.nodes = make(map[*redis.Client]*lanes)
		}
		l = newLanes(c.s, node, c.n)
		c.nodes[node] = l
	}
	return l
}

// clusterTransport is a cluster batch's transport. A wave whose commands
// all fall in one slot (every command at pipeline depth 1) goes on a lane
// of that slot's master, as on a single server: one goroutine hand-off at
// most, where the auto-pipeliner takes two. A command the node did not run
// because the slot map the proxy routed by was stale (MOVED, ASK, or
// READONLY, CLUSTERDOWN and MASTERDOWN from a master being failed over)
// is sent again through the auto-pipeliner, which follows redirects and
// reloads the slot map. Any other wave goes through the auto-pipeliner
// too, which writes to each node concurrently.
type clusterTransport struct {
	lanes *clusterLanes
	auto  autoTransport
	lane  laneTransport
	again []redis.Cmder
}

func (t *clusterTransport) send(ctx context.Context, cmds []redis.Cmder, key string) {
	if key == "" {
		t.auto.send(ctx, cmds, "")
		return
	}
	node, err := t.lanes.s.cluster.MasterForKey(ctx, key)
	if err != nil { // no slot map yet, or no master for the slot
		t.auto.send(ctx, cmds, "")
		return
	}
	t.lane.lanes = t.lanes.of(node)
	t.lane.send(ctx, cmds, key)
	stale := false
	for _, cmd := range cmds {
		if again, moved := notRunHere(cmd.Err()); again {
			t.again = append(t.again, cmd)
			stale = stale || moved
		}
	}
	if stale {
		// Reload the slot map now: observe sees only the final answers
		// of the commands sent again. Not for ASK alone, which says a
		// slot is being migrated, not that the map is stale: a reload
		// then would hold the next, needed one back (go-redis reloads at
		// most every 200 ms).
		t.lanes.s.cluster.ReloadState(context.Background())
	}
	if len(t.again) > 0 {
		for _, cmd := range t.again {
			// The auto-pipeliner keeps an error a command already has
			// when it fails it without an answer (no connection to the
			// new master yet): the client would see the MOVED.
			cmd.SetErr(nil)
		}
		t.auto.send(ctx, t.again, "")
		clear(t.again)
		t.again = t.again[:0]
	}
}

// notRunHere reports whether err is a node's answer that it did not run
// the command because the slot is, or is about to be, another node's
// (moved: the proxy's slot map is stale, as ASK alone does not say); or
// go-redis's client of the node was closed (the node left the cluster)
// before it was sent.
func notRunHere(err error) (again, moved bool) {
	if errors.Is(err, redis.ErrClosed) {
		return true, true
	}
	if !UpstreamReply(err) {
		return false, false
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "ASK ") {
		return true, false
	}
	moved = isTopologyReply(msg)
	return moved, moved
}
