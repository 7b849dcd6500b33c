package commands

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/store/codec"
)

// call runs one command given as its arguments (a script's text holds
// quotes and spaces that do's splitting cannot) and returns the reply in
// do's compact form.
func (f *fixture) call(args ...string) string {
	f.t.Helper()
	cmd := make([][]byte, len(args))
	for i, a := range args {
		cmd[i] = []byte(a)
	}
	var out bytes.Buffer
	f.p.Run(context.Background(), [][][]byte{cmd}, func(b []byte) { out.Write(b) })
	v, err := readReply(bufio.NewReader(&out))
	if err != nil {
		f.t.Fatalf("%q: %v", args, err)
	}
	return v
}

func (f *fixture) wantCall(want string, args ...string) {
	f.t.Helper()
	if got := f.call(args...); got != want {
		f.t.Errorf("%q = %q, want %q", args, got, want)
	}
}

func (f *fixture) wantCallError(contains string, args ...string) {
	f.t.Helper()
	if got := f.call(args...); !strings.HasPrefix(got, "-") || !strings.Contains(got, contains) {
		f.t.Errorf("%q = %q, want an error containing %q", args, got, contains)
	}
}

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// phpredisUnlock is the script phpredis releases its session lock with.
const phpredisUnlock = `if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end`

func TestScriptWritesGetThePolicyTTL(t *testing.T) {
	f := newFixture(t, nil)
	f.wantCall("$OK", "EVAL", "return redis.call('set', KEYS[1], ARGV[1])", "1", "sess:a", `{"a":1}`)
	f.wantRaw("sess:a", `{"a":1}`)
	f.wantTTL("sess:a", 24*time.Hour)
	f.wantCall("$OK", "EVAL", "return redis.call('set', KEYS[1], ARGV[1], 'EX', '99999999')", "1", "sess:a", `{"a":2}`)
	f.wantTTL("sess:a", 30*24*time.Hour)
	f.wantCall(":1", "EVAL", "return redis.call('expire', KEYS[1], 0.5 * 2)", "1", "sess:a")
	f.wantTTL("sess:a", time.Second) // raised to ttl.min
	f.wantCall(":1", "EVAL", "return redis.call('hset', KEYS[1], 'f', 'v')", "1", "sess:h")
	f.wantTTL("sess:h", 24*time.Hour)
	f.wantCallError("ERR PERSIST is not allowed on session keys", "EVAL", "return redis.pcall('persist', KEYS[1])", "1", "sess:a")
	f.wantCallError("not a JSON object", "EVAL", "return redis.pcall('set', KEYS[1], 'x')", "1", "sess:a")
	f.wantCallError("not declared in KEYS", "EVAL", "return redis.pcall('set', 'sess:b', '{}')", "0")
	f.wantCallError("NOPERM key 'other' is outside the session namespace", "EVAL", "return redis.pcall('set', 'other', '{}')", "0")
	f.wantCallError("'incr' is not allowed on session keys", "EVAL", "return redis.pcall('incr', KEYS[1])", "1", "sess:a")
	if f.m.Exists("sess:b") || f.m.Exists("other") {
		t.Error("a refused write was carried out")
	}
}

func TestScriptHashWritesAreBoundedAsTheProxysAre(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxHashBytes, o.MaxHashFields = 16, 2 })
	f.wantCall(":2", "EVAL", "return redis.call('hset', KEYS[1], 'a', '1', 'b', '2')", "1", "sess:h")
	f.wantCall("-"+errHashTooManyFields("h", 2), "EVAL", "return redis.pcall('hset', KEYS[1], 'a', '9', 'c', '3')", "1", "sess:h")
	f.wantCall("-"+errHashTooManyFields("h", 2), "EVAL", "return redis.pcall('hincrby', KEYS[1], 'c', '1')", "1", "sess:h")
	f.wantCall("-"+errHashTooLarge("h", 16), "EVAL", "return redis.pcall('hset', KEYS[1], 'a', '12345678901234')", "1", "sess:h") // 17 bytes
	// The script goes on after a refusal it catches, and sees nothing of it.
	f.wantCall("[$a $1 $b $2]", "EVAL", "redis.pcall('hsetnx', KEYS[1], 'c', '3') return redis.call('hgetall', KEYS[1])", "1", "sess:h")
	f.wantCallError(errHashTooManyFields("new", 2), "EVAL", "return redis.call('hset', KEYS[1], 'a', '1', 'b', '2', 'c', '3')", "1", "sess:new")
	if f.m.Exists("sess:new") {
		t.Error("a refused script write created the hash")
	}
	f.wantCall(":1", "EVAL", "return redis.call('hdel', KEYS[1], 'b')", "1", "sess:h")
	f.wantCall(":1", "EVAL", "return redis.call('hset', KEYS[1], 'c', '3')", "1", "sess:h")
}

