package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
)

// passport is an express-session payload logged in by passport as user.
func passport(user string, n int) string {
	return fmt.Sprintf(`{"cookie":{"path":"/"},"passport":{"user":%q},"n":%d}`, user, n)
}

// ownerIndex is the upstream key of an owner's index (docs/commands.md).
func ownerIndex(owner string) string { return "sessproxy:owner:sess:" + owner }

// waitGone polls the upstream until key no longer exists.
func (p *proxyHandle) waitGone(t *testing.T, key string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, ok := p.stored(t, key); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream: %s still there after %v (PTTL %v)", key, within, p.pttl(t, key))
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// wantOwned checks SESS.BYOWNER owner lists exactly sids.
func wantOwned(t *testing.T, c doer, owner string, sids ...string) {
	t.Helper()
	wantStrings(t, "SESS.BYOWNER "+owner, mustStrings(t, c, "SESS.BYOWNER", owner), sids)
}

// wantIndex checks the upstream index of owner holds exactly sids.
func (p *proxyHandle) wantIndex(t *testing.T, owner string, sids ...string) {
	t.Helper()
	members, err := p.up.direct.SMembers(bg, ownerIndex(owner)).Result()
	if err != nil {
		t.Fatalf("SMEMBERS %s: %v", ownerIndex(owner), err)
	}
	wantStrings(t, "upstream index "+ownerIndex(owner), members, sids)
}

func testOwnerIndex(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) {
		o.OwnerField = "passport.user"
	})
	c := p.client(t)
	// Session ids on different slots, over every master in the cluster.
	keys := up.spreadKeys(t, "sess:own-", 12)
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k[len("sess:"):]
	}
	a1, a2, a3, a4, a5, aExp, aMoved, b1, b2, anon := ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6], ids[7], ids[8], ids[9]
	a6, a7 := ids[10], ids[11]

	// Every write path indexes the owner: SESS.SET, plain SET as
	// connect-redis sends it, SETEX, SESS.FSET (creating the session),
	// GETSET, MSET across slots.
	wantReply(t, c, "OK", "SESS.SET", a1, passport("alice", 1))
	wantReply(t, c, "OK", "SET", "sess:"+a2, passport("alice", 2), "EX", "86400")
	wantReply(t, c, 1, "SESS.FSET", a3, "passport", `{"user":"alice"}`)
	wantReply(t, c, "OK", "SETEX", "sess:"+a4, "3600", passport("alice", 4))
	wantReply(t, c, "OK", "SET", "sess:"+a5, passport("alice", 5))
	wantReply(t, c, "OK", "SESS.SET", aMoved, passport("alice", 6))
	wantReply(t, c, nil, "GETSET", "sess:"+a6, passport("alice", 8))
	wantReply(t, c, "OK", "MSET", "sess:"+a7, passport("alice", 9), "sess:"+b2, passport("bob", 2))
	wantReply(t, c, "OK", "SESS.SET", b1, passport("bob", 1))
	wantReply(t, c, "OK", "SET", "sess:"+b2, passport("bob", 2), "EX", "86400")
	wantReply(t, c, "OK", "SESS.SET", anon, `{"cookie":{"path":"/"}}`) // no owner: no index
	wantOwned(t, c, "alice", a1, a2, a3, a4, a5, a6, a7, aMoved)
	wantOwned(t, c, "bob", b1, b2)
	wantOwned(t, c, "nobody")
	if d := p.pttl(t, ownerIndex("alice")); d <= 0 || d > maxTTL {
		t.Errorf("upstream: PTTL %s = %v, want a TTL within ttl.max", ownerIndex("alice"), d)
	}

	// A session that expires: written with 50ms, clamped to ttl.min (1s).
	wantReply(t, c, "OK", "SET", "sess:"+aExp, passport("alice", 7), "PX", "50")
	wantOwned(t, c, "alice", a1, a2, a3, a4, a5, a6, a7, aMoved, aExp)
	p.waitGone(t, "sess:"+aExp, 10*time.Second)

	// One destroyed, one that changed owner.
	wantReply(t, c, 1, "DEL", "sess:"+a5)
	wantReply(t, c, 1, "SESS.FSET", aMoved, "passport", `{"user":"bob"}`)
	wantOwned(t, c, "alice", a1, a2, a3, a4, a6, a7)
	p.wantIndex(t, "alice", a1, a2, a3, a4, a6, a7) // the stale members were pruned
	wantOwned(t, c, "bob", b1, b2, aMoved)

	// Log out everywhere: every one of alice's sessions is a tombstone,
	// bob's and the anonymous one are untouched.
	wantReply(t, c, 6, "SESS.DESTROYOWNER", "alice")
	for _, sid := range []string{a1, a2, a3, a4, a5, a6, a7} {
		p.wantTombstone(t, "sess:"+sid)
		wantReply(t, c, nil, "SESS.GET", sid)
		wantErr(t, c, destroyedError(sid), "SET", "sess:"+sid, passport("alice", 9))
	}
	p.wantMissing(t, "sess:"+aExp) // expired, not resurrected as a tombstone
	p.wantStored(t, "sess:"+b1, passport("bob", 1))
	p.wantStored(t, "sess:"+b2, passport("bob", 2))
	p.wantStored(t, "sess:"+anon, `{"cookie":{"path":"/"}}`)
	wantReply(t, c, `{"user":"bob"}`, "SESS.FGET", aMoved, "passport")
	wantOwned(t, c, "alice")
	wantOwned(t, c, "bob", b1, b2, aMoved)
	wantReply(t, c, 0, "SESS.DESTROYOWNER", "alice")
	wantReply(t, c, 3, "SESS.DESTROYOWNER", "bob")
	for _, sid := range []string{b1, b2, aMoved} {
		p.wantTombstone(t, "sess:"+sid)
	}
	p.wantStored(t, "sess:"+anon, `{"cookie":{"path":"/"}}`)
}

func testOwnerIndexOff(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	wantReply(t, c, "OK", "SESS.SET", "s1", passport("alice", 1))
	const msg = `ERR no owner index: set session.owner_field (a JSON path such as "passport.user")`
	wantErr(t, c, msg, "SESS.BYOWNER", "alice")
	wantErr(t, c, msg, "SESS.DESTROYOWNER", "alice")
	p.wantStored(t, "sess:s1", passport("alice", 1))
	if keys := p.allKeys(t); len(keys) != 1 {
		t.Errorf("upstream keys = %q, want only sess:s1 (no index without owner_field)", keys)
	}
}
