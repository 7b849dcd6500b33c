package store

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"time"

	"github.com/redis/go-redis/v9"
)

// casScript writes a value only if the key still holds what the caller
// read: the read-modify-write of a session's fields is done in Go (where
// the codec can decompress and decrypt), and this check makes it atomic.
// ARGV: SHA-1 hex of the value read ("" = the key was missing), new value,
// ttl ms (<= 0: delete, the session is expired), absolute lifetime ms
// ("0": off). With an absolute lifetime the TTL is capped here, by Redis's
// clock, at what is left after the creation time in the new value's
// header, as the other write scripts do: capped only in the proxy, it
// would overshoot by the time the swap takes to reach Redis and by any
// skew between the proxy's clock and Redis's.
// Returns 1 written, 0 changed since read, -1 tombstoned, 2 deleted.
var casScript = newScript(luaLifetime + luaTypedTomb + `
local k = KEYS[1]
local cur = redis.pcall('GET', k)
if type(cur) == 'table' then
  if typed_tomb(k) then return -1 end
  return cur -- WRONGTYPE (a hash session)
end
if cur == 'TOMBSTONE' then return -1 end
if ARGV[1] == '' then
  if cur then return 0 end
elseif not cur or redis.sha1hex(cur) ~= ARGV[1] then
  return 0
end
local ttl = tonumber(ARGV[3])
local px = ARGV[3] -- ttl as given, until the absolute lifetime caps it
local absolute = tonumber(ARGV[4])
if ttl > 0 and absolute > 0 then
  local created = created_digits(ARGV[2])
  if created then
    local left = tonumber(created) + absolute - now_ms()
    if left < ttl then ttl, px = left, left end
  end
end
if ttl <= 0 then
  redis.call('DEL', k)
  return 2
end
redis.call('SET', k, ARGV[2], 'PX', px)
return 1
`)

// CASResult is the handle of a queued CompareAndSwap.
type CASResult struct{ cmd *redis.Cmd }

// Result is Applied or Deleted when the value was swapped, NotApplied
// when the key changed since it was read; ErrTombstoned when destroyed.
func (r CASResult) Result() (Outcome, error) {
	n, err := r.cmd.Int64()
	switch {
	case err != nil:
		return NotApplied, err
	case n == -1:
		return NotApplied, ErrTombstoned
	case n == 1:
		return Applied, nil
	case n == 2:
		return Deleted, nil
	}
	return NotApplied, nil
}

// CompareAndSwap queues writing value at key with ttl, provided the key
// still holds read (nil: provided it is still missing). absolute is
// ttl.absolute (0: off): the TTL is capped by the creation time value
// carries in its header.
func (b *Batch) CompareAndSwap(key string, read, value []byte, ttl, absolute time.Duration) CASResult {
	expected := ""
	if read != nil {
		sum := sha1.Sum(read)
		expected = hex.EncodeToString(sum[:])
	}
	return CASResult{b.script(casScript, false, key, expected, value, msArg(ttl), msArg(absolute))}
}

// GetStored queues reading the value at key as stored, tombstone included,
// for a read-modify-write (nil when missing).
func (b *Batch) GetStored(key string) GetStoredResult {
	cmd := redis.NewStringCmd(context.Background(), "get", key)
	b.add(cmd, true, key)
	return GetStoredResult{cmd: cmd, s: b.s, key: key}
}

// GetStoredResult is the handle of a queued GetStored.
type GetStoredResult struct {
	cmd *redis.StringCmd
	s   *Store // for a WRONGTYPE: a typed tombstone, or a hash session
	key string
}

// Result is the stored bytes (nil when missing); ErrTombstoned for a
// tombstone.
func (r GetStoredResult) Result() ([]byte, error) {
	v, err := r.cmd.Bytes()
	switch {
	case err == redis.Nil:
		return nil, nil
	case IsWrongType(err):
		if tomb, terr := r.s.isTypedTombstone(r.key); terr != nil {
			return nil, terr
		} else if tomb {
			return nil, ErrTombstoned
		}
		return nil, err
	case err != nil:
		return nil, err
	case string(v) == Tombstone:
		return nil, ErrTombstoned
	}
	return v, nil
}
