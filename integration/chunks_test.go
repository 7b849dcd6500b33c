package integration

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store"
)

// The multi-key commands run in chunks of 1024 keys above that many
// (commands/chunks.go). chunkKeys is comfortably past two chunk boundaries.
const chunkKeys = 2500

func chunkSess(i int) string   { return "sess:" + chunkID(i) }
func chunkID(i int) string     { return fmt.Sprintf("chunk-%05d", i) }
func chunkAbsent(i int) string { return fmt.Sprintf("sess:absent-%05d", i) }
func chunkPlain(i int) string  { return fmt.Sprintf("plain:chunk-%05d", i) }
func chunkValue(i int) string  { return fmt.Sprintf(`{"i":%d}`, i) }

// directEntry is one key as the upstream holds it.
type directEntry struct {
	value   string
	present bool
	pttl    time.Duration
}

// readDirect reads keys straight from the upstream, pipelined (across slots in
// a cluster).
func (p *proxyHandle) readDirect(t *testing.T, keys []string) []directEntry {
	t.Helper()
	pipe := p.up.direct.Pipeline()
	gets := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		gets[i] = pipe.Get(bg, k)
		ttls[i] = pipe.PTTL(bg, k)
	}
	if _, err := pipe.Exec(bg); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("direct GET/PTTL of %d keys: %v", len(keys), err)
	}
	out := make([]directEntry, len(keys))
	for i := range keys {
		v, err := gets[i].Result()
		out[i] = directEntry{value: v, present: err == nil, pttl: ttls[i].Val()}
	}
	return out
}

// cmdArgs turns keys (and values) into command arguments after name.
func cmdArgs(name string, keys ...string) []interface{} {
	a := make([]interface{}, 0, len(keys)+1)
	a = append(a, name)
	for _, k := range keys {
		a = append(a, k)
	}
	return a
}

// testChunkedCommands: MSET, MGET, DEL, UNLINK, EXISTS, SESS.EXISTS and
// SESS.DESTROY over more than 1024 keys or ids answer exactly what one command would, write what one command
// would (policy TTLs, tombstones), and a refused key anywhere in them
// leaves the whole command undone.
func testChunkedCommands(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.OutsidePrefix = commands.OutsidePassthrough })
	c := p.client(t)

	// MSET of 2,500 sessions and 250 keys outside the prefix, interleaved.
	var pairs []string
	var sessKeys, plainKeys []string
	for i := 0; i < chunkKeys; i++ {
		pairs = append(pairs, chunkSess(i), chunkValue(i))
		sessKeys = append(sessKeys, chunkSess(i))
		if i%10 == 0 {
			pairs = append(pairs, chunkPlain(i), fmt.Sprintf("v%d", i))
			plainKeys = append(plainKeys, chunkPlain(i))
		}
	}
	wantReply(t, c, "OK", cmdArgs("MSET", pairs...)...)
	for i, e := range p.readDirect(t, sessKeys) {
		if !e.present || e.value != chunkValue(i) {
			t.Fatalf("after MSET: upstream %s = %q (present %v), want %q", sessKeys[i], e.value, e.present, chunkValue(i))
		}
		if e.pttl > defaultTTL || e.pttl < defaultTTL-ttlSlack {
			t.Fatalf("after MSET: PTTL %s = %v, want the policy's %v", sessKeys[i], e.pttl, defaultTTL)
		}
	}
	for j, e := range p.readDirect(t, plainKeys) {
		if want := fmt.Sprintf("v%d", 10*j); !e.present || e.value != want {
			t.Fatalf("after MSET: upstream %s = %q (present %v), want %q", plainKeys[j], e.value, e.present, want)
		}
	}

	// DEL of 1,250 live sessions and 1,250 absent ones: the live ones
	// count, and every one of them, absent included, becomes a tombstone.
	var del []string
	for i := 0; i < chunkKeys; i++ {
		if i%2 == 0 {
			del = append(del, chunkSess(i))
		} else {
			del = append(del, chunkAbsent(i))
		}
	}
	wantReply(t, c, chunkKeys/2, cmdArgs("DEL", del...)...)
	p.wantTombstones(t, del)

	// UNLINK of 625 live sessions, the 250 keys outside the prefix and 625
	// sessions DEL destroyed: the live ones and the plain keys count.
	var unlink, unlinked []string
	for i := 0; i < chunkKeys; i++ {
		switch {
		case i%4 == 1:
			unlink = append(unlink, chunkSess(i))
			unlinked = append(unlinked, chunkSess(i))
		case i%4 == 0:
			unlink = append(unlink, chunkSess(i))
		}
		if i%10 == 0 {
			unlink = append(unlink, chunkPlain(i))
		}
	}
	wantReply(t, c, chunkKeys/4+len(plainKeys), cmdArgs("UNLINK", unlink...)...)
	p.wantTombstones(t, unlinked)
	for _, e := range p.readDirect(t, plainKeys) {
		if e.present {
			t.Fatalf("after UNLINK: a plain key is still there (%q)", e.value)
		}
	}

	// EXISTS over every session key (a quarter live) and one duplicate:
	// each live one counts, the duplicate twice, tombstones not at all.
	wantReply(t, c, chunkKeys/4+1, cmdArgs("EXISTS", append(sessKeys, chunkSess(3))...)...)
	var ids []string
	for i := 0; i < chunkKeys; i++ {
		ids = append(ids, chunkID(i))
	}
	wantReply(t, c, chunkKeys/4+1, cmdArgs("SESS.EXISTS", append(ids, chunkID(3))...)...)

	// MGET of every session key, a plain key, an absent session and a
	// deleted plain key: the live sessions' values in order, nil for
	// tombstones and absent keys, the plain key's value; exactly what the
	// upstream holds, tombstones read as no session.
	if err := up.direct.Set(bg, "plain:keep", "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}
	mget := append(append([]string{}, sessKeys...), "plain:keep", chunkAbsent(0), chunkPlain(0))
	want := make([]interface{}, len(mget))
	live := 0
	for i, e := range p.readDirect(t, mget) {
		if e.present && e.value != store.Tombstone {
			want[i] = e.value
			live++
		}
	}
	if live != chunkKeys/4+1 {
		t.Fatalf("the upstream holds %d live keys of the MGET, want %d", live, chunkKeys/4+1)
	}
	if got := want[3]; got != chunkValue(3) {
		t.Fatalf("expected MGET value of %s = %v, want %q", chunkSess(3), got, chunkValue(3))
	}
	wantReply(t, c, want, cmdArgs("MGET", mget...)...)

	// SESS.DESTROY of every id: the live ones count, every one becomes a
	// tombstone, and SESS.EXISTS then finds none.
	wantReply(t, c, chunkKeys/4, cmdArgs("SESS.DESTROY", ids...)...)
	p.wantTombstones(t, sessKeys)
	wantReply(t, c, 0, cmdArgs("SESS.EXISTS", ids...)...)
}

