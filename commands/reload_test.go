package commands

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// client2 is another connection of the fixture's engine.
func (f *fixture) client2() *fixture {
	c := f.e.Connect("127.0.0.1:3", "127.0.0.1:6380")
	g := *f
	g.client, g.p = c, f.e.NewPipeline(c)
	return &g
}

func TestReloadSwapsThePolicy(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("SESS.SET a {}", "+OK")
	if ttl := f.m.TTL("sess:a"); ttl != 24*time.Hour {
		t.Fatalf("before reload: TTL %v, want 24h", ttl)
	}
	opts := defaultOptions()
	opts.Policy.Default, opts.Policy.Max = time.Hour, 2*time.Hour
	f.e.Reload(opts)
	// The same connection, next command: the new default, and the new max
	// clamps an explicit TTL.
	f.expect("SESS.SET b {}", "+OK")
	f.expect("SESS.SET c {} TTL 86400", "+OK")
	if a, b, c := f.m.TTL("sess:a"), f.m.TTL("sess:b"), f.m.TTL("sess:c"); a != 24*time.Hour || b != time.Hour || c != 2*time.Hour {
		t.Fatalf("after reload: TTLs a=%v b=%v c=%v, want 24h (untouched) 1h 2h", a, b, c)
	}
	if info := f.one("INFO sessions"); !strings.Contains(info, "ttl_default_seconds:3600") || !strings.Contains(info, "ttl_max_seconds:7200") {
		t.Fatalf("INFO after reload = %q, want the new ttl.default and ttl.max", info)
	}
}

func TestReloadSwapsUsers(t *testing.T) {
	users := []User{
		{Name: "web", Password: "webpw", Role: RoleApp},
		{Name: "gone", Password: "gonepw", Role: RoleApp},
	}
	f := newFixture(t, func(o *Options) { o.RequirePass, o.Users = "oldpass", users })
	web, gone, dflt, fresh := f, f.client2(), f.client2(), f.client2()
	web.expect("AUTH web webpw", "+OK")
	gone.expect("AUTH gone gonepw", "+OK")
	dflt.expect("AUTH oldpass", "+OK")
	web.expect("SET sess:a {}", "+OK")

	opts := defaultOptions()
	opts.RequirePass = "newpass"
	opts.Users = []User{
		{Name: "web", Password: "webpw2", Role: RoleReadonly},
		{Name: "ops", Password: "opspw", Role: RoleAdmin},
	}
	f.e.Reload(opts)

	// A changed role applies to the next command; the changed password
	// does not log the connection out (Redis keeps it authenticated).
	web.expect("SET sess:a {}", "-NOPERM this user has no permissions to run the 'set' command")
	web.expect("GET sess:a", "${}")
	// A removed user's connection stays open but must AUTH again.
	gone.expect("GET sess:a", "-NOAUTH Authentication required.")
	gone.expect("PING", "+PONG")
	gone.expect("AUTH gone gonepw", "-"+msgWrongPass)
	gone.expect("AUTH ops opspw", "+OK")
	gone.expect("SESS.CLEAR", ":1")
	// requirepass changed: the default user's connection stays in, and
	// only the new password opens a new one.
	dflt.expect("SET sess:b {}", "+OK")
	fresh.expect("AUTH oldpass", "-"+msgWrongPass)
	fresh.expect("AUTH web webpw", "-"+msgWrongPass)
	fresh.expect("AUTH newpass", "+OK")
}

func TestReloadRemovingTheDefaultUser(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.RequirePass = "pw" })
	f.expect("AUTH pw", "+OK")
	opts := defaultOptions()
	opts.Users = []User{{Name: "web", Password: "webpw", Role: RoleApp}}
	f.e.Reload(opts) // no requirepass: only named users exist now
	f.expect("GET sess:a", "-NOAUTH Authentication required.")
	f.expect("AUTH web webpw", "+OK")
	f.expect("GET sess:a", "nil")
}

func TestReloadRequiringAPasswordLocksOutClientsThatGaveNone(t *testing.T) {
	for _, tt := range []struct {
		name   string
		before string // what the client sent before the reload; "" nothing
		reload func(*Options)
	}{
		{"requirepass", "", func(o *Options) { o.RequirePass = "pw" }},
		{"requirepass after AUTH default under nopass", "AUTH default anything", func(o *Options) { o.RequirePass = "pw" }},
		{"users", "", func(o *Options) { o.Users = []User{{Name: "web", Password: "webpw", Role: RoleApp}} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			if tt.before != "" {
				f.expect(tt.before, "+OK")
			}
			f.expect("SESS.CLEAR", ":0") // admin, as the nopass default user
			opts := defaultOptions()
			tt.reload(&opts)
			f.e.Reload(opts)
			f.expect("SESS.CLEAR", "-NOAUTH Authentication required.")
			f.expect("GET sess:a", "-NOAUTH Authentication required.")
		})
	}
}

func TestReloadDroppingPasswordsOpensWaitingClients(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.RequirePass = "pw" })
	f.expect("GET sess:a", "-NOAUTH Authentication required.")
	f.e.Reload(defaultOptions())
	// As Redis with a nopass default user: no AUTH needed any more.
	f.expect("GET sess:a", "nil")
}

// TestReloadUnderLoad swaps the policy while clients write; run with -race.
// Every batch runs under one policy: both writes of a batch get the same
// TTL, one of the two defaults.
func TestReloadUnderLoad(t *testing.T) {
	f := newFixture(t, nil)
	short, long := defaultOptions(), defaultOptions()
	short.Policy.Default, long.Policy.Default = time.Hour, 2*time.Hour
	f.e.Reload(short)
	const clients, batches = 4, 50
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if i%2 == 0 {
				f.e.Reload(short)
			} else {
				f.e.Reload(long)
			}
		}
	}()
	var writers sync.WaitGroup
	for w := range clients {
		p := f.e.NewPipeline(f.e.Connect("127.0.0.1:4", "127.0.0.1:6380"))
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range batches {
				args := [][][]byte{
					{[]byte("SESS.SET"), fmt.Appendf(nil, "a%d-%d", w, i), []byte("{}")},
					{[]byte("SESS.SET"), fmt.Appendf(nil, "b%d-%d", w, i), []byte("{}")},
				}
				p.Run(context.Background(), args, func([]byte) {})
			}
		}()
	}
	writers.Wait()
	close(done)
	wg.Wait()
	for w := range clients {
		for i := range batches {
			a, b := f.m.TTL(fmt.Sprintf("sess:a%d-%d", w, i)), f.m.TTL(fmt.Sprintf("sess:b%d-%d", w, i))
			if a != b || (a != time.Hour && a != 2*time.Hour) {
				t.Fatalf("batch %d of client %d: TTLs %v and %v, want the same, 1h or 2h", i, w, a, b)
			}
		}
	}
}
