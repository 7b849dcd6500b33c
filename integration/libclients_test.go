package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	redigo "github.com/gomodule/redigo/redis"
)

// The client libraries of other languages, driven through the proxy from
// scripts in integration/clients (redis-py, redis-rb), and redigo; each
// step is checked in the upstream directly.

// --- scripts driven step by step --------------------------------------------

// scriptClient is a client library run by a script in another language,
// one step at a time: the test writes {"step": name, "args": […]} as a
// line, the script runs the step with its client and answers
// {"result": …} as a line, and the test checks the upstream before the
// next step. A step that raises ends the script, its error on stderr.
type scriptClient struct {
	t      *testing.T
	script string
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr bytes.Buffer
	done   chan error // the script's exit
}

// startScript runs interp on integration/clients/<script> with the proxy's
// address in SESSPROXY_ADDR, and stops it at the end of the test.
func startScript(t *testing.T, p *proxyHandle, interp, script string) *scriptClient {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("clients", script))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	cmd := exec.CommandContext(ctx, interp, path)
	cmd.Dir = filepath.Dir(path)
	// No __pycache__ left in the source tree.
	cmd.Env = append(os.Environ(), "SESSPROXY_ADDR="+p.addr, "PYTHONDONTWRITEBYTECODE=1")
	s := &scriptClient{t: t, script: script, done: make(chan error, 1)}
	cmd.Stderr = &s.stderr
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdout = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s %s: %v", interp, script, err)
	}
	go func() { s.done <- cmd.Wait() }()
	// Registered after startProxy's: the script has closed its connections
	// when the proxy shuts down.
	t.Cleanup(func() {
		defer cancel()
		s.stdin.Close() // end of steps: the script exits
		select {
		case err := <-s.done:
			if err != nil && !t.Failed() {
				t.Errorf("%s exited: %v\n%s", script, err, s.stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s still running 10s after its last step", script)
		}
	})
	return s
}

// step runs one step and decodes its result into out (nil: ignored).
func (s *scriptClient) step(out interface{}, name string, args ...interface{}) {
	s.t.Helper()
	if args == nil {
		args = []interface{}{}
	}
	req, err := json.Marshal(map[string]interface{}{"step": name, "args": args})
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.stdin.Write(append(req, '\n')); err != nil {
		s.t.Fatalf("%s: step %s: write: %v\n%s", s.script, name, err, s.exited())
	}
	line, err := s.stdout.ReadBytes('\n')
	if err != nil {
		s.t.Fatalf("%s: step %s: no answer (%v):\n%s", s.script, name, err, s.exited())
	}
	var reply struct{ Result json.RawMessage }
	if err := json.Unmarshal(line, &reply); err != nil {
		s.t.Fatalf("%s: step %s: answer %q: %v", s.script, name, line, err)
	}
	if out != nil {
		if err := json.Unmarshal(reply.Result, out); err != nil {
			s.t.Fatalf("%s: step %s: result %s: %v", s.script, name, reply.Result, err)
		}
	}
}

// exited waits a moment for the script to exit and says how it did.
func (s *scriptClient) exited() string {
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return fmt.Sprintf("exit: %v\n%s", err, s.stderr.String())
	case <-time.After(5 * time.Second):
		return "still running\n" + s.stderr.String()
	}
}

// txReply is one reply of a transaction as the scripts hand it over: a
// value, or {"error": message}.
type txReply = interface{}

// txError is the error a script reported in place of one reply.
func txError(r txReply) string {
	if m, ok := r.(map[string]interface{}); ok {
		if e, ok := m["error"].(string); ok {
			return e
		}
	}
	return ""
}

// interpreter is the first of candidates that runs check (the library is
// installed for it); with none the test fails: integration tests are never
// skipped.
func interpreter(t *testing.T, lib string, candidates []string, check ...string) string {
	t.Helper()
	var tried []string
	for _, c := range candidates {
		out, err := exec.Command(c, check...).CombinedOutput()
		if err == nil {
			return c
		}
		tried = append(tried, fmt.Sprintf("%s: %v %s", c, err, strings.TrimSpace(string(out))))
	}
	t.Fatalf("%s is not installed: run `make deps` (as root; it installs it with apt-get)\n%s", lib, strings.Join(tried, "\n"))
	return ""
}

