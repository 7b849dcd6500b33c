package commands

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store"
	"github.com/sessproxy/sessproxy/store/codec"
)

// Namespace is a session namespace beside the default one, whose settings
// are Options' own (Prefix, Codec, Policy, …): [[namespace]] in the
// config. A key belongs to the namespace with the longest prefix it
// starts with.
type Namespace struct {
	// Name is what SESS.* … NS <name> calls it. Required, unique.
	Name string
	// Prefix, OwnerField, LockSuffixes, Policy, Tombstones, Grace, OnWrite,
	// Codec, MaxHashBytes, MaxHashFields and HashIDs are as in Options, for
	// this namespace's keys.
	Prefix        string
	OwnerField    string
	LockSuffixes  []string
	Policy        ttl.Policy
	Tombstones    bool
	Grace         time.Duration
	OnWrite       string
	Codec         codec.Codec
	MaxHashBytes  int
	MaxHashFields int
	HashIDs       bool
	// TombstoneFormat and TombstoneTransition are as in Options.
	TombstoneFormat     store.TombstoneFormat
	TombstoneTransition time.Duration
}

// DefaultNamespace is the name of the namespace Options' own settings
// describe, which SESS.* act on without NS.
const DefaultNamespace = "default"

// space is a namespace as the engine serves it. Its TTL policy is in the
// reloadable configuration, at policies[index].
type space struct {
	index         int
	name          string
	alias         string // the default namespace's second name (Options.DefaultAlias)
	prefix        string
	ownerField    string
	lockSuffixes  []string
	tombstones    bool
	grace         time.Duration // the tombstone lifetime; zero when tombstones are off
	onWrite       string
	codec         codec.Codec
	maxHashBytes  int
	maxHashFields int
	hashIDs       bool
	format        store.TombstoneFormat // of the tombstones it writes
	// nativeAt is when its common-case writes become Redis's own SET …
	// GET (store.Write.Native): under the typed format, once the string
	// tombstones of a proxy not yet switched have expired. Zero: never.
	nativeAt time.Time
	native   atomic.Bool // nativeAt has passed
}

func newSpace(index int, ns Namespace, started time.Time) *space {
	if ns.OnWrite == "" {
		ns.OnWrite = OnWriteError
	}
	if ns.Codec == nil {
		ns.Codec = codec.Plain()
	}
	sp := &space{index: index, name: ns.Name, prefix: ns.Prefix, ownerField: ns.OwnerField,
		lockSuffixes: slices.Clone(ns.LockSuffixes), tombstones: ns.Tombstones, onWrite: ns.OnWrite,
		codec: ns.Codec, maxHashBytes: ns.MaxHashBytes, maxHashFields: ns.MaxHashFields, hashIDs: ns.HashIDs}
	sp.format = ns.TombstoneFormat
	if sp.format == "" {
		sp.format = store.TombstoneString
	}
	if ns.Tombstones {
		sp.grace = ns.Grace
	}
	if sp.format == store.TombstoneTyped && sp.grace > 0 {
		// A string tombstone another proxy wrote just before this one
		// started lives for at most its grace; until then a write must
		// check both formats, which only a script can.
		transition := ns.TombstoneTransition
		if transition == 0 {
			transition = sp.grace
		}
		sp.nativeAt = started.Add(max(transition, 0))
	}
	return sp
}

// nativeWrites reports whether sp's common-case writes go as SET … GET
// (see nativeAt). The clock is read only until the transition is over.
func (sp *space) nativeWrites() bool {
	if sp.native.Load() {
		return true
	}
	if sp.nativeAt.IsZero() || time.Now().Before(sp.nativeAt) {
		return false
	}
	sp.native.Store(true)
	return true
}

// defaultNamespace is the namespace of Options' own settings.
func (o *Options) defaultNamespace() Namespace {
	return Namespace{Name: DefaultNamespace, Prefix: o.Prefix, OwnerField: o.OwnerField, LockSuffixes: o.LockSuffixes,
		Policy: o.Policy, Tombstones: o.Tombstones, Grace: o.Grace, OnWrite: o.OnWrite, Codec: o.Codec,
		MaxHashBytes: o.MaxHashBytes, MaxHashFields: o.MaxHashFields, HashIDs: o.HashIDs,
		TombstoneFormat: o.TombstoneFormat, TombstoneTransition: o.TombstoneTransition}
}

// TypedTombstones reports whether a namespace of o writes typed
// tombstones, and so needs Redis's SET … GET (Redis >= 6.2).
func (o *Options) TypedTombstones() bool {
	for _, ns := range o.namespaces() {
		if ns.Tombstones && ns.TombstoneFormat == store.TombstoneTyped {
			return true
		}
	}
	return false
}

// namespaces is every namespace of opts, the default first.
func (o *Options) namespaces() []Namespace {
	return append([]Namespace{o.defaultNamespace()}, o.Namespaces...)
}

// spaceFor is the namespace key belongs to: the longest prefix it starts
// with, or nil when it is outside them all.
func (e *Engine) spaceFor(key []byte) *space {
	for _, sp := range e.byLength {
		if len(key) >= len(sp.prefix) && string(key[:len(sp.prefix)]) == sp.prefix {
			return sp
		}
	}
	return nil
}

