package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
)

// hashed is the stored id of sid with hash_ids on: hex SHA-256.
func hashed(sid string) string {
	sum := sha256.Sum256([]byte(sid))
	return hex.EncodeToString(sum[:])
}

func testHashIDs(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) {
		o.HashIDs = true
		o.OwnerField = "passport.user"
	})
	c := p.client(t)
	// Clear ids that would be easy to spot in a dump of Redis.
	const s1, s2, s3, owner = "CLEARsid-one", "CLEARsid-two", "CLEARsid-three", "CLEARowner"

	// SESS.* with the clear id.
	wantReply(t, c, "OK", "SESS.SET", s1, passport(owner, 1))
	p.wantStored(t, "sess:"+hashed(s1), passport(owner, 1))
	p.wantTTL(t, "sess:"+hashed(s1), defaultTTL)
	wantReply(t, c, passport(owner, 1), "SESS.GET", s1)
	wantReply(t, c, 1, "SESS.EXISTS", s1)
	wantIntIn(t, c, 86400-10, 86400, "SESS.TTL", s1)
	wantReply(t, c, 1, "SESS.FSET", s1, "n", "2")
	wantReply(t, c, "2", "SESS.FGET", s1, "n")

	// Plain commands with the clear key.
	wantReply(t, c, "OK", "SET", "sess:"+s2, passport(owner, 3), "EX", "3600")
	p.wantStored(t, "sess:"+hashed(s2), passport(owner, 3))
	wantReply(t, c, passport(owner, 3), "GET", "sess:"+s2)
	wantReply(t, c, []interface{}{passport(owner, 3), nil}, "MGET", "sess:"+s2, "sess:"+s3)
	wantReply(t, c, 1, "EXISTS", "sess:"+s2)
	wantIntIn(t, c, 3590, 3600, "TTL", "sess:"+s2)
	wantReply(t, c, "OK", "SET", "sess:"+s3, `{"n":3}`)

	// Listings show stored (hashed) ids, by design.
	wantStrings(t, "SESS.IDS", mustStrings(t, c, "SESS.IDS"), []string{hashed(s1), hashed(s2), hashed(s3)})
	wantStrings(t, "KEYS *", mustStrings(t, c, "KEYS", "*"),
		[]string{"sess:" + hashed(s1), "sess:" + hashed(s2), "sess:" + hashed(s3)})
	wantOwned(t, c, owner, hashed(s1), hashed(s2))

	// Nothing in the upstream holds a clear id or the owner in its name.
	for _, k := range p.allKeys(t) {
		if strings.Contains(k, "CLEAR") {
			t.Errorf("upstream key %q holds a clear id", k)
		}
	}

	// Destroying with the clear id tombstones the hashed key.
	wantReply(t, c, 1, "DEL", "sess:"+s2)
	p.wantTombstone(t, "sess:"+hashed(s2))
	wantReply(t, c, nil, "GET", "sess:"+s2)
	wantErr(t, c, destroyedError(s2), "SET", "sess:"+s2, `{}`)
	wantReply(t, c, 1, "SESS.DESTROY", s1)
	p.wantTombstone(t, "sess:"+hashed(s1))
	wantReply(t, c, nil, "SESS.GET", s1)
	wantErr(t, c, destroyedError(s1), "SESS.SET", s1, `{}`)
	wantReply(t, c, 1, "UNLINK", "sess:"+s3)
	p.wantTombstone(t, "sess:"+hashed(s3))

	wantReply(t, c, "OK", "SESS.SET", "CLEARsid-four", passport(owner, 4))
	wantReply(t, c, 1, "SESS.DESTROYOWNER", owner)
	p.wantTombstone(t, "sess:"+hashed("CLEARsid-four"))
	for _, k := range p.allKeys(t) {
		if strings.Contains(k, "CLEAR") {
			t.Errorf("upstream key %q holds a clear id", k)
		}
	}
}
