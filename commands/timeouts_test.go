package commands

import (
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/store/codec"
)

// clock moves the policy's clock and the upstream's TIME together.
type clock struct {
	now time.Time
	f   *fixture
}

func (c *clock) advance(d time.Duration) {
	c.now = c.now.Add(d)
	c.f.m.SetTime(c.now)
}

func TestAbsoluteTimeoutSurvivesRewritesAndTouches(t *testing.T) {
	ck := &clock{now: time.Now().Truncate(time.Millisecond)}
	f := newFixture(t, func(o *Options) {
		o.Policy.Absolute = 10 * time.Second
		o.Policy.Now = func() time.Time { return ck.now }
		o.Codec = mustCodec(codec.Options{Envelope: true})
	})
	ck.f = f
	ck.advance(0)
	within := func(key string, max time.Duration) {
		t.Helper()
		if ttl := f.m.TTL(key); ttl <= 0 || ttl > max {
			t.Fatalf("%s: TTL %v, want (0, %v]", key, ttl, max)
		}
	}
	f.expect(`SESS.SET a {"n":1}`, "+OK")
	within("sess:a", 10*time.Second)
	stored, _ := f.m.Get("sess:a")
	if !strings.HasPrefix(stored, "\x00SP1") {
		t.Fatalf("stored %q: no envelope header", stored)
	}
	created := stored[5:18]
	f.expect(`SESS.GET a`, `${"n":1}`)

	ck.advance(6 * time.Second)
	for _, cmd := range []string{`SESS.SET a {"n":2}`, `SET sess:a {"n":3}`, `SESS.TOUCH a`, `EXPIRE sess:a 3600`, `SESS.FSET a m 1`} {
		f.one(cmd)
		within("sess:a", 4*time.Second)
	}
	if now, _ := f.m.Get("sess:a"); now[5:18] != created {
		t.Fatalf("creation time changed from %s to %s", created, now[5:18])
	}
	f.expect("SESS.GET a", `${"n":3,"m":1}`)

	ck.advance(5 * time.Second) // past creation + 10s
	f.expect(`SESS.SET a {"n":4}`, "+OK")
	if f.m.Exists("sess:a") {
		t.Fatal("a session outlived its absolute lifetime")
	}
	f.expect(`SESS.SET b {}`, "+OK") // a new session starts its own clock
	within("sess:b", 10*time.Second)
}

func TestIdleTimeoutSlidesOnReadsAndWrites(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Policy.Idle = 30 * time.Minute })
	f.expect(`SESS.SET a {} TTL 86400`, "+OK") // idle replaces what would decide
	if ttl := f.m.TTL("sess:a"); ttl != 30*time.Minute {
		t.Fatalf("TTL after write = %v, want the idle 30m", ttl)
	}
	for _, read := range []string{"SESS.GET a", "GET sess:a", "MGET sess:a sess:missing", "SESS.FGET a x", "GETEX sess:a"} {
		f.m.SetTTL("sess:a", time.Minute)
		f.one(read)
		if ttl := f.m.TTL("sess:a"); ttl != 30*time.Minute {
			t.Fatalf("%s: TTL %v, want it slid back to 30m", read, ttl)
		}
	}
	f.expect("SESS.DESTROY a", ":1")
	f.expect("SESS.GET a", "nil")
	if v, _ := f.m.Get("sess:a"); v != "TOMBSTONE" || f.m.TTL("sess:a") != 5*time.Minute {
		t.Fatalf("a read slid the tombstone: %q %v", v, f.m.TTL("sess:a"))
	}
}

// A session stored with a creation time older than the absolute lifetime
// (ttl.absolute lowered since, or another proxy's setting) must not be
// served, with or without idle.
func TestReadsRefuseSessionsPastTheirLifetime(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Policy.Absolute = time.Hour
		o.Codec = mustCodec(codec.Options{Envelope: true})
	})
	old := mustCodec(codec.Options{Envelope: true})
	stored, err := old.Encode([]byte(`{"n":1}`), codec.Meta{Created: time.Now().Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	f.m.Set("sess:old", string(stored))
	f.m.SetTTL("sess:old", 24*time.Hour)
	f.expect("SESS.GET old", "nil")
	if f.m.Exists("sess:old") {
		t.Fatal("a read left a session past its lifetime in place")
	}
}
