package commands

import (
	"bytes"
	"errors"
	"time"

	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store"
)

// GET key
func (e *Engine) get(c *Call) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	if !ref.session {
		e.forward(c, ref, forwardRead)
		return
	}
	res := e.readReply(c, ref)
	c.Then(func() { e.replyStringRead(c, ref, res) })
}

// replyStringRead answers GET (and GETEX without options): the session, or
// WRONGTYPE for a hash session, which a read sharing an MGET sees as
// missing.
func (e *Engine) replyStringRead(c *Call, ref keyRef, res store.GetResult) {
	v, err := res.Result()
	if errors.Is(err, store.ErrNotFound) {
		e.thenUnlessHash(c, ref, res, func() { e.replySession(c, ref, v, err) })
		return
	}
	e.replySession(c, ref, v, err)
}

// MGET key [key …]
func (e *Engine) mget(c *Call) {
	if len(c.Args)-1 > maxChunkKeys {
		e.mgetChunked(c)
		return
	}
	refs, ok := e.resolveAll(c, c.Args[1:], 1)
	if !ok {
		return
	}
	values := e.queueMGet(c, refs)
	c.Then(func() {
		if vals, ok := values(); ok {
			replyValues(c, vals)
		}
	})
}

// queueMGet queues reading refs and returns what collects their values
// once the batch has run. It checks every value before anything is
// answered, so an error is the whole reply rather than half of one; it
// answers the error itself and returns false.
//
// It stops decoding once the values it holds pass what the client may
// still be answered (its reply limit): a value in Redis that decompresses
// a thousandfold (written there by something other than the proxy) would
// otherwise be held decoded once per key the request names — six keys of
// one planted 2 KB value held 385 MB for a client allowed 1 MiB of
// replies. What was decoded is answered, which passes the limit, and the
// limit's error takes the reply's place.
func (e *Engine) queueMGet(c *Call, refs []keyRef) func() ([][]byte, bool) {
	for _, r := range refs {
		if r.session && (c.policy(r.ns).Idle > 0 || c.policy(r.ns).Absolute > 0) {
			return e.queueMGetSliding(c, refs)
		}
	}
	keys := make([]string, len(refs))
	for i, r := range refs {
		keys[i] = r.key
	}
	res := c.Batch.MGet(keys)
	return func() ([][]byte, bool) {
		vals := make([][]byte, len(refs))
		var held int64
		for i, r := range refs {
			var v []byte
			var err error
			if r.session {
				v, err = res.Session(i)
				if err == nil {
					v, _, err = r.ns.codec.Decode(v)
					if err != nil {
						c.Out.Error(errDecode(r.sid, err))
						return nil, false
					}
				}
			} else {
				v, err = res.Raw(i)
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				e.fail(c, r, err)
				return nil, false
			}
			vals[i] = v
			if held += int64(len(v)); held > c.Out.Room() {
				return vals[:i+1], true // past the reply limit already (above)
			}
		}
		return vals, true
	}
}

// replyValues answers an array of values, nil ones as nulls.
func replyValues(c *Call, vals [][]byte) {
	c.Out.Array(len(vals))
	appendValues(c, vals)
}

// appendValues writes values as array elements, nil ones as nulls.
func appendValues(c *Call, vals [][]byte) {
	for _, v := range vals {
		if v == nil {
			c.Out.Null()
		} else {
			c.Out.Bulk(v)
		}
	}
}

// queueMGetSliding is MGET with ttl.idle: every session read slides its
// own expiry, so the keys are read one script each instead of per slot.
func (e *Engine) queueMGetSliding(c *Call, refs []keyRef) func() ([][]byte, bool) {
	sessions := make([]store.GetResult, len(refs))
	plain := make([]store.ForwardResult, len(refs))
	for i, r := range refs {
		if r.session {
			sessions[i] = e.readReply(c, r)
		} else {
			plain[i] = c.Batch.Forward(true, "get", r.key)
		}
	}
	return func() ([][]byte, bool) {
		vals := make([][]byte, len(refs))
		var held int64
		for i, r := range refs {
			if !r.session {
				v, err := plain[i].Result()
				if err != nil {
					e.fail(c, keyRef{}, err)
					return nil, false
				}
				if s, ok := v.(string); ok {
					vals[i] = []byte(s)
				}
				continue
			}
			if _, err := sessions[i].Result(); store.IsWrongType(err) {
				continue // a hash session: nil, as MGET answers
			}
			v, ok := e.readSession(c, r, sessions[i])
			if !ok {
				return nil, false
			}
			vals[i] = v
			if held += int64(len(v)); held > c.Out.Room() {
				return vals[:i+1], true // past the reply limit already (above)
			}
		}
		return vals, true
	}
}

