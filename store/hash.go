package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Hash sessions keep one field per key of a Redis hash (Spring Session,
// the alt-session stores for Express, hand-written stores). Their values
// are the application's own: no codec runs on them. Every operation is one
// script on the key's own node, so the tombstone check, the command and
// its TTL are one atomic step, as for string sessions.

// ErrHashTooLarge is a hash write refused because the hash would pass its
// size bound; nothing was written.
var ErrHashTooLarge = errors.New("hash session too large")

// ErrHashTooManyFields is a hash write refused because the hash would pass
// its bound on fields; nothing was written.
var ErrHashTooManyFields = errors.New("hash session has too many fields")

// luaHashType is shared by the hash scripts: kind(k) is 'hash', 'none'
// (missing), 'tombstone', or nil after it has answered WRONGTYPE for any
// other type, which the caller returns as is.
const luaHashType = `
local wrongtype = 'WRONGTYPE Operation against a key holding the wrong kind of value'
local function kind(k)
  local t = redis.call('TYPE', k)['ok']
  if t == 'hash' or t == 'none' then return t end
  if (t == 'string' and redis.call('STRLEN', k) == 9 and redis.call('GET', k) == 'TOMBSTONE') or
     (t == 'set' and redis.call('SISMEMBER', k, 'TOMBSTONE') == 1) then
    return 'tombstone'
  end
  return nil
end
`

// hashWriteScript runs one hash write on a session key.
// ARGV: the command (HSET, HSETNX, HDEL, HINCRBY, HINCRBYFLOAT), ttl ms,
// "1" to set that TTL on every write (ttl.idle) rather than only on a key
// without one, the size bound in bytes ("0": none), the bound on fields
// ("0": none), then the command's own arguments after the key.
// The size of a hash is the sum of the lengths of its fields and values.
// The command runs first and is undone (the fields it touched put back)
// when the hash would pass a bound: the script is atomic, so nobody sees
// the write, and the one rule covers HINCRBY, whose result is only known
// once Redis has computed it.
// Redis keeps no running size of a hash, so the size is summed over the
// whole hash (HGETALL): the field bound is checked first, with HLEN, which
// costs the same whatever the hash holds, so the sum never runs over more
// than that many fields. A hash that got past the bounds some other way (a
// direct write, an older proxy) takes only HDEL, at the cost of its
// arguments.
// Returns {1, reply} done, {-1} tombstoned, {-2} too large, {-3} too many
// fields, nothing written; or the command's own error reply (WRONGTYPE,
// not an integer…).
var hashWriteScript = newScript(luaHashType + `
local k = KEYS[1]
local cmd = ARGV[1]
local t = kind(k)
if t == nil then return redis.error_reply(wrongtype) end
if t == 'tombstone' then return {-1} end
if cmd == 'HDEL' and t == 'none' then return {1, 0} end
local args = {}
for i = 6, #ARGV do args[#args + 1] = ARGV[i] end
local max, maxf = tonumber(ARGV[4]), tonumber(ARGV[5])
local bounded = (max > 0 or maxf > 0) and cmd ~= 'HDEL'
local fields, old = {}, {}
if bounded then
  -- HSET, HSETNX, HINCRBY, HINCRBYFLOAT: a field, then its argument.
  for i = 1, #args, 2 do fields[#fields + 1] = args[i] end
  old = redis.call('HMGET', k, unpack(fields))
end
local reply = redis.pcall(cmd, k, unpack(args))
if type(reply) == 'table' and reply.err then return reply end
if bounded then
  local over
  if maxf > 0 and redis.call('HLEN', k) > maxf then
    over = -3
  elseif max > 0 then
    local size = 0
    local all = redis.call('HGETALL', k)
    for i = 1, #all do size = size + #all[i] end
    if size > max then over = -2 end
  end
  if over then
    if t == 'none' then
      redis.call('DEL', k)
    else
      for i = 1, #fields do
        if old[i] then redis.call('HSET', k, fields[i], old[i]) else redis.call('HDEL', k, fields[i]) end
      end
    end
    return {over}
  end
end
if redis.call('EXISTS', k) == 1 and (ARGV[3] == '1' or redis.call('PTTL', k) < 0) then
  redis.call('PEXPIRE', k, ARGV[2])
end
return {1, reply}
`)

// hashReadScript runs one hash read on a session key, a tombstone reading
// as a missing key, and with ttl.idle slides the hash's expiry.
// ARGV: idle ms ("0": no sliding), the command (HGET, HMGET, HGETALL,
// HEXISTS, HLEN, HKEYS, HVALS, HSTRLEN, HSCAN), then its arguments after
// the key.
// Returns {1, reply} for a hash, {0} for a missing key or a tombstone; or
// the command's own error reply (WRONGTYPE, a bad HSCAN option…).
var hashReadScript = newScript(luaHashType + `
local k = KEYS[1]
local t = kind(k)
if t == nil then return redis.error_reply(wrongtype) end
if t ~= 'hash' then return {0} end
local args = {}
for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
local reply = redis.pcall(ARGV[2], k, unpack(args))
if type(reply) == 'table' and reply.err then return reply end
if ARGV[1] ~= '0' then redis.call('PEXPIRE', k, ARGV[1]) end
return {1, reply}
`)

// HashWrite is a write to a hash session.
type HashWrite struct {
	Cmd  string   // HSET, HSETNX, HDEL, HINCRBY or HINCRBYFLOAT
	Args [][]byte // the command's arguments after the key
	// TTL is given to a key without one, and to every key written when
	// Slide is set (ttl.idle). It must be positive.
	TTL   time.Duration
	Slide bool
	// MaxBytes bounds the hash's size (its fields and values together); a
	// write that would pass it gives ErrHashTooLarge and writes nothing.
	// 0: no bound.
	MaxBytes int
	// MaxFields bounds the hash's number of fields; a write that would
	// pass it gives ErrHashTooManyFields and writes nothing. It also
	// bounds what measuring MaxBytes costs Redis: with MaxBytes and no
	// MaxFields, every write reads the whole hash. 0: no bound.
	MaxFields int
}

// IsWrongType reports whether err is Redis's WRONGTYPE reply.
func IsWrongType(err error) bool {
	return UpstreamReply(err) && strings.HasPrefix(err.Error(), "WRONGTYPE ")
}

// HashResult is the handle of a queued hash operation: its reply as
// go-redis reads it, or read raw (HashReadReply).
type HashResult struct {
	cmd *redis.Cmd
	raw *rawValue
}

// Result is the command's reply as go-redis decodes it, and whether the
// key holds a hash (a read of a missing or tombstoned key: false, nil).
// A write to a tombstone gives ErrTombstoned; one past the size bound,
// ErrHashTooLarge, or past the bound on fields, ErrHashTooManyFields;
// Redis's own error replies (WRONGTYPE…) come as they are.
func (r HashResult) Result() (interface{}, bool, error) {
	var vals []interface{}
	var err error
	if r.raw != nil {
		vals, err = r.raw.slice()
	} else {
		vals, err = r.cmd.Slice()
	}
	if err != nil {
		return nil, false, err
	}
	switch asInt(vals[0]) {
	case -1:
		return nil, false, ErrTombstoned
	case -2:
		return nil, false, ErrHashTooLarge
	case -3:
		return nil, false, ErrHashTooManyFields
	case 1:
		if len(vals) > 1 {
			return vals[1], true, nil
		}
		return nil, true, nil
	}
	return nil, false, nil
}

// HashWrite queues w on the hash session at key.
func (b *Batch) HashWrite(key string, w HashWrite) HashResult {
	slide := "0"
	if w.Slide {
		slide = "1"
	}
	args := make([]interface{}, 0, 5+len(w.Args))
	args = append(args, w.Cmd, msArg(w.TTL), slide, maxArg(w.MaxBytes), maxArg(w.MaxFields))
	for _, a := range w.Args {
		args = append(args, a)
	}
	return HashResult{cmd: b.script(hashWriteScript, false, key, args...)}
}

// HashRead queues the read cmd (HGET, HMGET, HGETALL, HEXISTS, HLEN,
// HKEYS, HVALS, HSTRLEN, HSCAN) with args on the hash session at key; idle
// > 0 resets the hash's TTL to idle when it is there (ttl.idle).
func (b *Batch) HashRead(key string, idle time.Duration, cmd string, args ...[]byte) HashResult {
	return HashResult{cmd: b.script(hashReadScript, idle <= 0, key, hashReadArgs(idle, cmd, args)...)}
}

// HashReadReply queues HashRead for a read whose reply is the client's
// (HGET, HMGET, HGETALL…, SESS.GET of a hash): the script's reply is read
// raw, each value charged to the batch's room (SetRoom) as GetReply's,
// and one past it gives the read ErrReplyTooLarge. Read whole, 300
// pipelined HGETs of a 1 MB field (an 8 KB request), or one HMGET naming
// it 300 times, grew the proxy by 300 MB for a client allowed 1 MiB of
// replies; an HMGET may name it 7,900 times.
func (b *Batch) HashReadReply(key string, idle time.Duration, cmd string, args ...[]byte) HashResult {
	raw := &rawValue{scan: valueScanner{room: b.room}}
	call := append([]interface{}{"evalsha", hashReadScript.Hash(), 1, key}, hashReadArgs(idle, cmd, args)...)
	raw.RawWriteToCmd = *redis.NewRawWriteToCmd(context.Background(), &raw.scan, call...)
	// A read that slides the TTL writes, so only one without is free to
	// be sent again (NOSCRIPT recovery, a replica).
	b.ops = append(b.ops, op{cmd: raw, read: idle <= 0, key: key, slot: b.slotOf(key), script: hashReadScript})
	return HashResult{raw: raw}
}

// hashReadArgs are hashReadScript's ARGV.
func hashReadArgs(idle time.Duration, cmd string, args [][]byte) []interface{} {
	call := make([]interface{}, 0, 2+len(args))
	call = append(call, msArg(idle), cmd)
	for _, a := range args {
		call = append(call, a)
	}
	return call
}

// rawValue is a command whose reply is read raw into a value
// (valueScanner).
type rawValue struct {
	redis.RawWriteToCmd
	scan valueScanner
}

// result is the reply as go-redis's Cmd.Result gives it, ErrReplyTooLarge
// when a value did not fit in the room, or errNoResult when the reply was
// cut short.
func (r *rawValue) result() (interface{}, error) {
	switch {
	case r.Err() != nil:
		return nil, r.Err()
	case !r.scan.complete:
		return nil, errNoResult
	case r.scan.tooLarge:
		return nil, ErrReplyTooLarge
	}
	return r.scan.value, nil
}

// slice is result as go-redis's Cmd.Slice gives it.
func (r *rawValue) slice() ([]interface{}, error) {
	v, err := r.result()
	if err != nil {
		return nil, err
	}
	vals, ok := v.([]interface{})
	if !ok {
		return nil, fmt.Errorf("unexpected reply to a hash read: %T", v)
	}
	return vals, nil
}

func maxArg(n int) string {
	if n <= 0 {
		return "0"
	}
	return strconv.Itoa(n)
}