func TestScriptDelLeavesATombstoneThatRefusesScriptWrites(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("SESS.SET a {}", "+OK")
	f.wantCall(":1", "EVAL", "return redis.call('del', KEYS[1])", "1", "sess:a")
	f.wantRaw("sess:a", "TOMBSTONE")
	f.wantTTL("sess:a", 5*time.Minute)
	f.wantCallError("TOMBSTONE session a was destroyed", "EVAL", "return redis.pcall('set', KEYS[1], '{}')", "1", "sess:a")
	f.wantCall("nil", "EVAL", "return redis.call('get', KEYS[1])", "1", "sess:a")
	f.wantCall(":0", "EVAL", "return redis.call('exists', KEYS[1])", "1", "sess:a")
	f.wantRaw("sess:a", "TOMBSTONE")
}

func TestScriptLocksFollowTheLockRules(t *testing.T) {
	f := newFixture(t, nil)
	f.wantCall("$OK", "EVAL", "return redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', '86400')", "1", "sess:a_LOCK", "tok")
	f.wantRaw("sess:a_LOCK", "tok")
	f.wantTTL("sess:a_LOCK", 5*time.Minute)
	f.wantCall(":0", "EVAL", phpredisUnlock, "1", "sess:a_LOCK", "other-token")
	f.wantCall(":1", "EVAL", phpredisUnlock, "1", "sess:a_LOCK", "tok")
	if f.m.Exists("sess:a_LOCK") {
		t.Error("the lock is still there after its unlock")
	}
}

func TestEvalshaAnswersFromTheProxysCache(t *testing.T) {
	f := newFixture(t, nil)
	sha := sha1Hex(phpredisUnlock)
	f.wantCall("-NOSCRIPT No matching script. Please use EVAL.", "EVALSHA", sha, "1", "sess:a_LOCK", "tok")
	f.wantCall("[:0]", "SCRIPT", "EXISTS", sha)
	f.wantCall("$"+sha, "SCRIPT", "LOAD", phpredisUnlock)
	f.wantCall("[:1 :0]", "SCRIPT", "EXISTS", strings.ToUpper(sha), "0000")
	f.expect("SET sess:a_LOCK tok", "+OK")
	f.wantCall(":1", "EVALSHA", sha, "1", "sess:a_LOCK", "tok")
	// The upstream forgets its scripts (a restart, a failover): reloaded.
	direct := redis.NewClient(&redis.Options{Addr: f.m.Addr()})
	defer direct.Close()
	if err := direct.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	f.expect("SET sess:a_LOCK tok", "+OK")
	f.wantCall(":1", "EVALSHA", sha, "1", "sess:a_LOCK", "tok")
	f.wantCall("+OK", "SCRIPT", "FLUSH", "ASYNC")
	f.wantCall("-NOSCRIPT No matching script. Please use EVAL.", "EVALSHA", sha, "1", "sess:a_LOCK", "tok")
	// EVAL fills the cache too.
	f.wantCall(":0", "EVAL", phpredisUnlock, "1", "sess:a_LOCK", "tok")
	f.wantCall(":0", "EVALSHA", sha, "1", "sess:a_LOCK", "tok")
}

func TestScriptArgumentsAreCheckedBeforeAnythingRuns(t *testing.T) {
	f := newFixture(t, nil)
	f.wantCall("-ERR value is not an integer or out of range", "EVAL", "return 1", "x")
	f.wantCall("-ERR Number of keys can't be negative", "EVAL", "return 1", "-1")
	f.wantCall("-ERR Number of keys can't be greater than number of args", "EVAL", "return 1", "2", "sess:a")
	f.wantCallError("Error compiling script", "EVAL", "return x(", "0")
	// A script cannot close the function the wrapper puts it in.
	f.wantCallError("Error compiling script", "EVAL", "return 1 end redis.call('set', 'sess:x', 'y') local function f()", "0")
	f.wantCall("-NOPERM key 'other' is outside the session namespace", "EVAL", "return 1", "1", "other")
	f.wantCallError("invalid session id", "EVAL", "return 1", "1", "sess:")
	f.wantCall("[$sess:q $arg :1]", "EVAL", "return {KEYS[1], ARGV[1], #ARGV}", "1", "sess:q", "arg")
	f.wantCall(":1", "EVAL", "return _G.redis == redis and 1 or 0", "0")
	f.wantCallError("FCALL is not served", "FCALL", "f", "0")
	f.wantCallError("unknown subcommand 'KILL'", "SCRIPT", "KILL")
}

