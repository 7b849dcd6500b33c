package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store/codec"
)

// lowerTTL sets key's TTL directly in the upstream, behind the proxy.
func (p *proxyHandle) lowerTTL(t *testing.T, key string, d time.Duration) {
	t.Helper()
	if ok, err := p.up.direct.PExpire(bg, key, d).Result(); err != nil || !ok {
		t.Fatalf("direct PEXPIRE %s %v = %v, %v", key, d, ok, err)
	}
	if got := p.pttl(t, key); got > d || got <= 0 {
		t.Fatalf("upstream: PTTL %s = %v after PEXPIRE %v", key, got, d)
	}
}

func testIdleTimeout(t *testing.T, up *upstream) {
	const idle, lowered = 30 * time.Minute, time.Minute
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.Policy.Idle = idle })
	c := p.client(t)
	keys := up.spreadKeys(t, "sess:idle-", 3) // MGET crosses slots
	sid := keys[0][len("sess:"):]

	// Writes set idle, whatever TTL they ask for.
	wantReply(t, c, "OK", "SESS.SET", sid, `{"f":1}`)
	p.wantTTL(t, keys[0], idle)
	wantReply(t, c, "OK", "SET", keys[1], `{"f":2}`, "EX", "86400")
	p.wantTTL(t, keys[1], idle)

	// Every read of a live session slides it back to idle.
	tests := []struct {
		args []interface{}
		want interface{}
		slid []string // the keys the read slides
	}{
		{[]interface{}{"SESS.GET", sid}, `{"f":1}`, keys[:1]},
		{[]interface{}{"GET", keys[0]}, `{"f":1}`, keys[:1]},
		{[]interface{}{"MGET", keys[0], keys[1], keys[2]}, []interface{}{`{"f":1}`, `{"f":2}`, nil}, keys[:2]},
		{[]interface{}{"SESS.FGET", sid, "f"}, "1", keys[:1]},
		{[]interface{}{"SESS.FMGET", sid, "f", "g"}, []interface{}{"1", nil}, keys[:1]},
		{[]interface{}{"GETEX", keys[0]}, `{"f":1}`, keys[:1]},
		// Writes too.
		{[]interface{}{"SESS.TOUCH", sid}, 1, keys[:1]},
		{[]interface{}{"SESS.FSET", sid, "g", "2"}, 1, keys[:1]},
		{[]interface{}{"SESS.FDEL", sid, "g"}, 1, keys[:1]},
	}
	for _, tt := range tests {
		for _, k := range keys[:2] {
			p.lowerTTL(t, k, lowered)
		}
		wantReply(t, c, tt.want, tt.args...)
		for _, k := range tt.slid {
			p.wantTTL(t, k, idle)
		}
		p.wantMissing(t, keys[2]) // a read of no session creates none
	}

	// The sliding reads (read raw against the client's reply room) go
	// again after Redis lost the script, answered and slid as before.
	scriptFlush(t, up)
	for _, k := range keys[:2] {
		p.lowerTTL(t, k, lowered)
	}
	pipe := c.Pipeline()
	get, sget := pipe.Do(bg, "GET", keys[0]), pipe.Do(bg, "SESS.GET", sid)
	mget := pipe.Do(bg, "MGET", keys[0], keys[1], keys[2])
	_, _ = pipe.Exec(bg)
	for _, r := range []struct {
		cmd  *redis.Cmd
		want interface{}
	}{{get, `{"f":1}`}, {sget, `{"f":1}`}, {mget, []interface{}{`{"f":1}`, `{"f":2}`, nil}}} {
		if v, err := r.cmd.Result(); err != nil || fmt.Sprint(v) != fmt.Sprint(r.want) {
			t.Errorf("%v after SCRIPT FLUSH = %v, %v; want %v", r.cmd.Args(), v, err, r.want)
		}
	}
	for _, k := range keys[:2] {
		p.wantTTL(t, k, idle)
	}

	// Bulk reads do not slide (docs/commands.md).
	p.lowerTTL(t, keys[0], lowered)
	mustDo(t, c, "SESS.ALL")
	if d := p.pttl(t, keys[0]); d > lowered {
		t.Errorf("upstream: PTTL %s = %v after SESS.ALL, want it left at most %v", keys[0], d, lowered)
	}

	// A read of a destroyed session neither revives nor slides the
	// tombstone.
	wantReply(t, c, 1, "SESS.DESTROY", sid)
	for _, args := range [][]interface{}{
		{"SESS.GET", sid}, {"GET", keys[0]}, {"SESS.FGET", sid, "f"},
	} {
		wantReply(t, c, nil, args...)
	}
	wantReply(t, c, []interface{}{nil, `{"f":2}`}, "MGET", keys[0], keys[1])
	wantReply(t, c, []interface{}{nil}, "SESS.FMGET", sid, "f")
	wantReply(t, c, nil, "GETEX", keys[0])
	p.wantTombstone(t, keys[0])
}

