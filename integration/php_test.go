package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store/codec"
)

// PHP's native sessions (php-cli with phpredis, session.save_handler =
// redis) through the proxy, with phpredis's session locking on: each
// request is a php-cli run of php/session.php. PHP stores its own
// serialize format, so the proxy runs with the raw codec.

// phpPrefixParam is the save_path's prefix parameter: the proxy's sess:,
// or none (phpredis's own PHPREDIS_SESSION:) for a proxy on the phpredis
// preset.
func (p *proxyHandle) phpPrefixParam() string {
	if p.phpNativePrefix {
		return ""
	}
	return "?prefix=sess:"
}

// phpMaxLifetime is session.gc_maxlifetime as the requests set it: the
// TTL of phpredis's SETEX.
const phpMaxLifetime = time.Hour

// phpLock is phpredis's locking configuration for one request.
type phpLock struct {
	off bool
	// expire is redis.session.lock_expire in seconds (phpredis: PX
	// expire*1000; 0 takes max_execution_time, 0 in the CLI: no PX).
	expire int
	// wait is redis.session.lock_wait_time, the pause between SET NX
	// tries (phpredis's unit is microseconds); retries is
	// redis.session.lock_retries. After the last try phpredis reads the
	// session without the lock (a notice).
	wait    time.Duration
	retries int
}

// phpLocking is the configuration of most requests: 20 ms between tries,
// up to 10 s of waiting, a 5 s lock.
var phpLocking = phpLock{expire: 5, wait: 20 * time.Millisecond, retries: 500}

// phpResult is what php/session.php prints when it ends. Times are
// milliseconds since the epoch.
type phpResult struct {
	PID      int      `json:"pid"`
	Started  bool     `json:"started"` // session_start's result
	Read     *int     `json:"read"`    // the counter it read; nil: none
	OK       bool     `json:"ok"`      // session_write_close's or session_destroy's result
	Errors   []string `json:"errors"`  // PHP's warnings and notices
	Asked    float64  `json:"asked"`
	Acquired float64  `json:"acquired"`
	Close    float64  `json:"close"`
	Released float64  `json:"released"`
	End      float64  `json:"end"`
}

// phpRun is one running request.
type phpRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string // stdout, closed at EOF
	stderr bytes.Buffer
	// acquiredLine is the first line, once read by waitAcquired.
	acquiredLine string
}

// requirePHP fails (never skips) when php-cli or its redis extension is
// missing.
func requirePHP(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("php"); err != nil {
		t.Fatalf("php is not installed: the PHP session tests need php-cli and php-redis (run make deps) (%v)", err)
	}
	out, err := exec.Command("php", "-m").CombinedOutput()
	if err != nil || !strings.Contains("\n"+string(out), "\nredis\n") {
		t.Fatalf("php has no redis extension: the PHP session tests need php-redis (run make deps) (php -m: %v)\n%s", err, out)
	}
}

// php starts one request on session id: action "incr", "read" or "destroy",
// sleeping sleep after session_start (holding the lock when locking is on).
func (p *proxyHandle) php(t *testing.T, id, action string, sleep time.Duration, lock phpLock) *phpRun {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("php", "session.php"))
	if err != nil {
		t.Fatal(err)
	}
	enabled := "1"
	if lock.off {
		enabled = "0"
	}
	args := []string{
		"-d", "session.save_handler=redis",
		// Quoted for PHP's ini parser, which refuses a bare '='.
		"-d", fmt.Sprintf(`session.save_path="tcp://127.0.0.1:%d%s"`, p.port, p.phpPrefixParam()),
		"-d", fmt.Sprintf("session.gc_maxlifetime=%d", int(phpMaxLifetime.Seconds())),
		"-d", "redis.session.locking_enabled=" + enabled,
		"-d", fmt.Sprintf("redis.session.lock_expire=%d", lock.expire),
		"-d", fmt.Sprintf("redis.session.lock_wait_time=%d", lock.wait.Microseconds()),
		"-d", fmt.Sprintf("redis.session.lock_retries=%d", lock.retries),
		script, id, action, fmt.Sprint(sleep.Milliseconds()),
	}
	r := &phpRun{t: t, cmd: exec.Command("php", args...), lines: make(chan string, 4)}
	r.cmd.Stderr = &r.stderr
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start php: %v", err)
	}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill() // a no-op once it has exited
		for range r.lines {
		}
		_ = r.cmd.Wait()
	})
	return r
}