func TestScriptsDeny(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.ScriptsMode = ScriptsDeny })
	for _, cmd := range [][]string{
		{"EVAL", "return 1", "0"}, {"EVALSHA", sha1Hex("return 1"), "0"},
		{"EVAL_RO", "return 1", "0"}, {"EVALSHA_RO", sha1Hex("return 1"), "0"},
		{"SCRIPT", "LOAD", "return 1"},
	} {
		f.wantCallError(`scripts are off (scripts.mode = "deny")`, cmd...)
	}
}

func TestScriptValuesAreRefusedUnderCodecsAScriptCannotProduce(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Codec = mustCodec(codec.Options{Format: codec.FormatMsgpack}) })
	f.wantCallError("scripts cannot read or write session values under this codec", "EVAL", "return redis.pcall('set', KEYS[1], '{}')", "1", "sess:a")
	f.wantCallError("scripts cannot read or write session values under this codec", "EVAL", "return redis.pcall('get', KEYS[1])", "1", "sess:a")
	f.wantCall(":0", "EVAL", "return redis.call('del', KEYS[1])", "1", "sess:a")
	f.wantCall("$OK", "EVAL", "return redis.call('set', KEYS[1], 'tok')", "1", "sess:a_LOCK")
}

func TestScriptsUnderHashIDsSeeTheClearKeys(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.HashIDs = true })
	f.wantCall("$OK", "EVAL", "return redis.call('set', KEYS[1], '{}')", "1", "sess:a")
	f.wantCall("$sess:a", "EVAL", "return KEYS[1]", "1", "sess:a")
	f.wantRaw(f.e.spaces[0].storageKey("a"), "{}")
	f.wantCall("${}", "GET", "sess:a")
}

func TestScriptCacheIsBounded(t *testing.T) {
	var sc scriptCache
	for i := 0; i < maxCachedScripts+10; i++ {
		if _, msg, _ := sc.load(fmt.Sprintf("return %d", i)); msg != "" {
			t.Fatal(msg)
		}
	}
	if sc.lru.Len() != maxCachedScripts {
		t.Errorf("%d scripts cached, want the bound %d", sc.lru.Len(), maxCachedScripts)
	}
	if sc.exists(sha1Hex("return 0")) || !sc.exists(sha1Hex(fmt.Sprintf("return %d", maxCachedScripts+9))) {
		t.Error("the least recently used script was not the one forgotten")
	}
}

func TestScriptErrorsNameTheClientsScript(t *testing.T) {
	s := &cachedScript{hash: "client", lines: 2}
	s.upstream = nil
	for _, tt := range []struct{ in, want string }{
		{"ERR boom script: client, on @user_script:2.", "ERR boom script: client, on @user_script:2."},
		{"TOMBSTONE session a was destroyed script: client, on @user_script:300.", "TOMBSTONE session a was destroyed script: client."},
	} {
		if got := s.clientErrorLines(tt.in); got != tt.want {
			t.Errorf("clientError(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNoWritesShebangMakesTheWrapperReadOnly(t *testing.T) {
	for _, tt := range []struct {
		source string
		want   bool
	}{
		{"#!lua flags=no-writes,allow-stale\nreturn 1", true},
		{"#!lua name=x flags=allow-stale\nreturn 1", false},
		{"return 1 -- flags=no-writes", false},
	} {
		if got := declaresNoWrites(tt.source); got != tt.want {
			t.Errorf("declaresNoWrites(%q) = %v, want %v", tt.source, got, tt.want)
		}
	}
}

func TestScriptTombstoneSettings(t *testing.T) {
	t.Run("on_write ignore answers success and writes nothing", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.OnWrite = OnWriteIgnore })
		f.wantCall(":0", "EVAL", "return redis.call('del', KEYS[1])", "1", "sess:a")
		f.wantCall("$OK", "EVAL", "return redis.call('set', KEYS[1], '{}')", "1", "sess:a")
		f.wantCall(":0", "EVAL", "return redis.call('expire', KEYS[1], 60)", "1", "sess:a")
		f.wantRaw("sess:a", "TOMBSTONE")
	})
	t.Run("tombstones off: DEL deletes", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.Tombstones = false })
		f.expect("SESS.SET a {}", "+OK")
		f.wantCall(":1", "EVAL", "return redis.call('del', KEYS[1])", "1", "sess:a")
		if f.m.Exists("sess:a") {
			t.Error("DEL left a key with tombstones off")
		}
		f.wantCall("$OK", "EVAL", "return redis.call('set', KEYS[1], '{}')", "1", "sess:a")
	})
	t.Run("ttl.idle: writes get idle, reads slide", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.Policy.Idle = 30 * time.Minute })
		f.wantCall("$OK", "EVAL", "return redis.call('set', KEYS[1], '{}', 'EX', 86400)", "1", "sess:a")
		f.wantTTL("sess:a", 30*time.Minute)
		f.m.FastForward(10 * time.Minute)
		f.wantCall("${}", "EVAL", "return redis.call('get', KEYS[1])", "1", "sess:a")
		f.wantTTL("sess:a", 30*time.Minute)
	})
}