// wantTombstones checks each key holds a tombstone with about the grace TTL.
func (p *proxyHandle) wantTombstones(t *testing.T, keys []string) {
	t.Helper()
	for i, e := range p.readDirect(t, keys) {
		if !e.present || e.value != store.Tombstone || e.pttl > grace || e.pttl < grace-ttlSlack {
			t.Fatalf("upstream %s = %q (present %v, PTTL %v), want a tombstone with the grace TTL %v", keys[i], e.value, e.present, e.pttl, grace)
		}
	}
}

// testChunkedRefusals: a key outside the prefix (under deny), an invalid
// session id or an invalid payload anywhere in a command over 1024 keys, first chunk or last,
// refuses the whole command: nothing is written or deleted.
func testChunkedRefusals(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	var live []string
	for i := 0; i < chunkKeys; i++ {
		live = append(live, chunkSess(i))
	}
	var pairs []string
	for i := range live {
		pairs = append(pairs, live[i], chunkValue(i))
	}
	wantReply(t, c, "OK", cmdArgs("MSET", pairs...)...)

	for _, at := range []int{0, 1500, chunkKeys - 1} {
		t.Run(fmt.Sprintf("refused key at %d", at), func(t *testing.T) {
			var fresh []string
			var freshPairs []string
			for i := 0; i < chunkKeys; i++ {
				fresh = append(fresh, chunkAbsent(i))
				freshPairs = append(freshPairs, chunkAbsent(i), `{"new":true}`)
			}
			outside := append([]string{}, freshPairs...)
			outside[2*at] = "plain"
			wantErr(t, c, "NOPERM key 'plain' is outside the session namespace", cmdArgs("MSET", outside...)...)
			invalid := append([]string{}, freshPairs...)
			invalid[2*at+1] = "nope"
			wantErr(t, c, "ERR invalid session payload: not valid JSON", cmdArgs("MSET", invalid...)...)
			for i, e := range p.readDirect(t, fresh) {
				if e.present {
					t.Fatalf("a refused MSET wrote %s = %q", fresh[i], e.value)
				}
			}

			keys := append([]string{}, live...)
			keys[at] = "plain"
			for _, name := range []string{"DEL", "UNLINK", "EXISTS", "MGET"} {
				wantErr(t, c, "NOPERM key 'plain' is outside the session namespace", cmdArgs(name, keys...)...)
			}
			ids := make([]string, len(live))
			for i := range ids {
				ids[i] = chunkID(i)
			}
			ids[at] = "bad id"
			for _, name := range []string{"SESS.DESTROY", "SESS.EXISTS"} {
				wantErr(t, c, "ERR invalid session id: contains whitespace or control characters", cmdArgs(name, ids...)...)
			}
			for i, e := range p.readDirect(t, live) {
				if !e.present || e.value != chunkValue(i) {
					t.Fatalf("after refused commands: upstream %s = %q (present %v), want %q", live[i], e.value, e.present, chunkValue(i))
				}
			}
		})
	}
}