// expiry is a parsed EX/PX/EXAT/PXAT option.
type expiry struct {
	set bool
	ttl time.Duration // relative
	at  time.Time     // absolute, when abs
	abs bool
}

// decision is the TTL policy's answer for a write carrying this expiry.
func (x expiry) decision(p *ttl.Policy) ttl.Decision {
	if x.abs {
		return p.Until(x.at)
	}
	return p.Explicit(x.ttl)
}

// setArgs are the options of SET.
type setArgs struct {
	cond    store.Cond
	get     bool
	keepTTL bool
	expiry  expiry
}

// optionLen is the longest option word upperOption upper-cases (KEEPTTL).
const optionLen = 8

// upperOption is an option word upper-cased in buf, without allocating
// (bytes.ToUpper would, on every SET … EX). A word longer than any option
// comes back as it is: it matches none either way.
func upperOption(buf *[optionLen]byte, a []byte) []byte {
	if len(a) > len(buf) {
		return a
	}
	for i, ch := range a {
		if 'a' <= ch && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		buf[i] = ch
	}
	return buf[:len(a)]
}

// parseSetArgs parses SET's options (after key and value) as Redis 7 does.
// It returns the error message for the client, or "".
func parseSetArgs(args [][]byte) (setArgs, string) {
	var s setArgs
	var buf [optionLen]byte
	for i := 0; i < len(args); i++ {
		opt := upperOption(&buf, args[i])
		hasNext := i+1 < len(args)
		switch {
		case string(opt) == "NX" && s.cond == store.Always:
			s.cond = store.NX
		case string(opt) == "XX" && s.cond == store.Always:
			s.cond = store.XX
		case string(opt) == "GET" && !s.get:
			s.get = true
		case string(opt) == "KEEPTTL" && !s.expiry.set && !s.keepTTL:
			s.keepTTL = true
		case (string(opt) == "EX" || string(opt) == "PX" || string(opt) == "EXAT" || string(opt) == "PXAT") &&
			!s.expiry.set && !s.keepTTL && hasNext:
			i++
			x, msg := parseExpiryOption(string(opt), args[i], "set")
			if msg != "" {
				return s, msg
			}
			s.expiry = x
		default:
			return s, msgSyntax
		}
	}
	return s, ""
}

// parseExpiryOption parses the value of EX, PX, EXAT or PXAT.
func parseExpiryOption(opt string, arg []byte, cmd string) (expiry, string) {
	unit := time.Second
	if opt == "PX" || opt == "PXAT" {
		unit = time.Millisecond
	}
	if _, ok := parseInt(arg); !ok {
		return expiry{}, msgNotInteger
	}
	d, ok := parseDuration(arg, unit)
	if !ok || d <= 0 {
		return expiry{}, errInvalidExpire(cmd)
	}
	if opt == "EXAT" || opt == "PXAT" {
		return expiry{set: true, abs: true, at: time.Unix(0, 0).Add(d)}, ""
	}
	return expiry{set: true, ttl: d}, ""
}

// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL]
func (e *Engine) set(c *Call) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	opts, msg := parseSetArgs(c.Args[3:])
	if msg != "" {
		c.Out.Error(msg)
		return
	}
	if ref.lock {
		e.lockSet(c, ref, opts)
		return
	}
	if !ref.session {
		if opts.get {
			e.forward(c, ref, 0)
		} else {
			e.forward(c, ref, forwardStatus)
		}
		return
	}
	value, ok := e.encode(c, ref, c.Args[2], opts.expiry.set)
	if !ok {
		return
	}
	var d ttl.Decision
	if opts.expiry.set {
		d = opts.expiry.decision(c.policy(ref.ns))
	} else { // only then is the payload's cookie read
		d = e.decide(ref.ns, c.policy(ref.ns), c.Args[2], 0)
	}
	w := store.Write{
		Value:   value,
		TTL:     e.writeTTL(d),
		Cond:    opts.cond,
		KeepTTL: opts.keepTTL,
		MaxTTL:  c.policy(ref.ns).Max,
	}
	if opts.get {
		e.writeReturningPrevious(c, ref, c.Args[2], w)
		return
	}
	res := e.write(c, ref, c.Args[2], w)
	c.Then(func() {
		outcome, _, err := res.Result()
		switch {
		case e.ignoredTombstone(c, ref, err):
			c.Out.OK()
		case err != nil:
			e.fail(c, ref, err)
		case outcome == store.NotApplied:
			c.Out.Null()
		default:
			c.Out.OK()
		}
	})
}

