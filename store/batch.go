package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Batch queues upstream operations and sends them together, so a client's
// pipelined commands cost one round trip (per node, in a cluster) instead
// of one each. Results are read from the handles the queueing methods
// return, after Exec.
//
// A batch is three pieces: the queue (this file: each operation recorded
// with its kind, keys, slot and result slot as it is queued), the plan
// (plan.go: the upstream commands the queue becomes, runs merged into
// MGETs and script calls) and the sender (send.go: waves, and recovery
// from NOSCRIPT and TRYAGAIN). A batch that is one single write or read
// may instead go through a combiner (combine.go).
//
// On the store's shared batches (NewBatch) the commands go through the
// store's auto-pipeliner, which also merges them with other clients'
// commands into shared upstream pipelines, in submission order. A batch
// bound to one node (bulk commands) uses a plain pipeline on that node.
//
// A Batch is reused by one client connection; it is not safe for concurrent
// use.
type Batch struct {
	s    *Store
	ops  []op
	plan plan
	out  sender
	// slab holds the result slots of the merged reads and writes queued
	// since the last Exec: one allocation for them all, sized by the last
	// batch (slabHint), and dropped by the batch when it has run, so the
	// slots live as long as their handles and no longer.
	slab     []opResult
	slabHint int
	// lastTTL and lastPX: the last native write's TTL, formatted (pxArg).
	lastTTL time.Duration
	lastPX  string
	// combine: a batch of one merged read or write goes through the
	// store's combiner (Options.Combine).
	combine bool
	// tx: the batch runs as MULTI … EXEC on this pinned connection
	// (tx.go); side holds its owner-index updates, sent after the EXEC.
	tx   *Pinned
	side []redis.Cmder
	// dry: a batch that is never sent (DryBatch).
	dry bool
	// grouped marks the batch a combiner sends a group with, which must
	// not be handed to a combiner again.
	grouped bool
	// parties records whose operations these are, where one batch carries
	// several clients' (an event loop's round, a combiner's group):
	// recovery may then send a client's command again after another
	// client's (sender.again).
	parties []partyMark
	// room bounds the reads queued next (SetRoom).
	room *Room
	// until is the context Exec sends with: its deadline bounds the
	// batch's whole wait for Redis (sendDeadline).
	until deadlineCtx
}

// partyMark says that the operations from ops[from] on, until the next
// mark, were queued by the party id: a client, whose operations keep
// their order among themselves but not among other clients'. 0: not known.
type partyMark struct {
	from int
	id   int64
}

// SetParty says that the operations queued next, until the next
// SetParty, are client id's (not 0). A batch no one calls it on is one
// party's, as recovery has always assumed.
func (b *Batch) SetParty(id int64) {
	if n := len(b.parties); n > 0 && b.parties[n-1].from == len(b.ops) {
		b.parties[n-1].id = id
		return
	}
	b.parties = append(b.parties, partyMark{from: len(b.ops), id: id})
}

// partiesOf returns, for each of n operations, its party under marks
// (0: not known).
func partiesOf(marks []partyMark, n int) []int64 {
	out := make([]int64, n)
	for i, m := range marks {
		to := n
		if i+1 < len(marks) {
			to = marks[i+1].from
		}
		for j := m.from; j < to; j++ {
			out[j] = m.id
		}
	}
	return out
}

// opKind says how an operation becomes upstream commands.
type opKind uint8

const (
	// opCommand is an operation that is its own upstream command.
	opCommand opKind = iota
	// opRead is a plain GET: consecutive ones of a slot share one MGET.
	opRead
	// opWrite is a common-case write: consecutive ones of a slot share
	// one setManyScript call.
	opWrite
	// opAbsent is a check that a key holds nothing (absent.go):
	// consecutive ones of a slot share one EXISTS.
	opAbsent
)

