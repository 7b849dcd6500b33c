package commands

import (
	"strconv"
	"strings"

	"github.com/yuin/gopher-lua/parse"
)

// A client's script runs upstream wrapped so that every redis.call and
// redis.pcall on a key under the prefix obeys the same rules as the
// command would from outside (docs/commands.md, "Scripts"): the wrapper
// shadows redis, KEYS, ARGV and _G with its own, and the user's text
// becomes the body of a function that only sees those.
//
// The user's text starts on the wrapped script's first line (after its
// shebang line, which stays first so Redis still reads its flags), so the
// line numbers in Redis's errors are the user's own. The policy travels in
// ARGV ahead of the user's arguments (scriptPolicyArgs), so one wrapped
// script serves every policy a reload can bring.

// scriptHead shadows the globals the wrapper replaces, and the escape
// hatches to the real ones, in a block around the user's function, on one
// line. Every local in scope of the user's text is one the user may name:
// the real redis, KEYS, ARGV and _G are captured only after the block
// (scriptTail), where the user's text cannot see them, and __sp_bind hands
// the user's function the wrapped ones.
const scriptHead = `local __sp_bind, __sp_user do ` +
	`local redis, KEYS, ARGV, _G, debug, getfenv, setfenv, loadstring, load, loadfile, dofile, require, module ` +
	`__sp_bind = function(r, k, a, g) redis, KEYS, ARGV, _G = r, k, a, g end ` +
	`__sp_user = function(...) `

