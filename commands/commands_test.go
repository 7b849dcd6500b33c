package commands

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store"
	"github.com/sessproxy/sessproxy/store/codec"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

type fixture struct {
	t      *testing.T
	m      *miniredis.Miniredis
	e      *Engine
	logs   *observer.ObservedLogs
	client *Client
	p      *Pipeline
}

func defaultOptions() Options {
	return Options{
		Prefix:       "sess:",
		LockSuffixes: []string{"_LOCK"},
		Policy: ttl.Policy{Default: 24 * time.Hour, Min: time.Second, Max: 30 * 24 * time.Hour,
			FromCookie: true, Touch: true, Persist: ttl.PersistDeny, LockMax: 5 * time.Minute},
		Tombstones: true, Grace: 5 * time.Minute, OnWrite: OnWriteError,
		Codec: mustCodec(codec.Options{MaxPayloadBytes: 1 << 20}),
	}
}

func newFixture(t *testing.T, tweak func(*Options)) *fixture {
	t.Helper()
	m := miniredis.RunT(t)
	st, err := store.Open(context.Background(), store.Options{Mode: store.ModeStandalone, Addrs: []string{m.Addr()}, AutoPipeline: true, Combine: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opts := defaultOptions()
	core, logs := observer.New(zap.DebugLevel)
	opts.Logger = zap.New(core)
	if tweak != nil {
		tweak(&opts)
	}
	e := New(st, opts)
	c := e.Connect("127.0.0.1:1", "127.0.0.1:6380")
	return &fixture{t: t, m: m, e: e, logs: logs, client: c, p: e.NewPipeline(c)}
}

// do runs one pipeline of commands and returns the replies in a compact
// text form: +OK, -ERR …, :1, $value, nil, [a b].
func (f *fixture) do(cmds ...string) []string {
	f.t.Helper()
	args := make([][][]byte, len(cmds))
	for i, c := range cmds {
		for _, a := range splitArgs(c) {
			args[i] = append(args[i], []byte(a))
		}
	}
	var out bytes.Buffer
	f.p.Run(context.Background(), args, func(b []byte) { out.Write(b) })
	r := bufio.NewReader(&out)
	var replies []string
	for r.Buffered() > 0 || out.Len() > 0 {
		v, err := readReply(r)
		if err != nil {
			break
		}
		replies = append(replies, v)
	}
	return replies
}

// one runs a single command and returns its reply.
func (f *fixture) one(cmd string) string {
	f.t.Helper()
	r := f.do(cmd)
	if len(r) != 1 {
		f.t.Fatalf("%s: %d replies: %q", cmd, len(r), r)
	}
	return r[0]
}

func (f *fixture) expect(cmd, want string) {
	f.t.Helper()
	if got := f.one(cmd); got != want {
		f.t.Fatalf("%s = %q, want %q", cmd, got, want)
	}
}

// splitArgs splits on spaces; an argument in single quotes may hold spaces.
func splitArgs(s string) []string {
	var args []string
	for s != "" {
		s = strings.TrimLeft(s, " ")
		if strings.HasPrefix(s, "'") {
			end := strings.Index(s[1:], "'") + 1
			args = append(args, s[1:end])
			s = s[end+1:]
			continue
		}
		end := strings.IndexByte(s, ' ')
		if end < 0 {
			end = len(s)
		}
		args = append(args, s[:end])
		s = s[end:]
	}
	return args
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch line[0] {
	case '+', '-', ':':
		return line, nil
	case '_':
		return "null", nil
	case '=':
		n, _ := strconv.Atoi(line[1:])
		b := make([]byte, n+2)
		if _, err := io_ReadFull(r, b); err != nil {
			return "", err
		}
		return "=" + string(b[:n]), nil
	case '%', '~':
		n, _ := strconv.Atoi(line[1:])
		if line[0] == '%' {
			n *= 2
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(r); err != nil {
				return "", err
			}
		}
		return string(line[0]) + "{" + strings.Join(parts, " ") + "}", nil
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "nil", nil
		}
		b := make([]byte, n+2)
		if _, err := io_ReadFull(r, b); err != nil {
			return "", err
		}
		return "$" + string(b[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "nil", nil
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(r); err != nil {
				return "", err
			}
		}
		return "[" + strings.Join(parts, " ") + "]", nil
	}
	return "", fmt.Errorf("unexpected reply line %q", line)
}

func io_ReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestPanicInACommandIsAnsweredAndTheConnectionGoesOn(t *testing.T) {
	f := newFixture(t, nil)
	f.e.registry["boom"] = &Command{Name: "boom", Arity: -1, Handler: func(c *Call) {
		panic("boom with " + string(c.Args[len(c.Args)-1]))
	}}
	got := f.do("PING", "BOOM secret-payload", "SESS.SET a {}", "SESS.GET a")
	want := []string{"+PONG", "-ERR internal error", "+OK", "${}"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replies = %q, want %q", got, want)
	}
	if f.logs.FilterMessage("panic in command").Len() != 1 {
		t.Fatalf("panic not logged: %v", f.logs.All())
	}
	if e := f.logs.All()[0]; e.ContextMap()["command"] != "boom" {
		t.Fatalf("panic log does not name the command: %v", e.ContextMap())
	}
}

func TestPipelinedRepliesComeInRequestOrder(t *testing.T) {
	f := newFixture(t, nil)
	got := f.do("SET sess:a {\"n\":1}", "GET sess:a", "PING", "SESS.SET a {\"n\":2}", "ECHO x", "SESS.GET a", "DEL sess:a", "GET sess:a", "SET sess:a {}")
	want := []string{"+OK", `${"n":1}`, "+PONG", "+OK", "$x", `${"n":2}`, ":1", "nil", "-TOMBSTONE session a was destroyed"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replies = %q\nwant       %q", got, want)
	}
}

func TestEveryWriteGetsAPolicyTTL(t *testing.T) {
	f := newFixture(t, nil)
	f.do("SET sess:plain {}", "SETNX sess:nx {}", "GETSET sess:gs {}", "MSET sess:m1 {} sess:m2 {}", "SESS.SET s {}", "SET sess:k {} KEEPTTL")
	for _, k := range f.m.Keys() {
		if ttl := f.m.TTL(k); ttl != 24*time.Hour {
			t.Errorf("%s: TTL %v, want the 24h default", k, ttl)
		}
	}
	if len(f.m.Keys()) != 7 {
		t.Fatalf("keys = %v", f.m.Keys())
	}
}

func TestSessSetTTLSources(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Policy.Rules = []ttl.Rule{{Field: "user.role", Equals: "admin", TTL: 30 * time.Minute}}
	})
	expires := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339Nano)
	f.expect("SESS.SET explicit {} TTL 60", "+OK")
	f.expect(`SESS.SET rule {"user":{"role":"admin"}}`, "+OK")
	f.expect(`SESS.SET cookie {"cookie":{"expires":"`+expires+`"}}`, "+OK")
	f.expect("SESS.SET tiny {} TTL 1", "+OK")
	f.expect("SESS.SET huge {} TTL 99999999", "+OK")
	checks := map[string]time.Duration{"explicit": time.Minute, "rule": 30 * time.Minute, "tiny": time.Second, "huge": 30 * 24 * time.Hour}
	for sid, want := range checks {
		if got := f.m.TTL("sess:" + sid); got != want {
			t.Errorf("%s: TTL %v, want %v", sid, got, want)
		}
	}
	if got := f.m.TTL("sess:cookie"); got < 2*time.Hour-time.Minute || got > 2*time.Hour {
		t.Errorf("cookie: TTL %v, want about 2h", got)
	}
}

