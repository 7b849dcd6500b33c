package commands

import (
	"context"
	"errors"
	"time"

	"github.com/sessproxy/sessproxy/internal/resp"
	"github.com/sessproxy/sessproxy/store"
)

// Transactions (MULTI, EXEC, DISCARD, WATCH, UNWATCH) with Redis's
// semantics, atomic upstream. A client in WATCH or MULTI holds one pinned
// upstream connection (store.Pinned) until EXEC, DISCARD, UNWATCH, RESET or
// its disconnect; in a cluster, on the master of the transaction's one
// slot. Between MULTI and EXEC the proxy queues copies of the commands,
// each checked as it is queued by a dry run of its handler (store.DryBatch):
// its reply then is the error it would answer, or +QUEUED. EXEC dispatches
// each through its handler onto one batch that runs as MULTI … EXEC on the
// pinned connection, so the TTL policy and the tombstone checks (the write
// scripts) run inside the transaction, and answers the array of their
// replies.
//
// Nothing is ever half-run: a queue-time error, like a refused MULTI (too
// many transactions), makes EXEC answer EXECABORT with nothing run.

// txState is a client's transaction, from its WATCH or MULTI on.
type txState struct {
	multi     bool   // between MULTI and EXEC/DISCARD
	aborted   bool   // a queue-time error: EXEC answers EXECABORT
	refused   string // why MULTI was refused: each command up to EXEC/DISCARD answers it, unrun
	executing bool   // EXEC is dispatching the queue
	held      bool   // counts against Options.MaxTransactions
	queued    [][][]byte
	// queuedBytes: the queued commands' arguments, which the transaction
	// holds until EXEC (Options.MaxTxBytes).
	queuedBytes int64
	// watched: the keys its WATCH commands named (maxWatchedKeys).
	watched int
	slotKey string // cluster: an upstream key of the transaction's slot; "" none yet
	slot    int    // cluster: that key's slot; -1 none yet
	pin     *store.Pinned
}

// Defaults of the transaction limits.
const (
	defaultMaxTransactions = 1000
	defaultMaxTxCommands   = 10000
	defaultMaxTxBytes      = 64 << 20
)

// maxWatchedKeys bounds the keys a transaction's WATCH commands name, all
// together. Redis 7.0 looks each key up in the list its connection
// already watches (multi.c, watchForKey), so watching N keys costs it
// O(N²) while every other client waits: 1,024 keys 8 ms on
// redis-server 7.0.15, 40,000 keys 10.6 s (hostile round 6); 256 keys
// 0.6 ms.
const maxWatchedKeys = 256

// acquire makes t count against Options.MaxTransactions;
// false: the limit is reached.
func (e *Engine) acquire(t *txState) bool {
	if t.held {
		return true
	}
	if e.transactions.Add(1) > int64(e.opts.MaxTransactions) {
		e.transactions.Add(-1)
		return false
	}
	t.held = true
	return true
}

// pin gives t its pinned upstream connection, if it has none yet; false:
// it answered the failure.
func (e *Engine) pin(c *Call, t *txState) bool {
	if t.pin != nil {
		return true
	}
	pin, err := e.store.Pin(c.Ctx, t.slotKey)
	if err != nil {
		e.fail(c, keyRef{}, err)
		return false
	}
	t.pin = pin
	return true
}

// endTx discards cl's transaction and unwatches: the pinned connection goes
// back, the slot is freed. RESET, QUIT's disconnect, EXEC and DISCARD end
// here.
func (e *Engine) endTx(cl *Client) {
	t := cl.tx
	if t == nil {
		return
	}
	cl.tx = nil
	if t.pin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.pin.Release(ctx)
		cancel()
	}
	if t.held {
		e.transactions.Add(-1)
	}
}

