package commands

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"time"
)

// keyRef is a key argument resolved against the session namespace: a
// session, a lock, or a passthrough key (neither).
type keyRef struct {
	key     string // the full upstream key
	sid     string // session id (a lock's: before its suffix); empty for a passthrough key
	session bool
	lock    bool // a lock key (Options.LockSuffixes): plain Redis with a bounded TTL
}

// resolve maps a key argument to a session or, with outside_prefix =
// passthrough, to a plain key. It writes the error reply and returns false
// when the key is refused.
func (e *Engine) resolve(c *Call, arg []byte) (keyRef, bool) {
	p := e.opts.Prefix
	if len(arg) >= len(p) && string(arg[:len(p)]) == p {
		if suffix := e.lockSuffix(arg[len(p):]); suffix != "" {
			return e.lockRef(c, string(arg), suffix)
		}
		return e.sessionRef(c, string(arg))
	}
	if e.opts.OutsidePrefix == OutsidePassthrough {
		return keyRef{key: string(arg)}, true
	}
	msg := errOutsidePrefix(string(arg))
	if c.cmd != nil && c.cmd.Flags&flagWrite != 0 {
		e.refuse(c, RefusedOutsidePrefix, string(arg), msg)
	} else {
		c.Out.Error(msg)
	}
	return keyRef{}, false
}

// resolveAll resolves every key argument before anything is queued, so a
// refused key leaves the whole command undone.
func (e *Engine) resolveAll(c *Call, args [][]byte, step int) ([]keyRef, bool) {
	refs := make([]keyRef, 0, (len(args)+step-1)/step)
	for i := 0; i < len(args); i += step {
		r, ok := e.resolve(c, args[i])
		if !ok {
			return nil, false
		}
		refs = append(refs, r)
	}
	return refs, true
}

// sessionKey maps a SESS.* id argument to its upstream key. An id ending
// in a lock suffix names a lock, which SESS.* do not serve.
func (e *Engine) sessionKey(c *Call, arg []byte) (keyRef, bool) {
	if suffix := e.lockSuffix(arg); suffix != "" {
		c.Out.Error(errLockID(suffix))
		return keyRef{}, false
	}
	return e.sessionRef(c, e.opts.Prefix+string(arg))
}

// lockSuffix is the first of Options.LockSuffixes that id (a key without
// the prefix) ends in, or "".
func (e *Engine) lockSuffix(id []byte) string {
	for _, s := range e.opts.LockSuffixes {
		if len(id) >= len(s) && string(id[len(id)-len(s):]) == s {
			return s
		}
	}
	return ""
}

// isLockKey reports whether an upstream key under the prefix is a lock,
// for the listings that skip locks. With hash_ids a lock is stored as the
// hashed id plus its suffix, so the suffix still tells.
func (e *Engine) isLockKey(key string) bool {
	for _, s := range e.opts.LockSuffixes {
		if len(key) >= len(e.opts.Prefix)+len(s) && strings.HasSuffix(key, s) {
			return true
		}
	}
	return false
}

// sessionKeys drops the lock keys from a page of keys under the prefix, in
// place.
func (e *Engine) sessionKeys(keys []string) []string {
	if len(e.opts.LockSuffixes) == 0 {
		return keys
	}
	out := keys[:0]
	for _, k := range keys {
		if !e.isLockKey(k) {
			out = append(out, k)
		}
	}
	return out
}

// lockRef checks a lock key, <prefix><sid><suffix>: the part before the
// suffix is a session id under SPEC §2. With hash_ids the id is hashed as
// a session's is, and the suffix kept.
func (e *Engine) lockRef(c *Call, key, suffix string) (keyRef, bool) {
	sid := key[len(e.opts.Prefix) : len(key)-len(suffix)]
	if reason := checkSessionID(sid); reason != "" {
		c.Out.Error(errSessionID(reason))
		return keyRef{}, false
	}
	if e.opts.HashIDs {
		key = e.storageKey(sid) + suffix
	}
	return keyRef{key: key, sid: sid, lock: true}, true
}

// sessionRef checks the id in key, <prefix><sid>, and maps it to its
// upstream key. The id is a substring of key, so a session key costs one
// string, not two, on every command's path.
func (e *Engine) sessionRef(c *Call, key string) (keyRef, bool) {
	sid := key[len(e.opts.Prefix):]
	if reason := checkSessionID(sid); reason != "" {
		c.Out.Error(errSessionID(reason))
		return keyRef{}, false
	}
	if e.opts.HashIDs {
		key = e.storageKey(sid)
	}
	return keyRef{key: key, sid: sid, session: true}, true
}

// storageKey is where a session lives upstream: <prefix><sid>, or with
// hash_ids <prefix><hex SHA-256 of sid>, so a dump of Redis holds no
// usable session id.
func (e *Engine) storageKey(sid string) string {
	if !e.opts.HashIDs {
		return e.opts.Prefix + sid
	}
	sum := sha256.Sum256([]byte(sid))
	return e.opts.Prefix + hex.EncodeToString(sum[:])
}

// checkSessionID enforces SPEC §2: 1..256 bytes, no whitespace or control
// characters. It returns why an id is refused, or "".
func checkSessionID(sid string) string {
	if len(sid) == 0 {
		return "empty"
	}
	if len(sid) > 256 {
		return "longer than 256 bytes"
	}
	for i := 0; i < len(sid); i++ {
		if c := sid[i]; c <= ' ' || c == 0x7f {
			return "contains whitespace or control characters"
		}
	}
	return ""
}

// parseInt parses a decimal integer argument.
func parseInt(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// parseDuration parses the number of a relative (EX/PX) or absolute
// (EXAT/PXAT) expiry. unit is time.Second or time.Millisecond. The bound
// depends on the unit, so converting to a Duration cannot overflow while a
// PXAT of today's epoch milliseconds (about 1.8e12) still fits.
func parseDuration(b []byte, unit time.Duration) (time.Duration, bool) {
	n, ok := parseInt(b)
	max := int64(math.MaxInt64) / int64(unit)
	if !ok || n > max || n < -max {
		return 0, false
	}
	return time.Duration(n) * unit, true
}