func TestExpiredCookieDeletesAndRepliesOK(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("SESS.SET a {}", "+OK")
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	f.expect(`SESS.SET a {"cookie":{"expires":"`+past+`"}}`, "+OK")
	if f.m.Exists("sess:a") {
		t.Fatal("a session whose cookie has expired is still stored")
	}
}

func TestTombstones(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("SESS.SET a {}", "+OK")
	f.expect("SESS.DESTROY a never-existed", ":1")
	if v, _ := f.m.Get("sess:never-existed"); v != "TOMBSTONE" {
		t.Fatalf("destroying a missing session stores %q, want a tombstone", v)
	}
	if v, _ := f.m.Get("sess:a"); v != "TOMBSTONE" || f.m.TTL("sess:a") != 5*time.Minute {
		t.Fatalf("sess:a = %q ttl %v, want TOMBSTONE for the 5m grace", v, f.m.TTL("sess:a"))
	}
	refused := "-TOMBSTONE session a was destroyed"
	for _, cmd := range []string{"SESS.SET a {}", "SESS.TOUCH a", "SET sess:a {}", "SETEX sess:a 10 {}", "GETSET sess:a {}", "EXPIRE sess:a 10", "MSET sess:a {}"} {
		f.expect(cmd, refused)
	}
	for cmd, want := range map[string]string{"SESS.GET a": "nil", "GET sess:a": "nil", "SESS.EXISTS a": ":0", "EXISTS sess:a": ":0",
		"TTL sess:a": ":-2", "SESS.TTL a": ":-2", "TYPE sess:a": "+none", "STRLEN sess:a": ":0", "MGET sess:a": "[nil]", "DBSIZE": ":0"} {
		f.expect(cmd, want)
	}
	if v, _ := f.m.Get("sess:a"); v != "TOMBSTONE" {
		t.Fatalf("a refused write changed the tombstone to %q", v)
	}
}

