package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store/codec"
)

// cookieISO is an express-session payload whose cookie.expires is d from
// now, as express-session writes it (Date.toISOString).
func cookieISO(d time.Duration) string {
	exp := time.Now().Add(d).UTC().Format("2006-01-02T15:04:05.000Z07:00")
	return fmt.Sprintf(`{"cookie":{"originalMaxAge":%d,"expires":%q,"httpOnly":true,"path":"/"},"user":"u"}`, d.Milliseconds(), exp)
}

// cookieMS is a payload whose cookie.expires is epoch milliseconds d from now.
func cookieMS(d time.Duration) string {
	return fmt.Sprintf(`{"cookie":{"expires":%d},"user":"u"}`, time.Now().Add(d).UnixMilli())
}

// jsonOfSize is a JSON object of exactly n bytes (n >= 8).
func jsonOfSize(n int) string {
	return `{"d":"` + strings.Repeat("x", n-8) + `"}`
}

// wantIntIn runs a command and checks its integer reply is in [lo, hi].
func wantIntIn(t *testing.T, c doer, lo, hi int64, args ...interface{}) {
	t.Helper()
	n, err := c.Do(bg, args...).Int64()
	if err != nil || n < lo || n > hi {
		t.Errorf("%s = %d, %v; want an integer in [%d, %d]", show(args), n, err, lo, hi)
	}
}

func testSessDefaults(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	payload := `{"cookie":{"originalMaxAge":null,"httpOnly":true},"user":"alice"}`

	wantReply(t, c, "OK", "SESS.SET", "abc", payload)
	wantReply(t, c, payload, "SESS.GET", "abc")
	p.wantStored(t, "sess:abc", payload) // the JSON itself, byte for byte
	p.wantTTL(t, "sess:abc", defaultTTL)
	wantIntIn(t, c, 86400-10, 86400, "SESS.TTL", "abc")
	wantReply(t, c, 1, "SESS.EXISTS", "abc")
	wantReply(t, c, 2, "SESS.EXISTS", "abc", "nope", "abc") // a repeated id counts twice
	wantReply(t, c, nil, "SESS.GET", "nope")
	wantReply(t, c, -2, "SESS.TTL", "nope")
	wantReply(t, c, 0, "SESS.EXISTS", "nope")

	// Overwrite; command names are case-insensitive.
	wantReply(t, c, "OK", "sess.set", "abc", `{"n":2}`)
	wantReply(t, c, `{"n":2}`, "Sess.Get", "abc")
	p.wantTTL(t, "sess:abc", defaultTTL)

	wantErr(t, c, "ERR wrong number of arguments for 'sess.set' command", "SESS.SET", "abc")
	wantErr(t, c, "ERR wrong number of arguments for 'sess.get' command", "SESS.GET", "abc", "def")
	wantErr(t, c, "ERR wrong number of arguments for 'sess.ttl' command", "SESS.TTL")
}

func testSessExplicitTTL(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)

	wantReply(t, c, "OK", "SESS.SET", "a", `{}`, "TTL", "120")
	p.wantTTL(t, "sess:a", 120*time.Second)
	wantIntIn(t, c, 110, 120, "SESS.TTL", "a")
	wantReply(t, c, "OK", "SESS.SET", "b", `{}`, "ttl", "300")
	p.wantTTL(t, "sess:b", 300*time.Second)
	// The explicit TTL comes before cookie.expires, even an expired one.
	wantReply(t, c, "OK", "SESS.SET", "c", cookieISO(2*time.Hour), "TTL", "60")
	p.wantTTL(t, "sess:c", 60*time.Second)
	wantReply(t, c, "OK", "SESS.SET", "d", cookieISO(-time.Hour), "TTL", "60")
	p.wantTTL(t, "sess:d", 60*time.Second)

	tests := []struct {
		args []interface{}
		msg  string
	}{
		{[]interface{}{"TTL", "0"}, "ERR invalid TTL: must be a positive number of seconds"},
		{[]interface{}{"TTL", "-5"}, "ERR invalid TTL: must be a positive number of seconds"},
		{[]interface{}{"TTL", "abc"}, "ERR invalid TTL: must be a positive number of seconds"},
		{[]interface{}{"TTL"}, "ERR syntax error"},
		{[]interface{}{"EX", "10"}, "ERR syntax error"},
		{[]interface{}{"TTL", "10", "extra"}, "ERR syntax error"},
	}
	for _, tt := range tests {
		wantErr(t, c, tt.msg, append([]interface{}{"SESS.SET", "bad", `{}`}, tt.args...)...)
	}
	p.wantMissing(t, "sess:bad")
}

