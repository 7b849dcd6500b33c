package commands

import (
	"bytes"
	"time"

	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store"
)

// DEL key [key …], UNLINK key [key …]: deleting a session key destroys the
// session (tombstone).
func (e *Engine) del(c *Call) {
	if len(c.Args)-1 > maxChunkKeys {
		e.sumChunked(c, e.resolve, e.queueDestroy)
		return
	}
	refs, ok := e.resolveAll(c, c.Args[1:], 1)
	if !ok {
		return
	}
	e.destroy(c, refs)
}

// EXISTS key [key …]
func (e *Engine) exists(c *Call) {
	if len(c.Args)-1 > maxChunkKeys {
		e.sumChunked(c, e.resolve, e.queueCountExisting)
		return
	}
	refs, ok := e.resolveAll(c, c.Args[1:], 1)
	if !ok {
		return
	}
	e.countExisting(c, refs)
}

// EXPIRE key seconds [NX|XX|GT|LT], and PEXPIRE, EXPIREAT, PEXPIREAT.
func (e *Engine) expire(c *Call) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	name := string(bytes.ToLower(c.Args[0]))
	unit := time.Second
	if name[0] == 'p' {
		unit = time.Millisecond
	}
	if _, ok := parseInt(c.Args[2]); !ok {
		c.Out.Error(msgNotInteger)
		return
	}
	d, ok := parseDuration(c.Args[2], unit)
	if !ok {
		c.Out.Error(errInvalidExpire(name)) // an integer, as Redis says, but past what a TTL can be
		return
	}
	// Options combine as in Redis 7: NX alone, GT or LT optionally with XX.
	var nx, xx, gt, lt bool
	for _, a := range c.Args[3:] {
		switch string(bytes.ToUpper(a)) {
		case "NX":
			nx = true
		case "XX":
			xx = true
		case "GT":
			gt = true
		case "LT":
			lt = true
		default:
			c.Out.Error(errUnsupportedOption(string(a)))
			return
		}
	}
	cond := store.Always
	switch {
	case nx && (xx || gt || lt):
		c.Out.Error(msgExpireNX)
		return
	case gt && lt:
		c.Out.Error(msgExpireGTLT)
		return
	case nx:
		cond = store.NX
	case gt:
		cond = store.GT // a key without a TTL never passes GT, so XX adds nothing
	case lt && xx:
		cond = store.XXLT
	case lt:
		cond = store.LT
	case xx:
		cond = store.XX
	}
	if ref.lock {
		e.lockExpire(c, ref, d, name == "expireat" || name == "pexpireat")
		return
	}
	if !ref.session {
		e.forward(c, ref, 0)
		return
	}
	var decision ttl.Decision
	if name == "expireat" || name == "pexpireat" {
		decision = c.policy(ref.ns).Until(time.Unix(0, 0).Add(d))
	} else {
		decision = c.policy(ref.ns).Explicit(d)
	}
	res := c.Batch.Expire(ref.key, store.Expiry{TTL: e.writeTTL(decision), Cond: cond, Absolute: c.policy(ref.ns).Absolute})
	c.Then(func() { e.replyExpire(c, ref, res) })
}

// PERSIST key: refused on sessions (ttl.persist = deny), or turned into the
// longest TTL allowed (clamp). A session key never loses its TTL.
func (e *Engine) persist(c *Call) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	if ref.lock {
		e.lockPersist(c, ref)
		return
	}
	if !ref.session {
		e.forward(c, ref, 0)
		return
	}
	if c.policy(ref.ns).Persist != ttl.PersistClamp {
		e.refuse(c, RefusedPersist, ref.key, msgPersistDenied)
		return
	}
	res := c.Batch.Expire(ref.key, store.Expiry{TTL: e.writeTTL(ttl.Decision{TTL: c.policy(ref.ns).Max, Clamped: ttl.BoundMax}), Absolute: c.policy(ref.ns).Absolute})
	c.Then(func() { e.replyExpire(c, ref, res) })
}

// ttlIn is the handler of TTL key (unit time.Second) and PTTL key (unit
// time.Millisecond).
func (e *Engine) ttlIn(unit time.Duration) func(*Call) {
	return func(c *Call) { e.ttl(c, unit) }
}

func (e *Engine) ttl(c *Call, unit time.Duration) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	if !ref.session {
		e.forward(c, ref, forwardRead)
		return
	}
	inSeconds := unit == time.Second
	res := c.Batch.PTTL(ref.key)
	c.Then(func() {
		ms, err := res.Result()
		switch {
		case err != nil:
			e.fail(c, ref, err)
		case inSeconds:
			c.Out.Int(seconds(ms))
		default:
			c.Out.Int(ms)
		}
	})
}

// TYPE key
func (e *Engine) typeOf(c *Call) {
	ref, ok := e.resolve(c, c.Args[1])
	if !ok {
		return
	}
	if !ref.session {
		e.forward(c, ref, forwardRead|forwardStatus)
		return
	}
	res := c.Batch.Type(ref.key)
	c.Then(func() {
		t, err := res.Result()
		if err != nil {
			e.fail(c, ref, err)
			return
		}
		c.Out.Simple(t)
	})
}

// MEMORY USAGE key [SAMPLES count] | MEMORY HELP: the bytes the upstream
// holds for a key. A tombstone reads as absent (null), as it does to every
// read; a lock or a passthrough key is asked as it is.
func (e *Engine) memory(c *Call) {
	switch sub := string(bytes.ToUpper(c.Args[1])); {
	case sub == "USAGE" && len(c.Args) >= 3:
		e.memoryUsage(c)
	case sub == "HELP" && len(c.Args) == 2:
		help := []string{
			"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"USAGE <key> [SAMPLES <count>]",
			"    Return memory in bytes used by <key> and its value, as the upstream Redis counts it.",
			"HELP",
			"    Print this help.",
		}
		c.Out.Array(len(help))
		for _, h := range help {
			c.Out.Simple(h)
		}
	default:
		c.Out.Error(errUnknownSubcommand("MEMORY", string(c.Args[1])))
	}
}

func (e *Engine) memoryUsage(c *Call) {
	args := []interface{}{"memory", "usage", nil}
	switch {
	case len(c.Args) == 3:
	case len(c.Args) == 5 && bytes.EqualFold(c.Args[3], []byte("SAMPLES")):
		n, ok := parseInt(c.Args[4])
		if !ok || n < 0 {
			c.Out.Error(msgNotInteger)
			return
		}
		args = append(args, "samples", n)
	default:
		c.Out.Error(msgSyntax)
		return
	}
	ref, ok := e.resolve(c, c.Args[2])
	if !ok {
		return
	}
	args[2] = ref.key
	if !ref.session {
		e.forwarded(c, forwardRead, c.Batch.ForwardKey(true, ref.key, args...))
		return
	}
	live := c.Batch.Exists(ref.key)
	usage := c.Batch.ForwardKey(true, ref.key, args...)
	c.Then(func() {
		n, err := live.Result()
		if err != nil {
			e.fail(c, ref, err)
			return
		}
		v, err := usage.Result()
		switch {
		case err != nil:
			e.fail(c, ref, err)
		case n == 0:
			c.Out.Null()
		default:
			c.Out.Value(v)
		}
	})
}
