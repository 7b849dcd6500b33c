package integration

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
)

const wrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"

// wantHash checks the upstream holds exactly fields at key, as a hash.
func (p *proxyHandle) wantHash(t *testing.T, key string, fields map[string]string) {
	t.Helper()
	got, err := p.up.direct.HGetAll(bg, key).Result()
	if err != nil {
		t.Fatalf("direct HGETALL %s: %v", key, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(fields) {
		t.Errorf("upstream: HGETALL %s = %v, want %v", key, got, fields)
	}
}

func testHashSessions(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	keys := up.spreadKeys(t, "sess:hash-", 3) // several slots and nodes in a cluster
	h, s, other := keys[0], keys[1], keys[2]
	sid := h[len("sess:"):]

	// The write that creates the hash gives it the policy TTL.
	wantReply(t, c, 2, "HSET", h, "a", "1", "b", "two")
	p.wantHash(t, h, map[string]string{"a": "1", "b": "two"})
	p.wantTTL(t, h, defaultTTL)

	steps := []struct {
		args []interface{}
		want interface{}
	}{
		{[]interface{}{"HSET", h, "a", "3"}, 0},
		{[]interface{}{"HSETNX", h, "a", "9"}, 0},
		{[]interface{}{"HSETNX", h, "c", "9"}, 1},
		{[]interface{}{"HMSET", h, "d", "4"}, "OK"},
		{[]interface{}{"HGET", h, "a"}, "3"},
		{[]interface{}{"HGET", h, "x"}, nil},
		{[]interface{}{"HMGET", h, "a", "x", "b"}, []interface{}{"3", nil, "two"}},
		{[]interface{}{"HEXISTS", h, "b"}, 1},
		{[]interface{}{"HLEN", h}, 4},
		{[]interface{}{"HSTRLEN", h, "b"}, 3},
		{[]interface{}{"HINCRBY", h, "a", "2"}, 5},
		{[]interface{}{"HINCRBYFLOAT", h, "a", "0.5"}, "5.5"},
		{[]interface{}{"HDEL", h, "c", "d", "x"}, 2},
		{[]interface{}{"HKEYS", h}, []interface{}{"a", "b"}},
		{[]interface{}{"HVALS", h}, []interface{}{"5.5", "two"}},
		{[]interface{}{"HGETALL", h}, []interface{}{"a", "5.5", "b", "two"}},
		{[]interface{}{"HSCAN", h, "0"}, []interface{}{"0", []interface{}{"a", "5.5", "b", "two"}}},
		{[]interface{}{"HSCAN", h, "0", "MATCH", "b*", "COUNT", "10"}, []interface{}{"0", []interface{}{"b", "two"}}},
		{[]interface{}{"TYPE", h}, "hash"},
		{[]interface{}{"EXISTS", h}, 1},
		{[]interface{}{"SESS.EXISTS", sid}, 1},
		{[]interface{}{"SESS.GET", sid}, `{"a":"5.5","b":"two"}`},
		// Reads of a missing hash answer as Redis does.
		{[]interface{}{"HGET", other, "a"}, nil},
		{[]interface{}{"HMGET", other, "a", "b"}, []interface{}{nil, nil}},
		{[]interface{}{"HGETALL", other}, []interface{}{}},
		{[]interface{}{"HLEN", other}, 0},
		{[]interface{}{"HSCAN", other, "0"}, []interface{}{"0", []interface{}{}}},
		{[]interface{}{"HDEL", other, "a"}, 0},
	}
	for _, st := range steps {
		wantReply(t, c, st.want, st.args...)
	}
	p.wantHash(t, h, map[string]string{"a": "5.5", "b": "two"})
	p.wantTTL(t, h, defaultTTL)
	p.wantMissing(t, other)
	wantErr(t, c, "ERR hash value is not an integer", "HINCRBY", h, "b", "1")

	// EXPIRE, TTL and PERSIST as for string sessions; SESS.TOUCH gives the
	// default back.
	wantReply(t, c, 1, "EXPIRE", h, "600")
	p.wantTTL(t, h, 10*time.Minute)
	wantReply(t, c, 1, "HSET", h, "e", "5")
	p.wantTTL(t, h, 10*time.Minute) // a write keeps the TTL a key has
	wantErrPrefix(t, c, "ERR PERSIST is not allowed", "PERSIST", h)
	wantReply(t, c, 1, "SESS.TOUCH", sid)
	p.wantTTL(t, h, defaultTTL)
	if got := mustDo(t, c, "SESS.TTL", sid).(int64); got < int64((defaultTTL-ttlSlack)/time.Second) {
		t.Errorf("SESS.TTL %s = %d, want about %v", sid, got, defaultTTL)
	}
	// A key that lost its TTL behind the proxy gets one back on the next write.
	p.seeded[h] = true
	if err := p.up.direct.Persist(bg, h).Err(); err != nil {
		t.Fatal(err)
	}
	wantReply(t, c, 1, "HDEL", h, "e")
	p.wantTTL(t, h, defaultTTL)
	delete(p.seeded, h)

	// Wrong types, both ways.
	wantReply(t, c, "OK", "SET", s, "{}")
	wantErr(t, c, wrongType, "HGET", s, "a")
	wantErr(t, c, wrongType, "HSET", s, "a", "1")
	wantErr(t, c, wrongType, "GET", h)
	wantErr(t, c, wrongType, "STRLEN", h)
	wantErr(t, c, wrongType, "GETEX", h)
	wantErr(t, c, wrongType, "GETEX", h, "EX", "60")
	wantErr(t, c, wrongType, "SET", h, "{}")
	wantErr(t, c, wrongType, "SET", h, "{}", "NX")
	wantErr(t, c, wrongType, "GETSET", h, "{}")
	wantErr(t, c, wrongType, "SESS.FSET", sid, "a", "1")
	wantErr(t, c, wrongType, "SESS.FGET", sid, "a")
	wantErr(t, c, wrongType, "SESS.FMGET", sid, "a")
	p.wantHash(t, h, map[string]string{"a": "5.5", "b": "two"})
	wantReply(t, c, []interface{}{nil, "{}"}, "MGET", h, s)
	p.wantStored(t, s, "{}")

	// Listings see the hash session; SESS.ALL renders it as JSON.
	wantReply(t, c, 2, "SESS.LENGTH")
	ids := mustDo(t, c, "SESS.IDS").([]interface{})
	if got := fmt.Sprint(sortedStrings(ids)); got != fmt.Sprint(sortedStrings([]interface{}{sid, s[len("sess:"):]})) {
		t.Errorf("SESS.IDS = %v", ids)
	}
	all := mustDo(t, c, "SESS.ALL").([]interface{})
	byID := map[string]string{}
	for i := 0; i+1 < len(all); i += 2 {
		byID[all[i].(string)] = all[i+1].(string)
	}
	if byID[sid] != `{"a":"5.5","b":"two"}` || byID[s[len("sess:"):]] != "{}" {
		t.Errorf("SESS.ALL = %q", all)
	}
	var scanned []interface{}
	for cursor := "0"; ; {
		page := mustDo(t, c, "SESS.SCAN", cursor).([]interface{})
		scanned = append(scanned, page[1].([]interface{})...)
		if cursor = page[0].(string); cursor == "0" {
			break
		}
	}
	if len(scanned) != 2 {
		t.Errorf("SESS.SCAN walked %v, want both sessions", scanned)
	}

	// DEL leaves a tombstone; a late write is refused, reads see nothing.
	wantReply(t, c, 1, "DEL", h)
	p.wantTombstone(t, h)
	for _, args := range [][]interface{}{
		{"HSET", h, "a", "1"}, {"HMSET", h, "a", "1"}, {"HSETNX", h, "a", "1"}, {"HDEL", h, "a"},
		{"HINCRBY", h, "a", "1"}, {"HINCRBYFLOAT", h, "a", "1"}, {"EXPIRE", h, "60"},
	} {
		wantErr(t, c, destroyedError(sid), args...)
	}
	p.wantTombstone(t, h)
	wantReply(t, c, nil, "HGET", h, "a")
	wantReply(t, c, nil, "SESS.GET", sid)
	wantReply(t, c, "none", "TYPE", h)

	// SESS.CLEAR destroys hash sessions too.
	wantReply(t, c, 2, "HSET", other, "x", "1", "y", "2")
	wantReply(t, c, 2, "SESS.CLEAR")
	p.wantTombstone(t, other)
	wantErr(t, c, destroyedError(other[len("sess:"):]), "HSET", other, "x", "1")
}

func sortedStrings(vs []interface{}) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprint(v)
	}
	sort.Strings(out)
	return out
}

