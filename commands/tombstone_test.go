package commands

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/sessproxy/sessproxy/store"
)

// tombstoneModes: the formats, and the typed one before its transition
// (scripted writes) and after it (native SET … GET).
var tombstoneModes = []struct {
	name  string
	tweak func(*Options)
}{
	{"string", func(o *Options) { o.TombstoneFormat = store.TombstoneString }},
	{"typed, in its transition", func(o *Options) { o.TombstoneFormat = store.TombstoneTyped }},
	{"typed, native writes", func(o *Options) {
		o.TombstoneFormat, o.TombstoneTransition = store.TombstoneTyped, -1
	}},
}

// wantTombstoneAt checks that key holds a tombstone of format.
func wantTombstoneAt(t *testing.T, m *miniredis.Miniredis, key string, format store.TombstoneFormat) {
	t.Helper()
	if format == store.TombstoneTyped {
		if ok, _ := m.IsMember(key, store.Tombstone); m.Type(key) != "set" || !ok {
			t.Fatalf("%s is a %s, want the typed tombstone", key, m.Type(key))
		}
		return
	}
	if v, _ := m.Get(key); v != store.Tombstone {
		t.Fatalf("%s = %q, want the string tombstone", key, v)
	}
}

func TestTombstoneFormats(t *testing.T) {
	for _, mode := range tombstoneModes {
		t.Run(mode.name, func(t *testing.T) {
			f := newFixture(t, mode.tweak)
			format := f.e.spaces[0].format
			f.expect("SESS.SET a {}", "+OK")
			f.expect("SESS.DESTROY a never-existed", ":1")
			wantTombstoneAt(t, f.m, "sess:a", format)
			wantTombstoneAt(t, f.m, "sess:never-existed", format)
			if f.m.TTL("sess:a") != 5*time.Minute {
				t.Fatalf("tombstone TTL %v, want the 5m grace", f.m.TTL("sess:a"))
			}
			refused := "-TOMBSTONE session a was destroyed"
			for _, cmd := range []string{"SESS.SET a {}", "SESS.TOUCH a", "SET sess:a {}", "SET sess:a {} EX 60", "SETEX sess:a 10 {}",
				"SET sess:a {} NX", "SET sess:a {} GET", "SET sess:a {} KEEPTTL", "GETSET sess:a {}", "EXPIRE sess:a 10",
				"GETEX sess:a EX 10", "MSET sess:a {}", "HSET sess:a f v", "SESS.FSET a k 1",
				"EVAL 'return redis.pcall(\"set\", KEYS[1], \"{}\")' 1 sess:a"} {
				f.expect(cmd, refused)
			}
			// A write whose TTL is already over deletes: not a tombstone.
			past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
			f.expect(`SESS.SET a {"cookie":{"expires":"`+past+`"}}`, refused)
			for cmd, want := range map[string]string{"SESS.GET a": "nil", "GET sess:a": "nil", "SESS.EXISTS a": ":0", "EXISTS sess:a": ":0",
				"TTL sess:a": ":-2", "SESS.TTL a": ":-2", "TYPE sess:a": "+none", "STRLEN sess:a": ":0", "MGET sess:a": "[nil]",
				"DBSIZE": ":0", "HGETALL sess:a": "[]", "HGET sess:a f": "nil", "KEYS *": "[]", "SESS.LENGTH": ":0",
				"EVAL 'return redis.call(\"get\", KEYS[1])' 1 sess:a": "nil", "GETDEL sess:a": "nil"} {
				f.expect(cmd, want)
			}
			wantTombstoneAt(t, f.m, "sess:a", format)
			// A hash session is not a tombstone: Redis's own WRONGTYPE.
			f.m.HSet("sess:h", "f", "v")
			f.expect("SET sess:h {} EX 60", "-"+msgWrongType)
		})
	}
}

func TestTombstoneFormatsIgnoredWrites(t *testing.T) {
	for _, mode := range tombstoneModes {
		t.Run(mode.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { mode.tweak(o); o.OnWrite = OnWriteIgnore })
			f.expect("SESS.DESTROY a", ":0")
			f.expect("SESS.SET a {}", "+OK")
			f.expect("SET sess:a {} EX 60", "+OK")
			f.expect("HSET sess:a f v", ":0")
			wantTombstoneAt(t, f.m, "sess:a", f.e.spaces[0].format)
		})
	}
}

// Switching formats leaves no window: a proxy of either format refuses
// writes to the other's tombstones, a typed one native or not.
func TestTombstoneFormatSwitch(t *testing.T) {
	for _, from := range tombstoneModes {
		for _, to := range tombstoneModes {
			t.Run(from.name+" to "+to.name, func(t *testing.T) {
				f := newFixture(t, from.tweak)
				f.expect("SESS.DESTROY a", ":0")
				g := sibling(t, f, to.tweak)
				for _, cmd := range []string{"SESS.SET a {}", "SET sess:a {} EX 60", "MSET sess:a {}", "EXPIRE sess:a 60", "HSET sess:a f v"} {
					g.expect(cmd, "-TOMBSTONE session a was destroyed")
				}
				g.expect("GET sess:a", "nil")
				g.expect("EXISTS sess:a", ":0")
				want := f.e.spaces[0].format
				if g.e.spaces[0].nativeWrites() {
					// A native write that met a string tombstone (a proxy
					// switched past the transition) put it back typed.
					want = store.TombstoneTyped
				}
				wantTombstoneAt(t, f.m, "sess:a", want)
			})
		}
	}
}

// sibling is another engine, with its own options, on f's upstream.
func sibling(t *testing.T, f *fixture, tweak func(*Options)) *fixture {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Mode: store.ModeStandalone, Addrs: []string{f.m.Addr()}, AutoPipeline: true, Combine: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opts := defaultOptions()
	tweak(&opts)
	e := New(st, opts)
	c := e.Connect("127.0.0.1:2", "127.0.0.1:6380")
	return &fixture{t: t, m: f.m, e: e, logs: f.logs, client: c, p: e.NewPipeline(c)}
}
