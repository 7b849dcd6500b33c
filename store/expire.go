package store

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// ExpireResult is the handle of a queued Expire.
type ExpireResult struct{ cmd *redis.Cmd }

// Result is what the expire did and, when asked for, the value (nil when the
// key is missing). A tombstoned key gives ErrTombstoned; an expire its
// Guard stopped, ErrCheckPrevious with the value.
func (r ExpireResult) Result() (Outcome, []byte, error) {
	return scriptOutcome(r.cmd)
}

// Expiry is a TTL change for Expire.
type Expiry struct {
	TTL         time.Duration // <= 0 deletes
	Cond        Cond
	ReturnValue bool          // read the value in the same step (GETEX)
	Guard       Guard         // on that value
	Absolute    time.Duration // ttl.absolute: cap by the stored creation time; 0: off
}

// Expire queues setting the TTL of a live session at key.
func (b *Batch) Expire(key string, x Expiry) ExpireResult {
	ret := "0"
	if x.ReturnValue {
		ret = "1"
	}
	return ExpireResult{b.script(expireScript, false, key, msArg(x.TTL), string(x.Cond), ret, msArg(x.Absolute), string(x.Guard))}
}

// expireScript sets the TTL of a live session.
// ARGV: ttl ms (<= 0: delete), condition ("", "NX", "XX", "GT", "LT",
// "XXLT"), "1" to return the value (GETEX), absolute lifetime ms ("0": off),
// the Guard on the value.
// Returns {status[, value]}: 1 applied, 0 missing or condition not met, -1
// tombstoned, 2 deleted, 3 nothing done: the guard wants the value checked.
var expireScript = newScript(luaLifetime + luaGuard + luaTypedTomb + `
local k = KEYS[1]
local v = false
if ARGV[3] == '1' then
  v = redis.pcall('GET', k)
  if type(v) == 'table' then
    if typed_tomb(k) then return {-1} end
    return v -- WRONGTYPE: GETEX of a hash session
  end
  if v == false then return {0} end
else
  -- A hash session has no length and no tombstone inside: pcall keeps its
  -- WRONGTYPE from failing the script.
  local n = redis.pcall('STRLEN', k)
  if type(n) == 'table' then
    if typed_tomb(k) then return {-1} end
    n = -1
  end
  if n == 0 and redis.call('EXISTS', k) == 0 then return {0} end
  if n == 9 then v = redis.call('GET', k) end
end
if v == 'TOMBSTONE' then return {-1} end
if ARGV[3] ~= '1' then v = false end
if unchecked(v, ARGV[5]) then return {3, v} end
local ttl = tonumber(ARGV[1])
local px = ARGV[1] -- ttl as given, until the absolute lifetime caps it
local cond = ARGV[2]
if cond ~= '' then
  local cur = redis.call('PTTL', k)
  if (cond == 'NX' and cur ~= -1) or (cond == 'XX' and cur == -1) or
     (cond == 'GT' and (cur == -1 or ttl <= cur)) or
     (cond == 'LT' and cur ~= -1 and ttl >= cur) or
     (cond == 'XXLT' and (cur == -1 or ttl >= cur)) then
    if v then return {0, v} end
    return {0}
  end
end
local absolute = tonumber(ARGV[4])
if ttl > 0 and absolute > 0 then
  local head = redis.pcall('GETRANGE', k, '0', '17')
  local created = type(head) == 'string' and created_digits(head)
  if created then
    local left = tonumber(created) + absolute - now_ms()
    if left < ttl then ttl, px = left, left end
  end
end
local status = 1
if ttl <= 0 then
  redis.call('DEL', k)
  status = 2
else
  redis.call('PEXPIRE', k, px)
end
if v then return {status, v} end
return {status}
`)
