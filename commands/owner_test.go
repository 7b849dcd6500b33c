package commands

import (
	"context"
	"fmt"
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

// A session rewritten for another owner while SESS.DESTROYOWNER runs is
// not destroyed: each destroy is on condition that the value is still the
// one whose owner was checked. Whatever the interleaving, a write that
// answered OK must have left bob's session in place, not a tombstone.
func TestDestroyOwnerSparesASessionThatChangedOwner(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.OwnerField = "user" })
	writer := f.e.NewPipeline(f.e.Connect("127.0.0.1:2", "127.0.0.1:6380"))
	run := func(p *Pipeline, cmd ...string) string {
		args := make([][]byte, len(cmd))
		for i, a := range cmd {
			args[i] = []byte(a)
		}
		var out strings.Builder
		p.Run(context.Background(), [][][]byte{args}, func(b []byte) { out.Write(b) })
		return out.String()
	}
	spared := 0
	for i := 0; i < 300; i++ {
		sid := fmt.Sprintf("s%d", i)
		f.expect(`SESS.SET `+sid+` {"user":"ada"}`, "+OK")
		done := make(chan string)
		go func() { done <- run(writer, "SESS.SET", sid, `{"user":"bob"}`) }()
		f.one("SESS.DESTROYOWNER ada")
		reply := <-done
		stored, _ := f.m.Get("sess:" + sid)
		if reply == "+OK\r\n" && stored == "TOMBSTONE" {
			t.Fatalf("%s: bob's write answered OK, and DESTROYOWNER ada then destroyed it", sid)
		}
		if reply == "+OK\r\n" {
			spared++
		}
	}
	t.Logf("bob's write came first in %d of 300 rounds", spared)
}

// An index larger than a chunk (forEachOwned) is checked chunk by chunk:
// the reply lists the owner's sessions in the index's order, the stale
// members of every chunk are pruned, and every session is destroyed.
func TestOwnerIndexLargerThanAChunk(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.OwnerField = "u" })
	const n = 3*firstChunkKeys + 5
	var want, bob []string
	for i := 0; i < n; i++ {
		sid := fmt.Sprintf("s%03d", i)
		f.expect(`SESS.SET `+sid+` {"u":"ada"}`, "+OK")
		switch i % 3 {
		case 0:
			f.m.Del("sess:" + sid) // expired behind the proxy's back
		case 1:
			f.expect(`SESS.SET `+sid+` {"u":"bob"}`, "+OK")
			bob = append(bob, "$"+sid)
		default:
			want = append(want, sid)
		}
	}
	members, _ := f.m.Members("sessproxy:owner:sess:ada") // miniredis answers SMEMBERS sorted
	if len(members) != n {
		t.Fatalf("index holds %d members, want %d", len(members), n)
	}
	f.expect("SESS.BYOWNER ada", "[$"+strings.Join(want, " $")+"]")
	if members, _ := f.m.Members("sessproxy:owner:sess:ada"); strings.Join(members, " ") != strings.Join(want, " ") {
		t.Fatalf("index after SESS.BYOWNER = %v, want %v", members, want)
	}
	f.expect("SESS.DESTROYOWNER ada", fmt.Sprintf(":%d", len(want)))
	f.expect("SESS.BYOWNER ada", "[]")
	f.expect("SESS.BYOWNER bob", "["+strings.Join(bob, " ")+"]")
}