// line is the next line the request prints, within d.
func (r *phpRun) line(d time.Duration) (string, bool) {
	select {
	case l, ok := <-r.lines:
		return l, ok
	case <-time.After(d):
		r.t.Fatalf("php %d printed nothing in %v; stderr:\n%s", r.cmd.Process.Pid, d, r.stderr.String())
		return "", false
	}
}

// waitAcquired waits for the line session.php prints once session_start
// returned (the lock taken, the session read).
func (r *phpRun) waitAcquired() {
	r.t.Helper()
	if r.acquiredLine != "" {
		return
	}
	l, ok := r.line(20 * time.Second)
	if !ok || !strings.HasPrefix(l, `{"acquired":`) {
		r.t.Fatalf("php %d: first line %q, want the acquired line; stderr:\n%s", r.cmd.Process.Pid, l, r.stderr.String())
	}
	r.acquiredLine = l
}

// wait waits for the request to end and returns its result.
func (r *phpRun) wait() phpResult {
	r.t.Helper()
	r.waitAcquired()
	l, _ := r.line(30 * time.Second)
	for range r.lines {
	}
	if err := r.cmd.Wait(); err != nil {
		r.t.Fatalf("php %d: %v; stdout %q; stderr:\n%s", r.cmd.Process.Pid, err, l, r.stderr.String())
	}
	var res phpResult
	if err := json.Unmarshal([]byte(l), &res); err != nil {
		r.t.Fatalf("php %d: result %q: %v; stderr:\n%s", r.cmd.Process.Pid, l, err, r.stderr.String())
	}
	if r.stderr.Len() > 0 {
		r.t.Errorf("php %d wrote to stderr:\n%s", res.PID, r.stderr.String())
	}
	return res
}

// phpStartProxy starts a proxy that stores PHP's serialized sessions as
// they come (the raw codec).
func phpStartProxy(t *testing.T, up *upstream) *proxyHandle {
	t.Helper()
	requirePHP(t)
	return startProxy(t, up, phpRawCodec(t))
}

// phpRawCodec is the codec the PHP tests' proxies use.
func phpRawCodec(t *testing.T) func(*commands.Options, *proxy.Options) {
	t.Helper()
	return withCodec(t, codec.Options{Format: codec.FormatRaw, MaxPayloadBytes: 1 << 20})
}