// setexIn is the handler of SETEX key seconds value (unit time.Second) and
// PSETEX key milliseconds value (unit time.Millisecond).
func (e *Engine) setexIn(unit time.Duration) func(*Call) {
	return func(c *Call) { e.setex(c, unit) }
}

func (e *Engine) setex(c *Call, unit time.Duration) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	d, ok := parseDuration(c.Args[2], unit)
	_, integer := parseInt(c.Args[2])
	switch {
	case !integer:
		c.Out.Error(msgNotInteger)
		return
	case !ok || d <= 0:
		c.Out.Error(errInvalidExpire(string(c.Args[0])))
		return
	}
	if ref.lock {
		e.forwardArgs(c, forwardStatus, "set", ref.key, c.Args[3], "px", e.lockPX(c.policy(ref.ns), expiry{set: true, ttl: d}))
		return
	}
	if !ref.session {
		e.forward(c, ref, forwardStatus)
		return
	}
	value, ok := e.encode(c, ref, c.Args[3], true)
	if !ok {
		return
	}
	res := e.write(c, ref, c.Args[3], store.Write{Value: value, TTL: e.writeTTL(c.policy(ref.ns).Explicit(d))})
	c.Then(func() {
		if _, _, err := res.Result(); err != nil && !e.ignoredTombstone(c, ref, err) {
			e.fail(c, ref, err)
			return
		}
		c.Out.OK()
	})
}

// SETNX key value
func (e *Engine) setnx(c *Call) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	if ref.lock {
		e.lockSetNX(c, ref)
		return
	}
	if !ref.session {
		e.forward(c, ref, 0)
		return
	}
	value, ok := e.encode(c, ref, c.Args[2], false)
	if !ok {
		return
	}
	res := e.write(c, ref, c.Args[2], store.Write{Value: value, TTL: e.writeTTL(e.decide(ref.ns, c.policy(ref.ns), c.Args[2], 0)), Cond: store.NX})
	c.Then(func() {
		outcome, _, err := res.Result()
		switch {
		case e.ignoredTombstone(c, ref, err):
			c.Out.Int(0)
		case err != nil:
			e.fail(c, ref, err)
		case outcome == store.NotApplied:
			c.Out.Int(0)
		default:
			c.Out.Int(1)
		}
	})
}

// GETSET key value
func (e *Engine) getset(c *Call) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	if ref.lock {
		// GETSET drops the TTL in Redis; a lock gets lock_max instead.
		e.forwardArgs(c, 0, "set", ref.key, c.Args[2], "get", "px", e.lockPX(c.policy(ref.ns), expiry{}))
		return
	}
	if !ref.session {
		e.forward(c, ref, 0)
		return
	}
	value, ok := e.encode(c, ref, c.Args[2], false)
	if !ok {
		return
	}
	e.writeReturningPrevious(c, ref, c.Args[2], store.Write{Value: value, TTL: e.writeTTL(e.decide(ref.ns, c.policy(ref.ns), c.Args[2], 0))})
}