// MULTI
func (e *Engine) multi(c *Call) {
	t := c.Client.tx
	if t != nil && t.multi {
		c.Out.Error(msgMultiNested)
		return
	}
	if t == nil {
		t = &txState{slot: -1}
		c.Client.tx = t
	}
	t.multi = true
	if !e.acquire(t) {
		// Refused, but a transaction all the same, so that the commands
		// up to EXEC are discarded rather than run one by one.
		t.refused = errTooManyTransactions(e.opts.MaxTransactions)
		c.Out.Error(t.refused)
		return
	}
	c.Out.OK()
}

// queue answers a command sent between MULTI and EXEC: +QUEUED, or the
// error that aborts the transaction.
func (e *Engine) queue(c *Call, cmd *Command) {
	t := c.Client.tx
	fail := func(msg string) {
		t.aborted = true
		c.Out.Error(msg)
	}
	switch {
	case t.refused != "":
		c.Out.Error(errTxCommandDiscarded(t.refused))
		return
	case cmd == nil:
		fail(errUnknownCommand(string(c.Args[0])))
		return
	case !c.Client.authed && cmd.Flags&flagNoAuth == 0:
		fail(msgNoAuth)
		return
	case !arityOK(cmd.Arity, len(c.Args)):
		fail(errArity(cmd.Name))
		return
	case !c.Client.role.may(cmd.Flags):
		fail(errNoPermission(cmd.Name))
		return
	case cmd.Flags&flagNoTx != 0:
		fail(errNotInTransaction(cmd.Name))
		return
	case len(t.queued) >= e.opts.MaxTxCommands:
		fail(errTransactionTooLong(e.opts.MaxTxCommands))
		return
	case t.queuedBytes+argsSize(c.Args) > e.opts.MaxTxBytes:
		fail(errTransactionTooLarge(e.opts.MaxTxBytes))
		return
	}
	// The dry run: what the handler answers at once is an error it would
	// answer at EXEC too (a key outside the namespace, a bad payload, a
	// command that needs a result before it can finish queueing).
	var out resp.Writer
	out.Reset(c.Out.Proto)
	dry := Call{Ctx: c.Ctx, Client: c.Client, Args: c.Args, Out: &out, Batch: e.store.DryBatch(), conf: c.conf, cmd: cmd, ns: c.ns}
	func() {
		// A panic (answered by the pipeline's guard) must not leave the
		// rest of the transaction to run without this command.
		defer func() {
			if r := recover(); r != nil {
				t.aborted = true
				panic(r)
			}
		}()
		cmd.Handler(&dry)
	}()
	if len(out.Buf) > 0 && out.Buf[0] == '-' {
		t.aborted = true
		c.Out.Buf = append(c.Out.Buf, out.Buf...)
		return
	}
	if !e.inSlot(t, dry.Batch.Keys()) {
		fail(msgCrossSlot)
		return
	}
	args := make([][]byte, len(c.Args), len(c.Args)+2)
	for i, a := range c.Args {
		args[i] = append([]byte(nil), a...) // the client's read buffer is reused
	}
	if c.ns != nil { // Dispatch took it off; EXEC dispatches again
		args = append(args, []byte("NS"), []byte(c.ns.name))
	}
	t.queued = append(t.queued, args)
	t.queuedBytes += argsSize(c.Args)
	c.Out.Simple("QUEUED")
}

// argsSize is the bytes of a command's arguments.
func argsSize(args [][]byte) int64 {
	var n int64
	for _, a := range args {
		n += int64(len(a))
	}
	return n
}

// inSlot reports whether the upstream keys are all in the transaction's
// slot, and makes theirs its slot if it has none yet. Always true outside
// a cluster.
func (e *Engine) inSlot(t *txState, keys []string) bool {
	if e.store.Mode() != store.ModeCluster || len(keys) == 0 {
		return true
	}
	want := t.slot
	for _, k := range keys {
		s := store.Slot(k)
		if want < 0 {
			want = s
		}
		if s != want {
			return false
		}
	}
	if t.slotKey == "" {
		t.slot, t.slotKey = want, keys[0]
	}
	return true
}

