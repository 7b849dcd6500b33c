package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cond is a write condition, as in SET NX/XX and EXPIRE NX/XX/GT/LT.
type Cond string

// Write conditions.
const (
	Always Cond = ""
	NX     Cond = "NX"
	XX     Cond = "XX"
	GT     Cond = "GT"
	LT     Cond = "LT"
	// XXLT is EXPIRE … XX LT: LT, and only on a key that has a TTL (plain
	// LT treats a key without one as infinite and applies).
	XXLT Cond = "XXLT"
)

// Outcome says what a write did.
type Outcome int

// Write outcomes.
const (
	NotApplied Outcome = iota // missing key, or the condition was not met
	Applied
	Deleted // the TTL was already over, so the key was deleted
)

// Write is a session value to store at a key.
type Write struct {
	Value []byte
	// TTL is the expiry to set; zero or negative deletes the key (the session
	// is already expired).
	TTL  time.Duration
	Cond Cond // Always, NX or XX
	// KeepTTL keeps the key's current TTL when it has one no longer than
	// MaxTTL; otherwise TTL applies. A write never leaves a key without one.
	KeepTTL bool
	MaxTTL  time.Duration
	// ReturnOld asks for the previous value (SET … GET, GETSET), and
	// Guard guards the write on it.
	ReturnOld bool
	Guard     Guard
	// Absolute is ttl.absolute: with it, Value carries its creation time in
	// its header, the stored creation time is kept, and the TTL is capped
	// to what is left of the lifetime. 0: off.
	Absolute time.Duration
	// Native sends a common-case write (no condition, no previous value,
	// no KEEPTTL, no absolute lifetime, a positive TTL) as Redis's own
	// SET … PX … GET rather than a script: under tombstone.format =
	// "typed", once no string tombstone can be left (Engine's transition),
	// a tombstone is a set and SET … GET refuses it with WRONGTYPE without
	// writing. Only then is TYPE asked, to tell a tombstone from a hash
	// session. Never inside a transaction (its script path is kept).
	Native bool
	// Grace is the namespace's tombstone lifetime, for a Native write that
	// met a string tombstone after all (a proxy left on the string format
	// past the transition): the tombstone is put back, as a typed one.
	Grace time.Duration
}

// WriteResult is the handle of a queued Write.
type WriteResult struct {
	cmd *redis.Cmd
	res *opResult // set instead of cmd for a write the plan may merge
	// set is a Native write's SET … GET (native.go), instead of cmd; its
	// rare WRONGTYPE or string-tombstone path asks s again about key, and
	// may need grace. Held by value: the hot path allocates no handle.
	set   *nativeSet
	s     *Store
	key   string
	grace time.Duration
}

// Result is what the write did and, when asked for, the previous value (nil
// when there was none). A tombstoned key gives ErrTombstoned; a write its
// Guard stopped, ErrCheckPrevious with the previous value.
func (r WriteResult) Result() (Outcome, []byte, error) {
	switch {
	case r.set != nil:
		return r.nativeResult()
	case r.res == nil:
		return scriptOutcome(r.cmd)
	case r.res.err != nil: // errNoResult before its batch ran
		return NotApplied, nil, r.res.err
	}
	return statusOutcome(r.res.status, nil)
}

// Write queues a tombstone-checked write of w at key. A common-case write
// (no condition, no previous value, no KEEPTTL, no absolute lifetime) is
// queued for a shared setManyScript call (plan.go), or under Native as
// SET … GET (native.go); the others are a writeScript call of their own.
func (b *Batch) Write(key string, w Write) WriteResult {
	keep := ""
	if w.KeepTTL {
		keep = msArg(w.MaxTTL)
	}
	if w.Cond == Always && !w.KeepTTL && !w.ReturnOld && w.Absolute == 0 {
		if w.Native && w.TTL > 0 && b.tx == nil && !b.dry {
			return b.addNative(key, w.Value, w.TTL, w.Grace)
		}
		return b.addToRun(key, w.Value, msArg(w.TTL))
	}
	ret := "0"
	if w.ReturnOld {
		ret = "1"
	}
	return WriteResult{cmd: b.script(writeScript, false, key, w.Value, msArg(w.TTL), string(w.Cond), keep, ret, msArg(w.Absolute), string(w.Guard))}
}