func TestTombstoneOnWriteIgnore(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.OnWrite = OnWriteIgnore })
	f.expect("SESS.DESTROY a", ":0")
	f.expect("SESS.SET a {}", "+OK")
	f.expect("SET sess:a {}", "+OK")
	if v, _ := f.m.Get("sess:a"); v != "TOMBSTONE" {
		t.Fatalf("ignored write stored %q", v)
	}
}

func TestInvalidInputLosesNothing(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("SESS.SET a {\"keep\":1}", "+OK")
	for cmd, want := range map[string]string{
		"SESS.SET a notjson":         "-ERR invalid session payload: not valid JSON",
		"SESS.SET a [1]":             "-ERR invalid session payload: not a JSON object",
		"SET sess:a 'not json'":      "-ERR invalid session payload: not valid JSON",
		"SESS.SET a {} TTL -5":       "-" + msgTTLArg,
		"SESS.SET a {} FOO 5":        "-ERR syntax error",
		"SET sess:a {} EX 0":         "-ERR invalid expire time in 'set' command",
		"SET sess:a {} EX x":         "-ERR value is not an integer or out of range",
		"SET sess:a {} NX XX":        "-ERR syntax error",
		"SET sess:a {} EX 1 KEEPTTL": "-ERR syntax error",
		"PERSIST sess:a":             "-" + msgPersistDenied,
		"GETEX sess:a PERSIST":       "-" + msgPersistDenied,
		"SESS.GET 'a b'":             "-ERR invalid session id: contains whitespace or control characters",
		"GET sess:":                  "-ERR invalid session id: empty",
		"GET other":                  "-NOPERM key 'other' is outside the session namespace",
		"MSET sess:b {} other {}":    "-NOPERM key 'other' is outside the session namespace",
		"MSET sess:b {} sess:c":      "-ERR wrong number of arguments for 'mset' command",
		"GET":                        "-ERR wrong number of arguments for 'get' command",
		"FLUSHALL":                   "-ERR unknown or unsupported command 'FLUSHALL': sessproxy serves session keys only (see docs/commands.md)",
		"EXPIRE sess:a 10 NX XX":     "-ERR NX and XX, GT or LT options at the same time are not compatible",
		// An integer past what a TTL can be: Redis 7.0.15's answers.
		"EXPIRE sess:a 9223372036854775807":            "-ERR invalid expire time in 'expire' command",
		"PEXPIRE sess:a 9223372036854775807":           "-ERR invalid expire time in 'pexpire' command",
		"SETEX sess:a 9223372036854775807 {}":          "-ERR invalid expire time in 'setex' command",
		"EXPIRE sess:a 99999999999999999999":           "-ERR value is not an integer or out of range",
		"SELECT 3":                                     "-ERR DB index is out of range: sessproxy serves db 0 only",
		"HELLO 4":                                      "-NOPROTO unsupported protocol version",
		"AUTH pw":                                      "-" + msgNoPassword,
		"AUTH nobody pw":                               "-" + msgWrongPass,
		"HELLO 2 AUTH nobody pw":                       "-" + msgWrongPass,
		"CLIENT KILL x":                                "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.",
		"SESS.SET " + strings.Repeat("x", 257) + " {}": "-ERR invalid session id: longer than 256 bytes",
	} {
		f.expect(cmd, want)
	}
	f.expect("SESS.GET a", `${"keep":1}`)
	if _, err := f.m.Get("sess:b"); err == nil {
		t.Fatal("a refused MSET wrote sess:b")
	}
}