// scriptTail is the wrapper proper. ARGV (the real one) starts with the
// policy, scriptPolicyArgs fields in the order below; with hash_ids the
// clients' names of KEYS follow; then the user's arguments.
const scriptTail = `
end end
local __sp_R, __sp_K, __sp_A, __sp_G = redis, KEYS, ARGV, _G
-- What the wrapper calls, taken before the user's function runs: a script
-- could otherwise replace string.sub or tonumber (Redis before 7.0 lets it;
-- Redis 7 makes the libraries read-only) and steer the wrapper's checks.
local tonumber, tostring, type, error, pcall, ipairs, unpack, setmetatable, rawget =
  tonumber, tostring, type, error, pcall, ipairs, unpack, setmetatable, rawget
local string = {sub = string.sub, gmatch = string.gmatch, upper = string.upper, lower = string.lower,
  format = string.format, find = string.find}
local math = {floor = math.floor, max = math.max}
local cjson = {decode = cjson.decode}
local R, P = __sp_R, __sp_A
local prefix = P[1]
local default_ms, min_ms, max_ms = tonumber(P[2]), tonumber(P[3]), tonumber(P[4])
local idle_ms, lock_ms, grace_ms = tonumber(P[5]), tonumber(P[6]), tonumber(P[7])
local on_write, persist, outside = P[8], P[9], P[10]
local json, max_bytes, no_write, no_read = P[11] == '1', tonumber(P[12]), P[13], P[14]
local suffixes = {}
for s in string.gmatch(P[15], '[^\n]+') do suffixes[#suffixes + 1] = s end
local ro = P[16] == 'ro'
-- need_ttl: ttl.require_expires; a script's session SET must give a TTL
-- (cookie.expires is not read inside scripts).
local need_ttl = P[17] == '1'
-- others: the prefixes of the other namespaces, whose keys a script of
-- this one may not touch.
local others = {}
for s in string.gmatch(P[18], '[^\n]+') do others[#others + 1] = s end
-- typed: tombstone.format = "typed", a destroy writes a set.
local typed = P[19] == 'typed'
-- max_fields: codec.max_hash_fields (0: none); max_bytes bounds a hash
-- session's fields and values together as well.
local max_fields = tonumber(P[20])
local NP = 21
local names, first = __sp_K, NP + 1
if P[21] == '1' then
  names = {}
  for i = 1, #__sp_K do names[i] = P[NP + i] end
  first = NP + #__sp_K + 1
end
local uargv = {}
for i = first, #P do uargv[#uargv + 1] = P[i] end

local no_expires = '` + msgNoExpires + `'
local function fmt(ms) return string.format('%.0f', ms) end
local function cap(s)
  s = tostring(s)
  if #s > 128 then return string.sub(s, 1, 128) .. '…' end
  return s
end
-- Redis answers an error raised as a table with its message, code and
-- all; the embedded upstream (miniredis) only understands a string.
local embedded = rawget(__sp_G, '_GOPHER_LUA_VERSION') ~= nil
local function fail(p, msg)
  if p then return {err = msg} end
  if embedded then error(msg, 0) end
  error({err = msg})
end
local function call(p, ...)
  if p then return R.pcall(...) end
  return R.call(...)
end
local function failed(r) return type(r) == 'table' and r.err ~= nil end

local function starts(k, p) return #k >= #p and string.sub(k, 1, #p) == p end
-- foreign: k is another namespace's (its prefix is longer than this one's,
-- or k is not under this one at all).
local function foreign(k)
  if type(k) ~= 'string' then return false end
  for _, o in ipairs(others) do
    if starts(k, o) and (#o > #prefix or not starts(k, prefix)) then return true end
  end
  return false
end
local function under(k)
  return type(k) == 'string' and starts(k, prefix) and not foreign(k)
end
local declared, order = {}, {}
for i = 1, #__sp_K do
  local name = names[i]
  local e = {key = __sp_K[i], kind = 'o'}
  if under(name) then
    e.kind, e.sid = 's', string.sub(name, #prefix + 1)
    for _, s in ipairs(suffixes) do
      if #name >= #prefix + #s and string.sub(name, -#s) == s then e.kind = 'l' end
    end
  end
  if not declared[name] then order[#order + 1] = e end
  declared[name] = e
end

local function entry(name)
  local e = declared[name]
  if e then return e end
  if under(name) then
    return nil, "ERR key '" .. cap(name) .. "' is not declared in KEYS: a script must name every session key in KEYS (see docs/commands.md, Scripts)"
  end
  if foreign(name) then
    return nil, "ERR key '" .. cap(name) .. "' belongs to another namespace: a script runs in the namespace of its KEYS (see docs/commands.md, Scripts)"
  end
  if outside ~= 'passthrough' then
    return nil, "NOPERM key '" .. cap(name) .. "' is outside the session namespace"
  end
  return {key = name, kind = 'o'}
end

local function now_ms()
  local t = R.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function clamp(ms)
  if idle_ms > 0 then ms = idle_ms end
  if ms < min_ms then return min_ms end
  if ms > max_ms then return max_ms end
  return ms
end
local function lock_ttl(ms)
  if ms > lock_ms then return lock_ms end
  return ms
end
-- tomb sees both tombstone formats: the string TOMBSTONE, and a set
-- holding it (typed), whatever this namespace writes.
local function tomb(k)
  local h = R.pcall('GETRANGE', k, '0', '9')
  if h == 'TOMBSTONE' then return true end
  return type(h) == 'table' and R.call('TYPE', k)['ok'] == 'set' and R.call('SISMEMBER', k, 'TOMBSTONE') == 1
end
local function integer(v)
  local n = tonumber(v)
  if n == nil or n ~= math.floor(n) then return nil end
  return n
end
-- expiry_ms is the TTL in ms an expiry option asks for (EXAT and PXAT
-- relative to now), or nil and the error for a bad one.
local function expiry_ms(opt, v, cmd)
  local n = integer(v)
  if n == nil then return nil, 'ERR value is not an integer or out of range' end
  if n <= 0 then return nil, "ERR invalid expire time in '" .. cmd .. "' command" end
  if opt == 'EX' or opt == 'EXAT' then n = n * 1000 end
  if opt == 'EXAT' or opt == 'PXAT' then n = n - now_ms() end
  return n
end
-- setex_ms is the TTL in ms SETEX or PSETEX asks for, or nil and the error.
local function setex_ms(name, a)
  if name == 'psetex' then return expiry_ms('PX', a[3], name) end
  return expiry_ms('EX', a[3], name)
end
local function payload_error(v)
  if type(v) ~= 'string' then v = tostring(v) end
  if max_bytes > 0 and #v > max_bytes then
    return 'ERR invalid session payload: larger than codec.max_payload_bytes (' .. max_bytes .. ' bytes)'
  end
  if string.sub(v, 1, 4) == '\0SP1' then return 'ERR invalid session payload: starts with the codec header magic' end
  if json then
    if not string.find(v, '^%s*{') then return 'ERR invalid session payload: not a JSON object' end
    if not pcall(cjson.decode, v) then return 'ERR invalid session payload: not valid JSON' end
  end
  return nil
end

-- set_args parses SET's options from a[4] on.
local function set_args(a)
  local o = {}
  local i = 4
  while a[i] ~= nil do
    local w = string.upper(tostring(a[i]))
    if (w == 'NX' or w == 'XX') and not o.cond then o.cond = w
    elseif w == 'GET' and not o.get then o.get = true
    elseif w == 'KEEPTTL' and not o.keep and not o.ms then o.keep = true
    elseif (w == 'EX' or w == 'PX' or w == 'EXAT' or w == 'PXAT') and not o.ms and not o.keep and a[i + 1] ~= nil then
      i = i + 1
      local ms, msg = expiry_ms(w, a[i], 'set')
      if not ms then return nil, msg end
      o.ms = ms
    else
      return nil, 'ERR syntax error'
    end
    i = i + 1
  end
  return o
end
local function set_cmd(k, v, o, px)
  local c = {'SET', k, v}
  if o.cond then c[#c + 1] = o.cond end
  if o.get then c[#c + 1] = 'GET' end
  if px then
    c[#c + 1] = 'PX'
    c[#c + 1] = fmt(px)
  else
    c[#c + 1] = 'KEEPTTL'
  end
  return c
end

local hashes = {hget = 1, hmget = 1, hgetall = 1, hexists = 1, hlen = 1, hkeys = 1, hvals = 1, hstrlen = 1,
  hset = 1, hmset = 1, hsetnx = 1, hdel = 1, hincrby = 1, hincrbyfloat = 1}
local reads = {get = 1, strlen = 1, exists = 1, ttl = 1, pttl = 1, type = 1, hget = 1, hmget = 1, hgetall = 1,
  hexists = 1, hlen = 1, hkeys = 1, hvals = 1, hstrlen = 1}
local value_reads = {get = 1, strlen = 1, getdel = 1, getset = 1, hget = 1, hmget = 1, hgetall = 1, hvals = 1, hstrlen = 1}
local slides = {get = 1, hget = 1, hmget = 1, hgetall = 1, hexists = 1, hlen = 1, hkeys = 1, hvals = 1, hstrlen = 1}
local writes = {set = 1, setex = 1, psetex = 1, setnx = 1, getset = 1, getdel = 1, del = 1, unlink = 1,
  expire = 1, pexpire = 1, expireat = 1, pexpireat = 1, persist = 1,
  hset = 1, hmset = 1, hsetnx = 1, hdel = 1, hincrby = 1, hincrbyfloat = 1}
local per_key = {del = 1, unlink = 1, exists = 1, mget = 1}
local keyless = {ping = 1, time = 1, echo = 1}
-- missing answers a read of a tombstoned session: no session.
local missing = {get = false, strlen = 0, exists = 0, ttl = -2, pttl = -2, type = {ok = 'none'}, hget = false,
  hgetall = {}, hexists = 0, hlen = 0, hkeys = {}, hvals = {}, hstrlen = 0}
-- ignored answers a write refused by a tombstone under tombstone.on_write = "ignore".
local ignored = {set = {ok = 'OK'}, setex = {ok = 'OK'}, psetex = {ok = 'OK'}, hmset = {ok = 'OK'}, getset = false,
  setnx = 0, expire = 0, pexpire = 0, expireat = 0, pexpireat = 0, persist = 0, hset = 0, hsetnx = 0, hdel = 0,
  hincrby = 0, hincrbyfloat = '0'}

local function expire_ms(name, v)
  local n = integer(v)
  if n == nil then return nil end
  if name == 'expire' or name == 'expireat' then n = n * 1000 end
  if name == 'expireat' or name == 'pexpireat' then n = n - now_ms() end
  return n
end

-- destroy replaces a session with a tombstone; 1 when a live one was there.
local function destroy(k)
  local t = R.call('TYPE', k)['ok']
  local live = 1
  if t == 'none' or tomb(k) then live = 0 end
  if grace_ms > 0 and typed then
    R.call('DEL', k)
    R.call('SADD', k, 'TOMBSTONE')
    R.call('PEXPIRE', k, fmt(grace_ms))
  elseif grace_ms > 0 then
    R.call('SET', k, 'TOMBSTONE', 'PX', fmt(grace_ms))
  else
    R.call('DEL', k)
  end
  return live
end

local function on_session(p, e, name, a)
  local k = e.key
  if value_reads[name] and no_read ~= '' then return fail(p, no_read) end
  if reads[name] then
    if tomb(k) then
      if name == 'hmget' then
        local out = {}
        for i = 3, #a do out[#out + 1] = false end
        return out
      end
      return missing[name]
    end
    local r = call(p, unpack(a))
    if slides[name] and idle_ms > 0 and not ro and not failed(r) then
      R.call('PEXPIRE', k, fmt(clamp(idle_ms)))
    end
    return r
  end
  if ro then return call(p, unpack(a)) end -- a write: Redis refuses it in a read-only script
  if name == 'del' or name == 'unlink' then return destroy(k) end
  if name == 'getdel' then
    if tomb(k) then
      destroy(k)
      return false
    end
    local v = call(p, 'GET', k)
    if failed(v) then return v end
    if v == 'TOMBSTONE' then v = false end
    destroy(k)
    return v
  end
  if name == 'persist' and persist ~= 'clamp' then
    return fail(p, 'ERR PERSIST is not allowed on session keys (ttl.persist = "deny")')
  end
  if no_write ~= '' then return fail(p, no_write) end
  if tomb(k) then
    if on_write == 'ignore' then return ignored[name] end
    return fail(p, 'TOMBSTONE session ' .. cap(e.sid) .. ' was destroyed')
  end
  e.written = true
  if name == 'set' then
    if a[3] == nil then return call(p, unpack(a)) end
    local bad = payload_error(a[3])
    if bad then return fail(p, bad) end
    local o, msg = set_args(a)
    if not o then return fail(p, msg) end
    if need_ttl and not o.ms then return fail(p, no_expires) end
    local px = default_ms
    if o.ms then
      if o.ms <= 0 then -- an EXAT or PXAT already past: expired, as Redis has it
        R.call('DEL', k)
        if o.get then return false end
        return {ok = 'OK'}
      end
      px = clamp(o.ms)
    elseif o.keep then
      local cur = R.call('PTTL', k)
      if cur > 0 and cur <= max_ms then px = cur end
    end
    return call(p, unpack(set_cmd(k, a[3], o, px)))
  end
  if name == 'setex' or name == 'psetex' then
    if a[4] == nil then return call(p, unpack(a)) end
    local ms, msg = setex_ms(name, a)
    if not ms then return fail(p, msg) end
    local bad = payload_error(a[4])
    if bad then return fail(p, bad) end
    return call(p, 'SET', k, a[4], 'PX', fmt(clamp(ms)))
  end
  if name == 'setnx' or name == 'getset' then
    if a[3] == nil then return call(p, unpack(a)) end
    local bad = payload_error(a[3])
    if bad then return fail(p, bad) end
    if need_ttl then return fail(p, no_expires) end
    if name == 'getset' then return call(p, 'SET', k, a[3], 'GET', 'PX', fmt(default_ms)) end
    local r = call(p, 'SET', k, a[3], 'NX', 'PX', fmt(default_ms))
    if failed(r) then return r end
    if r then return 1 end
    return 0
  end
  if name == 'persist' then return call(p, 'PEXPIRE', k, fmt(max_ms)) end
  if name == 'expire' or name == 'pexpire' or name == 'expireat' or name == 'pexpireat' then
    local ms = expire_ms(name, a[3])
    if ms == nil then return fail(p, 'ERR value is not an integer or out of range') end
    if ms > 0 then ms = clamp(ms) end -- <= 0: Redis deletes the key, an expiry, no tombstone
    a[1], a[3] = 'PEXPIRE', fmt(ms)
    return call(p, unpack(a))
  end
  -- hash writes: bounded as the proxy's own are (store/hash.go), the
  -- fields first, with HLEN, so that summing the sizes never reads more
  -- than max_fields fields; a write past a bound is undone. The hash gets
  -- the policy TTL, as a SET without one does.
  local fields, old, existed
  if name ~= 'hdel' and (max_fields > 0 or max_bytes > 0) and a[3] ~= nil then
    fields = {}
    for i = 3, #a, 2 do fields[#fields + 1] = a[i] end
    existed = R.call('EXISTS', k) == 1
    old = R.pcall('HMGET', k, unpack(fields))
    if failed(old) then fields = nil end -- not a hash: the command answers WRONGTYPE
  end
  local r = call(p, unpack(a))
  if failed(r) then return r end
  if fields then
    local over
    if max_fields > 0 and R.call('HLEN', k) > max_fields then
      over = 'codec.max_hash_fields (' .. max_fields .. ' fields)'
    elseif max_bytes > 0 then
      local size = 0
      local all = R.call('HGETALL', k)
      for i = 1, #all do size = size + #all[i] end
      if size > max_bytes then over = 'codec.max_payload_bytes (' .. max_bytes .. ' bytes of fields and values)' end
    end
    if over then
      if not existed then
        R.call('DEL', k)
      else
        for i = 1, #fields do
          if old[i] then R.call('HSET', k, fields[i], old[i]) else R.call('HDEL', k, fields[i]) end
        end
      end
      return fail(p, '` + msgHashSession + `' .. cap(e.sid) .. '` + msgHashWouldExceed + `' .. over .. ': nothing written')
    end
  end
  if R.call('EXISTS', k) == 1 then R.call('PEXPIRE', k, fmt(default_ms)) end
  return r
end

local function on_lock(p, e, name, a)
  local k = e.key
  if hashes[name] then
    return fail(p, 'ERR hash commands are not served on lock keys: a lock is a string (see docs/commands.md, Locks)')
  end
  if ro or not writes[name] or name == 'del' or name == 'unlink' or name == 'getdel' then
    return call(p, unpack(a))
  end
  e.written = true
  if name == 'set' then
    if a[3] == nil then return call(p, unpack(a)) end
    local o, msg = set_args(a)
    if not o then return fail(p, msg) end
    if o.keep then return call(p, unpack(set_cmd(k, a[3], o, nil))) end -- bounded after the script
    local px = lock_ms
    if o.ms then px = lock_ttl(math.max(o.ms, 1)) end
    return call(p, unpack(set_cmd(k, a[3], o, px)))
  end
  if name == 'setex' or name == 'psetex' then
    if a[4] == nil then return call(p, unpack(a)) end
    local ms, msg = setex_ms(name, a)
    if not ms then return fail(p, msg) end
    return call(p, 'SET', k, a[4], 'PX', fmt(lock_ttl(ms)))
  end
  if name == 'setnx' then
    if a[3] == nil then return call(p, unpack(a)) end
    local r = call(p, 'SET', k, a[3], 'NX', 'PX', fmt(lock_ms))
    if failed(r) then return r end
    if r then return 1 end
    return 0
  end
  if name == 'getset' then
    if a[3] == nil then return call(p, unpack(a)) end
    return call(p, 'SET', k, a[3], 'GET', 'PX', fmt(lock_ms))
  end
  if name == 'persist' then
    if persist ~= 'clamp' then
      return fail(p, 'ERR PERSIST is not allowed on lock keys (ttl.persist = "deny"): a lock always expires within ttl.lock_max')
    end
    return call(p, 'PEXPIRE', k, fmt(lock_ms))
  end
  local ms = expire_ms(name, a[3])
  if ms == nil then return fail(p, 'ERR value is not an integer or out of range') end
  if ms > 0 then ms = lock_ttl(ms) end
  a[1], a[3] = 'PEXPIRE', fmt(ms)
  return call(p, unpack(a))
end

local function one(p, e, name, a)
  a[2] = e.key
  if e.kind == 'o' then return call(p, unpack(a)) end
  if e.kind == 'l' then return on_lock(p, e, name, a) end
  return on_session(p, e, name, a)
end

local function run(p, ...)
  local a = {...}
  if type(a[1]) ~= 'string' and type(a[1]) ~= 'number' then return call(p, ...) end
  local name = string.lower(tostring(a[1]))
  if per_key[name] and a[2] ~= nil then
    local es = {}
    for i = 2, #a do
      local e, msg = entry(a[i])
      if not e then return fail(p, msg) end
      es[#es + 1] = e
    end
    local out, n = {}, 0
    for i, e in ipairs(es) do
      if name == 'mget' then
        local v = one(true, e, 'get', {'get', a[i + 1]})
        if failed(v) then
          if string.sub(v.err, 1, 9) ~= 'WRONGTYPE' then return fail(p, v.err) end
          v = false -- MGET answers nil for a key of another type
        end
        out[i] = v
      else
        local r = one(p, e, name, {name, a[i + 1]})
        if failed(r) then return r end
        n = n + r
      end
    end
    if name == 'mget' then return out end
    return n
  end
  if (reads[name] or writes[name]) and a[2] ~= nil then
    local e, msg = entry(a[2])
    if not e then return fail(p, msg) end
    return one(p, e, name, a)
  end
  if keyless[name] or reads[name] or writes[name] then return call(p, ...) end
  for i = 2, #a do
    local d = declared[a[i]]
    if under(a[i]) or foreign(a[i]) or (d and d.kind ~= 'o') then
      return fail(p, "ERR command '" .. cap(name) .. "' is not allowed on session keys in scripts (see docs/commands.md, Scripts)")
    end
  end
  if outside ~= 'passthrough' then
    return fail(p, "ERR command '" .. cap(name) .. "' is not allowed in scripts (session.outside_prefix = \"deny\"; see docs/commands.md, Scripts)")
  end
  return call(p, ...)
end

local meta = {__index = R, __metatable = false}
-- The wrapper reads Redis's replies in RESP2's shapes (HGETALL's flat
-- list, a missing value as false): under redis.setresp(3) its hash size
-- bound summed nothing. A script keeps RESP2.
local function setresp(v)
  if tonumber(v) ~= 2 then fail(false, 'ERR sessproxy: redis.setresp(3) is not supported in scripts (the policy reads replies as RESP2)') end
end
local wrapped = setmetatable({call = function(...) return run(false, ...) end, pcall = function(...) return run(true, ...) end,
  setresp = setresp}, meta)
-- The user's _G reads the real globals but for the ones the head shadows:
-- the real _G (whose redis is the real one) and what compiles text against
-- it (loadstring, load) would hand the user's text the real redis.
local hidden = {_G = true, debug = true, getfenv = true, setfenv = true, loadstring = true, load = true,
  loadfile = true, dofile = true, require = true, module = true}
local G = {redis = wrapped, KEYS = names, ARGV = uargv}
G._G = G
setmetatable(G, {__metatable = false, __index = function(_, name)
  if hidden[name] then return nil end
  return __sp_G[name]
end})
__sp_bind(wrapped, names, uargv, G)

-- finish bounds the TTL of every declared key the script wrote, in case a
-- path above left one without (they all set it; this is the backstop).
local function finish(...)
  if not ro then
    for _, e in ipairs(order) do
      if e.written then
        local t = R.call('PTTL', e.key)
        if e.kind == 's' and t == -1 then
          R.call('PEXPIRE', e.key, fmt(default_ms))
        elseif e.kind == 'l' and (t == -1 or t > lock_ms) then
          R.call('PEXPIRE', e.key, fmt(lock_ms))
        end
      end
    end
  end
  return ...
end
return finish(__sp_user())
`

