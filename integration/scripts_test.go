package integration

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// phpredisUnlock is, byte for byte, the script phpredis releases its
// session lock with (EVALSHA of its SHA-1, EVAL on NOSCRIPT).
const phpredisUnlock = `if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end`

func sha1Of(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// wantErrContains runs a command and checks its error reply holds part.
func wantErrContains(t *testing.T, c doer, part string, args ...interface{}) {
	t.Helper()
	v, err := c.Do(bg, args...).Result()
	if err == nil || errors.Is(err, redis.Nil) || !strings.Contains(err.Error(), part) {
		t.Errorf("%s = %v, %v; want an error containing %q", show(args), v, err, part)
	}
}

// testScriptPolicy runs scripts through the proxy and checks in Redis
// directly that each redis.call on a session key obeyed the policy.
func testScriptPolicy(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	const key, sid = "sess:scripted", "scripted"

	// A SET without a TTL gets ttl.default; one beyond ttl.max is lowered.
	wantReply(t, c, "OK", "EVAL", "return redis.call('set', KEYS[1], ARGV[1])", 1, key, `{"n":1}`)
	p.wantStored(t, key, `{"n":1}`)
	p.wantTTL(t, key, defaultTTL)
	wantReply(t, c, 1, "EVAL", "return redis.call('expire', KEYS[1], ARGV[1])", 1, key, "99999999")
	p.wantTTL(t, key, maxTTL)
	wantReply(t, c, 1, "EVAL", "return redis.call('hset', KEYS[1], 'f', 'v')", 1, "sess:scripted-hash")
	p.wantTTL(t, "sess:scripted-hash", defaultTTL)

	// PERSIST is refused; the key keeps its TTL.
	wantErrContains(t, c, `ERR PERSIST is not allowed on session keys`, "EVAL", "return redis.call('persist', KEYS[1])", 1, key)
	wantReply(t, c, []interface{}{"ERR PERSIST is not allowed on session keys (ttl.persist = \"deny\")"},
		"EVAL", "local r = redis.pcall('persist', KEYS[1]) return {r['err']}", 1, key)
	p.wantTTL(t, key, maxTTL)

	// A payload the json codec refuses, an undeclared session key, a key
	// outside the prefix, a command the wrapper cannot police: errors, and
	// nothing written.
	wantErrContains(t, c, "ERR invalid session payload: not a JSON object", "EVAL", "return redis.call('set', KEYS[1], 'x')", 1, key)
	wantErrContains(t, c, "is not declared in KEYS", "EVAL", "return redis.call('set', ARGV[1], '{}')", 0, "sess:undeclared")
	wantErrContains(t, c, "NOPERM key 'outside' is outside the session namespace", "EVAL", "return redis.call('set', 'outside', '1')", 0)
	wantErr(t, c, "NOPERM key 'outside' is outside the session namespace", "EVAL", "return 1", 1, "outside")
	wantErrContains(t, c, "'append' is not allowed on session keys", "EVAL", "return redis.call('append', KEYS[1], 'x')", 1, key)
	p.wantStored(t, key, `{"n":1}`)
	p.wantMissing(t, "sess:undeclared")
	p.wantMissing(t, "outside")

	// The user's text cannot reach the real redis: not through the
	// wrapper's own locals (the head once held them in scope), nor through
	// _G (whose _G, loadstring and load were the real ones). Each of these
	// would have written a session key undeclared and without a TTL.
	for _, real := range []string{"__sp_R", "__sp_G.redis", "_G._G.redis", "_G._G._G.redis", "rawget(_G, '_G').redis",
		"_G.loadstring('return redis')()", "_G.load('return redis')()", "_G['load' .. 'string']('return redis')()"} {
		v, err := c.Do(bg, "EVAL", "return "+real+".call('set', 'sess:planted', '{}')", 0).Result()
		if err == nil {
			t.Errorf("a script reached the real redis through %s: %v", real, v)
		}
		p.wantMissing(t, "sess:planted")
	}

	// redis.setresp(3) is refused: the policy reads replies as RESP2, and
	// under RESP3 the hash size bound summed HGETALL's map as nothing.
	wantErrContains(t, c, "redis.setresp(3) is not supported", "EVAL",
		"redis.setresp(3) return redis.call('hset', KEYS[1], 'f', ARGV[1])", 1, "sess:resp3", strings.Repeat("x", 2<<20))
	p.wantMissing(t, "sess:resp3")
	wantReply(t, c, 1, "EVAL", "redis.setresp(2) return 1", 0)

	// DEL of a session leaves a tombstone; a script write to it errors and
	// writes nothing; a script read sees no session.
	wantReply(t, c, 1, "EVAL", "return redis.call('del', KEYS[1])", 1, key)
	p.wantTombstone(t, key)
	wantErrContains(t, c, destroyedError(sid), "EVAL", "return redis.call('set', KEYS[1], ARGV[1])", 1, key, `{"n":2}`)
	wantErrContains(t, c, destroyedError(sid), "EVAL", "return redis.call('expire', KEYS[1], 60)", 1, key)
	wantReply(t, c, []interface{}{destroyedError(sid)}, "EVAL", "local r = redis.pcall('set', KEYS[1], '{}') return {r['err']}", 1, key)
	wantReply(t, c, nil, "EVAL", "return redis.call('get', KEYS[1])", 1, key)
	wantReply(t, c, 0, "EVAL", "return redis.call('exists', KEYS[1])", 1, key)
	p.wantTombstone(t, key)
	wantReply(t, c, nil, "GET", key)

	// A read-only script reads; its writes are refused by Redis.
	wantReply(t, c, "OK", "SET", "sess:ro", `{"r":1}`)
	wantReply(t, c, `{"r":1}`, "EVAL_RO", "return redis.call('get', KEYS[1])", 1, "sess:ro")
	wantErrContains(t, c, "Write commands are not allowed from read-only scripts", "EVAL_RO", "return redis.call('set', KEYS[1], '{}')", 1, "sess:ro")

	// Cluster: the keys of one script share a slot.
	if up.cluster() {
		keys := up.spreadKeys(t, "sess:x-", 2)
		wantErr(t, c, "CROSSSLOT Keys in request don't hash to the same slot", "EVAL", "return 1", 2, keys[0], keys[1])
	}
	// FCALL names the alternative.
	wantErrContains(t, c, "use EVAL or EVALSHA", "FCALL", "f", 0)
}

// testScriptCache: the SHA-1 a client sees is its own script's; EVALSHA
// survives the upstream losing its script cache (a restart, a failover).
func testScriptCache(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	const script, cachedKey = "return redis.call('set', KEYS[1], ARGV[1])", "sess:cached"
	sha := sha1Of(script)
	wantErr(t, c, "NOSCRIPT No matching script. Please use EVAL.", "EVALSHA", sha, 1, "sess:cached", "{}")
	wantReply(t, c, sha, "SCRIPT", "LOAD", script)
	wantReply(t, c, []interface{}{int64(1), int64(0)}, "SCRIPT", "EXISTS", sha, sha1Of("other"))
	wantReply(t, c, "OK", "EVALSHA", sha, 1, "sess:cached", `{"v":1}`)
	p.wantStored(t, cachedKey, `{"v":1}`)
	p.wantTTL(t, cachedKey, defaultTTL)

	// SCRIPT FLUSH straight to Redis: the proxy loads the wrapped script
	// again and the client never sees NOSCRIPT.
	err := up.forEachMaster(bg, func(ctx context.Context, m *redis.Client) error { return m.ScriptFlush(ctx).Err() })
	if err != nil {
		t.Fatalf("direct SCRIPT FLUSH: %v", err)
	}
	wantReply(t, c, "OK", "EVALSHA", sha, 1, "sess:cached", `{"v":2}`)
	p.wantStored(t, cachedKey, `{"v":2}`)
	p.wantTTL(t, cachedKey, defaultTTL)

	// SCRIPT FLUSH through the proxy forgets the client's scripts.
	wantReply(t, c, "OK", "SCRIPT", "FLUSH")
	wantReply(t, c, []interface{}{int64(0)}, "SCRIPT", "EXISTS", sha)
	wantErr(t, c, "NOSCRIPT No matching script. Please use EVAL.", "EVALSHA", sha, 1, "sess:cached", "{}")

	// go-redis's Script (redigo's does the same): EVALSHA, then EVAL on
	// NOSCRIPT, then EVALSHA.
	s := redis.NewScript(`return redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])`)
	for i, payload := range []string{`{"s":1}`, `{"s":2}`} {
		if err := s.Run(bg, c, []string{"sess:goredis"}, payload, 120).Err(); err != nil {
			t.Fatalf("Script.Run #%d: %v", i, err)
		}
		p.wantStored(t, "sess:goredis", payload)
		p.wantTTL(t, "sess:goredis", 120*time.Second)
	}
}

// testScriptPhpredisUnlock runs phpredis's lock release exactly as
// phpredis sends it: EVALSHA of the script's SHA-1, EVAL on NOSCRIPT.
func testScriptPhpredisUnlock(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	const lock = "sess:php-unlock_LOCK"
	sha := sha1Of(phpredisUnlock)
	unlock := func(token string) interface{} {
		t.Helper()
		v, err := c.Do(bg, "EVALSHA", sha, 1, lock, token).Result()
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			v, err = c.Do(bg, "EVAL", phpredisUnlock, 1, lock, token).Result()
		}
		if err != nil {
			t.Fatalf("unlock: %v", err)
		}
		return v
	}
	wantReply(t, c, "OK", "SESS.SET", "php-unlock", `{"a":1}`)
	wantReply(t, c, "OK", "SET", lock, "token-1", "NX", "PX", "30000")
	wantErr(t, c, "NOSCRIPT No matching script. Please use EVAL.", "EVALSHA", sha, 1, lock, "token-1")
	// Another request's token leaves the lock alone.
	if v := unlock("token-2"); v != int64(0) {
		t.Errorf("unlock with another token = %v, want 0", v)
	}
	p.wantStored(t, lock, "token-1")
	// The holder's token releases it: a plain DEL, no tombstone.
	if v := unlock("token-1"); v != int64(1) {
		t.Errorf("unlock = %v, want 1", v)
	}
	p.wantMissing(t, lock)
	p.wantStored(t, "sess:php-unlock", `{"a":1}`)
	// The next request's lock and unlock, now by EVALSHA alone.
	wantReply(t, c, "OK", "SET", lock, "token-3", "NX", "EX", "86400")
	p.wantTTL(t, lock, lockMax)
	wantReply(t, c, int64(1), "EVALSHA", sha, 1, lock, "token-3")
	p.wantMissing(t, lock)
}

