package commands

import (
	"bytes"
	"errors"
	"time"

	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store"
	"github.com/sessproxy/sessproxy/store/codec"
)

// SESS.SET sid payload [TTL seconds]
func (e *Engine) sessSet(c *Call) {
	ref, ok := e.sessionKey(c, c.Args[1])
	if !ok {
		return
	}
	var explicit time.Duration
	switch {
	case len(c.Args) == 5 && bytes.EqualFold(c.Args[3], []byte("TTL")):
		d, ok := parseDuration(c.Args[4], time.Second)
		if !ok || d <= 0 {
			c.Out.Error(msgTTLArg)
			return
		}
		explicit = d
	case len(c.Args) != 3:
		c.Out.Error(msgSyntax)
		return
	}
	value, ok := e.encode(c, ref, c.Args[2], explicit != 0)
	if !ok {
		return
	}
	res := e.write(c, ref, c.Args[2], store.Write{Value: value, TTL: e.writeTTL(e.decide(ref.ns, c.policy(ref.ns), c.Args[2], explicit))})
	c.Then(func() {
		if _, _, err := res.Result(); err != nil && !e.ignoredTombstone(c, ref, err) {
			e.fail(c, ref, err)
			return
		}
		c.Out.OK()
	})
}

// SESS.GET sid
func (e *Engine) sessGet(c *Call) {
	ref, ok := e.sessionKey(c, c.Args[1])
	if !ok {
		return
	}
	res := e.readReply(c, ref)
	c.Then(func() {
		// A hash session reads as WRONGTYPE, or as missing in a shared
		// MGET: its fields are answered as a JSON object.
		v, err := res.Result()
		switch {
		case store.IsWrongType(err):
			e.replyHashSession(c, ref)
		case errors.Is(err, store.ErrNotFound):
			e.thenAbsent(c, ref, res, c.Out.Null, func() { e.replyHashSession(c, ref) })
		default:
			e.replySession(c, ref, v, err)
		}
	})
}

// replyHashSession answers SESS.GET of a hash session: its fields as a
// JSON object, or null where there is none after all.
func (e *Engine) replyHashSession(c *Call, ref keyRef) {
	e.thenHashSession(c, ref, true, func(payload []byte, found bool, err error) {
		switch {
		case err != nil:
			e.fail(c, ref, err)
		case found:
			c.Out.Bulk(payload)
		default:
			c.Out.Null()
		}
	})
}

// SESS.TOUCH sid [payload]
func (e *Engine) sessTouch(c *Call) {
	ref, ok := e.sessionKey(c, c.Args[1])
	if !ok {
		return
	}
	if len(c.Args) > 3 {
		c.Out.Error(msgSyntax)
		return
	}
	if !c.policy(ref.ns).Touch {
		// disableTouch: answer whether the session is there, change nothing.
		res := c.Batch.Exists(ref.key)
		c.Then(func() { e.replyInt(c, ref, res) })
		return
	}
	var payload []byte
	switch {
	case len(c.Args) == 3:
		// Only read for its TTL, never stored: checked, not encoded.
		if err := ref.ns.codec.Validate(c.Args[2]); err != nil {
			e.refusePayload(c, ref, err)
			return
		}
		payload = c.Args[2]
	case c.policy(ref.ns).ReadsPayload():
		// The TTL comes from the stored session, so read it first.
		stored := c.Batch.Get(ref.key)
		if err := c.exec(); err != nil {
			e.fail(c, ref, err)
			return
		}
		v, err := stored.Result()
		switch {
		case errors.Is(err, store.ErrNotFound), store.IsWrongType(err):
			// Missing or tombstoned: the expire below answers :0 or
			// TOMBSTONE, atomically. A hash session (WRONGTYPE, or
			// missing in a shared MGET) has no payload to read a TTL
			// from: the default applies.
		case err != nil:
			e.fail(c, ref, err)
			return
		default:
			if payload, ok = e.decode(c, ref, v); !ok {
				return
			}
		}
	}
	res := c.Batch.Expire(ref.key, store.Expiry{TTL: e.writeTTL(e.decide(ref.ns, c.policy(ref.ns), payload, 0)), Absolute: c.policy(ref.ns).Absolute})
	c.Then(func() { e.replyExpire(c, ref, res) })
}

// SESS.DESTROY sid [sid …]
func (e *Engine) sessDestroy(c *Call) {
	if len(c.Args)-1 > maxChunkKeys {
		e.sumChunked(c, e.sessionKey, e.queueDestroy)
		return
	}
	refs := make([]keyRef, 0, len(c.Args)-1)
	for _, arg := range c.Args[1:] {
		ref, ok := e.sessionKey(c, arg)
		if !ok {
			return
		}
		refs = append(refs, ref)
	}
	e.destroy(c, refs)
}