// TestAuthNoPassword: with no password configured the default user takes
// any password, as Redis's "nopass" default user does, so a client
// configured with one (HELLO 3 AUTH default <password>) still connects.
func TestAuthNoPassword(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("AUTH default anything", "+OK")
	if got := f.one("HELLO 3 AUTH default anything"); !strings.HasPrefix(got, "%{$server $redis") {
		t.Fatalf("HELLO 3 AUTH default anything = %q, want the HELLO map", got)
	}
	f.expect("SESS.GET a", "null") // served: the connection is authenticated
}

func TestAuthGate(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.RequirePass = "pw"
		o.Users = []User{{Name: "reader", Password: "r", Role: RoleReadonly}}
	})
	f.expect("GET sess:a", "-NOAUTH Authentication required.")
	f.expect("PING", "+PONG")
	f.expect("HELLO 2", "-"+msgHelloNoAuth)
	f.expect("AUTH wrong", "-WRONGPASS invalid username-password pair or user is disabled.")
	f.expect("AUTH reader r", "+OK")
	f.expect("GET sess:a", "nil")
	f.expect("SET sess:a {}", "-NOPERM this user has no permissions to run the 'set' command")
	f.expect("AUTH pw", "+OK")
	f.expect("SET sess:a {}", "+OK")
	f.expect("RESET", "+RESET")
	f.expect("GET sess:a", "-NOAUTH Authentication required.")
	if got := f.one("HELLO 2 AUTH default pw SETNAME web"); !strings.HasPrefix(got, "[$server $redis $version") {
		t.Fatalf("HELLO with AUTH = %q", got)
	}
	f.expect("CLIENT GETNAME", "$web")
}

func TestNoscriptIsRecovered(t *testing.T) {
	f := newFixture(t, nil)
	direct := redis.NewClient(&redis.Options{Addr: f.m.Addr()})
	defer direct.Close()
	if err := direct.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	got := f.do("SESS.SET a {\"v\":1}", "SESS.GET a", "SESS.SET a {\"v\":2}", "SESS.GET a")
	if fmt.Sprint(got) != fmt.Sprint([]string{"+OK", `${"v":1}`, "+OK", `${"v":2}`}) {
		t.Fatalf("after SCRIPT FLUSH: %q", got)
	}
}

func TestUpstreamDownIsAnErrorReplyAndPayloadsAreNotLogged(t *testing.T) {
	f := newFixture(t, nil)
	f.m.Close()
	got := f.one(`SESS.SET a {"secret":"hunter2"}`)
	if !strings.HasPrefix(got, "-ERR upstream error: ") {
		t.Fatalf("reply = %q", got)
	}
	for _, e := range f.logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), "hunter2") {
			t.Fatalf("log holds the payload: %v", e)
		}
	}
	if f.logs.FilterMessage("upstream command failed").Len() == 0 {
		t.Fatal("upstream failure not logged")
	}
}

// An outage fails every command of every client: the log gets one line a
// refusalWindow, the next saying how many were left out, not one each.
func TestUpstreamFailuresAreLoggedOncePerWindow(t *testing.T) {
	f := newFixture(t, nil)
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	f.e.failures.now = clk.now
	f.m.Close()
	for range 3 { // each takes go-redis's dial attempts, most of a second
		if got := f.one("GET sess:a"); !strings.HasPrefix(got, "-ERR upstream error: ") {
			t.Fatalf("reply = %q", got)
		}
	}
	if n := f.logs.FilterMessage("upstream command failed").Len(); n != 1 {
		t.Fatalf("%d lines for 3 failures in one window, want 1", n)
	}
	clk.t = clk.t.Add(refusalWindow)
	f.one("GET sess:a")
	lines := f.logs.FilterMessage("upstream command failed").All()
	if len(lines) != 2 || lines[1].ContextMap()["suppressed"] != int64(2) {
		t.Fatalf("after the window: %d lines, the last %v; want 2, suppressed 2", len(lines), lines[len(lines)-1].ContextMap())
	}
}