func testHashMaxPayload(t *testing.T, up *upstream) {
	const max = 64
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.MaxHashBytes = max })
	c := p.client(t)
	const key = "sess:big"
	wantReply(t, c, 1, "HSET", key, "a", strings.Repeat("x", 40))
	refused := func(sid string) string {
		return "ERR hash session " + sid + " would exceed codec.max_payload_bytes (64 bytes of fields and values): nothing written"
	}
	wantErr(t, c, refused("big"), "HSET", key, "b", strings.Repeat("y", 30))
	wantErr(t, c, refused("big"), "HMSET", key, "a", strings.Repeat("z", 70))
	p.wantHash(t, key, map[string]string{"a": strings.Repeat("x", 40)})
	wantErr(t, c, refused("new"), "HSET", "sess:new", "a", strings.Repeat("x", 70))
	wantReply(t, c, 0, "EXISTS", "sess:new")
	p.wantMissing(t, "sess:new")

	// The bound on fields, through the proxy and in a script.
	p = startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.MaxHashBytes, o.MaxHashFields = max, 2 })
	c = p.client(t)
	const many = "ERR hash session many would exceed codec.max_hash_fields (2 fields): nothing written"
	wantReply(t, c, 2, "HSET", "sess:many", "a", "1", "b", "2")
	wantErr(t, c, many, "HSET", "sess:many", "c", "3")
	wantErr(t, c, many, "EVAL", "return redis.pcall('hset', KEYS[1], 'c', '3')", 1, "sess:many")
	p.wantHash(t, "sess:many", map[string]string{"a": "1", "b": "2"})
}