// python is a Python 3 with redis-py: Debian's /usr/bin/python3, where
// python3-redis installs it, else python3 on PATH.
func python(t *testing.T) string {
	t.Helper()
	return interpreter(t, "redis-py (python3-redis)", []string{"/usr/bin/python3", "python3"}, "-c", "import redis")
}

// ruby is a Ruby with redis-rb (ruby-redis).
func ruby(t *testing.T) string {
	t.Helper()
	return interpreter(t, "redis-rb (ruby-redis)", []string{"ruby"}, "-e", `require "redis"`)
}

// --- redis-py ----------------------------------------------------------------

// testPyTx: redis-py's pipeline(transaction=True) and transaction(). The
// keys share a hash tag, so one slot in a cluster.
func testPyTx(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	py := startScript(t, p, python(t), "py/tx.py")
	const a, b, c, gone = "sess:{py}a", "sess:{py}b", "sess:{py}c", "sess:{py}gone"
	const pa, pb = `{"user":"ada"}`, `{"user":"bob"}`

	// SET, SET, EXPIRE, GET in one MULTI … EXEC: the writes get the policy
	// TTL, or the one asked; the GET sees the SET before it.
	var replies []txReply
	py.step(&replies, "tx", a, b, pa, pb)
	if fmt.Sprint(replies) != fmt.Sprint([]txReply{true, true, true, pa}) {
		t.Errorf("pipeline(transaction=True).execute() = %v, want [True True True %s]", replies, pa)
	}
	p.wantStored(t, a, pa)
	p.wantStored(t, b, pb)
	p.wantTTL(t, a, defaultTTL)
	p.wantTTL(t, b, 100*time.Second)

	// A year asked is clamped to ttl.max, and TTL inside says so.
	py.step(&replies, "tx_long_ttl", c, `{}`)
	if len(replies) != 2 || replies[0] != true || replies[1] != maxTTL.Seconds() {
		t.Errorf("SET EX a year, TTL in a transaction = %v, want [True %v]", replies, maxTTL.Seconds())
	}
	p.wantTTL(t, c, maxTTL)

	// A write to a destroyed session fails in its place; the others apply.
	wantReply(t, p.client(t), 0, "DEL", gone)
	py.step(&replies, "tx_tombstone", a, gone, `{"v":2}`)
	if len(replies) != 3 || replies[0] != true || txError(replies[1]) != destroyedError("{py}gone") || replies[2] != true {
		t.Errorf("execute(raise_on_error=False) = %v, want [True, %q, True]", replies, destroyedError("{py}gone"))
	}
	p.wantStored(t, a, `{"v":2}`)
	p.wantTTL(t, a, 120*time.Second)
	p.wantTombstone(t, gone)

	// transaction(): WATCH, GET, MULTI, SET, EXEC.
	wantReply(t, p.client(t), "OK", "SET", a, `{"n":41}`)
	py.step(&replies, "watch_increment", a)
	if fmt.Sprint(replies) != "[true]" {
		t.Errorf("transaction() = %v, want [True]", replies)
	}
	p.wantStored(t, a, `{"n": 42}`)
	p.wantTTL(t, a, defaultTTL)
}

