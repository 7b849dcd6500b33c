package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// boundScript gives a key a TTL if it has none or one above max; checked
// and set in one step, so a write racing the sweep keeps its own TTL.
// ARGV: ttl ms, max ms. Returns 1 when the TTL was set.
var boundScript = newScript(`
local p = redis.call('PTTL', KEYS[1])
if p == -1 or p > tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return 1
end
return 0
`)

// BoundTTL queues giving key the TTL ttl when it has none or one above max.
func (b *Batch) BoundTTL(key string, ttl, max time.Duration) IntResult {
	return IntResult{b.script(boundScript, false, key, msArg(ttl), msArg(max))}
}

// RawPTTL queues reading key's TTL in milliseconds as Redis reports it
// (-1 no TTL, -2 missing), tombstones included.
func (b *Batch) RawPTTL(key string) IntResult {
	cmd := redis.NewCmd(context.Background(), "pttl", key)
	b.add(cmd, true, key)
	return IntResult{cmd}
}
