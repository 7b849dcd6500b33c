package store

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Batch queues upstream operations and sends them together, so a client's
// pipelined commands cost one round trip (per node, in a cluster) instead
// of one each. Results are read from the handles the queueing methods
// return, after Exec.
//
// On the store's shared batches (NewBatch) the commands go through the
// store's auto-pipeliner, which also merges them with other clients'
// commands into shared upstream pipelines, in submission order. A batch
// bound to one node (bulk commands) uses a plain pipeline on that node.
//
// A Batch is reused by one client connection; it is not safe for concurrent
// use.
type Batch struct {
	s       *Store
	pipe    redis.Pipeliner      // node-bound batches
	ap      *redis.AutoPipeliner // shared batches, when auto-pipelining
	queued  []queued
	futures []redis.AutoFuture
	run     *writeRun // the open run of fast-path writes, if any
	reads   *readRun  // the open run of plain reads, if any
	after   []queued  // unordered commands waiting for the run to close
	// received is the size of the replies the batch's Execs got since
	// TakeReplyBytes last read it.
	received int64
	// tx: the batch runs as MULTI … EXEC on this pinned connection
	// (tx.go); side holds its owner-index updates, sent after the EXEC.
	tx   *Pinned
	side []redis.Cmder
	// dry: a batch that is never sent (DryBatch).
	dry bool
	// grouped marks the batch a combiner sends a group with, which must
	// not be handed to a combiner again.
	grouped bool
}

// writeRun is consecutive common-case writes of one batch (and of one slot,
// in a cluster), sent as a single setManyScript call: a client's pipelined
// SETs then cost Redis one script call, not one each.
//
// A batch that is nothing but one such write goes through the store's
// write combiner instead, merged with other clients' writes; its results
// are then in vals and err rather than cmd. Longer runs already share a
// call, and holding them for a group commit measured slower (SET -P 16:
// 0.27 of direct Redis before, 0.20 with).
type writeRun struct {
	cmd  *redis.Cmd // set when the run is closed
	slot int
	keys []string
	args []interface{} // value, ttl per key

	vals []interface{} // per key, when combined
	err  error         // of the shared call, when combined

	// parts are one call per key, when the slot is being migrated (see
	// Batch.recover).
	parts []*redis.Cmd
}

// results are the run's per-key replies: a value, or the key's error.
func (r *writeRun) results() ([]interface{}, error) {
	switch {
	case r.parts != nil:
		vals := make([]interface{}, len(r.parts))
		for i, part := range r.parts {
			v, err := part.Slice()
			switch {
			case err != nil:
				vals[i] = err
			case len(v) == 0:
				vals[i] = errNoResult
			default:
				vals[i] = v[0]
			}
		}
		return vals, nil
	case r.cmd != nil:
		return r.cmd.Slice()
	}
	return r.vals, r.err
}

// setManyCmd is one setManyScript call writing keys, with args the value
// and ttl of each.
func setManyCmd(keys []string, args []interface{}) *redis.Cmd {
	call := make([]interface{}, 3, 3+len(keys)+len(args))
	call[0], call[1], call[2] = "evalsha", setManyScript.Hash(), len(keys)
	for i := range keys {
		call = append(call, &keys[i]) // a pointer: boxing a string would allocate
	}
	call = append(call, args...)
	return redis.NewCmd(context.Background(), call...)
}

// split makes r one script call per key (parts), for a slot being
// migrated, and returns them.
func (r *writeRun) split() []redis.Cmder {
	r.parts = make([]*redis.Cmd, len(r.keys))
	cmds := make([]redis.Cmder, len(r.keys))
	for i, k := range r.keys {
		r.parts[i] = setManyCmd([]string{k}, r.args[2*i:2*i+2])
		cmds[i] = r.parts[i]
	}
	return cmds
}

// maxRunKeys bounds one script call, so a huge pipeline does not hold
// Redis in one script for long.
const maxRunKeys = 128

