package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// GetResult is the handle of a queued Get.
type GetResult struct {
	cmd *redis.StringCmd
	res *opResult // set instead of cmd for a Get the plan may merge
	// read, with res, is a GetSlidingReply's script call, read raw.
	read *rawRead
	s    *Store // for the WRONGTYPE of a GET sent alone
	key  string
}

// Result is the stored value; ErrNotFound when the key is missing or holds a
// tombstone (either format).
func (r GetResult) Result() ([]byte, error) {
	v, err := r.raw()
	if err == redis.Nil || (err == nil && string(v) == Tombstone) {
		return nil, ErrNotFound
	}
	if IsWrongType(err) && r.s != nil {
		// A GET sent alone (not in an MGET, which answers nil): a hash
		// session, or a typed tombstone, which reads as absent.
		if tomb, terr := r.s.isTypedTombstone(r.key); terr != nil {
			return nil, terr
		} else if tomb {
			return nil, ErrNotFound
		}
	}
	return v, err
}

// Absent reports whether the read itself proved that the key holds no
// hash session: no key at all (a GET's nil, the sliding script's nil), or
// a string tombstone. Where Result is ErrNotFound and Absent is false, the
// read shared an MGET, which answers nil for a hash too: Batch.Absent
// tells (absent.go).
func (r GetResult) Absent() bool {
	v, err := r.raw()
	switch {
	case err == nil:
		return string(v) == Tombstone
	case err != redis.Nil:
		return false
	case r.res == nil || r.read != nil: // a GET or the sliding script alone
		return true
	}
	return r.res.absent
}

// raw is the read's own reply: the value, redis.Nil, or its error.
func (r GetResult) raw() ([]byte, error) {
	switch {
	case r.res == nil:
		return r.cmd.Bytes()
	case r.read != nil && r.read.Err() != nil: // the call's own error reply
		return nil, r.read.Err()
	case r.read != nil && !r.read.scan.complete: // its batch did not run
		return nil, errNoResult
	case r.res.err != nil: // errNoResult before its batch ran
		return nil, r.res.err
	}
	return r.res.data, nil
}

// Get queues reading the session at key: a GET, which the plan merges with
// the reads next to it into an MGET (plan.go), or the read combiner with
// other clients' (combine.go).
func (b *Batch) Get(key string) GetResult {
	return b.addRead(key, nil)
}

// GetReply queues reading the session at key, as Get, for a read whose
// value is the client's reply (GET, SESS.GET): the value is charged to the
// batch's room (SetRoom) before it is read, and one that does not fit is
// skipped, its result ErrReplyTooLarge. A read that only decides
// something (a field, a length, an owner) is not charged: its value is
// not the client's to hold.
func (b *Batch) GetReply(key string) GetResult {
	return b.addRead(key, b.room)
}

// GetSliding queues reading the session at key and resetting its TTL to
// idle (ttl.idle; 0: leave it), capped by its absolute lifetime when
// absolute > 0 (a session past it is deleted and reads as missing).
func (b *Batch) GetSliding(key string, idle, absolute time.Duration) GetResult {
	cmd := redis.NewStringCmd(context.Background(), "evalsha", readScript.Hash(), 1, key, msArg(idle), msArg(absolute))
	b.ops = append(b.ops, op{cmd: cmd, key: key, slot: b.slotOf(key), script: readScript})
	return GetResult{cmd: cmd, s: b.s, key: key}
}

// GetSlidingReply queues GetSliding for a read whose value is the client's
// reply: the script's reply is read raw, its value charged to the batch's
// room as GetReply's.
func (b *Batch) GetSlidingReply(key string, idle, absolute time.Duration) GetResult {
	sr := &slidingRead{}
	sr.ops[0] = op{res: &sr.res, room: b.room}
	sr.read.scan = readScanner{ops: sr.ops[:], idx: sr.idx[:]}
	sr.read.RawWriteToCmd = *redis.NewRawWriteToCmd(context.Background(), &sr.read.scan,
		"evalsha", readScript.Hash(), 1, key, msArg(idle), msArg(absolute))
	b.ops = append(b.ops, op{cmd: &sr.read, key: key, slot: b.slotOf(key), script: readScript})
	return GetResult{res: &sr.res, read: &sr.read, s: b.s, key: key}
}

// slidingRead is GetSlidingReply's call and result in one allocation.
type slidingRead struct {
	read rawRead
	ops  [1]op
	idx  [1]int
	res  opResult
}

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