func TestQuitStopsThePipeline(t *testing.T) {
	f := newFixture(t, nil)
	got := f.do("PING", "QUIT", "SESS.SET a {}")
	if fmt.Sprint(got) != fmt.Sprint([]string{"+PONG", "+OK"}) || !f.client.Closing() {
		t.Fatalf("replies %q, closing %v", got, f.client.Closing())
	}
	if f.m.Exists("sess:a") {
		t.Fatal("a command after QUIT ran")
	}
}

func TestPlainTTLCommands(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Policy.Persist = ttl.PersistClamp })
	f.expect("SET sess:a {} EX 100", "+OK")
	f.expect("TTL sess:a", ":100")
	f.expect("EXPIRE sess:a 50 GT", ":0")
	f.expect("EXPIRE sess:a 500 GT", ":1")
	f.expect("PEXPIRE sess:a 1000 LT", ":1")
	f.expect("PTTL sess:a", ":1000")
	f.expect("PERSIST sess:a", ":1")
	f.expect("TTL sess:a", ":2592000")
	f.expect("EXPIRE sess:a 0", ":1")
	f.expect("EXISTS sess:a", ":0")
	f.expect("EXPIRE sess:missing 10", ":0")
}

func TestTouch(t *testing.T) {
	f := newFixture(t, nil)
	in := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339Nano) }
	f.expect(`SESS.SET a {"cookie":{"expires":"`+in(time.Hour)+`"}}`, "+OK")
	f.expect(`SESS.TOUCH a {"cookie":{"expires":"`+in(3*time.Hour)+`"}}`, ":1")
	if ttl := f.m.TTL("sess:a"); ttl < 3*time.Hour-time.Minute {
		t.Fatalf("touch with payload: TTL %v", ttl)
	}
	f.m.SetTTL("sess:a", time.Minute)
	f.expect("SESS.TOUCH a", ":1")
	if ttl := f.m.TTL("sess:a"); ttl < time.Hour-time.Minute || ttl > time.Hour {
		t.Fatalf("touch from the stored cookie: TTL %v, want about 1h", ttl)
	}
	f.expect("SESS.TOUCH missing", ":0")
	f.expect("SESS.TOUCH a notjson", "-ERR invalid session payload: not valid JSON")
}

func TestTouchDisabled(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Policy.Touch = false })
	f.expect("SESS.SET a {} TTL 100", "+OK")
	f.expect("SESS.TOUCH a", ":1")
	if ttl := f.m.TTL("sess:a"); ttl != 100*time.Second {
		t.Fatalf("touch=false changed the TTL to %v", ttl)
	}
}

func mustCodec(o codec.Options) codec.Codec {
	c, err := codec.New(o)
	if err != nil {
		panic(err)
	}
	return c
}

func TestRESP3(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("SESS.SET a {}", "+OK")
	got := f.do("HELLO 3", "SESS.GET missing", "MGET sess:a sess:missing", "SESS.ALL", "CLIENT INFO", "COMMAND DOCS", "RESET", "SESS.GET missing")
	if !strings.HasPrefix(got[0], "%{$server $redis $version $7.0.15 $proto :3 ") {
		t.Fatalf("HELLO 3 = %s: want a RESP3 map", got[0])
	}
	want := []string{"null", "[${} null]", "%{$a ${}}"}
	for i, w := range want {
		if got[i+1] != w {
			t.Errorf("reply %d = %s, want %s", i+1, got[i+1], w)
		}
	}
	if !strings.HasPrefix(got[4], "=txt:id=") || !strings.Contains(got[4], " resp=3 ") {
		t.Errorf("CLIENT INFO in RESP3 = %s, want a verbatim string", got[4])
	}
	if !strings.HasPrefix(got[5], "%{") || !strings.Contains(got[5], "$sess.set %{$summary ") || got[6] != "+RESET" || got[7] != "nil" {
		t.Errorf("COMMAND DOCS, RESET, GET after RESET = %v", got[5:])
	}
	f.expect("HELLO 4", "-NOPROTO unsupported protocol version")
}