// GETEX key [EX s|PX ms|EXAT ts|PXAT ms-ts|PERSIST]
func (e *Engine) getex(c *Call) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	var x expiry
	persist := false
	switch len(c.Args) {
	case 2:
	case 3:
		if !bytes.EqualFold(c.Args[2], []byte("PERSIST")) {
			c.Out.Error(msgSyntax)
			return
		}
		persist = true
	case 4:
		var buf [optionLen]byte
		opt := string(upperOption(&buf, c.Args[2]))
		if opt != "EX" && opt != "PX" && opt != "EXAT" && opt != "PXAT" {
			c.Out.Error(msgSyntax)
			return
		}
		var msg string
		if x, msg = parseExpiryOption(opt, c.Args[3], "getex"); msg != "" {
			c.Out.Error(msg)
			return
		}
	default:
		c.Out.Error(msgSyntax)
		return
	}
	if ref.lock {
		e.lockGetEx(c, ref, x, persist)
		return
	}
	if !ref.session {
		e.forward(c, ref, 0)
		return
	}
	var d ttl.Decision
	switch {
	case persist && c.policy(ref.ns).Persist != ttl.PersistClamp:
		e.refuse(c, RefusedPersist, ref.key, msgPersistDenied)
		return
	case persist:
		d = ttl.Decision{TTL: c.policy(ref.ns).Max, Clamped: ttl.BoundMax} // PERSIST under clamp
	case x.set:
		d = x.decision(c.policy(ref.ns))
	default:
		res := e.readReply(c, ref)
		c.Then(func() { e.replyStringRead(c, ref, res) })
		return
	}
	change := store.Expiry{TTL: e.writeTTL(d), ReturnValue: true, Absolute: c.policy(ref.ns).Absolute}
	e.withPrevious(c, ref, func(g store.Guard) func() ([]byte, error) {
		change.Guard = g
		res := c.Batch.Expire(ref.key, change)
		return func() ([]byte, error) {
			_, v, err := res.Result()
			return v, err
		}
	})
}

// GETDEL key: destroys the session (tombstone) and returns it.
func (e *Engine) getdel(c *Call) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	if !ref.session {
		e.forward(c, ref, 0)
		return
	}
	e.withPrevious(c, ref, func(g store.Guard) func() ([]byte, error) {
		res := c.Batch.GetDestroy(ref.key, ref.ns.grace, ref.ns.format, g)
		return func() ([]byte, error) {
			_, old, err := res.Result()
			return old, err
		}
	})
}

// MSET key value [key value …]: each key is written on its own (in a
// cluster they may live on different nodes); when one is tombstoned the
// reply is its TOMBSTONE error and the others are written.
func (e *Engine) mset(c *Call) {
	if len(c.Args)%2 != 1 {
		c.Out.Error(errArity("mset"))
		return
	}
	if (len(c.Args)-1)/2 > maxChunkKeys {
		e.msetChunked(c)
		return
	}
	refs, ok := e.resolveAll(c, c.Args[1:], 2)
	if !ok {
		return
	}
	values, ok := e.encodeAll(c, refs, c.Args[2:])
	if !ok {
		return
	}
	check := e.queueMSet(c, refs, c.Args[2:], values)
	c.Then(func() {
		if check() {
			c.Out.OK()
		}
	})
}

// encodeAll encodes the payload of every session among refs (payloads[2i]
// is refs[i]'s), before anything is queued, so a refused payload leaves
// the whole command undone.
func (e *Engine) encodeAll(c *Call, refs []keyRef, payloads [][]byte) ([][]byte, bool) {
	values := make([][]byte, len(refs))
	for i, r := range refs {
		payload := payloads[2*i]
		if !r.session {
			values[i] = payload
			continue
		}
		var ok bool
		if values[i], ok = e.encode(c, r, payload, false); !ok {
			return nil, false
		}
	}
	return values, true
}

// queueMSet queues writing values (encoded) to refs, and returns what
// checks the writes once the batch has run: false when it answered an
// error.
func (e *Engine) queueMSet(c *Call, refs []keyRef, payloads, values [][]byte) func() bool {
	writes := make([]store.WriteResult, len(refs))
	plain := make([]store.ForwardResult, len(refs))
	for i, r := range refs {
		if r.session {
			d := e.decide(r.ns, c.policy(r.ns), payloads[2*i], 0)
			writes[i] = e.write(c, r, payloads[2*i], store.Write{Value: values[i], TTL: e.writeTTL(d)})
		} else {
			plain[i] = e.queuePlainSet(c, r, values[i])
		}
	}
	return func() bool {
		for i, r := range refs {
			var err error
			if r.session {
				_, _, err = writes[i].Result()
			} else {
				_, err = plain[i].Result()
			}
			if err != nil && !e.ignoredTombstone(c, r, err) {
				e.fail(c, r, err)
				return false
			}
		}
		return true
	}
}