// EXEC
func (e *Engine) exec(c *Call) {
	t := c.Client.tx
	switch {
	case t == nil || !t.multi:
		c.Out.Error(msgExecNoMulti)
		return
	case t.aborted || t.refused != "":
		e.endTx(c.Client)
		c.Out.Error(msgExecAbort)
		return
	}
	defer e.endTx(c.Client)
	// What the client pipelined before MULTI has run: flagFlush.
	if !e.pin(c, t) {
		return
	}
	t.multi, t.executing = false, true
	batch := t.pin.Batch()
	// The transaction's reads are bounded by what EXEC's reply may take.
	var room store.Room
	room.Reset(c.Out.Room())
	batch.SetRoom(&room)
	calls := make([]Call, len(t.queued))
	outs := make([]resp.Writer, len(t.queued))
	for i, args := range t.queued {
		outs[i].Reset(c.Out.Proto)
		outs[i].Limit = c.Out.Limit // the transaction's replies become EXEC's
		calls[i] = Call{Ctx: c.Ctx, Client: c.Client, Args: args, Out: &outs[i], Batch: batch, conf: c.conf, meter: c.meter}
		e.guard(&calls[i], e.Dispatch)
	}
	err := batch.Commit(c.Ctx)
	switch {
	case errors.Is(err, store.ErrWatchAborted):
		c.Out.NullArray()
		return
	case err != nil:
		e.fail(c, keyRef{}, err)
		return
	}
	e.finish(calls, func() { _ = batch.Exec(c.Ctx) })
	if c.meter != nil {
		c.meter.Replies(batch.TakeReplyBytes())
	}
	c.Out.Array(len(calls))
	for i := range outs {
		c.Out.Buf = append(c.Out.Buf, outs[i].Buf...)
	}
}

// execNotRun ends the transaction of an EXEC that never ran because the
// commands pipelined before it failed (flagFlush): EXEC ends the
// transaction whatever its outcome.
func (e *Engine) execNotRun(c *Call) {
	if t := c.Client.tx; t != nil && t.multi && c.cmd.Name == "exec" {
		e.endTx(c.Client)
	}
}

// DISCARD
func (e *Engine) discard(c *Call) {
	if t := c.Client.tx; t == nil || !t.multi {
		c.Out.Error(msgDiscardNoMulti)
		return
	}
	e.endTx(c.Client)
	c.Out.OK()
}

// WATCH key [key …]: watched at once on the pinned connection.
func (e *Engine) watch(c *Call) {
	t := c.Client.tx
	if t != nil && t.multi {
		c.Out.Error(msgWatchInMulti)
		return
	}
	refs, ok := e.resolveAll(c, c.Args[1:], 1)
	if !ok {
		return
	}
	keys := make([]string, len(refs))
	for i, r := range refs {
		keys[i] = r.key
	}
	if t == nil {
		t = &txState{slot: -1}
	}
	if t.watched+len(keys) > maxWatchedKeys {
		c.Out.Error(errTooManyWatchedKeys(maxWatchedKeys))
		return
	}
	if !e.inSlot(t, keys) {
		c.Out.Error(msgCrossSlot)
		return
	}
	if !e.acquire(t) {
		c.Out.Error(errTooManyTransactions(e.opts.MaxTransactions))
		return
	}
	c.Client.tx = t
	// A write the client pipelined before WATCH has run (flagFlush), so
	// it is not a change after it.
	if !e.pin(c, t) {
		return
	}
	t.watched += len(keys) // Redis may have watched them even if the reply is lost
	if err := t.pin.Watch(c.Ctx, keys); err != nil {
		e.fail(c, keyRef{}, err)
		return
	}
	c.Out.OK()
}

// UNWATCH: forgets the watched keys and gives the pinned connection back.
// Queued in a transaction, it does nothing: EXEC unwatches anyway.
func (e *Engine) unwatch(c *Call) {
	if t := c.Client.tx; t != nil && !t.multi && !t.executing {
		e.endTx(c.Client)
	}
	c.Out.OK()
}
