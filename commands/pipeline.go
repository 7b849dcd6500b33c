package commands

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/sessproxy/sessproxy/internal/resp"
	"github.com/sessproxy/sessproxy/store"
	"go.uber.org/zap"
)

// Pipeline runs one client's pipelined commands: every command is
// dispatched, the upstream operations they queued go out as one batch, and
// the replies come back in request order. One per connection; not safe
// for concurrent use.
type Pipeline struct {
	e      *Engine
	client *Client
	batch  *store.Batch
	// round, when the batch is a Round's, executed by whoever holds the
	// round: Queue stops before a command that needs a connection of its
	// own (needsOwnConn), and the round's holder accounts its replies.
	round *Round
	calls []Call
	outs  []resp.Writer
	meter Meter
	// limit is shared by the batch's writers: what the meter's ReplyRoom
	// allowed when the batch was queued.
	limit resp.Limit
	// room is the same allowance for the values the batch's reads bring
	// back, charged as they are read (store.Room).
	room store.Room
	// The batch Queue dispatched, for Complete: when it started, how many
	// of its calls ran (fewer than queued after QUIT), and its context.
	start time.Time
	n     int
	ctx   context.Context
}

// Meter is how the proxy accounts the replies a client's commands hold
// (server.max_inflight_bytes, server.max_client_reply_bytes).
type Meter interface {
	// Replies counts n more bytes of replies received from Redis for the
	// client and not yet written to it. false: the client has passed its
	// limit of unsent replies and is being closed; stop producing more.
	Replies(n int64) bool
	// ReplyRoom is how many bytes the replies of the client's next batch
	// may take as its commands build them: its limit of unsent replies
	// less what it has not been sent yet. Past it the batch's writers drop
	// what they are given (resp.Limit).
	ReplyRoom() int64
	// ReplyTooLarge says the batch's replies passed ReplyRoom. The proxy
	// closes the client, as when Replies returns false; none of the
	// batch's replies is written.
	ReplyTooLarge()
}

// SetMeter makes the pipeline report the replies it holds to m.
func (p *Pipeline) SetMeter(m Meter) { p.meter = m }

// replyWriterCap is the largest reply buffer a pipeline keeps for its next
// batch: a larger one (an MGET of big values) is dropped once written, or
// every connection would keep its largest batch's replies for its life.
const replyWriterCap = 16 << 10

// NewPipeline returns the pipeline of a connected client.
func (e *Engine) NewPipeline(c *Client) *Pipeline {
	return &Pipeline{e: e, client: c, batch: e.store.NewBatch()}
}

// Round is one upstream batch shared by the pipelines of several clients
// (NewPipelineIn): the proxy's event loop queues every ready client's
// commands on it and executes it once, one round trip for them all.
type Round struct {
	batch *store.Batch
	// setAside are reply bytes received for the round's other clients
	// while one command ran the round mid-way (Call.setAsideReplies).
	setAside int64
}

// NewRound returns an empty round.
func (e *Engine) NewRound() *Round { return &Round{batch: e.store.NewBatch()} }

// Exec executes what the round's pipelines queued. A failure reaches every
// command's own result, where Complete answers it.
func (r *Round) Exec(ctx context.Context) { _ = r.batch.Exec(ctx) }

// TakeReplyBytes is the size of the replies received since it was last
// called, for server.max_inflight_bytes: the round's holder accounts them,
// since they belong to several clients.
func (r *Round) TakeReplyBytes() int64 {
	n := r.setAside + r.batch.TakeReplyBytes()
	r.setAside = 0
	return n
}

// NewPipelineIn returns a pipeline of c that queues on r: whoever holds r
// executes it between the pipeline's Queue and its Complete. Queue stops
// before a command that needs a connection of its own (MULTI, WATCH,
// SUBSCRIBE, CLIENT TRACKING, a scan of the whole keyspace): the caller
// hands the client and that command over to a goroutine of its own.
func (e *Engine) NewPipelineIn(c *Client, r *Round) *Pipeline {
	return &Pipeline{e: e, client: c, batch: r.batch, round: r}
}

// Join makes the pipeline queue its next commands on r: an event loop
// keeps several rounds in flight, and a client's next batch goes on
// whichever is being filled. Only between Complete and the next Queue.
func (p *Pipeline) Join(r *Round) { p.batch, p.round = r.batch, r }

// Run executes cmds (each a command name and its arguments) and hands each
// reply to write, in order. It stops early after QUIT.
//
// It reads the clock twice per batch, at its start and, with metrics, at
// its end: every command of the batch is timed as the batch, which is how
// long its client waits for it.
func (p *Pipeline) Run(ctx context.Context, cmds [][][]byte, write func([]byte)) {
	p.Queue(ctx, cmds)
	// A failure reaches every command's own result, where fail logs and
	// answers it.
	_ = p.batch.Exec(ctx)
	p.Complete(write)
}