// readRun is consecutive plain reads of one batch (and of one slot, in a
// cluster), sent as one MGET: Redis and the proxy then handle one command
// for a client's pipelined GETs, not one each. A run of one is a GET.
//
// MGET answers nil where GET answers WRONGTYPE, so a key in the namespace
// that is not a string reads as missing when its read shares an MGET (with
// its pipeline's reads, or other clients' in the read combiner); a GET sent
// alone still gets the error. Only the proxy writes the namespace, and only
// strings. In a cluster, a slot being migrated answers a multi-key MGET
// with TRYAGAIN where single GETs are served or follow ASK: such a run is
// sent again as single GETs (Batch.recover), and so are the slot's runs
// for a while after.
//
// A batch that is nothing but one such read goes through the store's read
// combiner instead, merged with other clients' reads into one MGET; its
// result is then in val and err.
type readRun struct {
	mget *redis.Cmd       // 2+ keys
	get  *redis.StringCmd // 1 key
	slot int
	keys []string

	gets []*redis.StringCmd // per key, when the MGET met a slot migration

	shared GetResult // combined: its read in the shared run
	done   bool      // combined: val and err are set
	val    []byte    // combined: the value
	err    error     // combined: redis.Nil, or the read's error
}

// split makes r one GET per key (gets), for a slot being migrated, and
// returns them.
func (r *readRun) split() []redis.Cmder {
	r.gets = make([]*redis.StringCmd, len(r.keys))
	cmds := make([]redis.Cmder, len(r.keys))
	for i, k := range r.keys {
		r.gets[i] = redis.NewStringCmd(context.Background(), "get", k)
		cmds[i] = r.gets[i]
	}
	return cmds
}

// slotOf is key's cluster slot, -1 on a single node.
func (b *Batch) slotOf(key string) int {
	if b.s.cluster != nil {
		return Slot(key)
	}
	return -1
}

// addRead queues a plain GET of key, merged into the open read run when it
// can be.
func (b *Batch) addRead(key string) GetResult {
	b.closeRun()
	slot := b.slotOf(key)
	if b.reads == nil || b.reads.slot != slot || len(b.reads.keys) >= maxRunKeys {
		b.closeReads()
		b.reads = &readRun{slot: slot}
	}
	b.reads.keys = append(b.reads.keys, key)
	return GetResult{run: b.reads, idx: len(b.reads.keys) - 1, s: b.s, key: key}
}

// closeReads turns the open read run into its command, in its place in the
// batch's order: a GET, an MGET, or while its slot is being migrated one
// GET per key.
func (b *Batch) closeReads() {
	r := b.reads
	if r == nil {
		return
	}
	b.reads = nil
	if len(r.keys) == 1 {
		r.get = redis.NewStringCmd(context.Background(), "get", r.keys[0])
		b.queued = append(b.queued, queued{cmd: r.get, read: true})
		return
	}
	if b.s.slotMigrating(r.slot) {
		for _, get := range r.split() {
			b.queued = append(b.queued, queued{cmd: get, read: true})
		}
		return
	}
	args := make([]interface{}, 1+len(r.keys))
	args[0] = "mget"
	for i := range r.keys {
		// A pointer: boxing a string would allocate. go-redis writes and
		// hashes *string args; only its multi-shard routing (a command
		// policy MGET does not have) would refuse one.
		args[1+i] = &r.keys[i]
	}
	r.mget = redis.NewCmd(context.Background(), args...)
	b.queued = append(b.queued, queued{cmd: r.mget, read: true, reads: r})
}

// addToRun queues a common-case write, merged into the open run when it
// can be.
func (b *Batch) addToRun(key string, value []byte, ttl string) WriteResult {
	b.closeReads()
	slot := b.slotOf(key)
	if b.run == nil || b.run.slot != slot || len(b.run.keys) >= maxRunKeys {
		b.closeRun()
		b.run = &writeRun{slot: slot}
	}
	b.run.keys = append(b.run.keys, key)
	b.run.args = append(b.run.args, value, ttl)
	return WriteResult{run: b.run, idx: len(b.run.keys) - 1}
}

// closeRun turns the open run into its script call, in its place in the
// batch's order.
func (b *Batch) closeRun() {
	r := b.run
	if r == nil {
		return
	}
	b.run = nil
	b.queueRun(r)
	b.queued = append(b.queued, b.after...)
	clear(b.after)
	b.after = b.after[:0]
}