func testHashOutsidePrefix(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	wantErr(t, c, "NOPERM key 'app:h' is outside the session namespace", "HSET", "app:h", "a", "1")
	wantErr(t, c, "NOPERM key 'app:h' is outside the session namespace", "HGETALL", "app:h")

	p = startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.OutsidePrefix = commands.OutsidePassthrough })
	c = p.client(t)
	wantReply(t, c, 1, "HSET", "app:h", "a", "1")
	wantReply(t, c, "OK", "HMSET", "app:h", "b", "2")
	wantReply(t, c, []interface{}{"a", "1", "b", "2"}, "HGETALL", "app:h")
	p.wantHash(t, "app:h", map[string]string{"a": "1", "b": "2"})
	if d := p.pttl(t, "app:h"); d != -time.Millisecond {
		t.Errorf("passthrough key got a TTL: %v", d)
	}
}

// hashSessionStore is an alt-session style store (one field of the
// session per hash field, as connect-redis's hash-backed alternatives and
// Spring Session keep them), written the way such a store talks to Redis.
type hashSessionStore struct {
	rdb    *redis.Client
	prefix string
}

func (s hashSessionStore) set(ctx context.Context, sid, field, value string) error {
	return s.rdb.HSet(ctx, s.prefix+sid, field, value).Err()
}

func (s hashSessionStore) get(ctx context.Context, sid, field string) (string, error) {
	return s.rdb.HGet(ctx, s.prefix+sid, field).Result()
}

func (s hashSessionStore) mget(ctx context.Context, sid string, fields ...string) ([]interface{}, error) {
	return s.rdb.HMGet(ctx, s.prefix+sid, fields...).Result()
}

func (s hashSessionStore) remove(ctx context.Context, sid, field string) error {
	return s.rdb.HDel(ctx, s.prefix+sid, field).Err()
}

func (s hashSessionStore) invalidate(ctx context.Context, sid string) error {
	return s.rdb.Del(ctx, s.prefix+sid).Err()
}

func testHashAltSessionStore(t *testing.T, up *upstream) {
	const idle, lowered = 300 * time.Second, time.Minute
	p := startProxy(t, up, func(o *commands.Options, _ *proxy.Options) { o.Policy.Idle = idle })
	st := hashSessionStore{rdb: p.client(t), prefix: "sess:"}
	const sid, key = "alt-1", "sess:alt-1"

	// Fields round-trip; the first write sets the idle timeout.
	for f, v := range map[string]string{"user": "ada", "cart": `{"n":2}`, "csrf": "tok"} {
		if err := st.set(bg, sid, f, v); err != nil {
			t.Fatalf("set %s: %v", f, err)
		}
	}
	p.wantHash(t, key, map[string]string{"user": "ada", "cart": `{"n":2}`, "csrf": "tok"})
	p.wantTTL(t, key, idle)

	// Every read slides the TTL back to idle.
	reads := []struct {
		name string
		read func() (interface{}, error)
		want interface{}
	}{
		{"get", func() (interface{}, error) { return st.get(bg, sid, "user") }, "ada"},
		{"mget", func() (interface{}, error) { return st.mget(bg, sid, "cart", "none") }, []interface{}{`{"n":2}`, nil}},
		{"SESS.GET", func() (interface{}, error) { return st.rdb.Do(bg, "SESS.GET", sid).Result() },
			`{"cart":"{\"n\":2}","csrf":"tok","user":"ada"}`},
	}
	for _, r := range reads {
		p.lowerTTL(t, key, lowered)
		got, err := r.read()
		if err != nil || fmt.Sprint(got) != fmt.Sprint(r.want) {
			t.Errorf("%s = %v, %v; want %v", r.name, got, err, r.want)
		}
		p.wantTTL(t, key, idle)
	}
	p.lowerTTL(t, key, lowered)
	if err := st.remove(bg, sid, "csrf"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	p.wantTTL(t, key, idle)
	if _, err := st.get(bg, sid, "csrf"); !errors.Is(err, redis.Nil) {
		t.Errorf("get of a removed field: %v, want redis.Nil", err)
	}

	// Invalidate leaves a tombstone; a late field write is refused.
	if err := st.invalidate(bg, sid); err != nil {
		t.Fatalf("invalidate: %v", err)
	}
	p.wantTombstone(t, key)
	if err := st.set(bg, sid, "user", "mallory"); err == nil || err.Error() != destroyedError(sid) {
		t.Errorf("set after invalidate: %v, want %q", err, destroyedError(sid))
	}
	if _, err := st.get(bg, sid, "user"); !errors.Is(err, redis.Nil) {
		t.Errorf("get after invalidate: %v, want redis.Nil", err)
	}
	p.wantTombstone(t, key)
}