// Queue is Run's first half: it dispatches cmds, which queue their
// upstream operations in the pipeline's batch. Complete, once the batch has
// executed, writes the replies. Run is the two with the Exec between; an
// event loop queues several pipelines on one Round (NewPipelineIn) and
// executes it once for them all.
//
// It returns how many of cmds it dispatched: all of them, except after
// QUIT, or, on a shared pipeline, before a command that needs a connection
// of its own. Complete answers those.
func (p *Pipeline) Queue(ctx context.Context, cmds [][][]byte) int {
	p.start = time.Now()
	p.client.Touch(p.start)
	if cap(p.calls) < len(cmds) {
		p.calls = make([]Call, len(cmds))
		p.outs = make([]resp.Writer, len(cmds))
	}
	calls, outs := p.calls[:len(cmds)], p.outs[:len(cmds)]
	// One configuration for the whole batch: a reload applies from the
	// next one.
	conf := p.e.conf.Load()
	if p.client.authConf != conf {
		p.e.reauthorise(p.client, conf)
	}
	p.n, p.ctx = len(cmds), ctx
	var limit *resp.Limit
	if p.meter != nil {
		p.limit.Reset(p.meter.ReplyRoom())
		p.room.Reset(p.meter.ReplyRoom())
		limit = &p.limit
	}
	p.markParty()
	for i, args := range cmds {
		if p.round != nil && p.e.needsOwnConn(p.client, args) {
			p.n = i
			break
		}
		outs[i].Reset(p.client.Proto())
		outs[i].Limit = limit
		calls[i] = Call{Ctx: ctx, Client: p.client, Args: args, Out: &outs[i], Batch: p.batch, round: p.round, conf: conf, meter: p.meter}
		p.guard(&calls[i], p.e.Dispatch)
		if p.client.closeAfter {
			p.n = i + 1
			break
		}
	}
	return p.n
}

// FinishPass runs, once the round Queue filled has executed, the pending
// reply of each command; it says whether some queued a follow-up (the TYPE
// after a miss), which needs the round executed again before the next
// pass. An event loop runs a pass for every pipeline of the round, then
// executes the round once for all their follow-ups.
func (p *Pipeline) FinishPass() bool {
	p.markParty()
	return p.e.finishPass(p.calls[:p.n])
}

// markParty tells a round's batch that what is queued next is this
// client's: if some of it must be sent again (a failover's NOSCRIPT), its
// order matters only among the client's own commands (store.Batch.SetParty);
// and its reads are bounded by the client's room (store.Batch.SetRoom).
func (p *Pipeline) markParty() {
	if p.round != nil {
		p.batch.SetParty(p.client.ID)
	}
	if p.meter != nil {
		p.batch.SetRoom(&p.room)
	} else {
		p.batch.SetRoom(nil)
	}
}

// Complete is Run's second half, once the batch Queue filled has executed:
// it finishes every command (their follow-ups executed together) and
// writes the replies.
func (p *Pipeline) Complete(write func([]byte)) {
	calls, outs, n := p.calls, p.outs, p.n
	if n == 0 {
		return
	}
	if p.round == nil {
		p.holdReplies()
	}
	p.markParty()
	p.e.finish(calls[:n], func() { _ = p.batch.Exec(p.ctx) })
	over := p.limit.Over() // set from the meter, so only with one
	if over {
		p.meter.ReplyTooLarge()
	}
	for i := 0; i < n; i++ {
		if !over {
			write(outs[i].Buf)
		}
		if cap(outs[i].Buf) > replyWriterCap {
			outs[i].Buf = nil
		}
		if b := outs[i].Buf; len(b) > 0 && b[0] == '-' {
			p.e.upstreamRefused(&calls[i], b)
		}
		// Drop references to arguments and results; keep the command (for
		// lastCmd) and, with metrics, how it ended.
		kept := Call{cmd: calls[i].cmd}
		if p.e.measured {
			kept.result = replyResult(outs[i].Buf)
		}
		calls[i] = kept
	}
	last := UnknownCommand
	if cmd := calls[n-1].cmd; cmd != nil {
		last = cmd.Name
	}
	if p.e.measured {
		elapsed := time.Since(p.start)
		for i := range calls[:n] {
			m := p.e.unknown
			if cmd := calls[i].cmd; cmd != nil {
				m = cmd.metrics
			}
			m.Done(calls[i].result, elapsed)
		}
	}
	clear(calls[:n])
	p.ctx = nil
	p.client.mu.Lock()
	p.client.lastCmd = last
	p.client.mu.Unlock()
}

// holdReplies reports the replies received since the last report.
func (p *Pipeline) holdReplies() bool {
	n := p.batch.TakeReplyBytes()
	if p.meter == nil {
		return true
	}
	return p.meter.Replies(n)
}

// guard runs one step of a command, turning a panic into -ERR internal
// error for that command only: the connection and the process go on.
func (p *Pipeline) guard(c *Call, step func(*Call)) { p.e.guard(c, step) }

func (e *Engine) guard(c *Call, step func(*Call)) {
	defer func() {
		if r := recover(); r != nil {
			e.opts.Logger.Error("panic in command",
				zap.String("command", e.CommandName(c)),
				zap.Any("panic", r),
				zap.ByteString("stack", debug.Stack()))
			c.then = nil
			c.Out.Reset(c.Out.Proto)
			c.Out.Error(msgInternal)
		}
	}()
	step(c)
}
