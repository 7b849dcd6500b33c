package commands

import (
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestRequireExpiresRefusesSessionsWithoutExpiry: under ttl.require_expires
// a session write with no cookie.expires and no TTL of its own is refused
// with the rule's name and stores nothing, whichever command sends it; a
// cookie.expires or an explicit TTL lets it through.
func TestRequireExpiresRefusesSessionsWithoutExpiry(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Policy.RequireExpires = true })
	expires := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	withCookie := `{"cookie":{"expires":"` + expires + `"}}`
	refused := "-" + msgNoExpires
	runSteps(t, f, []step{
		{`SESS.SET a {"n":1}`, refused},
		{`SESS.SET a {"cookie":{"expires":null}}`, refused}, // a browser-session cookie
		{`SESS.SET a {"cookie":{"expires":"soon"}}`, refused},
		{`SET sess:a {"n":1}`, refused},
		{`SET sess:a {"n":1} KEEPTTL`, refused},
		{`SET sess:a {"n":1} NX`, refused},
		{`SETNX sess:a {"n":1}`, refused},
		{`GETSET sess:a {"n":1}`, refused},
		{`MSET sess:ok ` + withCookie + ` sess:a {"n":1}`, refused}, // all or nothing
		{`EVAL 'return redis.call("set", KEYS[1], ARGV[1])' 1 sess:a {"n":1}`, "-ERR Error compiling script (new function): " + msgNoExpires + "*"}, // miniredis's wrapping
	})
	for _, k := range []string{"sess:a", "sess:ok"} {
		if f.m.Exists(k) {
			t.Errorf("%s was stored by a refused write", k)
		}
	}
	// The operator sees it too: a WARN line with the reason, once per
	// client in the rate limit's window.
	logged := f.logs.FilterMessage("write refused").FilterField(zap.String("reason", "no_expires")).Len()
	if logged != 1 {
		t.Errorf("%d 'write refused' lines with reason no_expires, want 1 (rate-limited)", logged)
	}
	runSteps(t, f, []step{
		{`SESS.SET a ` + withCookie, "+OK"},
		{`SESS.SET b {"n":1} TTL 60`, "+OK"},
		{`SET sess:c {"n":1} EX 60`, "+OK"},
		{`SETEX sess:d 60 {"n":1}`, "+OK"},
		{`MSET sess:e ` + withCookie, "+OK"},
		{`EVAL 'return redis.call("set", KEYS[1], ARGV[1], "EX", 60)' 1 sess:f {"n":1}`, "$OK"},
		{`HSET sess:h f v`, ":1"},        // hash sessions carry no cookie: the rule is for string sessions
		{`SET sess:x_LOCK token`, "+OK"}, // locks are not sessions
	})
	if got := f.m.TTL("sess:a"); got < 2*time.Hour-time.Minute || got > 2*time.Hour {
		t.Errorf("sess:a TTL %v, want its cookie's 2h", got)
	}
	for _, k := range []string{"sess:b", "sess:c", "sess:d", "sess:f"} {
		if got := f.m.TTL(k); got != time.Minute {
			t.Errorf("%s TTL %v, want the 60 s it was given", k, got)
		}
	}
}
