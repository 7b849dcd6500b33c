package commands

import (
	"sort"
	"strings"
	"testing"
)

func ids(reply string) []string {
	out := strings.Fields(strings.NewReplacer("[", " ", "]", " ", "$", "").Replace(reply))
	sort.Strings(out)
	return out
}

func TestLogoutEverywhere(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.OwnerField = "passport.user" })
	f.expect(`SESS.SET a {"passport":{"user":"ada"}}`, "+OK")
	f.expect(`SET sess:b {"passport":{"user":"ada"}}`, "+OK") // connect-redis writes plain SET
	f.expect(`SESS.SET c {"passport":{"user":"bob"}}`, "+OK")
	f.expect(`SESS.SET d {}`, "+OK")
	f.expect(`SESS.FSET d passport {"user":"ada"}`, ":1")
	f.expect(`MSET sess:e {"passport":{"user":"ada"}}`, "+OK")
	if got := ids(f.one("SESS.BYOWNER ada")); strings.Join(got, ",") != "a,b,d,e" {
		t.Fatalf("BYOWNER ada = %v", got)
	}
	// The index stays right when sessions change owner, expire or are destroyed.
	f.expect(`SESS.SET e {"passport":{"user":"bob"}}`, "+OK")
	f.expect("SESS.DESTROY d", ":1")
	f.m.Del("sess:b") // expired behind the proxy's back
	if got := ids(f.one("SESS.BYOWNER ada")); strings.Join(got, ",") != "a" {
		t.Fatalf("BYOWNER ada after changes = %v", got)
	}
	if members, _ := f.m.Members("sessproxy:owner:sess:ada"); len(members) != 1 {
		t.Fatalf("stale members not pruned: %v", members)
	}
	if ttl := f.m.TTL("sessproxy:owner:sess:ada"); ttl <= 0 {
		t.Fatalf("owner index has no TTL")
	}
	f.expect("SESS.DESTROYOWNER bob", ":2")
	for _, k := range []string{"sess:c", "sess:e"} {
		if v, _ := f.m.Get(k); v != "TOMBSTONE" {
			t.Fatalf("%s = %q after DESTROYOWNER", k, v)
		}
	}
	f.expect("SESS.GET a", `${"passport":{"user":"ada"}}`)
	f.expect("SESS.BYOWNER bob", "[]")
}

func TestOwnerCommandsNeedTheField(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("SESS.BYOWNER ada", "-"+msgNoOwnerField)
}
