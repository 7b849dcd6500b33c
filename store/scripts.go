package store

import "github.com/redis/go-redis/v9"

// The scripts are single-key, so they run on the key's own node in a
// cluster, and each makes "check the tombstone, then write" one atomic step
// inside Redis. A tombstone is the literal value TOMBSTONE; checking STRLEN
// first keeps the common case (a live 1 KB session) from copying the value
// into Lua.
//
// Numbers bound for Redis go as strings: a literal '0', or the ARGV string
// as the proxy sent it unless the script changed the figure. Redis turns a
// Lua number argument into text with printf, and on the write path that
// showed in a profile of Redis (bench/results/2026-11-22-16-lua-strings.txt).

// Tombstone is the value written at a destroyed session's key (the format
// connect-redis-session uses).
const Tombstone = "TOMBSTONE"

// TombstoneFormat is how a destroyed session's key is marked.
type TombstoneFormat string

// Tombstone formats. Every script recognises both, whatever the
// namespace's format, so a proxy switched from one to the other still
// refuses writes to the tombstones the other left.
const (
	// TombstoneString is the string TOMBSTONE (connect-redis-session's).
	TombstoneString TombstoneFormat = "string"
	// TombstoneTyped is a set holding the one member TOMBSTONE: not a
	// string, so Redis's own SET … GET refuses to overwrite it
	// (WRONGTYPE), atomically and without writing, and a guarded write
	// needs no script (Write.Native). Not a hash, which a hash session is.
	TombstoneTyped TombstoneFormat = "typed"
)

// luaTypedTomb is shared by the scripts that meet a key that is not a
// string: typed_tomb(k) reports whether it is a typed tombstone.
const luaTypedTomb = `
local function typed_tomb(k)
  return redis.call('TYPE', k)['ok'] == 'set' and redis.call('SISMEMBER', k, 'TOMBSTONE') == 1
end
`

// luaLifetime is shared by the scripts that enforce ttl.absolute. A
// session's creation time is in its stored header (store/codec): magic
// "\0SP1", a flags byte whose bit 5 says the 13 ASCII digits of Unix
// milliseconds at bytes 6-18 are there.
const luaLifetime = `
local function created_digits(h)
  if #h >= 18 and string.sub(h, 1, 4) == '\0SP1' and math.floor(string.byte(h, 5) / 32) % 2 == 1 then
    return string.sub(h, 6, 18)
  end
  return nil
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

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

// readScript reads a session and slides its expiry (ttl.idle), within
// what is left of its absolute lifetime; a session past that lifetime
// (stored before ttl.absolute was lowered, say) is deleted, not returned.
// ARGV: idle ms ("0": no sliding), absolute lifetime ms ("0": off).
// Returns the value, or nil when missing, tombstoned or just expired.
var readScript = newScript(luaLifetime + luaTypedTomb + `
local k = KEYS[1]
local v = redis.pcall('GET', k)
if type(v) == 'table' then
  if typed_tomb(k) then return false end
  return v -- WRONGTYPE (a hash session), without the script's name
end
if v == false or v == 'TOMBSTONE' then return false end
local ttl = tonumber(ARGV[1])
local px = ARGV[1] -- ttl as given, until the absolute lifetime caps it
local absolute = tonumber(ARGV[2])
if absolute > 0 then
  local created = created_digits(v)
  if created then
    local left = tonumber(created) + absolute - now_ms()
    if left <= 0 then
      redis.call('DEL', k)
      return false
    end
    if left < ttl then ttl, px = left, left end
  end
end
if ttl > 0 then redis.call('PEXPIRE', k, px) end
return v
`)

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

// indexAddScript adds a member to an owner index and extends the index's
// TTL: one command rather than three, so nothing can run between them (in a
// cluster, go-redis follows a redirect for each command on its own, and an
// index whose PEXPIRE ran before its SADD would be left without a TTL).
// PEXPIRE GT leaves a longer TTL alone but does not set one on a set
// without; NX covers the set just created.
// KEYS: the index; ARGV: member, ttl ms.
var indexAddScript = newScript(`
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'GT')
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
return 1
`)

var allScripts = []*redis.Script{setManyScript, writeScript, destroyScript, expireScript, readScript, inspectScript, casScript, boundScript, indexAddScript, hashWriteScript, hashReadScript, lockKeepTTLScript, typedTombScript}
