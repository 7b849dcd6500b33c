package commands

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/sessproxy/sessproxy/store"
)

// Hash sessions: one field per key of a Redis hash under the prefix
// (Spring Session, the alt-session stores for Express). Field values are
// the application's own, never run through the codec. Writes are refused
// on a tombstone and give the key its policy TTL; reads see a tombstone as
// a missing key; with ttl.idle both slide the TTL. Each command is one
// script (store/hash.go) on the key's own node.

// maxHashArgs bounds the arguments after the key of one hash command:
// the scripts pass them to Redis with Lua's unpack, which stops at 8000
// values.
const maxHashArgs = 7900

// hashWriteReply answers a hash write that was carried out (v: Redis's
// reply), or refused by a tombstone under tombstone.on_write = "ignore".
type hashWriteReply func(c *Call, v interface{}, ignored bool)

// HSET key field value [field value …]
func (e *Engine) hset(c *Call) {
	if len(c.Args)%2 != 0 {
		c.Out.Error(errArity("hset"))
		return
	}
	e.hashWrite(c, "HSET", 0, replyHashInt)
}

// HMSET key field value [field value …]: HSET answering +OK.
func (e *Engine) hmset(c *Call) {
	if len(c.Args)%2 != 0 {
		c.Out.Error(errArity("hmset"))
		return
	}
	e.hashWrite(c, "HSET", forwardStatus, func(c *Call, _ interface{}, _ bool) { c.Out.OK() })
}

// HSETNX key field value
func (e *Engine) hsetnx(c *Call) { e.hashWrite(c, "HSETNX", 0, replyHashInt) }

// HDEL key field [field …]
func (e *Engine) hdel(c *Call) { e.hashWrite(c, "HDEL", 0, replyHashInt) }

// HINCRBY key field increment
func (e *Engine) hincrby(c *Call) {
	incr, ok := parseInt(c.Args[3])
	if !ok {
		c.Out.Error(msgNotInteger)
		return
	}
	e.hashWrite(c, "HINCRBY", 0, func(c *Call, v interface{}, ignored bool) {
		if ignored {
			v = incr // what the field would hold on a session that is not there
		}
		c.Out.Value(v)
	})
}

// HINCRBYFLOAT key field increment
func (e *Engine) hincrbyfloat(c *Call) {
	if _, err := strconv.ParseFloat(string(c.Args[3]), 64); err != nil {
		c.Out.Error(msgNotFloat)
		return
	}
	e.hashWrite(c, "HINCRBYFLOAT", 0, func(c *Call, v interface{}, ignored bool) {
		if ignored {
			c.Out.Bulk(c.Args[3])
			return
		}
		c.Out.Value(v)
	})
}

// replyHashInt answers HSET, HSETNX and HDEL: an ignored tombstone
// changed nothing, so 0.
func replyHashInt(c *Call, v interface{}, ignored bool) {
	if ignored {
		c.Out.Int(0)
		return
	}
	c.Out.Value(v)
}

// hashKey resolves a hash command's key: false when it answered already
// (a refused key, a lock, too many arguments) or forwarded a passthrough
// key with forwarded.
func (e *Engine) hashKey(c *Call, forwarded forwardFlags) (keyRef, bool) {
	ref, ok := e.resolve(c, c.Args[1])
	switch {
	case !ok:
		return keyRef{}, false
	case ref.lock:
		c.Out.Error(msgLockHash)
		return keyRef{}, false
	case ref.session && len(c.Args)-2 > maxHashArgs:
		c.Out.Error(errHashArgs(c.cmd.Name, maxHashArgs))
		return keyRef{}, false
	case !ref.session:
		e.forward(c, ref, forwarded)
		return keyRef{}, false
	}
	return ref, true
}

// hashWrite runs the write cmd (the client's arguments after the key) on
// a hash session, or forwards it for a passthrough key.
func (e *Engine) hashWrite(c *Call, cmd string, forwarded forwardFlags, reply hashWriteReply) {
	ref, ok := e.hashKey(c, forwarded)
	if !ok {
		return
	}
	p := c.policy(ref.ns)
	// No payload to read a TTL from: the default (or idle), clamped.
	w := store.HashWrite{
		Cmd:       cmd,
		Args:      c.Args[2:],
		TTL:       e.writeTTL(e.decide(ref.ns, p, nil, 0)),
		Slide:     p.Idle > 0,
		MaxBytes:  ref.ns.maxHashBytes,
		MaxFields: ref.ns.maxHashFields,
	}
	res := c.Batch.HashWrite(ref.key, w)
	c.Then(func() {
		v, _, err := res.Result()
		switch {
		case e.ignoredTombstone(c, ref, err):
			reply(c, nil, true)
		case errors.Is(err, store.ErrHashTooLarge):
			e.refuse(c, RefusedTooLarge, ref.key, errHashTooLarge(ref.sid, ref.ns.maxHashBytes))
		case errors.Is(err, store.ErrHashTooManyFields):
			e.refuse(c, RefusedTooLarge, ref.key, errHashTooManyFields(ref.sid, ref.ns.maxHashFields))
		case err != nil:
			e.fail(c, ref, err)
		default:
			reply(c, v, false)
		}
	})
}

// HGET key field
func (e *Engine) hget(c *Call) { e.hashRead(c, "HGET", func(c *Call) { c.Out.Null() }) }

// HMGET key field [field …]
func (e *Engine) hmget(c *Call) {
	e.hashRead(c, "HMGET", func(c *Call) {
		c.Out.Array(len(c.Args) - 2)
		for range c.Args[2:] {
			c.Out.Null()
		}
	})
}