// A script new to the proxy is loaded upstream before its first run, so
// that run does not meet NOSCRIPT: recovered inside a pipeline shared with
// other clients, a NOSCRIPT could not always be sent again (phpredis's lock
// release, now and then, in the PHP tests). SCRIPT LOAD shows it: before,
// it filled the proxy's cache only.
func TestNewScriptIsLoadedUpstreamFirst(t *testing.T) {
	f := newFixture(t, nil)
	up := redis.NewClient(&redis.Options{Addr: f.m.Addr()})
	t.Cleanup(func() { up.Close() })
	const source = "return 2"
	f.one("SCRIPT LOAD '" + source + "'")
	s, _, _ := f.e.scripts.load(source)
	exists, err := up.ScriptExists(context.Background(), s.upstream.Hash()).Result()
	if err != nil || len(exists) != 1 || !exists[0] {
		t.Errorf("after SCRIPT LOAD, the wrapped script upstream: %v, %v", exists, err)
	}
	f.expect("EVALSHA "+s.hash+" 0", ":2")
}

// A script that meets NOSCRIPT (its node lost its scripts) in a round it
// shares with another client's write to the same key is still run: the
// clients' commands have no order between them, so it runs after that
// write. Before, the write that ran after it kept it from going again,
// and the client got NOSCRIPT (phpredis's lock release, another PHP
// process polling the lock with SET NX).
func TestRoundSendsAScriptAgainAfterAnotherClientsWrite(t *testing.T) {
	f := newFixture(t, nil)
	const script = `EVAL 'return redis.call("SET", KEYS[1], ARGV[1])' 1 sess:a_LOCK `
	f.expect(script+"first", "$OK")
	direct := redis.NewClient(&redis.Options{Addr: f.m.Addr()})
	defer direct.Close()
	if err := direct.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	round := f.e.NewRound()
	mine := f.e.NewPipelineIn(f.e.Connect("127.0.0.1:2", "127.0.0.1:6380"), round)
	other := f.e.NewPipelineIn(f.e.Connect("127.0.0.1:3", "127.0.0.1:6380"), round)
	mine.Queue(ctx, [][][]byte{toArgs(script + "mine")})
	other.Queue(ctx, [][][]byte{toArgs("SET sess:a_LOCK other")})
	round.Exec(ctx)
	for p, want := range map[*Pipeline]string{mine: "$OK", other: "+OK"} {
		var out bytes.Buffer
		p.Complete(func(r []byte) { out.Write(r) })
		if got, _ := readReply(bufio.NewReader(&out)); got != want {
			t.Errorf("reply %q, want %q", got, want)
		}
	}
	f.expect("GET sess:a_LOCK", "$mine")
}

func toArgs(line string) [][]byte {
	var out [][]byte
	for _, a := range splitArgs(line) {
		out = append(out, []byte(a))
	}
	return out
}

// The wrapper's own checks call what it took before the user's function
// ran: replacing string.lower (which the embedded upstream, as Redis
// before 7.0, lets a script do) once wrote an undeclared session key with
// no TTL.
func TestScriptCannotSteerTheWrapperThroughTheLibraries(t *testing.T) {
	f := newFixture(t, nil)
	got := f.one(`EVAL 'string.lower = function() return "ping" end string.sub = function() return "" end return redis.call("SET", "sess:planted", "{}")' 0`)
	if !strings.HasPrefix(got, "-") {
		t.Errorf("EVAL = %q, want an error", got)
	}
	if f.m.Exists("sess:planted") {
		t.Errorf("a script wrote sess:planted, undeclared, after replacing string.lower")
	}
}