// storedCreated is the creation time recorded in a stored value's header
// (docs/codecs.md: "\x00SP1", flags with bit 5, 13 digits at bytes 5..17).
func storedCreated(t *testing.T, v string) time.Time {
	t.Helper()
	if !strings.HasPrefix(v, "\x00SP1") || len(v) < 18 || v[4]&0x20 == 0 {
		t.Fatalf("stored value %q has no header with a creation time", clip(v))
	}
	ms, err := strconv.ParseInt(v[5:18], 10, 64)
	if err != nil {
		t.Fatalf("stored creation digits %q: %v", v[5:18], err)
	}
	return time.UnixMilli(ms)
}

func testAbsoluteTimeout(t *testing.T, up *upstream) {
	const absolute = 3 * time.Second
	cdc := newCodec(t, codec.Options{Envelope: true, MaxPayloadBytes: 1 << 20})
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) {
		o.Policy.Absolute = absolute // default stays 24h
		o.Codec = cdc
	})
	c := p.client(t)
	const key = "sess:abs"

	before := time.Now().Truncate(time.Millisecond)
	wantReply(t, c, "OK", "SESS.SET", "abs", `{"n":0}`)
	created := storedCreated(t, mustStored(t, p, key))
	if created.Before(before) || created.After(time.Now()) {
		t.Fatalf("stored creation time %v, want the time of the first write (after %v)", created, before)
	}
	end := created.Add(absolute)

	// Keep rewriting, touching and extending it: it still never lives past
	// end, and the creation time in the stored header never changes.
	ops := []struct {
		args func(i int) []interface{}
		want interface{}
	}{
		{func(i int) []interface{} { return []interface{}{"SESS.SET", "abs", fmt.Sprintf(`{"n":%d}`, i)} }, "OK"},
		{func(i int) []interface{} { return []interface{}{"SET", key, fmt.Sprintf(`{"n":%d}`, i), "EX", "86400"} }, "OK"},
		{func(int) []interface{} { return []interface{}{"SESS.TOUCH", "abs"} }, 1},
		{func(int) []interface{} { return []interface{}{"EXPIRE", key, "86400"} }, 1},
		{func(i int) []interface{} { return []interface{}{"SESS.FSET", "abs", "n", strconv.Itoa(i)} }, 1},
		{func(i int) []interface{} { return []interface{}{"SETEX", key, "86400", fmt.Sprintf(`{"n":%d}`, i)} }, "OK"},
		{func(i int) []interface{} { return []interface{}{"SESS.TOUCH", "abs", fmt.Sprintf(`{"n":%d}`, i)} }, 1},
		{func(int) []interface{} { return []interface{}{"PEXPIRE", key, "86400000"} }, 1},
	}
	tick := time.NewTicker(200 * time.Millisecond) // the pace of the touches
	defer tick.Stop()
	n := 0
	for i := 0; time.Now().Before(end.Add(-300 * time.Millisecond)); i++ {
		op := ops[i%len(ops)]
		wantReply(t, c, op.want, op.args(i)...)
		at := time.Now()
		d := p.pttl(t, key)
		if d <= 0 || at.Add(d).After(end.Add(5*time.Millisecond)) {
			t.Errorf("after %s: PTTL %v expires at %v, past creation + absolute (%v)",
				show(op.args(i)), d, at.Add(d).Format("15:04:05.000"), end.Format("15:04:05.000"))
		}
		if got := storedCreated(t, mustStored(t, p, key)); !got.Equal(created) {
			t.Errorf("after %s: stored creation time %v, want %v unchanged", show(op.args(i)), got, created)
		}
		n++
		<-tick.C
	}
	if n < len(ops) {
		t.Errorf("only %d writes within the lifetime, want every kind (%d)", n, len(ops))
	}

	// Gone at creation + absolute.
	p.waitGone(t, key, time.Until(end)+time.Second)
	if now := time.Now(); now.Before(end.Add(-5 * time.Millisecond)) {
		t.Errorf("%s gone at %v, before its lifetime ended at %v", key, now, end)
	}
	// Written again, it is a new session with a new lifetime.
	wantReply(t, c, "OK", "SESS.SET", "abs", `{"n":"again"}`)
	if again := storedCreated(t, mustStored(t, p, key)); again.Before(end) {
		t.Errorf("rewritten session created %v, want a new creation time after %v", again, end)
	}
	if d := p.pttl(t, key); d <= 0 || d > absolute {
		t.Errorf("upstream: PTTL %s = %v, want at most %v", key, d, absolute)
	}

	// A session already past its lifetime (kept by a proxy that had a
	// longer ttl.absolute) is deleted by any write, which replies success.
	overAge, err := cdc.Encode([]byte(`{"old":true}`), codec.Meta{Created: time.Now().Add(-10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	writes := []struct {
		args []interface{}
		want interface{}
	}{
		{[]interface{}{"SESS.SET", "old", `{"n":1}`}, "OK"},
		{[]interface{}{"SESS.SET", "old", `{"n":1}`, "TTL", "60"}, "OK"},
		{[]interface{}{"SET", "sess:old", `{"n":1}`}, "OK"},
		{[]interface{}{"SET", "sess:old", `{"n":1}`, "EX", "60"}, "OK"},
		{[]interface{}{"SETEX", "sess:old", "60", `{"n":1}`}, "OK"},
		{[]interface{}{"SESS.TOUCH", "old"}, 1},
		{[]interface{}{"EXPIRE", "sess:old", "60"}, 1},
		{[]interface{}{"SESS.FSET", "old", "n", "1"}, 1},
	}
	for _, tt := range writes {
		if err := up.direct.Set(bg, "sess:old", overAge, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		wantReply(t, c, tt.want, tt.args...)
		p.wantMissing(t, "sess:old")
	}

	// A session written before absolute was on (no header) starts its
	// clock at its next write.
	if err := up.direct.Set(bg, "sess:legacy", `{"n":0}`, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	before = time.Now().Truncate(time.Millisecond)
	wantReply(t, c, "OK", "SESS.SET", "legacy", `{"n":1}`)
	if got := storedCreated(t, mustStored(t, p, "sess:legacy")); got.Before(before) {
		t.Errorf("legacy session's creation time %v, want its first write through the proxy (after %v)", got, before)
	}
	if d := p.pttl(t, "sess:legacy"); d <= 0 || d > absolute {
		t.Errorf("upstream: PTTL sess:legacy = %v, want at most %v", d, absolute)
	}
}

// testAbsoluteEncrypted: the write script splices the stored creation time
// into a new encrypted, compressed value; the value still decrypts (the
// digits are outside what GCM authenticates) and reads return the JSON.
func testAbsoluteEncrypted(t *testing.T, up *upstream) {
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) {
		o.Policy.Absolute = time.Hour
		o.Codec = newCodec(t, codec.Options{Format: codec.FormatMsgpack, Compress: codec.CompressZstd, CompressMinBytes: -1,
			EncryptKeys: []string{testKey("k1", 1)}})
	})
	c := p.client(t)
	first, second := bigSession("first"), bigSession("second")
	wantReply(t, c, "OK", "SESS.SET", "enc", first)
	v := mustStored(t, p, "sess:enc")
	created := storedCreated(t, v)
	if want := byte(hdrMsgpack | hdrZstd | hdrEncrypted | 0x20); v[4] != want {
		t.Errorf("stored flags %#x, want %#x", v[4], want)
	}
	for time.Now().UnixMilli() <= created.UnixMilli()+1 {
		time.Sleep(time.Millisecond) // until the clock has moved on, so a new write has new digits
	}

	for _, args := range [][]interface{}{
		{"SET", "sess:enc", second, "EX", "86400"},
		{"SESS.SET", "enc", second},
	} {
		wantReply(t, c, "OK", args...)
		if got := storedCreated(t, mustStored(t, p, "sess:enc")); !got.Equal(created) {
			t.Errorf("after %s: stored creation time %v, want %v kept", show(args), got, created)
		}
		wantReply(t, c, second, "SESS.GET", "enc")
		wantReply(t, c, second, "GET", "sess:enc")
	}
	wantReply(t, c, 1, "SESS.FSET", "enc", "user", `"third"`)
	wantReply(t, c, bigSession("third"), "SESS.GET", "enc")
	if got := storedCreated(t, mustStored(t, p, "sess:enc")); !got.Equal(created) {
		t.Errorf("after SESS.FSET: stored creation time %v, want %v kept", got, created)
	}
	// Capped by what is left of the lifetime (give or take the rounding
	// to milliseconds), not the 24h default.
	p.wantTTL(t, "sess:enc", time.Hour-time.Since(created)+3*time.Millisecond)
}

// testAbsoluteClockSkew: a proxy whose clock is a minute behind Redis's.
// The creation time comes from the proxy's clock, what is left of the
// lifetime is measured by Redis's, so every write path, SESS.FSET's
// read-modify-write included, caps the TTL at the same moment.
func testAbsoluteClockSkew(t *testing.T, up *upstream) {
	const skew = time.Minute
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) {
		o.Policy.Absolute = time.Hour
		o.Policy.Now = func() time.Time { return time.Now().Add(-skew) }
		o.Codec = newCodec(t, codec.Options{Envelope: true})
	})
	c := p.client(t)
	for _, args := range [][]interface{}{
		{"SESS.SET", "skew", `{"n":1}`},
		{"SESS.FSET", "skew", "n", "2"},
		{"SET", "sess:skew", `{"n":3}`},
		{"SESS.FSET", "skew", "n", "4"},
		{"EXPIRE", "sess:skew", "86400"},
		{"SESS.FDEL", "skew", "n"},
	} {
		mustDo(t, c, args...)
		created := storedCreated(t, mustStored(t, p, "sess:skew"))
		at := time.Now()
		if d := p.pttl(t, "sess:skew"); at.Add(d).After(created.Add(time.Hour + 3*time.Millisecond)) {
			t.Errorf("after %s: PTTL %v ends at %v, past creation (%v) + absolute by Redis's clock",
				show(args), d, at.Add(d).Format("15:04:05.000"), created.Format("15:04:05.000"))
		}
	}
}
