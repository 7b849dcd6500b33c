package store

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// DestroyResult is the handle of a queued Destroy.
type DestroyResult struct{ cmd *redis.Cmd }

// Result says whether a live session was there and, when asked for, its
// value. ErrCheckPrevious, with the value, when the guard stopped it.
func (r DestroyResult) Result() (live bool, old []byte, err error) {
	vals, err := r.cmd.Slice()
	if err != nil {
		return false, nil, err
	}
	if len(vals) > 1 {
		old = asBytes(vals[1])
	}
	switch asInt(vals[0]) {
	case 1:
		live = true
	case 3:
		return false, old, ErrCheckPrevious
	}
	return live, old, nil
}

// Destroy queues replacing key with a tombstone of format that lives for
// grace (or a plain delete when grace is zero: tombstones off).
func (b *Batch) Destroy(key string, grace time.Duration, format TombstoneFormat) DestroyResult {
	return DestroyResult{b.script(destroyScript, false, key, msArg(grace), "0", string(NoGuard), string(format))}
}

// GetDestroy is Destroy that also answers the previous value (GETDEL), with
// guard on it.
func (b *Batch) GetDestroy(key string, grace time.Duration, format TombstoneFormat, guard Guard) DestroyResult {
	return DestroyResult{b.script(destroyScript, false, key, msArg(grace), "1", string(guard), string(format))}
}

// destroyScript replaces a session with a tombstone (or deletes it when
// tombstones are off).
// ARGV: grace ms (0: no tombstone, DEL), "1" to return the previous value,
// the Guard on the previous value, the format ("typed": a set, otherwise
// the string).
// Returns {live[, previous]}: live is 1 when a live session was there; 3
// when nothing was done because the guard wants the previous value checked.
var destroyScript = newScript(luaGuard + luaTypedTomb + `
local k = KEYS[1]
local live = 0
local old = false
local t = redis.call('TYPE', k)['ok']
if t == 'string' then
  if ARGV[2] == '1' or redis.call('STRLEN', k) == 9 then
    old = redis.call('GET', k)
    if old == 'TOMBSTONE' then old = false end
    if unchecked(old, ARGV[3]) then return {3, old} end
  else
    live = 1
  end
  if old then live = 1 end
elseif t ~= 'none' and not (t == 'set' and typed_tomb(k)) then
  live = 1
end
if tonumber(ARGV[1]) > 0 and ARGV[4] == 'typed' then
  redis.call('DEL', k)
  redis.call('SADD', k, 'TOMBSTONE')
  redis.call('PEXPIRE', k, ARGV[1])
elseif tonumber(ARGV[1]) > 0 then
  redis.call('SET', k, 'TOMBSTONE', 'PX', ARGV[1])
else
  redis.call('DEL', k)
end
if ARGV[2] == '1' and old then return {live, old} end
return {live}
`)
