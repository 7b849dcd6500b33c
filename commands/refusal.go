package commands

import (
	"net"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Refusal is why the proxy refused a write: the reason label of the
// refused-writes metric and of the WARN line each refusal logs (SPEC §12.8,
// "no silent loss"). The set is fixed, so the metric's series are bounded.
type Refusal uint8

// Refusals.
const (
	RefusedTombstone     Refusal = iota // the session was destroyed: -TOMBSTONE, or success under tombstone.on_write = "ignore"
	RefusedPayload                      // the codec refused the payload: not JSON, not an object, the codec's header magic
	RefusedTooLarge                     // a payload over codec.max_payload_bytes, or a hash session that would pass it or codec.max_hash_fields
	RefusedOutsidePrefix                // a write to a key outside the prefix under session.outside_prefix = "deny"
	RefusedPersist                      // PERSIST (or GETEX PERSIST) under ttl.persist = "deny"
	RefusedNoExpires                    // a session with no cookie.expires and no TTL of its own under ttl.require_expires
	RefusedScript                       // a script's write the wrapper refused under this configuration (codec, owner index, ttl.absolute, a command not allowed on session keys)
	RefusedUpstream                     // Redis refused the write for its own state: OOM past maxmemory, READONLY, NOREPLICAS, MISCONF… (upstreamRefusal)
	NumRefusals                         // how many reasons there are, for arrays indexed by reason
)

func (r Refusal) String() string {
	switch r {
	case RefusedTombstone:
		return "tombstone"
	case RefusedPayload:
		return "invalid_payload"
	case RefusedTooLarge:
		return "payload_too_large"
	case RefusedOutsidePrefix:
		return "outside_prefix"
	case RefusedPersist:
		return "persist"
	case RefusedNoExpires:
		return "no_expires"
	case RefusedUpstream:
		return "upstream"
	}
	return "script"
}

// Rate limit of the refusal log: at most one line per reason and client
// host each refusalWindow; the next line says how many were left out.
// Hosts, not addresses: a client's connection pool shares one budget.
const (
	refusalWindow = 10 * time.Second
	// maxRefusalHosts bounds the limiter's memory. Past it, hosts share
	// one budget per reason (refusalOtherHosts) until old entries expire.
	maxRefusalHosts   = 4096
	refusalOtherHosts = "*"
)

// refusalLog rate-limits the WARN lines of refused writes.
type refusalLog struct {
	now  func() time.Time // default: time.Now
	mu   sync.Mutex
	seen map[refusalKey]*refusalEntry
}

type refusalKey struct {
	reason Refusal
	host   string
}

type refusalEntry struct {
	logged     time.Time // when the last line was written
	suppressed int       // refusals left out of the log since
}

// admit reports whether a refusal of reason from addr is logged now, and
// how many of the same reason and host were left out since the last line.
func (l *refusalLog) admit(reason Refusal, addr string) (bool, int) {
	now := l.now()
	k := refusalKey{reason, refusalHost(addr)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = make(map[refusalKey]*refusalEntry)
	}
	ent := l.seen[k]
	if ent == nil {
		if len(l.seen) >= maxRefusalHosts {
			l.prune(now)
		}
		if len(l.seen) >= maxRefusalHosts {
			k.host = refusalOtherHosts
			ent = l.seen[k]
		}
	}
	if ent == nil {
		ent = &refusalEntry{}
		l.seen[k] = ent
	} else if now.Sub(ent.logged) < refusalWindow {
		ent.suppressed++
		return false, 0
	}
	n := ent.suppressed
	ent.logged, ent.suppressed = now, 0
	return true, n
}

// prune forgets the entries whose window has passed. Their suppressed
// counts leave the log (the metric has every refusal).
func (l *refusalLog) prune(now time.Time) {
	for k, ent := range l.seen {
		if now.Sub(ent.logged) >= refusalWindow {
			delete(l.seen, k)
		}
	}
}

// refusalHost is the host of a client address ("10.0.0.5:51234" →
// "10.0.0.5"); a Unix socket's address is kept whole.
func refusalHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// refuse answers a refused write with msg, and logs and counts it
// (refused). Every refused write goes through here or through refused.
func (e *Engine) refuse(c *Call, reason Refusal, key, msg string) {
	e.refused(c, reason, key)
	c.Out.Error(msg)
}

// refused logs and counts a write refused for reason, whatever the client
// is answered (an error, or success under tombstone.on_write = "ignore").
// key is the upstream key (the hashed one under hash_ids, so the log holds
// no usable session id); the payload is never logged.
func (e *Engine) refused(c *Call, reason Refusal, key string) {
	e.logRefusal(c, reason, "write refused", zap.String("key", printable(key)))
}

// upstreamRefused logs and counts a write whose reply is Redis refusing
// it for its own state (upstreamRefusal): without it an operator saw a
// full Redis only as the clients' errors, counted with their syntax
// errors. Redis's words are the reason; no key is logged, since Redis
// refuses the server's writes, not one key's, and a SESS.* argument is a
// session id, which the log never holds.
func (e *Engine) upstreamRefused(c *Call, reply []byte) {
	if c.cmd == nil || (c.cmd.Flags&flagWrite == 0 && c.cmd.Name != "exec") {
		return
	}
	reason := upstreamRefusal(reply)
	if reason == nil {
		return
	}
	e.logRefusal(c, RefusedUpstream, "write refused by the upstream", zap.String("upstream", printable(string(reason))))
}

// logRefusal counts a refused write and logs it, at most as often as the
// rate limit admits (with how many it suppressed): msg, the reason, what
// was refused (detail), the client and the command.
func (e *Engine) logRefusal(c *Call, reason Refusal, msg string, detail zap.Field) {
	e.metrics.WriteRefused(reason)
	ok, suppressed := e.refusals.admit(reason, c.Client.Addr)
	if !ok {
		return
	}
	fields := []zap.Field{
		zap.String("reason", reason.String()),
		detail,
		zap.String("client", c.Client.Addr),
		zap.String("command", e.callName(c)),
	}
	if suppressed > 0 {
		fields = append(fields, zap.Int("suppressed", suppressed))
	}
	e.opts.Logger.Warn(msg, fields...)
}

// callName is the registry name of the command c runs.
func (e *Engine) callName(c *Call) string {
	if c.cmd != nil {
		return c.cmd.Name
	}
	return e.CommandName(c)
}

// scriptRefusal classifies an error reply of a wrapped script: the
// wrapper's own refusals of a write (scriptwrap.go) name their reason and,
// for a tombstone or a key outside the prefix, the key. ok is false for any
// other error.
func (e *Engine) scriptRefusal(sp *space, msg string) (reason Refusal, key string, ok bool) {
	switch {
	case strings.HasPrefix(msg, codeTombstone+"session "):
		sid, _, _ := strings.Cut(strings.TrimPrefix(msg, codeTombstone+"session "), " was destroyed")
		return RefusedTombstone, sp.storageKey(sid), true
	case strings.HasPrefix(msg, "ERR invalid session payload: larger than"):
		return RefusedTooLarge, "", true
	case strings.HasPrefix(msg, msgHashSession) && strings.Contains(msg, msgHashWouldExceed):
		sid, _, _ := strings.Cut(strings.TrimPrefix(msg, msgHashSession), msgHashWouldExceed)
		return RefusedTooLarge, sp.storageKey(sid), true
	case strings.HasPrefix(msg, "ERR invalid session payload:"):
		return RefusedPayload, "", true
	case strings.HasPrefix(msg, msgPersistDenied):
		return RefusedPersist, "", true
	case strings.HasPrefix(msg, msgNoExpires):
		return RefusedNoExpires, "", true
	case strings.HasPrefix(msg, codeNoPerm+"key '"):
		k, _, _ := strings.Cut(strings.TrimPrefix(msg, codeNoPerm+"key '"), "' is outside the session namespace")
		return RefusedOutsidePrefix, k, true
	case strings.HasPrefix(msg, msgScriptCodecValues), strings.HasPrefix(msg, msgScriptOwnerWrites),
		strings.HasPrefix(msg, msgScriptAbsolute),
		strings.HasPrefix(msg, "ERR command '") && strings.Contains(msg, "is not allowed on session keys in scripts"):
		return RefusedScript, "", true
	}
	return 0, "", false
}