func testSessClampMinMax(t *testing.T, up *upstream) {
	const min, max = 10 * time.Second, time.Hour
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) {
		o.Policy.Min, o.Policy.Max = min, max // default (24h) is above max
	})
	c := p.client(t)

	tests := []struct {
		key  string
		args []interface{}
		want time.Duration
	}{
		{"sess:short", []interface{}{"SESS.SET", "short", `{}`, "TTL", "2"}, min},
		{"sess:long", []interface{}{"SESS.SET", "long", `{}`, "TTL", "7200"}, max},
		{"sess:default", []interface{}{"SESS.SET", "default", `{}`}, max},
		{"sess:cookie-far", []interface{}{"SESS.SET", "cookie-far", cookieISO(5 * time.Hour)}, max},
		{"sess:cookie-near", []interface{}{"SESS.SET", "cookie-near", cookieISO(3 * time.Second)}, min},
		{"sess:set-ex", []interface{}{"SET", "sess:set-ex", `{}`, "EX", "1"}, min},
		{"sess:set-px", []interface{}{"SET", "sess:set-px", `{}`, "PX", "1"}, min},
		{"sess:setex", []interface{}{"SETEX", "sess:setex", "99999", `{}`}, max},
		{"sess:psetex", []interface{}{"PSETEX", "sess:psetex", "5", `{}`}, min},
	}
	for _, tt := range tests {
		wantReply(t, c, "OK", tt.args...)
		p.wantTTL(t, tt.key, tt.want)
	}

	wantReply(t, c, "OK", "SET", "sess:exp", `{}`)
	wantReply(t, c, 1, "EXPIRE", "sess:exp", "99999")
	p.wantTTL(t, "sess:exp", max)
	wantReply(t, c, 1, "PEXPIRE", "sess:exp", "3")
	p.wantTTL(t, "sess:exp", min)
}

func testSessCookieExpires(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)

	tests := []struct {
		name    string
		payload string
		want    time.Duration // 0: expired, the key is deleted
	}{
		{"iso", cookieISO(2 * time.Hour), 2 * time.Hour},
		{"epoch-ms", cookieMS(3 * time.Hour), 3 * time.Hour},
		{"beyond-max", cookieISO(60 * 24 * time.Hour), maxTTL},
		{"not-a-date", `{"cookie":{"expires":"soon"}}`, defaultTTL},
		{"null", `{"cookie":{"expires":null}}`, defaultTTL},
		{"iso-past", cookieISO(-time.Minute), 0},
		{"epoch-ms-past", cookieMS(-time.Minute), 0},
	}
	for _, tt := range tests {
		key := "sess:" + tt.name
		// A live session first: an expired write must delete it.
		wantReply(t, c, "OK", "SESS.SET", tt.name, `{"old":true}`)
		wantReply(t, c, "OK", "SESS.SET", tt.name, tt.payload)
		if tt.want == 0 {
			// connect-redis semantics: success, the session is gone, no
			// tombstone; min never revives it.
			p.wantMissing(t, key)
			wantReply(t, c, nil, "SESS.GET", tt.name)
			continue
		}
		p.wantStored(t, key, tt.payload)
		p.wantTTL(t, key, tt.want)
	}

	// Plain SET and MSET follow cookie.expires too.
	wantReply(t, c, "OK", "SET", "sess:plain", cookieISO(90*time.Minute))
	p.wantTTL(t, "sess:plain", 90*time.Minute)
	wantReply(t, c, "OK", "SET", "sess:plain", cookieMS(-time.Second))
	p.wantMissing(t, "sess:plain")
}

func testSessTTLRules(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) {
		o.Policy.Rules = []ttl.Rule{
			{Field: "user.role", Equals: "admin", TTL: 30 * time.Minute},
			{Field: "user.role", Equals: "admin", TTL: time.Hour}, // never reached
			{Field: "plan", Equals: "free", TTL: 10 * time.Minute},
		}
	})
	c := p.client(t)

	tests := []struct {
		id, payload string
		want        time.Duration
	}{
		// A rule comes before cookie.expires.
		{"admin", `{"user":{"role":"admin"},"cookie":{"expires":"` +
			time.Now().Add(2*time.Hour).UTC().Format(time.RFC3339) + `"}}`, 30 * time.Minute},
		{"first-match", `{"plan":"free","user":{"role":"admin"}}`, 30 * time.Minute},
		{"free", `{"plan":"free"}`, 10 * time.Minute},
		{"no-match", `{"user":{"role":"user"},"plan":"pro"}`, defaultTTL},
		{"cookie", cookieISO(2 * time.Hour), 2 * time.Hour},
	}
	for _, tt := range tests {
		wantReply(t, c, "OK", "SESS.SET", tt.id, tt.payload)
		p.wantTTL(t, "sess:"+tt.id, tt.want)
	}
	// Rules apply to plain writes; an explicit TTL still comes first.
	wantReply(t, c, "OK", "SET", "sess:plain-admin", `{"user":{"role":"admin"}}`)
	p.wantTTL(t, "sess:plain-admin", 30*time.Minute)
	wantReply(t, c, "OK", "SESS.SET", "explicit", `{"user":{"role":"admin"}}`, "TTL", "60")
	p.wantTTL(t, "sess:explicit", time.Minute)
}

