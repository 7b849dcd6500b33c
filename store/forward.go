package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// ForwardResult is the handle of a forwarded command: its reply as
// go-redis reads it, or read raw (a client's script, Batch.Eval).
type ForwardResult struct {
	cmd *redis.Cmd
	raw *rawValue
}

// Result is the upstream's reply as go-redis decodes it (nil for a null);
// ErrReplyTooLarge where a raw reply did not fit in its client's room.
func (r ForwardResult) Result() (interface{}, error) {
	if r.raw != nil {
		return r.raw.result()
	}
	v, err := r.cmd.Result()
	if err == redis.Nil {
		return nil, nil
	}
	return v, err
}

// Forward queues a command unchanged (keys outside the session prefix, with
// outside_prefix = "passthrough"; locks). read marks it free of side
// effects. args are the command's name, then its one key, then the rest:
// the key is recorded as args[1] (a command of no key is opaque to
// recovery and waves, which treat it as touching every key).
func (b *Batch) Forward(read bool, args ...interface{}) ForwardResult {
	cmd := redis.NewCmd(context.Background(), args...)
	if len(args) < 2 {
		b.addMulti(cmd, read, nil)
		return ForwardResult{cmd: cmd}
	}
	switch key := args[1].(type) {
	case string:
		b.add(cmd, read, key)
	case []byte:
		b.add(cmd, read, string(key))
	default:
		b.addMulti(cmd, read, nil)
	}
	return ForwardResult{cmd: cmd}
}

// ForwardKey queues a command unchanged whose one key is not its second
// argument (MEMORY USAGE key): key is recorded as what it touches.
func (b *Batch) ForwardKey(read bool, key string, args ...interface{}) ForwardResult {
	cmd := redis.NewCmd(context.Background(), args...)
	b.add(cmd, read, key)
	return ForwardResult{cmd: cmd}
}
