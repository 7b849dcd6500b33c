package commands

import (
	"errors"
	"time"

	"github.com/sessproxy/sessproxy/store"
	"github.com/sessproxy/sessproxy/store/codec"
	"github.com/tidwall/gjson"
)

// maxUpdateAttempts bounds the read-modify-write retries of SESS.FSET and
// SESS.FDEL when other writers keep changing the session in between.
const maxUpdateAttempts = 100

// SESS.FGET sid field
func (e *Engine) sessFGet(c *Call) {
	ref, ok := e.sessionKey(c, c.Args[1])
	if !ok {
		return
	}
	field := gjson.Escape(string(c.Args[2]))
	res := e.read(c, ref)
	c.Then(func() {
		payload, ok := e.readSession(c, ref, res)
		switch {
		case !ok:
		case payload == nil:
			e.thenUnlessHash(c, ref, res, c.Out.Null)
		default:
			// One field: gjson stops where it finds it, where
			// fieldValues validates the whole session first. A value
			// that is not an object has no fields, as SESS.FMGET
			// answers; one that opens like an object but is not one
			// (stored straight into Redis) answers what gjson finds.
			if firstByte(payload) != '{' {
				c.Out.Null()
			} else if v := gjson.Get(view(payload), field); v.Exists() {
				c.Out.BulkString(v.Raw)
			} else {
				c.Out.Null()
			}
		}
	})
}

// SESS.FMGET sid field [field …]
func (e *Engine) sessFMGet(c *Call) {
	ref, ok := e.sessionKey(c, c.Args[1])
	if !ok {
		return
	}
	fields := make([]string, len(c.Args)-2)
	for i, f := range c.Args[2:] {
		fields[i] = string(f)
	}
	res := e.read(c, ref)
	c.Then(func() {
		payload, ok := e.readSession(c, ref, res)
		if !ok {
			return
		}
		answer := func() {
			values := fieldValues(payload, fields)
			c.Out.Array(len(fields))
			for _, v := range values {
				// Past the client's reply limit every value written is
				// wasted: stop.
				if c.Out.Over() {
					return
				}
				if v != "" {
					c.Out.BulkString(v)
				} else {
					c.Out.Null()
				}
			}
		}
		if payload == nil {
			e.thenUnlessHash(c, ref, res, answer)
			return
		}
		answer()
	})
}

// SESS.FSET sid field json [field json …]: sets top-level fields, creating
// the session when missing; :N fields set.
func (e *Engine) sessFSet(c *Call) {
	ref, ok := e.sessionKey(c, c.Args[1])
	if !ok {
		return
	}
	if len(c.Args)%2 != 0 {
		c.Out.Error(errArity("sess.fset"))
		return
	}
	pairs := c.Args[2:]
	for i := 0; i < len(pairs); i += 2 {
		if !codec.ValidJSON(pairs[i+1]) {
			e.refuse(c, RefusedPayload, ref.key, errPayload("field '"+printable(string(pairs[i]))+"' is not valid JSON"))
			return
		}
	}
	e.updateFields(c, ref, true, func(payload []byte) ([]byte, int64, error) {
		return setFields(payload, pairs)
	})
}

// SESS.FDEL sid field [field …]: :N fields removed.
func (e *Engine) sessFDel(c *Call) {
	ref, ok := e.sessionKey(c, c.Args[1])
	if !ok {
		return
	}
	fields := c.Args[2:]
	e.updateFields(c, ref, false, func(payload []byte) ([]byte, int64, error) {
		return deleteFields(payload, fields)
	})
}

// updateFields applies modify to the session's JSON as one atomic step:
// read, modify in Go (where the codec can decode anything), then write
// only if the stored value is still the one read; on a concurrent change,
// start over. modify returns the new payload and the count to reply; a
// count of 0 writes nothing.
func (e *Engine) updateFields(c *Call, ref keyRef, create bool, modify func([]byte) ([]byte, int64, error)) {
	if !ref.ns.codec.JSON() {
		c.Out.Error(msgFieldsNeedJSON)
		return
	}
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		read := c.Batch.GetStored(ref.key)
		if err := c.exec(); err != nil {
			e.fail(c, ref, err)
			return
		}
		stored, err := read.Result()
		if err != nil {
			e.replyUpdateError(c, ref, err)
			return
		}
		var payload []byte
		var created time.Time
		switch {
		case stored != nil:
			meta, err := e.decodeMeta(ref.ns, stored)
			if err != nil {
				c.Out.Error(errDecode(ref.sid, err))
				return
			}
			payload, created = meta.payload, meta.created
		case create:
			payload = []byte("{}")
		default:
			c.Out.Int(0)
			return
		}
		updated, n, err := modify(payload)
		if err != nil {
			e.refuse(c, RefusedPayload, ref.key, errPayload(err.Error()))
			return
		}
		if n == 0 {
			c.Out.Int(0)
			return
		}
		if created.IsZero() {
			created = c.policy(ref.ns).Clock()
		}
		value, ok := e.encodeCreated(c, ref, updated, created)
		if !ok {
			return
		}
		// The swap replaces the whole value, so the absolute lifetime is
		// applied here from the creation time read (an expired session is
		// deleted), and capped again by the script at the swap's own time.
		d := c.policy(ref.ns).CapAt(e.decide(ref.ns, c.policy(ref.ns), updated, 0), created)
		swap := c.Batch.CompareAndSwap(ref.key, stored, value, ttlArg(d), c.policy(ref.ns).Absolute)
		if err := c.exec(); err != nil {
			e.fail(c, ref, err)
			return
		}
		outcome, err := swap.Result()
		if err != nil {
			e.replyUpdateError(c, ref, err)
			return
		}
		if outcome != store.NotApplied {
			e.countClamp(d) // once, for the attempt that applied
			e.indexOwner(c, ref, updated)
			c.Out.Int(n)
			return
		}
	}
	c.Out.Error(errBusy(ref.sid))
}

func (e *Engine) replyUpdateError(c *Call, ref keyRef, err error) {
	if e.ignoredTombstone(c, ref, err) {
		c.Out.Int(0)
		return
	}
	e.fail(c, ref, err)
}

// readSession decodes a queued session read; nil payload (and true) when
// there is none, false when the reply was an error.
func (e *Engine) readSession(c *Call, ref keyRef, res store.GetResult) ([]byte, bool) {
	v, err := res.Result()
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, true
	case err != nil:
		e.fail(c, ref, err)
		return nil, false
	}
	return e.decode(c, ref, v)
}
