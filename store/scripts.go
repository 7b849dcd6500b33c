package store

import "github.com/redis/go-redis/v9"

// The scripts are single-key, so they run on the key's own node in a
// cluster, and each makes "check the tombstone, then write" one atomic step
// inside Redis. A tombstone is the literal value TOMBSTONE; checking STRLEN
// first keeps the common case (a live 1 KB session) from copying the value
// into Lua.

// Tombstone is the value written at a destroyed session's key (the format
// connect-redis-session uses).
const Tombstone = "TOMBSTONE"

// writeScript stores a session value.
// ARGV: value, ttl ms (<= 0: the session is expired, delete it), condition
// ("", "NX", "XX"), keepttl max ms ("" unless KEEPTTL), "1" to return the
// previous value.
// Returns {status[, previous]}: 1 written, 0 condition not met, -1
// tombstoned, 2 deleted as expired.
var writeScript = redis.NewScript(`
local k = KEYS[1]
local old = false
local exists
if ARGV[5] == '1' then
  old = redis.call('GET', k)
  if old == 'TOMBSTONE' then return {-1} end
  exists = old ~= false
else
  local n = redis.call('STRLEN', k)
  if n == 9 and redis.call('GET', k) == 'TOMBSTONE' then return {-1} end
  exists = n > 0 or redis.call('EXISTS', k) == 1
end
if (ARGV[3] == 'NX' and exists) or (ARGV[3] == 'XX' and not exists) then
  if old then return {0, old} end
  return {0}
end
local ttl = tonumber(ARGV[2])
local status = 1
if ttl <= 0 then
  redis.call('DEL', k)
  status = 2
elseif ARGV[4] ~= '' and exists then
  local p = redis.call('PTTL', k)
  if p > 0 and p <= tonumber(ARGV[4]) then
    redis.call('SET', k, ARGV[1], 'KEEPTTL')
  else
    redis.call('SET', k, ARGV[1], 'PX', ttl)
  end
else
  redis.call('SET', k, ARGV[1], 'PX', ttl)
end
if old then return {status, old} end
return {status}
`)

// destroyScript replaces a session with a tombstone (or deletes it when
// tombstones are off).
// ARGV: grace ms (0: no tombstone, DEL), "1" to return the previous value.
// Returns {live[, previous]}: live is 1 when a live session was there.
var destroyScript = redis.NewScript(`
local k = KEYS[1]
local live = 0
local old = false
local t = redis.call('TYPE', k)['ok']
if t == 'string' then
  if ARGV[2] == '1' or redis.call('STRLEN', k) == 9 then
    old = redis.call('GET', k)
    if old == 'TOMBSTONE' then old = false end
  else
    live = 1
  end
  if old then live = 1 end
elseif t ~= 'none' then
  live = 1
end
if tonumber(ARGV[1]) > 0 then
  redis.call('SET', k, 'TOMBSTONE', 'PX', ARGV[1])
else
  redis.call('DEL', k)
end
if ARGV[2] == '1' and old then return {live, old} end
return {live}
`)

// expireScript sets the TTL of a live session.
// ARGV: ttl ms (<= 0: delete), condition ("", "NX", "XX", "GT", "LT",
// "XXLT"), "1" to return the value (GETEX).
// Returns {status[, value]}: 1 applied, 0 missing or condition not met, -1
// tombstoned, 2 deleted.
var expireScript = redis.NewScript(`
local k = KEYS[1]
local v = false
if ARGV[3] == '1' then
  v = redis.call('GET', k)
  if v == false then return {0} end
else
  local n = redis.call('STRLEN', k)
  if n == 0 and redis.call('EXISTS', k) == 0 then return {0} end
  if n == 9 then v = redis.call('GET', k) end
end
if v == 'TOMBSTONE' then return {-1} end
if ARGV[3] ~= '1' then v = false end
local ttl = tonumber(ARGV[1])
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
local status = 1
if ttl <= 0 then
  redis.call('DEL', k)
  status = 2
else
  redis.call('PEXPIRE', k, ttl)
end
if v then return {status, v} end
return {status}
`)

// inspectScript answers a read about a key, treating a tombstone as absent.
// ARGV: "pttl" (ms, -2 absent, -1 no TTL), "exists" (0/1), "strlen",
// "type" (type name).
var inspectScript = redis.NewScript(`
local k = KEYS[1]
local op = ARGV[1]
local t = redis.call('TYPE', k)['ok']
if t == 'string' and redis.call('STRLEN', k) == 9 and redis.call('GET', k) == 'TOMBSTONE' then
  t = 'none'
end
if op == 'type' then return t end
if t == 'none' then
  if op == 'pttl' then return -2 end
  return 0
end
if op == 'pttl' then return redis.call('PTTL', k) end
if op == 'exists' then return 1 end
return redis.call('STRLEN', k)
`)

var allScripts = []*redis.Script{writeScript, destroyScript, expireScript, inspectScript, casScript}
