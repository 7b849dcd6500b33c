// Package ttl decides the expiry of every session write (SPEC §3).
package ttl

import (
	"bytes"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Persist modes.
const (
	PersistDeny  = "deny"
	PersistClamp = "clamp"
)

// Rule gives sessions whose JSON Field equals Equals their own TTL.
type Rule struct {
	Field  string // JSON path, e.g. "user.role"
	Equals string
	TTL    time.Duration
}

// Policy is the TTL policy.
type Policy struct {
	// Default applies when nothing else decides. default: 24h
	Default time.Duration
	// Min and Max bound every TTL written. default: 1s, 720h
	Min, Max time.Duration
	// FromCookie derives the TTL from the session's cookie.expires, as
	// connect-redis does. default: true
	FromCookie bool
	// Rules are tried in order; the first match wins. default: none
	Rules []Rule
	// Touch false makes SESS.TOUCH a no-op (connect-redis disableTouch).
	// default: true
	Touch bool
	// Persist is "deny" (PERSIST refused) or "clamp" (PERSIST sets Max).
	// default: deny
	Persist string
	// Idle is sliding expiry: every write, and every read of a live
	// session, sets its TTL to Idle. 0: off. default: 0
	Idle time.Duration
	// Absolute is the longest a session lives after its creation, however
	// often it is touched or rewritten. The store enforces it, since only
	// the stored value knows its creation time. 0: off. default: 0
	Absolute time.Duration
	// LockMax bounds the TTL of a lock key (session.lock_suffixes): a lock
	// written without one gets LockMax, a longer one is lowered to it.
	// default: 5m
	LockMax time.Duration
	// RequireExpires refuses a session write whose payload has no
	// cookie.expires and that gives no TTL of its own (connect-redis-session's
	// ttlSeconds: false): such a session would otherwise live for Default.
	// default: false
	RequireExpires bool
	// Now is the clock; default: time.Now
	Now func() time.Time
}

// Decision is the TTL for one write.
type Decision struct {
	TTL time.Duration
	// Expired: the session is already over (cookie.expires in the past,
	// EXAT in the past); the write deletes it.
	Expired bool
	// Clamped is the limit that moved the TTL, if one did.
	Clamped Bound
}

// Bound is a limit of the policy that can move a TTL.
type Bound uint8

// Bounds.
const (
	Unbounded     Bound = iota // the TTL was not moved
	BoundMin                   // raised to Min
	BoundMax                   // lowered to Max
	BoundAbsolute              // lowered to what is left of Absolute
)

// LacksExpiry reports whether a write of payload must be refused under
// RequireExpires: it gives no TTL of its own (explicit is false) and the
// payload has no cookie.expires the proxy can read.
func (p *Policy) LacksExpiry(payload []byte, explicit bool) bool {
	if !p.RequireExpires || explicit {
		return false
	}
	_, ok := cookieExpires(payload)
	return !ok
}

// ReadsPayload reports whether the decision depends on the payload, so a
// caller without one in hand knows whether to fetch the stored one.
func (p *Policy) ReadsPayload() bool {
	return p.FromCookie || len(p.Rules) > 0
}

// Decide gives the TTL for writing payload (nil when there is none).
// explicit is the TTL the client asked for (0: none); explicit TTLs come
// first, then rules, then cookie.expires, then Default; Idle replaces
// whichever decided, unless the session is already expired.
func (p *Policy) Decide(payload []byte, explicit time.Duration) Decision {
	if explicit != 0 {
		if explicit < 0 {
			return Decision{Expired: true}
		}
		return p.clamp(explicit)
	}
	if payload != nil && p.ReadsPayload() {
		for _, r := range p.Rules {
			if v := lookup(payload, r.Field); v.Exists() && v.String() == r.Equals {
				return p.clamp(r.TTL)
			}
		}
		if p.FromCookie {
			if exp, ok := cookieExpires(payload); ok {
				d := exp.Sub(p.now())
				if d <= 0 {
					return Decision{Expired: true}
				}
				return p.clamp(d)
			}
		}
	}
	return p.clamp(p.Default)
}

// Explicit is the decision for a TTL the client gave, with no payload
// (EXPIRE and friends): d <= 0 means the client asked for expiry now.
func (p *Policy) Explicit(d time.Duration) Decision {
	if d <= 0 {
		return Decision{Expired: true}
	}
	return p.clamp(d)
}

// Until is the explicit decision for an absolute Unix time (EXAT, PXAT,
// EXPIREAT).
func (p *Policy) Until(t time.Time) Decision {
	return p.Explicit(t.Sub(p.now()))
}

func (p *Policy) clamp(d time.Duration) Decision {
	if p.Idle > 0 {
		d = p.Idle
	}
	switch {
	case d < p.Min:
		return Decision{TTL: p.Min, Clamped: BoundMin}
	case d > p.Max:
		return Decision{TTL: p.Max, Clamped: BoundMax}
	}
	return Decision{TTL: d}
}

// Lock is the TTL of a lock key (session.lock_suffixes) asked to live d,
// 0 when the client gave none: d when it is within LockMax, else LockMax.
// There is no floor but Redis's own (1 ms): the holder chose how long the
// others wait, and raising it would make them wait longer. Min, Idle and
// Absolute are session rules; none concerns a lock.
func (p *Policy) Lock(d time.Duration) Decision {
	switch {
	case d == 0:
		return Decision{TTL: p.LockMax}
	case d > p.LockMax:
		return Decision{TTL: p.LockMax, Clamped: BoundMax}
	}
	return Decision{TTL: d}
}

// CapAt caps d by what is left, at now, of a lifetime that started at
// created (ttl.absolute); a lifetime used up expires the session.
func (p *Policy) CapAt(d Decision, created time.Time) Decision {
	if p.Absolute <= 0 || created.IsZero() || d.Expired {
		return d
	}
	left := created.Add(p.Absolute).Sub(p.now())
	switch {
	case left <= 0:
		return Decision{Expired: true}
	case left < d.TTL:
		return Decision{TTL: left, Clamped: BoundAbsolute}
	}
	return d
}

// Clock is the time the policy decides at.
func (p *Policy) Clock() time.Time { return p.now() }

func (p *Policy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// cookieExpires reads cookie.expires: an ISO-8601 string (what
// express-session's JSON holds) or epoch milliseconds. It looks in the
// first "cookie" object only: gjson's path "cookie.expires" went on past
// a cookie without expires through the rest of the session, looking for
// another "cookie" key — a sixth of the proxy's CPU under SESS.SET -P 16
// with make bench's session, a 950-byte string after a cookie that has
// none (docs/performance.md, session 15). express-session itself always
// writes expires, null when the cookie has no maxAge.
func cookieExpires(payload []byte) (time.Time, bool) {
	// A session without the word has no expires key: a key is the word
	// itself unless it has escapes (a backslash). Two vectorised scans are
	// cheaper than gjson's two lookups (a tenth of the proxy's CPU under
	// SET -P 16 of a small session with no expires: docs/performance.md,
	// session 16), and sessions other than express-session's never have it.
	if !bytes.Contains(payload, []byte("expires")) && bytes.IndexByte(payload, '\\') < 0 {
		return time.Time{}, false
	}
	cookie := lookup(payload, "cookie")
	if !cookie.IsObject() {
		return time.Time{}, false
	}
	v := gjson.Get(cookie.Raw, "expires")
	switch v.Type {
	case gjson.String:
		t, err := time.Parse(time.RFC3339Nano, v.Str)
		return t, err == nil
	case gjson.Number:
		return time.UnixMilli(v.Int()), true
	}
	return time.Time{}, false
}

// lookup is gjson.GetBytes without its copy: GetBytes copies what it finds
// into new strings (the cookie object, one allocation per write), so that
// they survive changes to the bytes. Here they are compared or parsed and
// dropped before Decide returns, while the payload stays as it is, so the
// result may point into it.
func lookup(payload []byte, path string) gjson.Result {
	return gjson.Get(unsafe.String(unsafe.SliceData(payload), len(payload)), path)
}