func testSessTouch(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)

	// Without a payload the TTL is recomputed from the stored session.
	wantReply(t, c, "OK", "SESS.SET", "plain", `{"n":1}`, "TTL", "100")
	p.wantTTL(t, "sess:plain", 100*time.Second)
	wantReply(t, c, 1, "SESS.TOUCH", "plain")
	p.wantTTL(t, "sess:plain", defaultTTL)
	p.wantStored(t, "sess:plain", `{"n":1}`)

	stored := cookieISO(2 * time.Hour)
	wantReply(t, c, "OK", "SESS.SET", "cookie", stored, "TTL", "100")
	wantReply(t, c, 1, "SESS.TOUCH", "cookie")
	p.wantTTL(t, "sess:cookie", 2*time.Hour)

	// With a payload the TTL comes from it; the stored value is unchanged.
	wantReply(t, c, 1, "SESS.TOUCH", "cookie", cookieMS(3*time.Hour))
	p.wantTTL(t, "sess:cookie", 3*time.Hour)
	p.wantStored(t, "sess:cookie", stored)

	// A payload whose cookie has expired ends the session.
	wantReply(t, c, 1, "SESS.TOUCH", "cookie", cookieISO(-time.Minute))
	p.wantMissing(t, "sess:cookie")

	wantReply(t, c, 0, "SESS.TOUCH", "missing")
	wantReply(t, c, 0, "SESS.TOUCH", "missing", `{"n":1}`)
	p.wantMissing(t, "sess:missing")

	wantErr(t, c, "ERR invalid session payload: not valid JSON", "SESS.TOUCH", "plain", "nope")
	wantErr(t, c, "ERR syntax error", "SESS.TOUCH", "plain", `{}`, "extra")
	wantErr(t, c, "ERR wrong number of arguments for 'sess.touch' command", "SESS.TOUCH")
}

func testSessTouchDisabled(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.Policy.Touch = false })
	c := p.client(t)

	wantReply(t, c, "OK", "SESS.SET", "d", `{"n":1}`, "TTL", "100")
	wantReply(t, c, 1, "SESS.TOUCH", "d")
	wantReply(t, c, 1, "SESS.TOUCH", "d", cookieISO(3*time.Hour))
	p.wantTTL(t, "sess:d", 100*time.Second) // unchanged: disableTouch
	wantReply(t, c, 0, "SESS.TOUCH", "missing")
	p.wantMissing(t, "sess:missing")
}

func testSessInvalidPayload(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)

	tests := []struct {
		payload, reason string
	}{
		{"not json", "not valid JSON"},
		{"", "not valid JSON"},
		{`{"a":1`, "not valid JSON"},
		{`{"a":1}}`, "not valid JSON"},
		{`[1,2]`, "not a JSON object"},
		{`"str"`, "not a JSON object"},
		{`42`, "not a JSON object"},
		{`null`, "not a JSON object"},
	}
	for _, tt := range tests {
		msg := "ERR invalid session payload: " + tt.reason
		wantErr(t, c, msg, "SESS.SET", "bad", tt.payload)
		wantErr(t, c, msg, "SESS.SET", "bad", tt.payload, "TTL", "60")
		wantErr(t, c, msg, "SET", "sess:bad", tt.payload)
		wantErr(t, c, msg, "SETEX", "sess:bad", "60", tt.payload)
		wantErr(t, c, msg, "SETNX", "sess:bad", tt.payload)
		wantErr(t, c, msg, "GETSET", "sess:bad", tt.payload)
		wantErr(t, c, msg, "MSET", "sess:bad", tt.payload)
	}
	p.wantMissing(t, "sess:bad")

	// A refused overwrite leaves the old session alone.
	wantReply(t, c, "OK", "SESS.SET", "good", `{"ok":true}`)
	wantErr(t, c, "ERR invalid session payload: not a JSON object", "SESS.SET", "good", `[]`)
	p.wantStored(t, "sess:good", `{"ok":true}`)
}

