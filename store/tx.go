package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// A client's transaction (MULTI … EXEC, with WATCH) runs on one upstream
// connection of its own, pinned from its WATCH or MULTI to its end: WATCH
// is per connection in Redis, and MULTI/EXEC is atomic only on one. The
// pinned connections come from a pool of their own (Options.MaxPinned), so
// clients holding transactions open never starve the shared pool the
// other commands use.

var (
	// ErrDryRun is what Exec answers on a dry batch: the command needs a
	// result before it can finish queueing, which a transaction cannot give.
	ErrDryRun = errors.New("needs a result before it can finish queueing")
	// ErrWatchAborted: a watched key changed, so EXEC ran nothing.
	ErrWatchAborted = errors.New("a watched key changed; transaction not run")
)

// ExecAbortError is Redis's EXECABORT: it refused a queued command (OOM
// past maxmemory, READONLY, NOREPLICAS…), so EXEC ran nothing. Redis told
// its own client why when the command was queued; the proxy queues a
// transaction itself and sends it whole at EXEC, so Queued is that
// refusal, which the EXECABORT alone would lose. It is still Redis's
// error reply (UpstreamReply).
type ExecAbortError struct {
	Abort  error // Redis's EXECABORT
	Queued error // the first queued command's error
}

func (e *ExecAbortError) Error() string { return e.Abort.Error() }

// RedisError makes it a redis.Error, as the EXECABORT it carries.
func (*ExecAbortError) RedisError() {}

func (e *ExecAbortError) Unwrap() error { return e.Abort }

// execAborted is the EXECABORT abort with the first queued command's error.
func execAborted(abort error, cmds []redis.Cmder) error {
	for _, cmd := range cmds {
		if err := cmd.Err(); UpstreamReply(err) {
			return &ExecAbortError{Abort: abort, Queued: err}
		}
	}
	return abort
}

// Pinned is an upstream connection held by one client for its transaction.
// Not safe for concurrent use.
type Pinned struct {
	s        *Store
	conn     *redis.Conn
	watching bool
}

// txClient is the pool the pinned connections come from, created on the
// first transaction. It never retries a command: a transaction sent again
// after a timeout could run twice.
type txClient struct {
	once    sync.Once
	client  *redis.Client        // standalone, sentinel, embedded
	cluster *redis.ClusterClient // cluster
}

func (s *Store) pinPool() *txClient {
	s.tx.once.Do(func() {
		size := s.opts.MaxPinned
		if s.cluster != nil {
			s.tx.cluster = s.newCluster(size)
			return
		}
		switch s.opts.Mode {
		case ModeSentinel:
			s.tx.client = s.newFailover(size)
		default:
			opts := s.clientOptions(s.Addrs()[0])
			opts.PoolSize = size
			s.tx.client = redis.NewClient(opts)
		}
	})
	return &s.tx
}

// Pin returns a connection of its own: in a cluster, to the master serving
// key's slot (any key of the transaction's slot), elsewhere to the server.
func (s *Store) Pin(ctx context.Context, key string) (*Pinned, error) {
	pool := s.pinPool()
	if pool.cluster != nil {
		node, err := pool.cluster.MasterForKey(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("find the master of slot %d: %w", Slot(key), err)
		}
		return &Pinned{s: s, conn: node.Conn()}, nil
	}
	if pool.client == nil {
		return nil, errors.New("the store is closed")
	}
	return &Pinned{s: s, conn: pool.client.Conn()}, nil
}

// Watch watches keys on the pinned connection, at once.
func (p *Pinned) Watch(ctx context.Context, keys []string) error {
	args := make([]interface{}, 1+len(keys))
	args[0] = "watch"
	for i, k := range keys {
		args[1+i] = k
	}
	cmd := redis.NewStatusCmd(ctx, args...)
	_ = p.conn.Process(ctx, cmd)
	p.s.observe(cmd.Err())
	if cmd.Err() != nil {
		return cmd.Err()
	}
	p.watching = true
	return nil
}