// waitLock polls Redis directly until the lock key holds want ("" : until
// it is gone), for at most d, and returns how long that took.
func (p *proxyHandle) waitLock(t *testing.T, lock, want string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		v, _ := p.stored(t, lock)
		if v == want {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("upstream: %s = %q after %v, want %q", lock, v, d, want)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// phpToken is phpredis's lock value for the process pid: "<host>|<pid>".
func phpToken(t *testing.T, pid int) string {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s|%d", host, pid)
}

// wantLockTTL checks a held lock's TTL in Redis: positive, at most want
// (lock_expire) and at most ttl.lock_max.
func (p *proxyHandle) wantLockTTL(t *testing.T, lock string, want time.Duration) {
	t.Helper()
	got := p.pttl(t, lock)
	if got <= 0 || got > want || got > lockMax {
		t.Errorf("upstream: PTTL %s = %v while held, want at most %v (lock_expire) and %v (ttl.lock_max)", lock, got, want, lockMax)
	}
}

// phpSerialized is PHP's serialize_handler=php form of the session
// session.php writes.
func phpSerialized(counter, pid int) string {
	return fmt.Sprintf("counter|i:%d;by|i:%d;", counter, pid)
}

func readCounter(r phpResult) string {
	if r.Read == nil {
		return "none"
	}
	return fmt.Sprint(*r.Read)
}

// wantClean checks a request saw its session started, its write or
// destroy succeed, and PHP report nothing.
func wantClean(t *testing.T, name string, r phpResult) {
	t.Helper()
	if !r.Started || !r.OK || len(r.Errors) > 0 {
		t.Errorf("php %s: session_start %v, write %v, PHP said %q; want success and nothing said", name, r.Started, r.OK, r.Errors)
	}
}

// testPHPSessionLocking: two concurrent requests on one session. B asks
// while A holds the lock, waits for A's release, and reads A's write. In
// Redis: the session holds PHP's serialized data with gc_maxlifetime as
// its TTL, the lock held a TTL of lock_expire and is gone after both.
func testPHPSessionLocking(t *testing.T, up *upstream) {
	p := phpStartProxy(t, up)
	const sid = "php-locking"
	sess, lock := "sess:"+sid, "sess:"+sid+"_LOCK"

	// A takes the lock, reads nothing, sets counter=1 and holds the lock a
	// second before session_write_close writes and releases.
	a := p.php(t, sid, "incr", time.Second, phpLocking)
	p.waitLock(t, lock, phpToken(t, a.cmd.Process.Pid), 10*time.Second)
	p.wantLockTTL(t, lock, time.Duration(phpLocking.expire)*time.Second)
	b := p.php(t, sid, "incr", 0, phpLocking)
	ra, rb := a.wait(), b.wait()
	wantClean(t, "A", ra)
	wantClean(t, "B", rb)
	if ra.Read != nil {
		t.Errorf("A read counter %s, want none (a new session)", readCounter(ra))
	}
	if rb.Read == nil || *rb.Read != 1 {
		t.Errorf("B read counter %s, want A's 1", readCounter(rb))
	}
	if rb.Asked >= ra.Close {
		t.Fatalf("B asked at %.0f, after A began to close at %.0f: the test did not overlap them", rb.Asked, ra.Close)
	}
	if rb.Acquired < ra.Close {
		t.Errorf("B acquired the lock at %.0f, before A closed at %.0f", rb.Acquired, ra.Close)
	}
	t0 := ra.Acquired
	t.Logf("php locking: %s: A acquired +0ms, A wrote +%.0fms, A released +%.0fms, B asked +%.0fms, B acquired +%.0fms (waited %.0f ms), B read counter=%s",
		up.name, ra.Close-t0, ra.Released-t0, rb.Asked-t0, rb.Acquired-t0, rb.Acquired-rb.Asked, readCounter(rb))

	p.wantStored(t, sess, phpSerialized(2, rb.PID))
	p.wantTTL(t, sess, phpMaxLifetime)
	p.wantMissing(t, lock)

	// A request that changes nothing: session.lazy_write sends EXPIRE
	// instead of SETEX, which gives the session gc_maxlifetime again.
	if err := up.direct.Expire(bg, sess, time.Minute).Err(); err != nil {
		t.Fatalf("direct EXPIRE: %v", err)
	}
	wantClean(t, "read", p.php(t, sid, "read", 0, phpLocking).wait())
	p.wantStored(t, sess, phpSerialized(2, rb.PID))
	p.wantTTL(t, sess, phpMaxLifetime)
	p.wantMissing(t, lock)

	// lock_expire = 0 is max_execution_time, 0 in the CLI: phpredis sends
	// SET NX without PX, and the proxy gives the lock ttl.lock_max. One
	// above lock_max is lowered to it.
	for _, expire := range []int{0, 600} {
		l := phpLocking
		l.expire = expire
		c := p.php(t, sid, "incr", 200*time.Millisecond, l)
		p.waitLock(t, lock, phpToken(t, c.cmd.Process.Pid), 10*time.Second)
		p.wantTTL(t, lock, lockMax)
		wantClean(t, fmt.Sprintf("lock_expire=%d", expire), c.wait())
		p.wantMissing(t, lock)
	}
	p.wantTTL(t, sess, phpMaxLifetime)
}

// testPHPSessionDestroy: session_destroy leaves a tombstone; a slow
// request that read the session before and writes after it fails to
// write, and the session stays destroyed, as does a later request on the
// same id. phpredis turns the proxy's -TOMBSTONE reply into a
// RedisException out of session_write_close (it throws for any error code
// but ERR); under tombstone.on_write = "ignore" the write seems to
// succeed and writes nothing.
func testPHPSessionDestroy(t *testing.T, up *upstream) {
	p := phpStartProxy(t, up)
	const sid = "php-destroy"
	sess, lock := "sess:"+sid, "sess:"+sid+"_LOCK"
	refused := "RedisException: " + destroyedError(sid)
	wantClean(t, "first", p.php(t, sid, "incr", 0, phpLocking).wait())

	// The slow request takes no lock (an app server with locking off): it
	// reads, then the destroy runs, then it writes.
	off := phpLocking
	off.off = true
	slow := p.php(t, sid, "incr", 1500*time.Millisecond, off)
	slow.waitAcquired()
	rd := p.php(t, sid, "destroy", 0, phpLocking).wait()
	wantClean(t, "destroy", rd)
	p.wantTombstone(t, sess)
	p.wantMissing(t, lock)
	rs := slow.wait()
	if rs.Read == nil || *rs.Read != 1 {
		t.Errorf("slow request read counter %s, want 1", readCounter(rs))
	}
	if rs.OK || len(rs.Errors) != 1 || rs.Errors[0] != refused {
		t.Errorf("slow request's write after session_destroy: ok %v, PHP said %q; want a failed write and %q", rs.OK, rs.Errors, refused)
	}
	t.Logf("php locking: %s: late write after session_destroy: session_write_close() threw, PHP said %q", up.name, rs.Errors)
	p.wantTombstone(t, sess)

	// A later request on the destroyed id reads an empty session and
	// cannot write it until the tombstone's grace ends; it still releases
	// its lock.
	rl := p.php(t, sid, "incr", 0, phpLocking).wait()
	if rl.Read != nil || rl.OK || len(rl.Errors) != 1 || rl.Errors[0] != refused {
		t.Errorf("request on the destroyed id: read %s, write %v, PHP said %q; want none, a failed write and %q", readCounter(rl), rl.OK, rl.Errors, refused)
	}
	p.wantTombstone(t, sess)
	p.wantMissing(t, lock)

	// tombstone.on_write = "ignore": the write answers +OK, so PHP sees
	// success, and nothing is written.
	quiet := startSibling(t, up, func(co *commands.Options, po *proxy.Options) {
		phpRawCodec(t)(co, po)
		co.OnWrite = commands.OnWriteIgnore
	})
	ri := quiet.php(t, sid, "incr", 0, phpLocking).wait()
	wantClean(t, "on_write=ignore", ri)
	p.wantTombstone(t, sess)
	p.wantMissing(t, lock)
}

// testPHPSessionLockHolderKilled: a request killed while it holds the
// lock leaves it to expire within lock_expire; the next request then
// takes it at once.
func testPHPSessionLockHolderKilled(t *testing.T, up *upstream) {
	p := phpStartProxy(t, up)
	const sid = "php-killed"
	sess, lock := "sess:"+sid, "sess:"+sid+"_LOCK"
	short := phpLocking
	short.expire = 2
	expire := time.Duration(short.expire) * time.Second

	dying := p.php(t, sid, "incr", 20*time.Second, short)
	p.waitLock(t, lock, phpToken(t, dying.cmd.Process.Pid), 10*time.Second)
	dying.waitAcquired()
	p.wantLockTTL(t, lock, expire)
	if err := dying.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill php: %v", err)
	}
	left := p.pttl(t, lock)
	gone := p.waitLock(t, lock, "", expire+time.Second)
	p.wantMissing(t, sess) // it died before writing

	next := p.php(t, sid, "incr", 0, short).wait()
	wantClean(t, "next", next)
	if next.Read != nil {
		t.Errorf("next request read counter %s, want none", readCounter(next))
	}
	if waited := time.Duration((next.Acquired - next.Asked) * float64(time.Millisecond)); waited > 10*short.wait {
		t.Errorf("next request waited %v for a lock already gone", waited)
	}
	t.Logf("php locking: %s: holder killed with the lock (lock_expire %v, %v left): lock gone %v after the kill; next request acquired in %.0f ms, read counter=%s",
		up.name, expire, left.Round(time.Millisecond), gone.Round(time.Millisecond), next.Acquired-next.Asked, readCounter(next))
	p.wantStored(t, sess, phpSerialized(1, next.PID))
	p.wantTTL(t, sess, phpMaxLifetime)
	p.wantMissing(t, lock)
}