func testSessMaxPayload(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) {
		o.Codec = newCodec(t, codec.Options{MaxPayloadBytes: 1024})
	})
	c := p.client(t)

	fits := jsonOfSize(1024)
	wantReply(t, c, "OK", "SESS.SET", "fits", fits)
	p.wantStored(t, "sess:fits", fits)

	big := jsonOfSize(1025)
	msg := "ERR invalid session payload: payload too large: 1025 bytes, max_payload_bytes is 1024"
	wantErr(t, c, msg, "SESS.SET", "big", big)
	wantErr(t, c, msg, "SET", "sess:big", big)
	wantErr(t, c, msg, "MSET", "sess:big", big)
	p.wantMissing(t, "sess:big")
}

func testSessInvalidIDs(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)

	const (
		empty = "ERR invalid session id: empty"
		space = "ERR invalid session id: contains whitespace or control characters"
		long  = "ERR invalid session id: longer than 256 bytes"
	)
	tests := []struct {
		id, msg string
	}{
		{"", empty},
		{"a b", space},
		{" a", space},
		{"a\tb", space},
		{"a\nb", space},
		{"a\x00b", space},
		{"a\x7fb", space},
		{strings.Repeat("x", 257), long},
	}
	for _, tt := range tests {
		wantErr(t, c, tt.msg, "SESS.SET", tt.id, `{}`)
		wantErr(t, c, tt.msg, "SESS.GET", tt.id)
		wantErr(t, c, tt.msg, "SESS.TOUCH", tt.id)
		wantErr(t, c, tt.msg, "SESS.TTL", tt.id)
		wantErr(t, c, tt.msg, "SESS.EXISTS", "ok", tt.id)
		wantErr(t, c, tt.msg, "SET", "sess:"+tt.id, `{}`)
		wantErr(t, c, tt.msg, "GET", "sess:"+tt.id)
	}

	// 256 bytes is the longest id; an id may hold any other printable byte.
	max := strings.Repeat("y", 256)
	wantReply(t, c, "OK", "SESS.SET", max, `{}`)
	p.wantStored(t, "sess:"+max, `{}`)
	wantReply(t, c, "OK", "SESS.SET", "é:{}/=+", `{}`)
	p.wantStored(t, "sess:é:{}/=+", `{}`)

	// One bad id refuses the whole command: the good one is not destroyed.
	wantReply(t, c, "OK", "SESS.SET", "ok", `{}`)
	wantErr(t, c, space, "SESS.DESTROY", "ok", "a b")
	wantErr(t, c, space, "DEL", "sess:ok", "sess:a b")
	p.wantStored(t, "sess:ok", `{}`)

	if keys := p.allKeys(t); len(keys) != 3 {
		t.Errorf("upstream keys = %q; want only the 3 valid sessions", keys)
	}
}

// testSessRequireExpires: under ttl.require_expires a session without
// cookie.expires and without a TTL of its own is refused, through SESS.SET,
// plain SET, MSET and a script alike, and Redis holds nothing for it; with
// an expiry it is stored with it.
func testSessRequireExpires(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.Policy.RequireExpires = true })
	c := p.client(t)
	const refused = "ERR session refused: its payload has no cookie.expires and the command gives no TTL (ttl.require_expires = true)"
	wantErr(t, c, refused, "SESS.SET", "noexp", `{"cookie":{"expires":null},"user":"u"}`)
	wantErr(t, c, refused, "SET", "sess:noexp", `{"user":"u"}`)
	wantErr(t, c, refused, "MSET", "sess:{re}ok", cookieISO(time.Hour), "sess:{re}noexp", `{"user":"u"}`)
	wantErrContains(t, c, refused, "EVAL", "return redis.call('set', KEYS[1], ARGV[1])", 1, "sess:noexp", `{"user":"u"}`)
	for _, k := range []string{"sess:noexp", "sess:{re}ok", "sess:{re}noexp"} {
		p.wantMissing(t, k)
	}
	wantReply(t, c, "OK", "SESS.SET", "exp", cookieISO(2*time.Hour))
	p.wantTTL(t, "sess:exp", 2*time.Hour)
	wantReply(t, c, "OK", "SET", "sess:ttl", `{"user":"u"}`, "EX", 120)
	p.wantTTL(t, "sess:ttl", 120*time.Second)
}