// op is one queued operation, recorded as it is queued: what the plan and
// the sender need to know of it is never read back from its arguments.
type op struct {
	kind opKind
	// read: no side effects, so it may be sent again.
	read bool
	// unordered: its place among the batch's others does not matter (the
	// owner index); it does not close the open run of writes.
	unordered bool
	// key is its one key; keys instead, for a command of several. opaque:
	// its keys are not known here, and recovery and waves treat it as
	// touching every key.
	key    string
	keys   []string
	opaque bool
	slot   int // key's cluster slot; -1 on a single node
	// cmd is an opCommand's upstream command, which is also its result.
	cmd    redis.Cmder
	script *redis.Script // the proxy's script cmd runs (EVAL in a transaction)
	user   *UserScript   // the client's script cmd runs, loaded on NOSCRIPT
	// value and ttl are an opWrite's arguments; res is an opRead's or
	// opWrite's result slot, filled when the batch has run.
	value []byte
	ttl   string
	res   *opResult
	// room: what an opRead's value may take (Batch.SetRoom); nil: no bound.
	room *Room
}

// opResult is a merged read's or write's own result: errNoResult until
// the batch has given it one.
type opResult struct {
	data   []byte // a read's value
	status int64  // a write's status (setManyScript's reply for its key)
	// err is the call's error, or the key's own error reply (a write's
	// WRONGTYPE); redis.Nil for a missing read.
	err error
	// absent: a GET's nil, or an opAbsent's key, is no key at all
	// (absent.go).
	absent bool
}

// result hands out the next result slot. A full slab is left to its
// handles, and a larger one started.
func (b *Batch) result() *opResult {
	if len(b.slab) == cap(b.slab) {
		b.slab = make([]opResult, 0, max(4, b.slabHint, 2*cap(b.slab)))
	}
	b.slab = b.slab[:len(b.slab)+1]
	res := &b.slab[len(b.slab)-1]
	res.err = errNoResult
	return res
}

// slotOf is key's cluster slot, -1 on a single node.
func (b *Batch) slotOf(key string) int {
	if b.s.cluster != nil {
		return Slot(key)
	}
	return -1
}

// addRead queues a plain GET of key, which the plan may merge into an
// MGET, its value bounded by room (nil: not bounded).
func (b *Batch) addRead(key string, room *Room) GetResult {
	res := b.result()
	b.ops = append(b.ops, op{kind: opRead, read: true, key: key, slot: b.slotOf(key), res: res, room: room})
	return GetResult{res: res, s: b.s, key: key}
}

// addToRun queues a common-case write, which the plan may merge into a
// setManyScript call.
func (b *Batch) addToRun(key string, value []byte, ttl string) WriteResult {
	res := b.result()
	b.ops = append(b.ops, op{kind: opWrite, key: key, slot: b.slotOf(key), value: value, ttl: ttl, res: res})
	return WriteResult{res: res}
}

// add queues cmd, a command on key.
func (b *Batch) add(cmd redis.Cmder, read bool, key string) {
	b.ops = append(b.ops, op{cmd: cmd, read: read, key: key, slot: b.slotOf(key)})
}

// addMulti queues cmd, a command on keys (none: keys not known here).
func (b *Batch) addMulti(cmd redis.Cmder, read bool, keys []string) *op {
	o := op{cmd: cmd, read: read, keys: keys, opaque: len(keys) == 0, slot: -1}
	if len(keys) > 0 {
		o.slot = b.slotOf(keys[0])
	}
	b.ops = append(b.ops, o)
	return &b.ops[len(b.ops)-1]
}

// addUnordered queues cmd, on key, whose place among the batch's others
// does not matter (the owner index): it does not close the open run of
// writes.
func (b *Batch) addUnordered(cmd redis.Cmder, key string) {
	if b.tx != nil || b.dry {
		b.side = append(b.side, cmd)
		return
	}
	b.ops = append(b.ops, op{cmd: cmd, unordered: true, key: key, slot: b.slotOf(key)})
}

// script queues an EVALSHA of sc on key with args.
func (b *Batch) script(sc *redis.Script, read bool, key string, args ...interface{}) *redis.Cmd {
	cmd := redis.NewCmd(context.Background(), append([]interface{}{"evalsha", sc.Hash(), 1, key}, args...)...)
	b.ops = append(b.ops, op{cmd: cmd, read: read, key: key, slot: b.slotOf(key), script: sc})
	return cmd
}