// queueRun queues r's script call, or while its slot is being migrated
// one call per key.
func (b *Batch) queueRun(r *writeRun) {
	if len(r.keys) > 1 && b.s.slotMigrating(r.slot) {
		for _, part := range r.split() {
			b.queued = append(b.queued, queued{cmd: part})
		}
		return
	}
	r.cmd = setManyCmd(r.keys, r.args)
	b.queued = append(b.queued, queued{cmd: r.cmd, writes: r})
}

// addRun queues r, a run assembled elsewhere (the write combiner's), after
// everything queued so far.
func (b *Batch) addRun(r *writeRun) {
	b.closeRun()
	b.closeReads()
	b.queueRun(r)
}

// addUnordered queues a command whose place among the batch's others does
// not matter (the owner index), without closing the open run of writes.
func (b *Batch) addUnordered(cmd redis.Cmder) {
	if b.tx != nil || b.dry {
		b.side = append(b.side, cmd)
		return
	}
	if b.run == nil {
		b.queued = append(b.queued, queued{cmd: cmd})
		return
	}
	b.after = append(b.after, queued{cmd: cmd})
}

type queued struct {
	cmd redis.Cmder
	// read marks commands without side effects, which may be sent again.
	read   bool
	reads  *readRun    // the read run an MGET serves
	writes *writeRun   // the write run a multi-key script call serves
	user   *UserScript // the client's script an EVALSHA runs, loaded on NOSCRIPT
}

// NewBatch returns an empty batch on the store.
func (s *Store) NewBatch() *Batch {
	if s.ap != nil {
		return &Batch{s: s, ap: s.ap}
	}
	return &Batch{s: s, pipe: s.client.Pipeline()}
}

// nodeBatch returns an empty batch bound to one node.
func (s *Store) nodeBatch(node *redis.Client) *Batch {
	return &Batch{s: s, pipe: node.Pipeline()}
}

func (b *Batch) add(cmd redis.Cmder, read bool) {
	b.closeRun() // the writes and reads before it go first
	b.closeReads()
	b.queued = append(b.queued, queued{cmd: cmd, read: read})
}

func (b *Batch) script(sc *redis.Script, read bool, key string, args ...interface{}) *redis.Cmd {
	cmd := redis.NewCmd(context.Background(), append([]interface{}{"evalsha", sc.Hash(), 1, key}, args...)...)
	b.add(cmd, read)
	return cmd
}

// Exec sends every queued command and waits for all replies. Each handle
// then holds its own result or error; Exec itself only fails when the
// context does. The batch is empty and reusable afterwards. Commands that
// did not run are sent again (recover).
func (b *Batch) Exec(ctx context.Context) error {
	if b.dry || b.tx != nil {
		return ErrDryRun // a transaction's batch goes with Commit
	}
	if b.ap != nil && !b.grouped && len(b.queued) == 0 && len(b.after) == 0 {
		switch {
		case b.run != nil && b.reads == nil && len(b.run.keys) == 1:
			r := b.run // the whole batch is one write
			b.run = nil
			b.s.writes.do(ctx, r.slot, r)
			return ctx.Err()
		case b.reads != nil && b.run == nil && len(b.reads.keys) == 1:
			r := b.reads // the whole batch is one read
			b.reads = nil
			b.s.reads.do(ctx, r.slot, r)
			b.received += 32 + int64(len(r.val))
			return ctx.Err()
		}
	}
	b.closeRun()
	b.closeReads()
	if len(b.queued) == 0 {
		return nil
	}
	defer func() {
		clear(b.queued) // drop the payloads and results until the next batch
		b.queued = b.queued[:0]
	}()
	b.send(ctx, b.queued)
	b.recover(ctx, b.queued)
	return ctx.Err()
}

// maxRecoveryRounds bounds recover: a round's re-sent commands can meet the
// next condition (split writes sent on to a node that lost its scripts).
const maxRecoveryRounds = 3

