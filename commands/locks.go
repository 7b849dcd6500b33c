package commands

import (
	"strconv"
	"time"

	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store"
)

// Locks: a key under the prefix that ends in a lock suffix
// (session.lock_suffixes, phpredis's "_LOCK") is a lock, not a session.
// It takes plain Redis commands, sent as they are but for the expiry:
// every write gives the lock a TTL within ttl.lock_max (Policy.Lock), so a
// crashed holder never blocks its session for longer. No codec, no
// tombstone, no owner index; the listings of sessions skip it. Commands
// that need nothing of this (GET, MGET, DEL, EXISTS, TTL, PTTL, TYPE,
// STRLEN, GETDEL) take the passthrough path with the lock's key.

// lockPX is the PX argument of a lock write asked to expire as x (unset:
// no expiry given): x's TTL within ttl.lock_max. An absolute x is taken
// relative to now.
func (e *Engine) lockPX(p *ttl.Policy, x expiry) string {
	d := x.ttl
	if x.abs {
		d = max(x.at.Sub(p.Clock()), time.Millisecond)
	}
	return millis(e.writeTTL(p.Lock(d)))
}

// lockExpiry is the expiry option of a lock write asked to expire as x:
// PXAT as asked when that time is within ttl.lock_max (a time already past
// expires the lock, as in Redis), else PX within ttl.lock_max.
func (e *Engine) lockExpiry(p *ttl.Policy, x expiry) []interface{} {
	if x.abs && x.at.Sub(p.Clock()) <= p.LockMax {
		return []interface{}{"pxat", strconv.FormatInt(x.at.UnixMilli(), 10)}
	}
	return []interface{}{"px", e.lockPX(p, x)}
}

// lockSet is SET on a lock: one SET upstream, so NX stays atomic.
func (e *Engine) lockSet(c *Call, ref keyRef, opts setArgs) {
	var options []string
	if opts.cond != store.Always {
		options = append(options, string(opts.cond))
	}
	flags := forwardStatus
	if opts.get {
		options = append(options, "GET")
		flags = 0
	}
	if opts.keepTTL {
		res := c.Batch.LockKeepTTL(ref.key, c.Args[2], c.policy(ref.ns).LockMax, options...)
		c.Then(func() {
			v, err := res.Result()
			switch s, ok := v.(string); {
			case err != nil:
				e.fail(c, keyRef{}, err)
			case ok && flags == forwardStatus:
				c.Out.Simple(s)
			default:
				c.Out.Value(v)
			}
		})
		return
	}
	args := make([]interface{}, 0, 7)
	args = append(args, "set", ref.key, c.Args[2])
	for _, o := range options {
		args = append(args, o)
	}
	args = append(args, e.lockExpiry(c.policy(ref.ns), opts.expiry)...)
	e.forwardArgs(c, flags, args...)
}

// lockSetNX is SETNX on a lock: SET NX PX lock_max, answered :1 or :0.
func (e *Engine) lockSetNX(c *Call, ref keyRef) {
	res := c.Batch.Forward(false, "set", ref.key, c.Args[2], "nx", "px", e.lockPX(c.policy(ref.ns), expiry{}))
	c.Then(func() {
		v, err := res.Result()
		switch {
		case err != nil:
			e.fail(c, keyRef{}, err)
		case v == nil:
			c.Out.Int(0)
		default:
			c.Out.Int(1)
		}
	})
}

// lockGetEx is GETEX on a lock: without an option it is GET; an expiry is
// bounded by ttl.lock_max; PERSIST follows ttl.persist, as on a session.
func (e *Engine) lockGetEx(c *Call, ref keyRef, x expiry, persist bool) {
	p := c.policy(ref.ns)
	switch {
	case persist && p.Persist != ttl.PersistClamp:
		e.refuse(c, RefusedPersist, ref.key, msgLockPersist)
	case persist:
		e.forwardArgs(c, 0, "getex", ref.key, "px", millis(e.writeTTL(ttl.Decision{TTL: p.LockMax, Clamped: ttl.BoundMax})))
	case x.set:
		e.forwardArgs(c, 0, append([]interface{}{"getex", ref.key}, e.lockExpiry(p, x)...)...)
	default:
		e.forward(c, ref, 0)
	}
}

// lockExpire is EXPIRE, PEXPIRE, EXPIREAT or PEXPIREAT on a lock, with
// its options (NX, XX, GT, LT) as given: d (since the epoch when abs) is
// bounded by ttl.lock_max. A TTL <= 0, or a time already past, deletes the
// lock, as in Redis.
func (e *Engine) lockExpire(c *Call, ref keyRef, d time.Duration, abs bool) {
	p := c.policy(ref.ns)
	var args []interface{}
	switch {
	case abs && time.Unix(0, 0).Add(d).Sub(p.Clock()) <= p.LockMax:
		args = []interface{}{"pexpireat", ref.key, strconv.FormatInt(d.Milliseconds(), 10)}
	case abs:
		args = []interface{}{"pexpire", ref.key, e.lockPX(p, expiry{set: true, abs: true, at: time.Unix(0, 0).Add(d)})}
	case d <= 0:
		args = []interface{}{"pexpire", ref.key, strconv.FormatInt(d.Milliseconds(), 10)}
	default:
		args = []interface{}{"pexpire", ref.key, e.lockPX(p, expiry{set: true, ttl: d})}
	}
	for _, o := range c.Args[3:] {
		args = append(args, o)
	}
	e.forwardArgs(c, 0, args...)
}

// lockPersist is PERSIST on a lock: refused under ttl.persist = "deny",
// the TTL set to ttl.lock_max under "clamp" (:1 when the lock exists), as
// a session's is set to ttl.max. A lock never loses its TTL.
func (e *Engine) lockPersist(c *Call, ref keyRef) {
	p := c.policy(ref.ns)
	if p.Persist != ttl.PersistClamp {
		e.refuse(c, RefusedPersist, ref.key, msgLockPersist)
		return
	}
	e.forwardArgs(c, 0, "pexpire", ref.key, millis(e.writeTTL(ttl.Decision{TTL: p.LockMax, Clamped: ttl.BoundMax})))
}

// queuePlainSet queues MSET's write of a key that is not a session: a
// passthrough key as it is, a lock with ttl.lock_max.
func (e *Engine) queuePlainSet(c *Call, r keyRef, value []byte) store.ForwardResult {
	if r.lock {
		return c.Batch.Forward(false, "set", r.key, value, "px", e.lockPX(c.policy(r.ns), expiry{}))
	}
	return c.Batch.Forward(false, "set", r.key, value)
}

// millis renders a TTL as whole milliseconds, rounded up so a positive TTL
// never becomes 0.
func millis(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}
