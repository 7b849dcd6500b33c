package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boj/redistore"
	"github.com/gorilla/sessions"
)

// Each framework's own session code, driven through the real binary
// started with only that framework's preset (startPresetProcess), with the
// framework's default settings but the server's address: login → read →
// touch (or the request that refreshes the TTL) → logout → a late write (a
// request that read the session before the logout and writes after it),
// each step checked in Redis directly. Under the presets' on_write =
// "ignore" the late write is answered as success, so the framework raises
// nothing, and the session stays destroyed.

// lowered is the TTL a test sets behind the proxy's back, to see the next
// request raise it again.
const lowered = time.Minute

// wantSessionValue checks key holds a live session whose payload (Marshal,
// pickle: binary) contains each of parts.
func (p *proxyHandle) wantSessionValue(t *testing.T, key string, parts ...string) {
	t.Helper()
	v, ok := p.stored(t, key)
	if !ok {
		t.Errorf("upstream: %s missing, want a session", key)
		return
	}
	for _, part := range parts {
		if !strings.Contains(v, part) {
			t.Errorf("upstream: %s = %q, want a payload containing %q", key, clip(v), part)
		}
	}
}

// wantWriteIgnored checks the binary logged a write of command to key
// refused for its tombstone (and, under on_write = "ignore", answered as
// success): the late write reached the proxy.
func (p *proxyHandle) wantWriteIgnored(t *testing.T, key, command string) {
	t.Helper()
	// The line was written before the reply, but is read from the pipe
	// by another goroutine.
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range p.process.logs() {
			if l["msg"] == "write refused" && l["key"] == key {
				if l["reason"] != "tombstone" || l["command"] != command {
					t.Errorf("refused write of %s: %v, want %s refused for its tombstone", key, l, command)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("no write to %s refused in the log: the late write never reached the proxy; log: %v", key, p.process.logs())
			return
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// wantKeys checks the upstream holds exactly keys.
func (p *proxyHandle) wantKeys(t *testing.T, keys ...string) {
	t.Helper()
	slices.Sort(keys)
	if got := p.allKeys(t); !slices.Equal(got, keys) {
		t.Errorf("upstream keys %q, want %q", got, keys)
	}
}

// rackResponse is one Rack request as rb/rack_flow.rb reports it.
type rackResponse struct {
	Status int
	Body   string
	Cookie *string // the rack.session cookie the response set, if any
	Errors string  // what the middleware wrote to rack.errors
	Raised string
}

// TestFrameworkRedisRack: Rack::Session::Redis (redis-rack) with its
// default redis_server path (db 0, namespace rack:session) behind
// -preset redis-rack. Rack 2.2 stores a session under its private id,
// "2::" + hex(SHA-256(cookie)); it writes the whole session back (SET, no
// TTL: the proxy's ttl.default) at the end of every request that loaded
// it, which is its touch; logout is session.destroy (Rails' reset_session):
// DEL of the public and the private id, then a fresh empty session under a
// new cookie.
func TestFrameworkRedisRack(t *testing.T) {
	rb := interpreter(t, "redis-rack (ruby-redis-rack)", []string{"ruby"}, "-e", `require "rack/session/redis"`)
	bin := buildSessproxy(t)
	for _, up := range []*upstream{standaloneUp, clusterUp} {
		t.Run(up.name, func(t *testing.T) {
			p := startPresetProcess(t, bin, up, "redis-rack")
			app := startScript(t, p, rb, "rb/rack_flow.rb")
			key := func(cookie string) string {
				sum := sha256.Sum256([]byte(cookie))
				return "rack:session:2::" + hex.EncodeToString(sum[:])
			}
			wantOK := func(step string, r rackResponse) {
				t.Helper()
				if r.Raised != "" || r.Status != 200 || r.Errors != "" {
					t.Fatalf("%s: %+v, want 200 with nothing raised or logged", step, r)
				}
			}

			var login rackResponse
			app.step(&login, "login")
			wantOK("login", login)
			if login.Cookie == nil || *login.Cookie == "" {
				t.Fatalf("login set no rack.session cookie: %+v", login)
			}
			cookie, sess := *login.Cookie, key(*login.Cookie)
			p.wantSessionValue(t, sess, "user_id")
			p.wantTTL(t, sess, defaultTTL)
			p.wantKeys(t, sess)

			var read rackResponse
			app.step(&read, "read")
			wantOK("read", read)
			if read.Body != "42" {
				t.Errorf("read: user_id %q, want 42", read.Body)
			}
			// Rack has no touch: a request that loads the session writes
			// it back, which sets the TTL again.
			p.lowerTTL(t, sess, lowered)
			app.step(&read, "read")
			wantOK("touch", read)
			p.wantSessionValue(t, sess, "user_id")
			p.wantTTL(t, sess, defaultTTL)

			var slow rackResponse
			app.step(nil, "slow_start") // has read the session, waits
			var logout rackResponse
			app.step(&logout, "logout")
			wantOK("logout", logout)
			p.wantTombstone(t, sess)
			if logout.Cookie == nil || *logout.Cookie == cookie {
				t.Fatalf("logout: cookie %v, want a new one", logout.Cookie)
			}
			fresh := key(*logout.Cookie)
			p.wantTTL(t, fresh, defaultTTL)

			app.step(&slow, "slow_finish")
			wantOK("late write", slow) // on_write = "ignore": Rack sees success
			if slow.Body != "42" {
				t.Errorf("late request read user_id %q before the logout, want 42", slow.Body)
			}
			p.wantTombstone(t, sess)
			p.wantWriteIgnored(t, sess, "set")
			app.step(&read, "read") // the browser's new cookie: an empty session
			wantOK("read after logout", read)
			if read.Body != "" {
				t.Errorf("read after logout: user_id %q, want none", read.Body)
			}
			// The DEL of the public id (redis-rack's fallback for ids
			// written before Rack 2.2) leaves a tombstone too.
			public := "rack:session:" + cookie
			p.wantTombstone(t, public)
			p.wantKeys(t, sess, public, fresh)
		})
	}
}

// TestFrameworkDjango: Django's cache sessions on django-redis, defaults
// (KEY_PREFIX "", VERSION 1, SESSION_COOKIE_AGE two weeks), behind -preset
// django-redis: SessionStore as SessionMiddleware uses it (py/django_flow.py).
// Keys :1:django.contrib.sessions.cache<session_key>; touch is
// set_expiry() then save(); logout is flush() (DEL). Django's save() GETs
// the key before it SETs, and raises UpdateError when it is gone: a late
// request that saves after the logout gets UpdateError from Django itself,
// as it would on Redis alone; the one whose GET came before the logout and
// whose SET after is answered OK (the proxy's on_write = "ignore") and
// writes nothing. The rest of the cache passes outside the prefix.
func TestFrameworkDjango(t *testing.T) {
	py := interpreter(t, "Django and django-redis (python3-django, python3-django-redis)",
		[]string{"/usr/bin/python3", "python3"}, "-c", "import django, django_redis, redis")
	bin := buildSessproxy(t)
	for _, up := range []*upstream{standaloneUp, clusterUp} {
		t.Run(up.name, func(t *testing.T) {
			p := startPresetProcess(t, bin, up, "django-redis")
			dj := startScript(t, p, py, "py/django_flow.py")
			const cookieAge = 14 * 24 * time.Hour // SESSION_COOKIE_AGE

			var login struct {
				Key string
				Age int
			}
			dj.step(&login, "login")
			if len(login.Key) != 32 || time.Duration(login.Age)*time.Second != cookieAge {
				t.Fatalf("login = %+v, want a 32-character key and two weeks", login)
			}
			sess := ":1:django.contrib.sessions.cache" + login.Key
			p.wantSessionValue(t, sess, "user_id")
			p.wantTTL(t, sess, cookieAge)
			p.wantKeys(t, sess)

			var user *int
			dj.step(&user, "read", login.Key)
			if user == nil || *user != 42 {
				t.Errorf("read: user_id %v, want 42", user)
			}

			var age int
			dj.step(&age, "touch", login.Key, 3600)
			if age != 3600 {
				t.Errorf("set_expiry(3600): get_expiry_age() = %d", age)
			}
			p.wantSessionValue(t, sess, "user_id", "_session_expiry")
			p.wantTTL(t, sess, time.Hour)

			dj.step(nil, "late_start", login.Key) // two requests have loaded it
			var after *string
			dj.step(&after, "logout", login.Key)
			if after != nil {
				t.Errorf("flush(): session_key %q, want None", *after)
			}
			p.wantTombstone(t, sess)

			var late struct {
				Saved  bool
				Raised string
				After  string
			}
			dj.step(&late, "late_finish")
			if !late.Saved || late.Raised != "" {
				t.Errorf("save() whose GET came before the logout: %+v, want saved, nothing raised", late)
			}
			if late.After != "UpdateError" {
				t.Errorf("save() after the logout: %q, want Django's own UpdateError (its GET finds no session)", late.After)
			}
			p.wantTombstone(t, sess)
			p.wantWriteIgnored(t, sess, "set")

			// The rest of the cache: outside the prefix, passed as it is.
			var got int
			dj.step(&got, "other_set")
			if got != 1 {
				t.Errorf("cache.get(\"other\") = %d, want 1", got)
			}
			p.wantStored(t, ":1:other", "1")
			var deleted bool
			dj.step(&deleted, "other_delete")
			if !deleted {
				t.Errorf("cache.delete(\"other\") = false, want true")
			}
			p.wantMissing(t, ":1:other")
			p.wantKeys(t, sess)
		})
	}
}

// flaskResponse is one Flask request as py/flask_flow.py reports it.
type flaskResponse struct {
	Status    int
	Body      string
	SetCookie *string `json:"set_cookie"`
	Raised    string
}

// TestFrameworkFlask: Flask-Session with SESSION_TYPE = "redis" and its
// defaults (key prefix session:, pickle, PERMANENT_SESSION_LIFETIME 31
// days) behind -preset flask-session, driven with app.test_client(). It
// SETEXes the session at the end of every request with a non-empty
// session, which is its touch; logout is session.clear(), after which it
// DELs the key.
func TestFrameworkFlask(t *testing.T) {
	py := interpreter(t, "Flask and Flask-Session (python3-flask, python3-flask-session)",
		[]string{"/usr/bin/python3", "python3"}, "-c", "import flask, flask_session, redis")
	bin := buildSessproxy(t)
	for _, up := range []*upstream{standaloneUp, clusterUp} {
		t.Run(up.name, func(t *testing.T) {
			p := startPresetProcess(t, bin, up, "flask-session")
			app := startScript(t, p, py, "py/flask_flow.py")
			const lifetime = 31 * 24 * time.Hour // PERMANENT_SESSION_LIFETIME
			wantOK := func(step string, r flaskResponse) {
				t.Helper()
				if r.Raised != "" || r.Status != 200 {
					t.Fatalf("%s: %+v, want 200 with nothing raised", step, r)
				}
			}

			var login flaskResponse
			app.step(&login, "login")
			wantOK("login", login)
			sid := login.Body
			sess := "session:" + sid
			p.wantSessionValue(t, sess, "user_id")
			p.wantTTL(t, sess, lifetime)
			p.wantKeys(t, sess)

			var read flaskResponse
			app.step(&read, "read")
			wantOK("read", read)
			if read.Body != "42" {
				t.Errorf("read: user_id %q, want 42", read.Body)
			}
			p.lowerTTL(t, sess, lowered)
			app.step(&read, "read") // every request writes the session back
			wantOK("touch", read)
			p.wantSessionValue(t, sess, "user_id")
			p.wantTTL(t, sess, lifetime)

			app.step(nil, "slow_start", sid) // has loaded the session, waits
			var logout flaskResponse
			app.step(&logout, "logout")
			wantOK("logout", logout)
			if logout.SetCookie == nil || !strings.HasPrefix(*logout.SetCookie, "session=;") {
				t.Errorf("logout: Set-Cookie %v, want the cookie deleted", logout.SetCookie)
			}
			p.wantTombstone(t, sess)

			var slow flaskResponse
			app.step(&slow, "slow_finish")
			wantOK("late write", slow) // on_write = "ignore": Flask sees success
			if slow.Body != "42" {
				t.Errorf("late request read user_id %q before the logout, want 42", slow.Body)
			}
			p.wantTombstone(t, sess)
			p.wantWriteIgnored(t, sess, "setex")
			p.wantKeys(t, sess)
		})
	}
}

// TestFrameworkGorilla: gorilla/sessions on boj/redistore with its
// defaults (key prefix session_, gob, MaxAge 30 days) behind -preset
// gorilla-redistore, through HTTP requests carrying its cookie. Save
// SETEXes the session, and is its touch; logout is MaxAge = -1 then Save,
// which DELs the key; the late write is a session got before the logout,
// saved after it.
func TestFrameworkGorilla(t *testing.T) {
	bin := buildSessproxy(t)
	for _, up := range []*upstream{standaloneUp, clusterUp} {
		t.Run(up.name, func(t *testing.T) {
			p := startPresetProcess(t, bin, up, "gorilla-redistore")
			store, err := redistore.NewRediStore(10, "tcp", p.addr, "", "", []byte("frameworks-test-hash-key"))
			if err != nil {
				t.Fatalf("NewRediStore through the proxy: %v", err)
			}
			t.Cleanup(func() { store.Close() })
			const name, maxAge = "session", 30 * 24 * time.Hour

			var cookies []*http.Cookie
			request := func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				for _, c := range cookies {
					r.AddCookie(c)
				}
				return r
			}
			get := func(r *http.Request) *sessions.Session {
				t.Helper()
				s, err := store.Get(r, name)
				if err != nil {
					t.Fatalf("store.Get: %v", err)
				}
				return s
			}
			save := func(r *http.Request, s *sessions.Session) *http.Response {
				t.Helper()
				w := httptest.NewRecorder()
				if err := s.Save(r, w); err != nil {
					t.Fatalf("Save: %v", err)
				}
				return w.Result()
			}
			wantValues := func(key string, want map[interface{}]interface{}) {
				t.Helper()
				v, ok := p.stored(t, key)
				if !ok {
					t.Errorf("upstream: %s missing, want a session", key)
					return
				}
				got := sessions.NewSession(store, name)
				if err := (redistore.GobSerializer{}).Deserialize([]byte(v), got); err != nil {
					t.Errorf("upstream: %s = %q: %v", key, clip(v), err)
				} else if !maps.Equal(got.Values, want) {
					t.Errorf("upstream: %s holds %v, want %v", key, got.Values, want)
				}
			}

			r := request()
			s := get(r)
			s.Values["user_id"] = 42
			cookies = save(r, s).Cookies()
			sess := "session_" + s.ID
			wantValues(sess, map[interface{}]interface{}{"user_id": 42})
			p.wantTTL(t, sess, maxAge)
			p.wantKeys(t, sess)

			s = get(request())
			if s.IsNew || s.Values["user_id"] != 42 {
				t.Errorf("read: IsNew %v, values %v, want user_id 42", s.IsNew, s.Values)
			}
			p.lowerTTL(t, sess, lowered)
			r = request()
			s = get(r)
			s.Values["visits"] = 2
			save(r, s)
			wantValues(sess, map[interface{}]interface{}{"user_id": 42, "visits": 2})
			p.wantTTL(t, sess, maxAge)

			lateReq := request()
			late := get(lateReq) // a slow request has read the session

			r = request()
			s = get(r)
			s.Options.MaxAge = -1
			res := save(r, s)
			if c := res.Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
				t.Errorf("logout: cookies %v, want %s expired", c, name)
			}
			p.wantTombstone(t, sess)

			late.Values["cart"] = 3
			save(lateReq, late) // on_write = "ignore": no error
			p.wantTombstone(t, sess)
			p.wantWriteIgnored(t, sess, "setex")
			if s = get(request()); !s.IsNew || len(s.Values) != 0 {
				t.Errorf("the old cookie after logout: IsNew %v, values %v, want a new empty session", s.IsNew, s.Values)
			}
			p.wantKeys(t, sess)
		})
	}
}