// recover sends again, in order, what did not run and what must see it.
// Two answers mean a command had no effect:
//   - NOSCRIPT: the node restarted or was failed over and lost its script
//     cache. The scripts are loaded everywhere first; if that fails, the
//     commands that got NOSCRIPT carry its error.
//   - TRYAGAIN, to a run's MGET or script call: in a cluster, a slot being
//     migrated, with some of its keys moved, refuses multi-key commands
//     until the migration ends, and serves or redirects (ASK) single keys.
//     The run goes again one key per command, and so do the slot's runs
//     for a while (migrationHold).
//
// The reads after the first of them go again too, so a read queued after a
// write sees it. But a command is not sent again when a later write to one
// of its keys did run: a read would see that later write, a write would
// undo it. Such a read keeps its first answer, and then a write before it
// to one of its keys is not sent again either: the answer would be stale.
// Such a write keeps its error.
func (b *Batch) recover(ctx context.Context, qs []queued) {
	for round := 0; round < maxRecoveryRounds; round++ {
		first, noScript := -1, false
		for i, q := range qs {
			if didNotRun(q) {
				if first < 0 {
					first = i
				}
				noScript = noScript || isNoScript(q.cmd.Err())
			}
		}
		if first < 0 {
			return
		}
		if noScript {
			err := b.s.loadScripts(ctx)
			if err == nil {
				err = b.s.loadUserScripts(ctx, qs[first:])
			}
			if err != nil {
				for _, q := range qs[first:] {
					if isNoScript(q.cmd.Err()) {
						q.cmd.SetErr(err) // the client sees why, not NOSCRIPT
					}
				}
				return
			}
		}
		if qs = b.again(qs[first:]); len(qs) == 0 {
			return
		}
		b.send(ctx, qs)
	}
}

// didNotRun reports whether q's answer says it had no effect.
func didNotRun(q queued) bool {
	err := q.cmd.Err()
	return isNoScript(err) || (isTryAgain(err) && (q.reads != nil || q.writes != nil))
}

// again returns, in order, the commands of qs (from the first that did not
// run on) to send again, as recover describes. It splits the runs that got
// TRYAGAIN into their per-key commands; those not sent again keep the
// TRYAGAIN.
func (b *Batch) again(qs []queued) []queued {
	// Walking backwards collects the keys of the writes that ran after each
	// command (ran), and of the reads after it that keep their first answer
	// (pinned): a write sent again before such a read would make its answer
	// stale, so it keeps its error instead. resend[i], or per key of a split
	// run keyResend[i], says what goes again.
	resend := make([]bool, len(qs))
	keyResend := make([][]bool, len(qs))
	ran, pinned := make(map[string]bool), make(map[string]bool)
	ranUnknown, pinnedUnknown := false, false // keys the proxy cannot name
	free := func(keys []string, write bool) bool {
		if ranUnknown || (write && pinnedUnknown) {
			return false
		}
		if keys == nil {
			return len(ran) == 0 && (!write || len(pinned) == 0)
		}
		for _, k := range keys {
			if ran[k] || (write && pinned[k]) {
				return false
			}
		}
		return true
	}
	for i := len(qs) - 1; i >= 0; i-- {
		q := qs[i]
		keys := keysOf(q.cmd)
		switch {
		case didNotRun(q) && (q.reads != nil || q.writes != nil):
			// A run: split it, unless it got NOSCRIPT and can go again whole.
			all := true
			keyResend[i] = make([]bool, len(keys))
			for j, k := range keys {
				keyResend[i][j] = free([]string{k}, !q.read)
				all = all && keyResend[i][j]
			}
			if all && isNoScript(q.cmd.Err()) {
				resend[i], keyResend[i] = true, nil
			}
		case didNotRun(q):
			resend[i] = free(keys, !q.read)
		case q.read:
			if resend[i] = free(keys, false); !resend[i] {
				pinnedUnknown = pinnedUnknown || keys == nil
				for _, k := range keys {
					pinned[k] = true
				}
			}
		case keys == nil:
			ranUnknown = true
		default:
			for _, k := range keys {
				ran[k] = true
			}
		}
	}
	var out []queued
	for i, q := range qs {
		switch {
		case keyResend[i] != nil:
			err := q.cmd.Err()
			var parts []redis.Cmder
			var slot int
			if q.writes != nil {
				parts, slot = q.writes.split(), q.writes.slot
			} else {
				parts, slot = q.reads.split(), q.reads.slot
			}
			if isTryAgain(err) {
				b.s.markMigrating(slot)
			}
			for j, part := range parts {
				if keyResend[i][j] {
					out = append(out, queued{cmd: part, read: q.read})
				} else {
					part.SetErr(err)
				}
			}
		case resend[i]:
			out = append(out, q)
		}
	}
	return out
}