// A client's consecutive writes share one script call upstream; each still
// gets its own reply and the order holds.
func TestPipelinedWritesShareOneScriptCall(t *testing.T) {
	f := newFixture(t, nil)
	f.expect("SESS.DESTROY b", ":0")
	got := f.do(`SET sess:a {"v":1}`, `SET sess:b {}`, `SESS.SET a {"v":2}`, `SETEX sess:c 100 {}`, "GET sess:a", `SET sess:a {"v":3}`)
	want := []string{"+OK", "-TOMBSTONE session b was destroyed", "+OK", "+OK", `${"v":2}`, "+OK"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replies = %q\nwant       %q", got, want)
	}
	if v, _ := f.m.Get("sess:a"); v != `{"v":3}` || f.m.TTL("sess:c") != 100*time.Second {
		t.Fatalf("sess:a = %s, sess:c TTL %v", v, f.m.TTL("sess:c"))
	}
}

// One key Redis refuses inside a merged run fails only its own write.
func TestOneBadKeyInARunFailsOnlyItself(t *testing.T) {
	f := newFixture(t, nil)
	f.m.HSet("sess:h", "f", "v") // not a string, written behind the proxy's back
	got := f.do(`SET sess:a {}`, `SET sess:h {}`, `SET sess:b {}`)
	if len(got) != 3 || got[0] != "+OK" || !strings.HasPrefix(got[1], "-WRONGTYPE") || got[2] != "+OK" {
		t.Fatalf("replies = %q", got)
	}
	if !f.m.Exists("sess:a") || !f.m.Exists("sess:b") {
		t.Fatal("the good writes around a bad key were lost")
	}
}

// STRLEN answers the length of what the client wrote, whatever the codec
// stores instead.
func TestStrlenIsThePayloadsLength(t *testing.T) {
	payload := `{"cookie":{"originalMaxAge":60000},"n":12345,"s":"` + strings.Repeat("ab", 300) + `"}`
	for name, o := range map[string]codec.Options{
		"msgpack+zstd": {Format: codec.FormatMsgpack, Compress: codec.CompressZstd, CompressMinBytes: -1},
		"json+gzip":    {Compress: codec.CompressGzip, CompressMinBytes: -1},
		"envelope":     {Envelope: true},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, func(opts *Options) { opts.Codec = mustCodec(o) })
			f.do("SET sess:a " + payload)
			if stored, _ := f.m.Get("sess:a"); len(stored) == len(payload) {
				t.Fatalf("the codec stored %d bytes, as many as the payload: the test shows nothing", len(stored))
			}
			want := fmt.Sprintf(":%d", len(payload))
			if got := f.do("STRLEN sess:a", "STRLEN sess:missing"); fmt.Sprint(got) != fmt.Sprint([]string{want, ":0"}) {
				t.Fatalf("STRLEN = %q, want [%s :0]", got, want)
			}
		})
	}
}

// A command that answers the previous value (SET … GET, GETSET, GETEX,
// GETDEL) does nothing when that value cannot be decoded — here encrypted
// under a key id rotated out too early — as an error reply from Redis
// means. Once the value can be decoded again, each of them works on it.
func TestUndecodablePreviousValueIsLeftAlone(t *testing.T) {
	key := func(id string, b byte) string {
		return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
	}
	k1, k2 := key("k1", 1), key("k2", 2)
	f := newFixture(t, func(o *Options) { o.Codec = mustCodec(codec.Options{EncryptKeys: []string{k1}}) })
	cmds := []string{
		"GETSET sess:a {\"v\":2}",
		"SET sess:a {\"v\":2} GET",
		"SET sess:a {\"v\":2} XX GET EX 100",
		"GETEX sess:a EX 100",
		"GETDEL sess:a",
	}
	for _, cmd := range cmds {
		f.e.spaces[0].codec = mustCodec(codec.Options{EncryptKeys: []string{k1}})
		f.expect(`SET sess:a {"v":1} EX 600`, "+OK")
		stored, _ := f.m.Get("sess:a")

		f.e.spaces[0].codec = mustCodec(codec.Options{EncryptKeys: []string{k2}})
		if got := f.one(cmd); !strings.HasPrefix(got, "-ERR session a cannot be decoded: ") {
			t.Fatalf("%s on an undecodable value = %q, want the decode error", cmd, got)
		}
		if now, _ := f.m.Get("sess:a"); now != stored || f.m.TTL("sess:a") != 600*time.Second {
			t.Fatalf("%s answered an error but changed the key (TTL %v)", cmd, f.m.TTL("sess:a"))
		}

		// k1 back as a reading key: the value decodes, and the command is
		// done, its later pipelined command seeing the effect.
		f.e.spaces[0].codec = mustCodec(codec.Options{EncryptKeys: []string{k2, k1}})
		replies := f.do(cmd, "GET sess:a", "TTL sess:a")
		if replies[0] != `${"v":1}` {
			t.Fatalf("%s on a decodable value = %q, want the previous value", cmd, replies[0])
		}
		switch {
		case strings.HasPrefix(cmd, "GETDEL"):
			if replies[1] != "nil" {
				t.Fatalf("GET after %s = %q, want nil", cmd, replies[1])
			}
			f.m.Del("sess:a") // the tombstone, for the next command
		case strings.HasPrefix(cmd, "GETEX"):
			if replies[2] != ":100" {
				t.Fatalf("TTL after %s = %q, want :100", cmd, replies[2])
			}
		case replies[1] != `${"v":2}`:
			t.Fatalf("GET after %s = %q, want the new value", cmd, replies[1])
		}
	}

	// A value without header needs no decoding to be trusted: one round trip.
	f.e.spaces[0].codec = mustCodec(codec.Options{})
	f.expect(`SET sess:p {"v":1}`, "+OK")
	f.expect(`GETSET sess:p {"v":2}`, `${"v":1}`)
	f.expect(`GETDEL sess:p`, `${"v":2}`)
}