// testScriptInTx: EVALSHA and EVAL inside MULTI run in EXEC with the
// policy, even after the upstream lost its script cache (the proxy sends
// the wrapped source, since a NOSCRIPT inside EXEC could not be retried);
// a script's write to a destroyed session fails in its place in the array
// while the others apply.
func testScriptInTx(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	const script = "return redis.call('set', KEYS[1], ARGV[1])"
	sha := sha1Of(script)
	wantReply(t, c, sha, "SCRIPT", "LOAD", script)
	err := up.forEachMaster(bg, func(ctx context.Context, m *redis.Client) error { return m.ScriptFlush(ctx).Err() })
	if err != nil {
		t.Fatalf("direct SCRIPT FLUSH: %v", err)
	}
	wantReply(t, c, 0, "DEL", "sess:{stx}gone")
	cmds, err := c.TxPipelined(bg, func(pipe redis.Pipeliner) error {
		pipe.EvalSha(bg, sha, []string{"sess:{stx}a"}, `{"a":1}`)
		pipe.Eval(bg, script, []string{"sess:{stx}gone"}, `{"b":1}`)
		pipe.Do(bg, "EVAL_RO", "return redis.call('get', KEYS[1])", 1, "sess:{stx}a")
		return nil
	})
	if err == nil || !strings.HasPrefix(err.Error(), "TOMBSTONE ") {
		t.Fatalf("TxPipelined = %v, want the TOMBSTONE of its second command", err)
	}
	if cmds[0].Err() != nil {
		t.Errorf("EVALSHA inside MULTI: %v", cmds[0].Err())
	}
	if got, err := cmds[2].(*redis.Cmd).Text(); err != nil || got != `{"a":1}` {
		t.Errorf("EVAL_RO inside MULTI = %q, %v; want the write before it", got, err)
	}
	p.wantStored(t, "sess:{stx}a", `{"a":1}`)
	p.wantTTL(t, "sess:{stx}a", defaultTTL)
	p.wantTombstone(t, "sess:{stx}gone")
	// An unknown SHA-1 aborts the transaction at queue time.
	rc := p.raw(t)
	wantRaw(t, rc, status("OK"), "MULTI")
	wantRawErrPrefix(t, rc, "NOSCRIPT", "EVALSHA", sha1Of("unknown"), "1", "sess:{stx}a", "{}")
	wantRawErrPrefix(t, rc, "EXECABORT", "EXEC")
	// SCRIPT acts on the proxy's map, outside Redis: refused inside MULTI.
	wantRaw(t, rc, status("OK"), "MULTI")
	wantRawErrPrefix(t, rc, "ERR 'script' is not allowed in a transaction", "SCRIPT", "FLUSH")
	wantRawErrPrefix(t, rc, "EXECABORT", "EXEC")
	wantReply(t, c, []interface{}{int64(1)}, "SCRIPT", "EXISTS", sha)
}
