package store

import (
	"github.com/redis/go-redis/v9"
)

// IntResult is the handle of a queued integer read.
type IntResult struct{ cmd *redis.Cmd }

// Result is the integer reply.
func (r IntResult) Result() (int64, error) { return r.cmd.Int64() }

// PTTL queues reading the TTL of key in milliseconds: -2 when there is no
// live session, -1 when the key has no TTL.
func (b *Batch) PTTL(key string) IntResult {
	return IntResult{b.script(inspectScript, true, key, "pttl")}
}

// Exists queues checking for a live session at key (1 or 0).
func (b *Batch) Exists(key string) IntResult {
	return IntResult{b.script(inspectScript, true, key, "exists")}
}

// TypeResult is the handle of a queued Type.
type TypeResult struct{ cmd *redis.Cmd }

// Result is the Redis type name; "none" for a tombstone.
func (r TypeResult) Result() (string, error) { return r.cmd.Text() }

// Type queues reading the type of key.
func (b *Batch) Type(key string) TypeResult {
	return TypeResult{b.script(inspectScript, true, key, "type")}
}

// inspectScript answers a read about a key, treating a tombstone (either
// format) as absent.
// ARGV: "pttl" (ms, -2 absent, -1 no TTL), "exists" (0/1), "type" (type
// name).
var inspectScript = newScript(`
local k = KEYS[1]
local op = ARGV[1]
local t = redis.call('TYPE', k)['ok']
if (t == 'string' and redis.call('STRLEN', k) == 9 and redis.call('GET', k) == 'TOMBSTONE') or
   (t == 'set' and redis.call('SISMEMBER', k, 'TOMBSTONE') == 1) then
  t = 'none'
end
if op == 'type' then return t end
if t == 'none' then
  if op == 'pttl' then return -2 end
  return 0
end
if op == 'pttl' then return redis.call('PTTL', k) end
return 1 -- exists
`)