// testPyLock: redis-py's Lock on a session's lock key (<sid>_LOCK): SET NX
// PX, and its release, extend and reacquire scripts, which the proxy runs
// with the lock rules (TTL at most ttl.lock_max, DEL without a tombstone).
func testPyLock(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	py := startScript(t, p, python(t), "py/lock.py")
	const sid, sess, lock = "py-lock", "sess:py-lock", "sess:py-lock_LOCK"
	wantReply(t, p.client(t), "OK", "SESS.SET", sid, `{"a":1}`)

	var acq struct {
		Acquired bool
		Token    string
	}
	py.step(&acq, "acquire", lock)
	if !acq.Acquired || acq.Token == "" {
		t.Fatalf("acquire = %+v, want the lock and its token", acq)
	}
	p.wantStored(t, lock, acq.Token)
	p.wantTTL(t, lock, 30*time.Second)

	// Another Lock on the same name waits, and gives up.
	var contend struct {
		Nonblocking bool    `json:"nonblocking"`
		Blocking    bool    `json:"blocking"`
		Waited      float64 `json:"waited"`
		Locked      bool    `json:"locked"`
		HolderOwns  bool    `json:"holder_owns"`
		OtherOwns   bool    `json:"other_owns"`
	}
	py.step(&contend, "contend", lock)
	if contend.Nonblocking || contend.Blocking || contend.Waited < 0.25 || !contend.Locked || !contend.HolderOwns || contend.OtherOwns {
		t.Errorf("a second Lock while held = %+v, want neither acquire, a wait of 0.3s, locked, owned by the holder only", contend)
	}
	p.wantStored(t, lock, acq.Token)

	// extend (the extend script: PTTL, then PEXPIRE): added to the TTL, or
	// replacing it; past ttl.lock_max it is lowered to it.
	var ok bool
	py.step(&ok, "extend", 10, false)
	if !ok {
		t.Errorf("extend(10) = false")
	}
	p.wantTTL(t, lock, 40*time.Second)
	py.step(&ok, "extend", 3600, true)
	if !ok {
		t.Errorf("extend(3600, replace_ttl=True) = false")
	}
	p.wantTTL(t, lock, lockMax)
	py.step(&ok, "reacquire")
	if !ok {
		t.Errorf("reacquire() = false")
	}
	p.wantTTL(t, lock, 30*time.Second)
	p.wantStored(t, lock, acq.Token)

	// release (the release script: GET, compare, DEL): the lock key is
	// gone, with no tombstone; the session is untouched.
	var rel struct {
		Locked bool
		SHA    string
	}
	py.step(&rel, "release", "holder")
	if rel.Locked {
		t.Errorf("locked() after release = true")
	}
	p.wantMissing(t, lock)
	p.wantStored(t, sess, `{"a":1}`)
	// It went through the script: the proxy maps its SHA-1 now.
	wantReply(t, p.client(t), []interface{}{int64(1)}, "SCRIPT", "EXISTS", rel.SHA)

	// The other Lock takes it at once; the release script with a token
	// not its own leaves it alone.
	py.step(&acq, "acquire_other")
	if !acq.Acquired {
		t.Fatalf("acquire after release = %+v, want the lock", acq)
	}
	p.wantStored(t, lock, acq.Token)
	var released string
	py.step(&released, "release_with", "not-the-token")
	if !strings.HasPrefix(released, "LockNotOwnedError") {
		t.Errorf("release with another token = %q, want LockNotOwnedError", released)
	}
	p.wantStored(t, lock, acq.Token)
	py.step(&rel, "release", "other")
	p.wantMissing(t, lock)

	// with r.lock(…): held inside the block, deleted after it.
	var block struct {
		HeldInside  bool `json:"held_inside"`
		ExistsAfter int  `json:"exists_after"`
	}
	py.step(&block, "with_block", lock)
	if !block.HeldInside || block.ExistsAfter != 0 {
		t.Errorf("with r.lock(): %+v, want held inside and gone after", block)
	}
	p.wantMissing(t, lock)
	p.wantStored(t, sess, `{"a":1}`)
}

// --- redis-rb ----------------------------------------------------------------

// testRbMulti: redis-rb's multi { |tx| … }, one whose write hits a
// destroyed session, and WATCH then MULTI. The keys share a hash tag.
func testRbMulti(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	rb := startScript(t, p, ruby(t), "rb/multi.rb")
	const a, b, gone = "sess:{rb}a", "sess:{rb}b", "sess:{rb}gone"
	const pa, pb = `{"user":"ada"}`, `{"user":"bob"}`

	var replies []txReply
	rb.step(&replies, "multi", a, b, pa, pb)
	if fmt.Sprint(replies) != "[OK OK true]" {
		t.Errorf(`multi { set; set; expire } = %v, want ["OK", "OK", true]`, replies)
	}
	p.wantStored(t, a, pa)
	p.wantStored(t, b, pb)
	p.wantTTL(t, a, defaultTTL)
	p.wantTTL(t, b, 100*time.Second)

	// The destroyed session's SET answers TOMBSTONE in its place in EXEC's
	// array; redis-rb 4 raises that error from multi and leaves it in the
	// command's future (the ones before hold their replies, the ones after
	// stay unset), and the SET and EXPIRE around it apply in Redis.
	wantReply(t, p.client(t), 0, "DEL", gone)
	p.wantTombstone(t, gone)
	var tomb struct {
		Raised  string
		Replies []txReply
	}
	rb.step(&tomb, "multi_tombstone", a, gone, `{"v":2}`)
	if r := tomb.Replies; tomb.Raised != destroyedError("{rb}gone") || len(r) != 3 || r[0] != "OK" ||
		txError(r[1]) != destroyedError("{rb}gone") || r[2] != "not ready" {
		t.Errorf("multi with a destroyed session raised %q, futures %v; want it to raise %[3]q, futures [OK, %[3]q, not ready]",
			tomb.Raised, tomb.Replies, destroyedError("{rb}gone"))
	}
	p.wantStored(t, a, `{"v":2}`)
	p.wantTTL(t, a, 120*time.Second)
	p.wantTombstone(t, gone)

	// WATCH, a write from elsewhere, MULTI … EXEC: nil, nothing run.
	var got interface{}
	rb.step(&got, "watch", a)
	if got != `{"v":2}` {
		t.Errorf("GET after WATCH = %v", got)
	}
	wantReply(t, p.client(t), "OK", "SET", a, `{"v":3}`)
	rb.step(&replies, "multi_set", a, `{"v":4}`)
	if replies != nil {
		t.Errorf("multi after a watched key changed = %v, want nil", replies)
	}
	p.wantStored(t, a, `{"v":3}`)
	rb.step(&got, "watch", a)
	rb.step(&replies, "multi_set", a, `{"v":5}`)
	if fmt.Sprint(replies) != "[OK]" {
		t.Errorf("multi after an untouched WATCH = %v, want [\"OK\"]", replies)
	}
	p.wantStored(t, a, `{"v":5}`)
	p.wantTTL(t, a, defaultTTL)
}