// owns reports whether an upstream key found under sp's prefix belongs to
// sp, not to a namespace with a longer prefix: listings never mix them.
func (e *Engine) owns(sp *space, key string) bool {
	return e.spaceFor([]byte(key)) == sp
}

// spaceNamed is the namespace called name (the default also answers to
// its alias), or nil.
func (e *Engine) spaceNamed(name string) *space {
	for _, sp := range e.spaces {
		if sp.name == name || (sp.alias != "" && sp.alias == name) {
			return sp
		}
	}
	return nil
}

// policy is the TTL policy of sp under the call's configuration.
func (c *Call) policy(sp *space) *ttl.Policy {
	return &c.conf.policies[sp.index]
}

// keyRef is a key argument resolved against the namespaces: a session, a
// lock, or a passthrough key (neither, and no namespace).
type keyRef struct {
	key     string // the full upstream key
	sid     string // session id (a lock's: before its suffix); empty for a passthrough key
	session bool
	lock    bool   // a lock key (lock_suffixes): plain Redis with a bounded TTL
	ns      *space // the namespace of a session or lock
}

// resolve maps a key argument to a session or lock of its namespace or,
// with outside_prefix = passthrough, to a plain key. It writes the error
// reply and returns false when the key is refused.
func (e *Engine) resolve(c *Call, arg []byte) (keyRef, bool) {
	if sp := e.spaceFor(arg); sp != nil {
		if suffix := sp.lockSuffix(arg[len(sp.prefix):]); suffix != "" {
			return e.lockRef(c, sp, string(arg), suffix)
		}
		return e.sessionRef(c, sp, string(arg))
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

// sessionKey maps a SESS.* id argument to its upstream key in the call's
// namespace (NS, else the default). An id ending in a lock suffix names a
// lock, which SESS.* do not serve.
func (e *Engine) sessionKey(c *Call, arg []byte) (keyRef, bool) {
	sp := c.space(e)
	if suffix := sp.lockSuffix(arg); suffix != "" {
		c.Out.Error(errLockID(suffix))
		return keyRef{}, false
	}
	return e.sessionRef(c, sp, sp.prefix+string(arg))
}

// lockSuffix is the first of the namespace's lock suffixes that id (a key
// without the prefix) ends in, or "".
func (sp *space) lockSuffix(id []byte) string {
	for _, s := range sp.lockSuffixes {
		if len(id) >= len(s) && string(id[len(id)-len(s):]) == s {
			return s
		}
	}
	return ""
}

// isLockKey reports whether an upstream key under the prefix is a lock,
// for the listings that skip locks. With hash_ids a lock is stored as the
// hashed id plus its suffix, so the suffix still tells.
func (sp *space) isLockKey(key string) bool {
	for _, s := range sp.lockSuffixes {
		if len(key) >= len(sp.prefix)+len(s) && strings.HasSuffix(key, s) {
			return true
		}
	}
	return false
}

// sessionKeys drops from a page of keys under sp's prefix, in place, the
// locks and the keys of namespaces with a longer prefix.
func (e *Engine) sessionKeys(sp *space, keys []string) []string {
	if len(sp.lockSuffixes) == 0 && len(e.spaces) == 1 {
		return keys
	}
	out := keys[:0]
	for _, k := range keys {
		if e.isSessionKey(sp, k) {
			out = append(out, k)
		}
	}
	return out
}

// isSessionKey reports whether an upstream key under sp's prefix is one
// of sp's sessions: not a lock, not another namespace's.
func (e *Engine) isSessionKey(sp *space, key string) bool {
	return !sp.isLockKey(key) && (len(e.spaces) == 1 || e.owns(sp, key))
}

// lockRef checks a lock key, <prefix><sid><suffix>: the part before the
// suffix is a session id under SPEC §2. With hash_ids the id is hashed as
// a session's is, and the suffix kept.
func (e *Engine) lockRef(c *Call, sp *space, key, suffix string) (keyRef, bool) {
	sid := key[len(sp.prefix) : len(key)-len(suffix)]
	if reason := checkSessionID(sid); reason != "" {
		c.Out.Error(errSessionID(reason))
		return keyRef{}, false
	}
	if sp.hashIDs {
		key = sp.storageKey(sid) + suffix
	}
	return keyRef{key: key, sid: sid, lock: true, ns: sp}, true
}

// sessionRef checks the id in key, <prefix><sid>, and maps it to its
// upstream key. The id is a substring of key, so a session key costs one
// string, not two, on every command's path.
func (e *Engine) sessionRef(c *Call, sp *space, key string) (keyRef, bool) {
	sid := key[len(sp.prefix):]
	if reason := checkSessionID(sid); reason != "" {
		c.Out.Error(errSessionID(reason))
		return keyRef{}, false
	}
	if sp.hashIDs {
		key = sp.storageKey(sid)
	}
	return keyRef{key: key, sid: sid, session: true, ns: sp}, true
}

// storageKey is where a session lives upstream: <prefix><sid>, or with
// hash_ids <prefix><hex SHA-256 of sid>, so a dump of Redis holds no
// usable session id.
func (sp *space) storageKey(sid string) string {
	if !sp.hashIDs {
		return sp.prefix + sid
	}
	sum := sha256.Sum256([]byte(sid))
	return sp.prefix + hex.EncodeToString(sum[:])
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