// scriptPolicyFields is how many ARGV the policy takes ahead of the
// user's (the wrapper's NP).
const scriptPolicyFields = 21

// wrapScript returns the upstream text of a client's script, or the error
// reply for one that does not compile. The script is parsed on its own
// first, so that its text cannot close the function the wrapper puts it
// in and run outside the policy.
func wrapScript(source string) (string, string) {
	shebang, body := "", source
	if strings.HasPrefix(source, "#!") {
		i := strings.IndexByte(source, '\n')
		if i < 0 {
			shebang, body = source, ""
		} else {
			shebang, body = source[:i+1], source[i+1:]
		}
	}
	if len(source) > maxScriptBytes {
		return "", errScriptTooLarge(maxScriptBytes)
	}
	// gopher-lua's parser holds memory per level of nesting: measure it
	// first (scriptnesting.go).
	if depth, line := scriptNesting(body, maxScriptNesting); depth > maxScriptNesting {
		return "", errScriptNesting(line)
	}
	if _, err := parse.Parse(strings.NewReader(body), "user_script"); err != nil {
		return "", errScriptCompile(err)
	}
	if shebang != "" && !strings.HasSuffix(shebang, "\n") {
		shebang += "\n"
	}
	return shebang + scriptHead + body + scriptTail, ""
}

