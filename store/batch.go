package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Batch queues upstream operations and sends them as one pipeline, so a
// client's pipelined commands cost one round trip (per node, in a cluster)
// instead of one each. Results are read from the handles the queueing
// methods return, after Exec.
//
// A Batch is reused by one client connection; it is not safe for concurrent
// use.
type Batch struct {
	s      *Store
	pipe   redis.Pipeliner
	queued []queued
}

type queued struct {
	cmd redis.Cmder
	// read marks commands without side effects, which may be sent again.
	read bool
}

// NewBatch returns an empty batch on the store.
func (s *Store) NewBatch() *Batch {
	return &Batch{s: s, pipe: s.client.Pipeline()}
}

// Len is the number of queued upstream commands.
func (b *Batch) Len() int { return len(b.queued) }

func (b *Batch) add(cmd redis.Cmder, read bool) {
	// The pipeline only records the command; its error is the command's own
	// and is read from the handle after Exec.
	_ = b.pipe.Process(context.Background(), cmd)
	b.queued = append(b.queued, queued{cmd: cmd, read: read})
}

func (b *Batch) script(sc *redis.Script, read bool, key string, args ...interface{}) *redis.Cmd {
	cmd := redis.NewCmd(context.Background(), append([]interface{}{"evalsha", sc.Hash(), 1, key}, args...)...)
	b.add(cmd, read)
	return cmd
}

// Exec sends every queued command and waits for all replies. Each handle
// then holds its own result or error; Exec itself only fails when the
// context does. The batch is empty and reusable afterwards.
//
// When a node answers NOSCRIPT (it restarted or was failed over and lost
// its script cache), Exec loads the scripts everywhere and sends again, in
// order, the commands from the first NOSCRIPT on that can safely run again:
// the scripts that did not run (NOSCRIPT means no effect), and the reads
// after them, so a read queued after a write still sees it.
func (b *Batch) Exec(ctx context.Context) error {
	if len(b.queued) == 0 {
		return nil
	}
	defer func() { b.queued = b.queued[:0] }()
	_, _ = b.pipe.Exec(ctx)
	first := -1
	for i, q := range b.queued {
		if isNoScript(q.cmd.Err()) {
			first = i
			break
		}
	}
	if first < 0 {
		return ctx.Err()
	}
	if err := b.s.loadScripts(ctx); err != nil {
		return err
	}
	for _, q := range b.queued[first:] {
		if q.read || isNoScript(q.cmd.Err()) {
			_ = b.pipe.Process(ctx, q.cmd)
		}
	}
	_, _ = b.pipe.Exec(ctx)
	return ctx.Err()
}