// STRLEN key: the length of the value the client wrote. Under a codec that
// stores something else (MessagePack, compressed, encrypted, a header) the
// stored length would be wrong, so the session is read and decoded.
func (e *Engine) strlen(c *Call) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	if !ref.session {
		e.forward(c, ref, forwardRead)
		return
	}
	res := c.Batch.Get(ref.key)
	c.Then(func() {
		if v, ok := e.readSession(c, ref, res); ok {
			if v == nil {
				e.thenUnlessHash(c, ref, res, func() { c.Out.Int(0) }) // no session
				return
			}
			c.Out.Int(int64(len(v)))
		}
	})
}

// writeReturningPrevious is SET … GET and GETSET: w, answered with the
// value it replaced, through withPrevious.
func (e *Engine) writeReturningPrevious(c *Call, ref keyRef, payload []byte, w store.Write) {
	w.ReturnOld, w.Absolute = true, c.policy(ref.ns).Absolute
	done := e.withPrevious(c, ref, func(g store.Guard) func() ([]byte, error) {
		w.Guard = g
		res := c.Batch.Write(ref.key, w)
		return func() ([]byte, error) {
			_, old, err := res.Result()
			return old, err
		}
	})
	if done {
		e.indexOwner(c, ref, payload)
	}
}

// withPrevious runs an operation that answers the session's previous value
// (SET … GET, GETSET, GETEX, GETDEL) and replies with that value, so that a
// value the codec cannot decode fails the command with nothing done, as an
// error reply from Redis means (store.Guard). queue queues the operation
// with a guard and returns the reader of its result.
//
// The first attempt lets Redis act unless the value has a codec header:
// a value without one always decodes, so the common case is one round
// trip. A value with a header comes back untouched, is decoded here, and
// the operation is sent again on condition that the value is still that
// one. It runs at once rather than with the rest of the batch, so that the
// client's later pipelined commands see its effect. done says whether the
// operation was carried out.
func (e *Engine) withPrevious(c *Call, ref keyRef, queue func(store.Guard) func() ([]byte, error)) (done bool) {
	guard := store.GuardHeader
	var checked []byte // the decoded payload of the value guard names
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		result := queue(guard)
		if err := c.exec(); err != nil {
			e.fail(c, ref, err)
			return false
		}
		prev, err := result()
		switch {
		case errors.Is(err, store.ErrCheckPrevious):
			payload, ok := e.decode(c, ref, prev)
			if !ok {
				return false
			}
			guard, checked = store.GuardUnchanged(prev), payload
			continue
		case e.ignoredTombstone(c, ref, err):
			c.Out.Null()
			return false
		case err != nil:
			e.fail(c, ref, err)
			return false
		case prev == nil:
			c.Out.Null()
		case guard == store.GuardHeader:
			c.Out.Bulk(prev) // no header: stored as the client sent it
		default:
			c.Out.Bulk(checked)
		}
		return true
	}
	c.Out.Error(errBusy(ref.sid))
	return false
}

// forwardFlags describe a forwarded command.
type forwardFlags uint8

const (
	// forwardRead: no side effects, so it may be sent again (NOSCRIPT).
	forwardRead forwardFlags = 1 << iota
	// forwardStatus: a string reply is a status (+OK, +string). go-redis
	// decodes status and bulk replies alike, so the command's own shape
	// decides how the reply is written back.
	forwardStatus
)

// forward sends the command unchanged but for its key, ref's upstream key
// (a key outside the prefix, with outside_prefix = passthrough; a lock, for
// the commands a lock takes as they are), and relays the reply.
func (e *Engine) forward(c *Call, ref keyRef, flags forwardFlags) {
	args := make([]interface{}, len(c.Args))
	for i, a := range c.Args {
		args[i] = a
	}
	args[1] = ref.key // the key as sent, but for a lock under hash_ids
	e.forwardArgs(c, flags, args...)
}

// forwardArgs sends the command args and relays the reply.
func (e *Engine) forwardArgs(c *Call, flags forwardFlags, args ...interface{}) {
	e.forwarded(c, flags, c.Batch.Forward(flags&forwardRead != 0, args...))
}

// forwarded answers a forwarded command with its reply as Redis gave it.
func (e *Engine) forwarded(c *Call, flags forwardFlags, res store.ForwardResult) {
	c.Then(func() {
		v, err := res.Result()
		if err != nil {
			e.fail(c, keyRef{}, err)
			return
		}
		if s, ok := v.(string); ok && flags&forwardStatus != 0 {
			c.Out.Simple(s)
			return
		}
		c.Out.Value(v)
	})
}