// SESS.TTL sid
func (e *Engine) sessTTL(c *Call) {
	ref, ok := e.sessionKey(c, c.Args[1])
	if !ok {
		return
	}
	res := c.Batch.PTTL(ref.key)
	c.Then(func() {
		ms, err := res.Result()
		if err != nil {
			e.fail(c, ref, err)
			return
		}
		c.Out.Int(seconds(ms))
	})
}

// SESS.EXISTS sid [sid …]
func (e *Engine) sessExists(c *Call) {
	if len(c.Args)-1 > maxChunkKeys {
		e.sumChunked(c, e.sessionKey, e.queueCountExisting)
		return
	}
	refs := make([]keyRef, 0, len(c.Args)-1)
	for _, arg := range c.Args[1:] {
		ref, ok := e.sessionKey(c, arg)
		if !ok {
			return
		}
		refs = append(refs, ref)
	}
	e.countExisting(c, refs)
}

// encode runs the payload through the codec, answering the client when it
// is refused. hasTTL is whether the command gives a TTL of its own: when it
// does not, ttl.require_expires wants a cookie.expires in the payload.
func (e *Engine) encode(c *Call, ref keyRef, payload []byte, hasTTL bool) ([]byte, bool) {
	p := c.policy(ref.ns)
	if p.LacksExpiry(payload, hasTTL) {
		e.refuse(c, RefusedNoExpires, ref.key, msgNoExpires)
		return nil, false
	}
	// A new session's creation time, which only ttl.absolute reads (the
	// clock is not read for nothing on every write); the store keeps an
	// existing one.
	var created time.Time
	if p.Absolute > 0 {
		created = p.Clock()
	}
	return e.encodeCreated(c, ref, payload, created)
}

// encodeCreated is encode with the session's creation time, recorded when
// ttl.absolute needs it.
func (e *Engine) encodeCreated(c *Call, ref keyRef, payload []byte, created time.Time) ([]byte, bool) {
	var meta codec.Meta
	if c.policy(ref.ns).Absolute > 0 {
		meta.Created = created
	}
	v, err := ref.ns.codec.Encode(payload, meta)
	if err != nil {
		e.refusePayload(c, ref, err)
		return nil, false
	}
	return v, true
}

// refusePayload answers a payload the codec refused.
func (e *Engine) refusePayload(c *Call, ref keyRef, err error) {
	reason := RefusedPayload
	if errors.Is(err, codec.ErrTooLarge) {
		reason = RefusedTooLarge
	}
	e.refuse(c, reason, ref.key, errPayload(err.Error()))
}

// decoded is a stored value decoded, with its creation time (zero when
// unknown).
type decoded struct {
	payload []byte
	created time.Time
}

func (e *Engine) decodeMeta(sp *space, stored []byte) (decoded, error) {
	v, meta, err := sp.codec.Decode(stored)
	return decoded{payload: v, created: meta.Created}, err
}

// decode turns a stored value back into the client's payload.
func (e *Engine) decode(c *Call, ref keyRef, stored []byte) ([]byte, bool) {
	v, _, err := ref.ns.codec.Decode(stored)
	if err != nil {
		c.Out.Error(errDecode(ref.sid, err))
		return nil, false
	}
	return v, true
}

// read queues a session read; with ttl.idle the read also slides the
// session's expiry, with ttl.absolute it checks the session's lifetime.
func (e *Engine) read(c *Call, ref keyRef) store.GetResult {
	if c.policy(ref.ns).Idle > 0 || c.policy(ref.ns).Absolute > 0 {
		return c.Batch.GetSliding(ref.key, c.policy(ref.ns).Idle, c.policy(ref.ns).Absolute)
	}
	return c.Batch.Get(ref.key)
}

// readReply is read for a command whose reply is the value (GET, GETEX,
// SESS.GET): bounded by the client's reply room as it is read
// (store.Batch.GetReply).
func (e *Engine) readReply(c *Call, ref keyRef) store.GetResult {
	if c.policy(ref.ns).Idle > 0 || c.policy(ref.ns).Absolute > 0 {
		return c.Batch.GetSlidingReply(ref.key, c.policy(ref.ns).Idle, c.policy(ref.ns).Absolute)
	}
	return c.Batch.GetReply(ref.key)
}

// write queues a session write and what goes with it (the owner index).
func (e *Engine) write(c *Call, ref keyRef, payload []byte, w store.Write) store.WriteResult {
	w.Absolute = c.policy(ref.ns).Absolute
	w.Native, w.Grace = ref.ns.nativeWrites(), ref.ns.grace
	res := c.Batch.Write(ref.key, w)
	e.indexOwner(c, ref, payload)
	return res
}

// decide applies the TTL policy p to a write of payload in namespace sp;
// the policy reads fields only from JSON payloads.
func (e *Engine) decide(sp *space, p *ttl.Policy, payload []byte, explicit time.Duration) ttl.Decision {
	if !sp.codec.JSON() {
		payload = nil
	}
	return p.Decide(payload, explicit)
}