// --- redigo ------------------------------------------------------------------

// redigoConn is a redigo connection to the proxy, closed at the end of the
// test.
func redigoConn(t *testing.T, p *proxyHandle) redigo.Conn {
	t.Helper()
	c, err := redigo.Dial("tcp", p.addr, redigo.DialConnectTimeout(5*time.Second),
		redigo.DialReadTimeout(10*time.Second), redigo.DialWriteTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("redigo dial %s: %v", p.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testRedigoScript: redigo's Script.Do sends EVALSHA and, on NOSCRIPT,
// EVAL; the script's writes obey the policy.
func testRedigoScript(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := redigoConn(t, p)
	const key, sid = "sess:redigo", "redigo"
	set := redigo.NewScript(1, `return redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])`)
	get := redigo.NewScript(1, `return redis.call('get', KEYS[1])`)
	sha := sha1Of(`return redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])`)

	// A fresh proxy knows no script: the EVALSHA fails, the EVAL runs it.
	if exists, err := redigo.Ints(c.Do("SCRIPT", "EXISTS", sha)); err != nil || fmt.Sprint(exists) != "[0]" {
		t.Fatalf("SCRIPT EXISTS before = %v, %v; want [0]", exists, err)
	}
	if _, err := c.Do("EVALSHA", sha, 1, key, `{}`, 60); err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
		t.Fatalf("EVALSHA of an unknown script: %v, want NOSCRIPT", err)
	}
	if r, err := redigo.String(set.Do(c, key, `{"r":1}`, 120)); err != nil || r != "OK" {
		t.Fatalf("Script.Do (EVAL after NOSCRIPT) = %q, %v", r, err)
	}
	p.wantStored(t, key, `{"r":1}`)
	p.wantTTL(t, key, 120*time.Second)
	// Now EVALSHA alone: the proxy maps redigo's SHA-1 to the wrapped script.
	if exists, err := redigo.Ints(c.Do("SCRIPT", "EXISTS", sha)); err != nil || fmt.Sprint(exists) != "[1]" {
		t.Errorf("SCRIPT EXISTS after = %v, %v; want [1]", exists, err)
	}
	if r, err := redigo.String(c.Do("EVALSHA", sha, 1, key, `{"r":2}`, 99999999)); err != nil || r != "OK" {
		t.Fatalf("EVALSHA = %q, %v", r, err)
	}
	p.wantStored(t, key, `{"r":2}`)
	p.wantTTL(t, key, maxTTL)
	if r, err := redigo.String(get.Do(c, key)); err != nil || r != `{"r":2}` {
		t.Errorf("get script = %q, %v", r, err)
	}
	// Load then SendHash in a pipeline, as redigo's pooled users do.
	if err := set.Load(c); err != nil {
		t.Fatalf("Script.Load: %v", err)
	}
	if err := set.SendHash(c, key, `{"r":3}`, 60); err != nil {
		t.Fatal(err)
	}
	if err := get.Send(c, key); err != nil {
		t.Fatal(err)
	}
	if r, err := redigo.Strings(c.Do("")); err != nil || fmt.Sprint(r) != `[OK {"r":3}]` {
		t.Errorf("SendHash, Send, Do(\"\") = %q, %v", r, err)
	}
	p.wantTTL(t, key, time.Minute)

	// A destroyed session: the script's write is refused, nothing written.
	if n, err := redigo.Int(c.Do("DEL", key)); err != nil || n != 1 {
		t.Fatalf("DEL = %d, %v", n, err)
	}
	p.wantTombstone(t, key)
	if _, err := set.Do(c, key, `{"r":4}`, 60); err == nil || !strings.Contains(err.Error(), destroyedError(sid)) {
		t.Errorf("Script.Do on a destroyed session: %v, want %q", err, destroyedError(sid))
	}
	if r, err := get.Do(c, key); err != nil || r != nil {
		t.Errorf("get script on a destroyed session = %v, %v; want nil", r, err)
	}
	p.wantTombstone(t, key)
}

// testRedigoMulti: redigo's Send("MULTI") … Do("EXEC"): the replies in one
// array, a destroyed session's error in its place, EXECABORT after a
// queue-time error, nil after a WATCH conflict. The keys share a hash tag.
func testRedigoMulti(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := redigoConn(t, p)
	const a, b, gone = "sess:{rg}a", "sess:{rg}b", "sess:{rg}gone"
	exec := func(cmds ...[]interface{}) (interface{}, error) {
		t.Helper()
		if err := c.Send("MULTI"); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range cmds {
			if err := c.Send(cmd[0].(string), cmd[1:]...); err != nil {
				t.Fatal(err)
			}
		}
		return c.Do("EXEC")
	}

	r, err := redigo.Values(exec(
		[]interface{}{"SET", a, `{"g":1}`},
		[]interface{}{"SET", b, `{"g":2}`},
		[]interface{}{"EXPIRE", b, 100},
		[]interface{}{"GET", a},
	))
	if err != nil || fmt.Sprintf("%s", r) != `[OK OK %!s(int64=1) {"g":1}]` {
		t.Errorf("MULTI SET SET EXPIRE GET EXEC = %q, %v", r, err)
	}
	p.wantStored(t, a, `{"g":1}`)
	p.wantStored(t, b, `{"g":2}`)
	p.wantTTL(t, a, defaultTTL)
	p.wantTTL(t, b, 100*time.Second)

	if _, err := c.Do("DEL", gone); err != nil {
		t.Fatal(err)
	}
	r, err = redigo.Values(exec(
		[]interface{}{"SET", a, `{"g":3}`},
		[]interface{}{"SET", gone, `{"g":3}`},
		[]interface{}{"EXPIRE", a, 120},
	))
	if err != nil || len(r) != 3 {
		t.Fatalf("EXEC with a destroyed session = %q, %v; want 3 replies", r, err)
	}
	if e, ok := r[1].(redigo.Error); !ok || string(e) != destroyedError("{rg}gone") {
		t.Errorf("EXEC reply for the destroyed session = %#v, want redigo.Error %q", r[1], destroyedError("{rg}gone"))
	}
	if r[0] != "OK" || r[2] != int64(1) {
		t.Errorf("EXEC replies around it = %#v, %#v; want OK, 1", r[0], r[2])
	}
	p.wantStored(t, a, `{"g":3}`)
	p.wantTTL(t, a, 120*time.Second)
	p.wantTombstone(t, gone)

	// A queue-time error (a key outside the namespace): redigo's Do
	// returns the first error among the pending replies; nothing ran.
	_, err = exec([]interface{}{"SET", a, `{"g":4}`}, []interface{}{"GET", "other:{rg}"})
	if err == nil || !strings.HasPrefix(err.Error(), "NOPERM ") {
		t.Errorf("EXEC after a NOPERM at queue time: %v, want the NOPERM", err)
	}
	p.wantStored(t, a, `{"g":3}`)

	// WATCH, a write straight to Redis, MULTI … EXEC: a nil reply.
	if _, err := c.Do("WATCH", a); err != nil {
		t.Fatal(err)
	}
	if err := up.direct.Set(bg, a, `{"g":5}`, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if r, err := exec([]interface{}{"SET", a, `{"g":6}`}); err != nil || r != nil {
		t.Errorf("EXEC after the watched key changed = %#v, %v; want nil", r, err)
	}
	p.wantStored(t, a, `{"g":5}`)
}