// HGETALL key: a map in RESP3, as Redis answers.
func (e *Engine) hgetall(c *Call) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	if ref.lock {
		c.Out.Error(msgLockHash)
		return
	}
	if !ref.session {
		e.forward(c, ref, forwardRead)
		return
	}
	res := c.Batch.HashReadReply(ref.key, c.policy(ref.ns).Idle, "HGETALL")
	c.Then(func() {
		v, _, err := res.Result()
		if err != nil {
			e.fail(c, ref, err)
			return
		}
		flat, _ := v.([]interface{})
		c.Out.Map(len(flat) / 2)
		for _, x := range flat {
			c.Out.Value(x)
		}
	})
}

// HEXISTS key field
func (e *Engine) hexists(c *Call) { e.hashRead(c, "HEXISTS", replyZero) }

// HLEN key
func (e *Engine) hlen(c *Call) { e.hashRead(c, "HLEN", replyZero) }

// HSTRLEN key field
func (e *Engine) hstrlen(c *Call) { e.hashRead(c, "HSTRLEN", replyZero) }

// HKEYS key
func (e *Engine) hkeys(c *Call) { e.hashRead(c, "HKEYS", replyEmpty) }

// HVALS key
func (e *Engine) hvals(c *Call) { e.hashRead(c, "HVALS", replyEmpty) }

// HSCAN key cursor [MATCH pattern] [COUNT count]: the cursor is Redis's
// own, passed through (a hash lives on one node).
func (e *Engine) hscan(c *Call) {
	if _, err := strconv.ParseUint(string(c.Args[2]), 10, 64); err != nil {
		c.Out.Error(msgInvalidCursor)
		return
	}
	e.hashRead(c, "HSCAN", func(c *Call) {
		c.Out.Array(2)
		c.Out.BulkString("0")
		c.Out.Array(0)
	})
}

func replyZero(c *Call)  { c.Out.Int(0) }
func replyEmpty(c *Call) { c.Out.Array(0) }

// hashRead runs the read cmd (the client's arguments after the key) on a
// hash session, answering missing for a missing or tombstoned key, or
// forwards it for a passthrough key.
func (e *Engine) hashRead(c *Call, cmd string, missing func(*Call)) {
	ref, ok := e.hashKey(c, forwardRead)
	if !ok {
		return
	}
	res := c.Batch.HashReadReply(ref.key, c.policy(ref.ns).Idle, cmd, c.Args[2:]...)
	c.Then(func() {
		v, found, err := res.Result()
		switch {
		case err != nil:
			e.fail(c, ref, err)
		case !found:
			missing(c)
		default:
			c.Out.Value(v)
		}
	})
}

// thenHashSession reads the hash session at ref (sliding it under
// ttl.idle when slide is set), for a string read that found nothing there
// or a WRONGTYPE, and hands answer what it found: whether a hash is there,
// and its fields as a JSON object of strings (SESS.GET). Called from a
// Then: the read goes out in the next round trip, with every other
// command's follow-up (Engine.finish), and answer runs after it.
func (e *Engine) thenHashSession(c *Call, ref keyRef, slide bool, answer func(payload []byte, found bool, err error)) {
	idle := c.policy(ref.ns).Idle
	if !slide {
		idle = 0
	}
	res := c.Batch.HashReadReply(ref.key, idle, "HGETALL") // SESS.GET's reply
	c.Then(func() {
		v, found, err := res.Result()
		if err != nil || !found {
			answer(nil, false, err)
			return
		}
		answer(hashJSON(v), true, nil)
	})
}

// hashJSON renders HGETALL's flat reply as a JSON object of strings, keys
// sorted. Bytes that are not UTF-8 become U+FFFD, as encoding/json does.
func hashJSON(v interface{}) []byte {
	flat, _ := v.([]interface{})
	fields := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		val, _ := flat[i+1].(string)
		fields[k] = val
	}
	out, _ := json.Marshal(fields) // a map of strings always marshals
	return out
}

// thenUnlessHash answers WRONGTYPE when the key a string read found empty
// holds a hash session (a read that shared an MGET sees a hash as missing,
// where GET itself answers WRONGTYPE), and otherwise lets missing answer:
// at once where the read proved the key absent, else once thenAbsent has.
func (e *Engine) thenUnlessHash(c *Call, ref keyRef, read store.GetResult, missing func()) {
	e.thenAbsent(c, ref, read, missing, func() { e.thenWrongTypeIfHash(c, ref, missing) })
}

// thenAbsent runs absent where the string read found nothing at ref's key
// at all, and other where it may have found a hash (or a tombstone, or
// another type): the read itself tells (store.GetResult.Absent), or else a
// check that the key holds nothing (store.Batch.Absent). Called from a
// Then: the check goes out in the next round trip, with every other
// command's follow-up (Engine.finish), so a pipeline's misses, or an event
// loop's, cost one round trip and one EXISTS together.
func (e *Engine) thenAbsent(c *Call, ref keyRef, read store.GetResult, absent, other func()) {
	if read.Absent() {
		absent()
		return
	}
	check := c.Batch.Absent(ref.key)
	c.Then(func() {
		switch is, err := check.Result(); {
		case err != nil:
			e.fail(c, ref, err)
		case is:
			absent()
		default:
			other()
		}
	})
}

// thenWrongTypeIfHash answers WRONGTYPE when ref's key holds a hash, and
// otherwise lets missing answer, after a TYPE in the next round trip.
func (e *Engine) thenWrongTypeIfHash(c *Call, ref keyRef, missing func()) {
	// Redis's own TYPE: a tombstone is a string, and only a hash matters.
	res := c.Batch.Forward(true, "type", ref.key)
	c.Then(func() {
		t, err := res.Result()
		switch {
		case err != nil:
			e.fail(c, ref, err)
		case t == "hash":
			c.Out.Error(msgWrongType)
		default:
			missing()
		}
	})
}