// writeTTL is the TTL a write hands to the store for its decision, with
// the decision's clamp counted.
func (e *Engine) writeTTL(d ttl.Decision) time.Duration {
	e.countClamp(d)
	return ttlArg(d)
}

// ttlArg is the TTL to hand to the store: zero deletes an expired session.
func ttlArg(d ttl.Decision) time.Duration {
	if d.Expired {
		return 0
	}
	return d.TTL
}

// destroy tombstones each session (or forwards DEL for passthrough keys)
// and answers how many existed.
func (e *Engine) destroy(c *Call, refs []keyRef) {
	count := e.queueDestroy(c, refs)
	c.Then(func() {
		if n, ok := count(); ok {
			c.Out.Int(n)
		}
	})
}

// queueDestroy queues destroy's writes and returns what counts the keys
// that existed once the batch has run: false when it answered an error.
func (e *Engine) queueDestroy(c *Call, refs []keyRef) func() (int64, bool) {
	type destroyed struct {
		ref keyRef
		res store.DestroyResult
	}
	sessions := make([]destroyed, 0, len(refs))
	var plain []store.ForwardResult
	for _, r := range refs {
		if r.session {
			sessions = append(sessions, destroyed{r, c.Batch.Destroy(r.key, r.ns.grace, r.ns.format)})
		} else {
			plain = append(plain, c.Batch.Forward(false, "del", r.key))
		}
	}
	return func() (int64, bool) {
		var n int64
		for _, d := range sessions {
			live, _, err := d.res.Result()
			if err != nil {
				e.fail(c, d.ref, err)
				return 0, false
			}
			if live {
				n++
			}
		}
		for _, res := range plain {
			v, err := res.Result()
			if err != nil {
				e.fail(c, keyRef{}, err)
				return 0, false
			}
			n += asInt(v)
		}
		return n, true
	}
}

// countExisting answers how many of refs are live sessions (or existing
// passthrough keys); a key named twice counts twice, as in Redis.
func (e *Engine) countExisting(c *Call, refs []keyRef) {
	count := e.queueCountExisting(c, refs)
	c.Then(func() {
		if n, ok := count(); ok {
			c.Out.Int(n)
		}
	})
}

// queueCountExisting queues countExisting's reads and returns what counts
// once the batch has run: false when it answered an error.
func (e *Engine) queueCountExisting(c *Call, refs []keyRef) func() (int64, bool) {
	results := make([]store.IntResult, 0, len(refs))
	var plain []store.ForwardResult
	for _, r := range refs {
		if r.session {
			results = append(results, c.Batch.Exists(r.key))
		} else {
			plain = append(plain, c.Batch.Forward(true, "exists", r.key))
		}
	}
	return func() (int64, bool) {
		var n int64
		for _, res := range results {
			v, err := res.Result()
			if err != nil {
				e.fail(c, keyRef{}, err)
				return 0, false
			}
			n += v
		}
		for _, res := range plain {
			v, err := res.Result()
			if err != nil {
				e.fail(c, keyRef{}, err)
				return 0, false
			}
			n += asInt(v)
		}
		return n, true
	}
}

// replySession answers a session read from what its GetResult.Result
// returned: the payload, or null. The caller reads the result once: each
// Result of a read that shared an MGET copies the value.
func (e *Engine) replySession(c *Call, ref keyRef, v []byte, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.Out.Null()
	case err != nil:
		e.fail(c, ref, err)
	case c.Out.Over():
		// The client's replies are past its limit and will not be written:
		// a value that decompresses to megabytes is not worth decoding
		// only to be dropped. (Only here, where the value is the reply: a
		// command that reads the session to decide a write decodes it.)
		c.Out.Null()
	default:
		if v, ok := e.decode(c, ref, v); ok {
			c.Out.Bulk(v)
		}
	}
}

// replyInt answers an integer read.
func (e *Engine) replyInt(c *Call, ref keyRef, res store.IntResult) {
	n, err := res.Result()
	if err != nil {
		e.fail(c, ref, err)
		return
	}
	c.Out.Int(n)
}

// replyExpire answers an expire-like write: 1 when the session was there.
func (e *Engine) replyExpire(c *Call, ref keyRef, res store.ExpireResult) {
	outcome, _, err := res.Result()
	switch {
	case e.ignoredTombstone(c, ref, err):
		c.Out.Int(1)
	case err != nil:
		e.fail(c, ref, err)
	case outcome == store.NotApplied:
		c.Out.Int(0)
	default:
		c.Out.Int(1)
	}
}

// seconds converts a PTTL reply to TTL's, keeping -1 and -2, rounding as
// Redis does.
func seconds(ms int64) int64 {
	if ms < 0 {
		return ms
	}
	return (ms + 500) / 1000
}

func asInt(v interface{}) int64 {
	n, _ := v.(int64)
	return n
}