// writeScript stores a session value.
// ARGV: value, ttl ms (<= 0: the session is expired, delete it), condition
// ("", "NX", "XX"), keepttl max ms ("" unless KEEPTTL), "1" to return the
// previous value, absolute lifetime ms ("0": off), the Guard on the
// previous value.
// With an absolute lifetime the stored creation time survives the rewrite
// (spliced into the new value's header) and caps the TTL.
// Returns {status[, previous]}: 1 written, 0 condition not met, -1
// tombstoned, 2 deleted as expired, 3 nothing done: the guard wants the
// previous value checked.
var writeScript = newScript(luaLifetime + luaGuard + luaTypedTomb + `
local k = KEYS[1]
local old = false
local exists
if ARGV[5] == '1' then
  old = redis.pcall('GET', k)
  if type(old) == 'table' then
    if typed_tomb(k) then return {-1} end
    return old -- WRONGTYPE (a hash session), without the script's name
  end
  if old == 'TOMBSTONE' then return {-1} end
  if unchecked(old, ARGV[7]) then return {3, old} end
  exists = old ~= false
else
  -- One call for the common case: the first ten bytes tell a tombstone
  -- (exactly "TOMBSTONE") from a session without copying the value.
  local head = redis.pcall('GETRANGE', k, '0', '9')
  if type(head) == 'table' then
    if typed_tomb(k) then return {-1} end
    return head -- WRONGTYPE, as above
  end
  if head == 'TOMBSTONE' then return {-1} end
  exists = head ~= '' or ((ARGV[3] ~= '' or ARGV[4] ~= '') and redis.call('EXISTS', k) == 1)
end
if (ARGV[3] == 'NX' and exists) or (ARGV[3] == 'XX' and not exists) then
  if old then return {0, old} end
  return {0}
end
local value = ARGV[1]
local ttl = tonumber(ARGV[2])
local px = ARGV[2] -- ttl as given, until a cap changes it
if ttl > 0 and ARGV[4] ~= '' and exists then
  local p = redis.call('PTTL', k)
  if p > 0 and p <= tonumber(ARGV[4]) then ttl, px = p, p end
end
local absolute = tonumber(ARGV[6])
if ttl > 0 and absolute > 0 and created_digits(value) then
  local created = exists and created_digits(redis.call('GETRANGE', k, '0', '17'))
  if created then
    value = string.sub(value, 1, 5) .. created .. string.sub(value, 19)
  else
    created = created_digits(value)
  end
  local left = tonumber(created) + absolute - now_ms()
  if left < ttl then ttl, px = left, left end
end
local status = 1
if ttl <= 0 then
  redis.call('DEL', k)
  status = 2
else
  redis.call('SET', k, value, 'PX', px)
end
if old then return {status, old} end
return {status}
`)

// setManyScript is writeScript's common case — no condition, no previous
// value, no KEEPTTL, no absolute lifetime: connect-redis's SET … EX and
// SESS.SET — for a run of consecutive writes of one batch at once. A
// script call costs Redis several times a SET, so a client's pipelined
// writes share one call, and every line of Lua here is on the hottest
// path. Keys are written in order, so a key named twice ends as the last
// write left it.
// Each key is checked with pcall, so one key Redis refuses (WRONGTYPE on a
// hash under the prefix, OOM) fails only its own write: the others, some
// already done, keep their own outcome.
// KEYS: the keys; ARGV: value, ttl ms (<= 0: delete) per key.
// Returns per key: 1 written, -1 tombstoned, 2 deleted, or the error.
var setManyScript = newScript(luaTypedTomb + `
local out = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  local head = redis.pcall('GETRANGE', k, '0', '9')
  if type(head) == 'table' and head.err then
    if typed_tomb(k) then out[i] = -1 else out[i] = head end
  elseif head == 'TOMBSTONE' then
    out[i] = -1
  elseif ARGV[2 * i] == '0' then
    redis.call('DEL', k)
    out[i] = 2
  else
    local r = redis.pcall('SET', k, ARGV[2 * i - 1], 'PX', ARGV[2 * i])
    if type(r) == 'table' and r.err then out[i] = r else out[i] = 1 end
  end
end
return out
`)

// setManyCmd is one setManyScript call writing keys, the keys of ops[idx]
// (opWrite), with their values and ttls.
func setManyCmd(ops []op, idx []int, keys []string) *redis.Cmd {
	call := make([]interface{}, 3, 3+3*len(keys))
	call[0], call[1], call[2] = "evalsha", setManyScript.Hash(), len(keys)
	for i := range keys {
		call = append(call, &keys[i]) // a pointer: boxing a string would allocate
	}
	for _, i := range idx {
		call = append(call, ops[i].value, ops[i].ttl)
	}
	return redis.NewCmd(context.Background(), call...)
}