// keysOf are the keys a queued command touches, nil when its shape is not
// known here.
func keysOf(cmd redis.Cmder) []string {
	args := cmd.Args()
	if len(args) < 2 {
		return nil
	}
	var keys []interface{}
	switch strings.ToLower(argString(args[0])) {
	case "evalsha", "evalsha_ro":
		n, err := strconv.Atoi(argString(args[2]))
		if err != nil || n < 1 || len(args) < 3+n {
			return nil
		}
		keys = args[3 : 3+n]
	case "mget", "del", "exists", "unlink":
		keys = args[1:]
	default:
		keys = args[1:2]
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = argString(k)
	}
	return out
}

func argString(a interface{}) string {
	switch v := a.(type) {
	case string:
		return v
	case *string:
		return *v
	case []byte:
		return string(v)
	case int:
		return strconv.Itoa(v)
	}
	return ""
}

// send sends qs and waits for their replies.
func (b *Batch) send(ctx context.Context, qs []queued) {
	if b.ap != nil && b.s.cluster != nil && len(qs) > 1 {
		b.sendInWaves(ctx, qs)
		return
	}
	b.sendWave(ctx, qs)
}

// sendInWaves sends qs in as few waves as keep each key's commands in
// order: a command that reads a key an earlier command of its wave writes,
// or writes a key one of them touches, waits for that wave's replies. In a
// cluster, go-redis's auto-pipeliner follows each redirect (ASK, during a
// slot migration) on its own, so commands sent together could run out of
// order on the node they are sent on to. A command whose keys are not known
// here goes in a wave of its own. A pipeline rarely reads what it just
// wrote, so it is nearly always one wave.
func (b *Batch) sendInWaves(ctx context.Context, qs []queued) {
	var touched, written map[string]bool
	start, opaque := 0, false // opaque: the last command's keys are unknown
	for i, q := range qs {
		keys := keysOf(q.cmd)
		conflict := keys == nil || opaque
		opaque = keys == nil
		for _, k := range keys {
			if written[k] || (!q.read && touched[k]) {
				conflict = true
			}
		}
		if conflict && i > start {
			b.sendWave(ctx, qs[start:i])
			start = i
			clear(touched)
			clear(written)
		}
		if touched == nil {
			touched, written = make(map[string]bool), make(map[string]bool)
		}
		for _, k := range keys {
			touched[k] = true
			if !q.read {
				written[k] = true
			}
		}
	}
	b.sendWave(ctx, qs[start:])
}

// sendWave sends qs and waits for their replies.
func (b *Batch) sendWave(ctx context.Context, qs []queued) {
	if b.ap != nil {
		b.futures = b.futures[:0]
		for _, q := range qs {
			b.futures = append(b.futures, b.ap.Submit(ctx, q.cmd))
		}
		for _, f := range b.futures {
			_ = f.Wait() // the error is the command's own, read from its handle
		}
		clear(b.futures)
	} else {
		for _, q := range qs {
			_ = b.pipe.Process(ctx, q.cmd)
		}
		_, _ = b.pipe.Exec(ctx)
	}
	for _, q := range qs {
		b.s.observe(q.cmd.Err())
		b.received += replySize(q.cmd)
	}
}

// TakeReplyBytes is the size in memory of the replies received by the
// Execs since it was last called: what the proxy holds for its client
// until the replies are written (server.max_inflight_bytes).
func (b *Batch) TakeReplyBytes() int64 {
	n := b.received
	b.received = 0
	return n
}

// replySize estimates the memory a command's reply holds: its strings,
// and a few words for each element around them.
func replySize(cmd redis.Cmder) int64 {
	switch c := cmd.(type) {
	case *redis.Cmd:
		return valueSize(c.Val())
	case *redis.SliceCmd:
		return valueSize(c.Val())
	case *redis.StringCmd:
		return valueSize(c.Val())
	}
	return 16
}

func valueSize(v interface{}) int64 {
	switch v := v.(type) {
	case string:
		return 32 + int64(len(v))
	case []interface{}:
		n := int64(24)
		for _, e := range v {
			n += valueSize(e)
		}
		return n
	}
	return 16
}