// AUTH takes as long for a user that does not exist as for one that does:
// with a 4 MiB password, hashing it only when the name matched (as a name
// compared with == before the password check did) costs milliseconds that
// tell which users exist.
func TestAuthTimingDoesNotTellWhichUsersExist(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.RequirePass = "pw"
		o.Users = []User{{Name: "alice", Password: strings.Repeat("p", 4<<20), Role: RoleApp}}
	})
	fastest := func(cmd string) time.Duration {
		best := time.Hour
		for i := 0; i < 20; i++ {
			start := time.Now()
			f.expect(cmd, "-"+msgWrongPass)
			best = min(best, time.Since(start))
		}
		return best
	}
	missing, existing := fastest("AUTH nobody wrong"), fastest("AUTH alice wrong")
	if existing > 4*missing+200*time.Microsecond {
		t.Fatalf("AUTH of an existing user took %v, of a missing one %v", existing, missing)
	}
	f.expect("AUTH alice "+strings.Repeat("p", 4<<20), "+OK")
	f.expect("AUTH pw", "+OK")
}

// Pipelines of several clients may share one round (NewPipelineIn): each
// queues its commands, the round executes once for them all, and each
// completes with its own replies in its own order — an event loop's way
// of sending every ready client's commands in one upstream exchange. A
// shared pipeline stops before a command that needs a connection of its
// own, and says how many it queued.
func TestPipelinesSharingARound(t *testing.T) {
	f := newFixture(t, nil)
	b := f.e.NewRound()
	ctx := context.Background()
	cmds := func(lines ...string) [][][]byte {
		out := make([][][]byte, len(lines))
		for i, l := range lines {
			for _, a := range splitArgs(l) {
				out[i] = append(out[i], []byte(a))
			}
		}
		return out
	}
	one := f.e.NewPipelineIn(f.e.Connect("127.0.0.1:2", "127.0.0.1:6380"), b)
	two := f.e.NewPipelineIn(f.e.Connect("127.0.0.1:3", "127.0.0.1:6380"), b)
	if n := one.Queue(ctx, cmds(`SET sess:a {"n":1}`, "GET sess:b", "PING", "MULTI", "PING")); n != 3 {
		t.Errorf("first client's Queue = %d, want 3: it stops before MULTI", n)
	}
	if n := two.Queue(ctx, cmds(`SESS.SET b {"n":2}`, "DEL sess:c", "GET sess:a", "CLIENT SETNAME x")); n != 4 {
		t.Errorf("second client's Queue = %d, want 4: CLIENT SETNAME needs no connection of its own", n)
	}
	b.Exec(ctx)
	replies := func(p *Pipeline) []string {
		var out bytes.Buffer
		p.Complete(func(r []byte) { out.Write(r) })
		var got []string
		r := bufio.NewReader(&out)
		for r.Buffered() > 0 || out.Len() > 0 {
			v, err := readReply(r)
			if err != nil {
				break
			}
			got = append(got, v)
		}
		return got
	}
	// The batch runs what was queued in the order it was queued: one's
	// commands, then two's.
	if got, want := fmt.Sprint(replies(one)), `[+OK nil +PONG]`; got != want {
		t.Errorf("first client's replies = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(replies(two)), `[+OK :0 ${"n":1} +OK]`; got != want {
		t.Errorf("second client's replies = %s, want %s", got, want)
	}
	f.expect("GET sess:a", `${"n":1}`)
	f.expect("SESS.GET b", `${"n":2}`)
	manyKeys := "MGET" + strings.Repeat(" sess:k", maxChunkKeys+1)
	manyIDs := strings.Repeat(" k", maxChunkKeys+1)
	for _, cmd := range []string{"MULTI", "WATCH sess:a", "SUBSCRIBE __redis__:invalidate", "client Tracking on", "KEYS *", "SESS.ALL", "DBSIZE", "SCAN 0", "SESS.SCAN 0", manyKeys, "DEL" + manyKeys[4:], "SESS.DESTROY" + manyIDs, "SESS.EXISTS" + manyIDs} {
		if one.Queue(ctx, cmds(cmd)) != 0 {
			t.Errorf("%.40s was queued on a shared pipeline", cmd)
		}
	}
	// Up to one chunk, a multi-key command runs on the round.
	if n := one.Queue(ctx, cmds("MGET"+strings.Repeat(" sess:k", maxChunkKeys), "SESS.EXISTS"+strings.Repeat(" k", maxChunkKeys))); n != 2 {
		t.Errorf("an MGET of %d keys and a SESS.EXISTS of as many ids: Queue = %d, want 2", maxChunkKeys, n)
	}
	b.Exec(ctx)
	one.Complete(func([]byte) {})
}

// An unknown command of any length is answered as unknown, and its name is
// not kept: the client's lookup scratch grew to the longest name it had
// sent and held it for the client's life.
func TestLongUnknownCommandNameIsNotKept(t *testing.T) {
	f := newFixture(t, nil)
	name := strings.Repeat("A", 1<<20)
	if got := f.one(name); got != "-"+errUnknownCommand(name) {
		t.Fatalf("a 1 MiB command name: %.80q", got)
	}
	if c := cap(f.client.scratch); c > 1024 {
		t.Errorf("the client keeps %d bytes of scratch after a long unknown name", c)
	}
	if got := f.one("ping"); got != "+PONG" {
		t.Errorf("ping: %q", got)
	}
}

// A client's name and its CLIENT SETINFO values are kept for the
// connection's life, so their length is bounded (Redis's is not): 16 idle
// clients that set 4 MiB each held 189 MB outside every budget.
func TestClientNamesAreBounded(t *testing.T) {
	f := newFixture(t, nil)
	long, longer := strings.Repeat("n", 1024), strings.Repeat("n", 1025)
	f.expect("CLIENT SETNAME "+long, "+OK")
	f.expect("CLIENT GETNAME", "$"+long)
	f.expect("CLIENT SETNAME "+longer, "-ERR client name longer than 1024 bytes")
	f.expect("CLIENT GETNAME", "$"+long)
	f.expect("CLIENT SETINFO LIB-NAME "+longer, "-ERR lib-name longer than 1024 bytes")
	f.expect("CLIENT SETINFO lib-ver "+longer, "-ERR lib-ver longer than 1024 bytes")
	f.expect("CLIENT SETINFO LIB-VER 1.0", "+OK")
	f.expect("CLIENT SETNAME 'a b'", "-"+msgClientName)
	if got := f.one("HELLO 2 SETNAME " + longer); got != "-ERR client name longer than 1024 bytes" {
		t.Errorf("HELLO 2 SETNAME of 1025 bytes = %.60q", got)
	}
	f.expect("CLIENT GETNAME", "$"+long)
}

// CLIENT NO-EVICT and NO-TOUCH take ON or OFF, as in Redis; anything else
// is Redis's syntax error.
func TestClientNoEvictTakesOnOrOff(t *testing.T) {
	f := newFixture(t, nil)
	for _, sub := range []string{"NO-EVICT", "NO-TOUCH"} {
		f.expect("CLIENT "+sub+" on", "+OK")
		f.expect("CLIENT "+sub+" OFF", "+OK")
		f.expect("CLIENT "+sub+" maybe", "-ERR syntax error")
	}
}