// Release gives the connection back, unwatching first if a WATCH is still
// on it: the next transaction on it must not inherit the keys.
func (p *Pinned) Release(ctx context.Context) {
	if p.watching {
		_ = p.conn.Process(ctx, redis.NewStatusCmd(ctx, "unwatch"))
		p.watching = false
	}
	_ = p.conn.Close()
}

// Batch returns an empty batch whose Commit sends its commands as one
// MULTI … EXEC on the pinned connection; its Exec answers ErrDryRun until
// then, so no command can send part of the transaction early. Its owner-index updates, which
// live in other slots and are not atomic with the sessions anyway (see
// index.go), go after a successful EXEC, outside it. Once executed, the
// batch sends what is queued next as a plain pipeline on the same
// connection.
func (p *Pinned) Batch() *Batch {
	return &Batch{s: p.s, tx: p}
}

// DryBatch returns a batch that is never sent: Exec answers ErrDryRun.
// It records what a command would queue, to check it before the command
// is accepted into a transaction.
func (s *Store) DryBatch() *Batch {
	return &Batch{s: s, dry: true}
}

// Keys are the upstream keys the batch's commands touch, the owner
// index's apart (for a transaction's slot), as they were recorded when
// queued.
func (b *Batch) Keys() []string {
	var keys []string
	for i := range b.ops {
		switch o := &b.ops[i]; {
		case o.keys != nil:
			keys = append(keys, o.keys...)
		case !o.opaque:
			keys = append(keys, o.key)
		}
	}
	return keys
}

// Commit sends the queued commands as one MULTI … EXEC. Each command's
// handle holds its own reply, Redis's runtime errors included; a failure
// of the whole transaction is returned: ErrWatchAborted, an EXECABORT
// from Redis, or a connection failure (whether the transaction ran is then
// unknown).
func (b *Batch) Commit(ctx context.Context) error {
	p := b.tx
	b.tx = nil
	b.out = sender{t: pipeTransport{p.conn.Pipeline()}, up: b.s, received: b.out.received}
	side := b.side
	b.side = nil
	defer b.reset()
	b.plan.build(b.ops, nil)
	cmds := make([]redis.Cmder, 0, len(b.plan.calls)+1)
	for _, c := range b.plan.calls {
		args := c.cmd.Args()
		switch {
		case c.user != nil: // a client's script: EVAL or EVAL_RO of its wrapped source
			args[0], args[1] = "eval", c.user.source
			if c.read {
				args[0] = "eval_ro"
			}
		case c.script != nil:
			args[0], args[1] = "eval", scriptSources[c.script.Hash()]
		}
		cmds = append(cmds, c.cmd)
	}
	if len(cmds) == 0 {
		if !p.watching {
			return nil
		}
		// EXEC must still run, to answer whether the watched keys changed.
		cmds = append(cmds, redis.NewStatusCmd(ctx, "ping"))
	}
	_, err := p.conn.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, cmd := range cmds {
			_ = pipe.Process(ctx, cmd)
		}
		return nil
	})
	p.watching = false // EXEC unwatches, whatever its outcome
	for i := range b.ops {
		if b.ops[i].user != nil { // EXEC waited on a client's script
			b.s.killTimedOutScript(err)
			break
		}
	}
	for _, cmd := range cmds {
		b.out.received += replySize(cmd)
	}
	b.plan.deliver(b.ops)
	switch {
	case err == nil, err == redis.Nil: // Nil: a command's null reply
	case errors.Is(err, redis.TxFailedErr):
		return ErrWatchAborted
	case strings.HasPrefix(err.Error(), "EXECABORT"):
		err = execAborted(err, cmds)
		if abort, ok := err.(*ExecAbortError); ok {
			b.s.observe(abort.Queued) // a MOVED or READONLY reloads the slot map
		}
		return err
	case !UpstreamReply(err):
		b.s.observe(err)
		return err
	}
	// Ran. Redis's runtime errors are in their commands' handles.
	if len(side) > 0 {
		pipe := b.s.client.Pipeline()
		for _, cmd := range side {
			_ = pipe.Process(ctx, cmd)
		}
		_, _ = pipe.Exec(ctx)
	}
	return nil
}