// userLines is how many lines of the wrapped script are the user's: past
// them, a line in an error is the wrapper's.
func userLines(source string) int {
	return strings.Count(source, "\n") + 1
}

// scriptPolicyArgs is the policy block of ARGV for a script run under
// conf, in the order scriptTail reads it.
func (e *Engine) scriptPolicyArgs(conf *reloadable, sp *space, readOnly bool, clear []string) [][]byte {
	p := &conf.policies[sp.index]
	args := make([][]byte, 0, scriptPolicyFields+len(clear))
	str := func(s string) { args = append(args, []byte(s)) }
	ms := func(d int64) { str(strconv.FormatInt(d, 10)) }
	str(sp.prefix)
	ms(ttlArg(p.Decide(nil, 0)).Milliseconds())
	ms(p.Min.Milliseconds())
	ms(p.Max.Milliseconds())
	ms(p.Idle.Milliseconds())
	ms(p.LockMax.Milliseconds())
	ms(sp.grace.Milliseconds())
	str(sp.onWrite)
	str(string(p.Persist))
	str(e.opts.OutsidePrefix)
	if sp.codec.JSON() {
		str("1")
	} else {
		str("0")
	}
	ms(int64(sp.maxHashBytes))
	str(e.scriptWriteRefusal(conf, sp))
	str(e.scriptReadRefusal(conf, sp))
	str(strings.Join(sp.lockSuffixes, "\n"))
	if readOnly {
		str("ro")
	} else {
		str("")
	}
	if p.RequireExpires {
		str("1")
	} else {
		str("0")
	}
	var others []string
	for _, o := range e.spaces {
		if o != sp {
			others = append(others, o.prefix)
		}
	}
	str(strings.Join(others, "\n"))
	str(string(sp.format))
	ms(int64(sp.maxHashFields))
	if clear != nil {
		str("1")
		for _, c := range clear {
			str(c)
		}
	} else {
		str("0")
	}
	return args
}