// NewBatch returns an empty batch on the store.
func (s *Store) NewBatch() *Batch {
	b := &Batch{s: s, combine: s.writes != nil}
	switch {
	case s.lanes != nil:
		b.out = sender{t: &laneTransport{lanes: s.lanes, lane: s.lanes.pick()}, up: s}
	case s.nodes != nil:
		t := &clusterTransport{lanes: s.nodes, auto: autoTransport{ap: s.ap}}
		t.lane.lane = s.nodes.pick()
		b.out = sender{t: t, up: s, waves: true}
	default:
		b.out = sender{t: pipeTransport{s.client.Pipeline()}, up: s}
	}
	return b
}

// nodeBatch returns an empty batch bound to one node.
func (s *Store) nodeBatch(node *redis.Client) *Batch {
	return &Batch{s: s, out: sender{t: pipeTransport{node.Pipeline()}, up: s}}
}

// Exec sends every queued command and waits for all replies. Each handle
// then holds its own result or error; Exec itself only fails when the
// context does. The batch is empty and reusable afterwards. Commands that
// did not run are sent again (sender.recover).
func (b *Batch) Exec(ctx context.Context) error {
	if b.dry || b.tx != nil {
		return ErrDryRun // a transaction's batch goes with Commit
	}
	if len(b.ops) == 0 {
		return nil
	}
	defer b.reset()
	send := b.sendDeadline(ctx)
	if b.combine && !b.grouped && len(b.ops) == 1 {
		switch o := b.ops[0]; o.kind {
		case opWrite: // the whole batch is one write
			b.s.writes.do(send, o.slot, o)
			return ctx.Err()
		case opRead: // the whole batch is one read
			b.s.reads.do(send, o.slot, o)
			b.out.received += 32 + int64(len(o.res.data))
			return ctx.Err()
		}
	}
	b.plan.build(b.ops, b.s.slotMigrating)
	b.out.exec(send, b.ops, b.parties, &b.plan)
	b.plan.deliver(b.ops)
	for i := range b.ops {
		if b.ops[i].user != nil {
			b.s.killTimedOutScript(b.ops[i].cmd.Err())
		}
	}
	return ctx.Err()
}

// sendDeadline is ctx with a deadline upstream.read_timeout from now, or
// ctx where its own deadline is earlier (a combiner's or a lane's group,
// sent with its first batch's context). go-redis bounds each read and
// write by its timeout (ContextTimeoutEnabled: and by this deadline), but
// a batch also waits for the pipeline ahead of it on its lane or in its
// combiner, and on a new connection go-redis first reads HELLO's reply
// under a read_timeout of its own: with Redis stopped (SIGSTOP) and the
// 3 s default, clients waited up to 12 s, and some were answered only when
// Redis came back (TestStalledUpstreamAnswersWithinTheReadTimeout). The
// dial of a new connection is inside the deadline too.
func (b *Batch) sendDeadline(ctx context.Context) context.Context {
	d := time.Now().Add(b.s.opts.ReadTimeout)
	if own, ok := ctx.Deadline(); ok && own.Before(d) {
		return ctx
	}
	b.until = deadlineCtx{Context: ctx, deadline: d}
	return &b.until
}

// deadlineCtx is a context with a deadline and no timer: go-redis and the
// dialer read the deadline (ctx.Deadline) to set the socket's, which is
// all a batch needs. context.WithTimeout would start and stop a timer and
// allocate for every batch. Its Done and Err are its parent's, so the
// proxy's shutdown still cancels it.
type deadlineCtx struct {
	context.Context
	deadline time.Time
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// reset empties the batch, dropping the payloads and commands until the
// next one.
func (b *Batch) reset() {
	if len(b.slab) > 0 {
		b.slabHint = min(len(b.slab), 2*maxRunKeys)
	}
	b.slab = nil
	clear(b.ops)
	b.ops = b.ops[:0]
	b.parties = b.parties[:0]
	b.plan.reset()
}

// TakeReplyBytes is the size in memory of the replies received by the
// Execs since it was last called: what the proxy holds for its client
// until the replies are written (server.max_inflight_bytes).
func (b *Batch) TakeReplyBytes() int64 {
	n := b.out.received
	b.out.received = 0
	return n
}
