package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sessproxyProcess is the real binary serving, with its JSON log lines.
type sessproxyProcess struct {
	t       *testing.T
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has exited
	waitErr error         // its exit status, set before exited closes
	mu      sync.Mutex
	lines   []map[string]interface{}
}

// startSessproxyProcess runs bin with args and waits until it listens; it
// is stopped (SIGTERM, then killed) at the end of the test.
func startSessproxyProcess(t *testing.T, bin string, args ...string) (*sessproxyProcess, string) {
	t.Helper()
	p := &sessproxyProcess{t: t, cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start sessproxy: %v", err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]interface{}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				line = map[string]interface{}{"msg": "unparsed: " + sc.Text()}
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it all first
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	listening := p.waitLog("sessproxy listening")
	return p, listening["addr"].(string)
}

// logs returns the log lines so far.
func (p *sessproxyProcess) logs() []map[string]interface{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]interface{}(nil), p.lines...)
}

// waitLog polls the log until a line with message msg appears, and
// returns the first such line.
func (p *sessproxyProcess) waitLog(msg string) map[string]interface{} {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, l := range p.logs() {
			if l["msg"] == msg {
				return l
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("sessproxy exited (%v) before logging %q; log: %v", p.waitErr, msg, p.logs())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("sessproxy did not log %q; log: %v", msg, p.logs())
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func (p *sessproxyProcess) count(msg string) int {
	n := 0
	for _, l := range p.logs() {
		if l["msg"] == msg {
			n++
		}
	}
	return n
}

func (p *sessproxyProcess) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// sessTTL writes a fresh session on c and returns the TTL it got.
func sessTTL(t *testing.T, c *rawConn, sid string, ttlArg ...string) int64 {
	t.Helper()
	if got := c.do(append([]string{"SESS.SET", sid, "{}"}, ttlArg...)...); got != status("OK") {
		t.Fatalf("SESS.SET %s = %#v, want OK", sid, got)
	}
	n, ok := c.do("SESS.TTL", sid).(int64)
	if !ok {
		t.Fatalf("SESS.TTL %s: not an integer", sid)
	}
	return n
}

func isInt(v interface{}) bool {
	_, ok := v.(int64)
	return ok
}

// wantTTLNear fails unless a TTL just written is want seconds, give or
// take a slow machine.
func wantTTLNear(t *testing.T, what string, got, want int64) {
	t.Helper()
	if got > want || got < want-int64(ttlSlack.Seconds()) {
		t.Fatalf("%s: TTL %d, want %d", what, got, want)
	}
}

// TestReloadSIGHUP runs the real binary with a config file, rewrites the
// file and sends SIGHUP: the new TTL policy, users and log level apply
// while a connected client keeps its connection; an invalid file changes
// nothing and the process keeps serving.
func TestReloadSIGHUP(t *testing.T) {
	up := standaloneUp
	up.flush(t)
	bin := buildSessproxy(t)
	path := filepath.Join(t.TempDir(), "sessproxy.toml")
	config := func(ttlDefault, ttlMax, level, users string) {
		t.Helper()
		body := fmt.Sprintf(`[server]
listen = "127.0.0.1:0"
requirepass = "pw"
[upstream]
mode = "standalone"
addrs = [%q]
[ttl]
default = %q
max = %q
[log]
level = %q
format = "json"
[metrics]
addr = "127.0.0.1:0"
%s`, up.addrs[0], ttlDefault, ttlMax, level, users)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config("1h", "2h", "info", "")
	p, addr := startSessproxyProcess(t, bin, "-config", path)

	c := dialRaw(t, addr)
	wantRaw(t, c, status("OK"), "AUTH", "pw")
	wantTTLNear(t, "before the reload", sessTTL(t, c, "before"), 3600)

	config("10m", "20m", "warn", "[[users]]\nname = \"ops\"\npassword = \"opspw\"\nrole = \"admin\"\n")
	p.signal(syscall.SIGHUP)
	// The same connection, polled until the new policy shows.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; sessTTL(t, c, fmt.Sprintf("poll%d", i)) > 600; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("ttl.default 10m not in effect 20s after SIGHUP; log: %v", p.logs())
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
	wantTTLNear(t, "explicit TTL above the new ttl.max", sessTTL(t, c, "capped", "TTL", "86400"), 1200)
	reloaded := p.waitLog("configuration reloaded")
	if reloaded["log_level"] != "warn" || reloaded["users"] != float64(1) {
		t.Fatalf("reload log line = %v", reloaded)
	}
	ops := dialRaw(t, addr)
	wantRaw(t, ops, status("OK"), "AUTH", "ops", "opspw")
	if got := ops.do("SESS.SWEEP", "DRYRUN"); !isInt(got) { // admin only
		t.Fatalf("SESS.SWEEP DRYRUN as the new admin user = %#v, want a count", got)
	}

	// An invalid file: the error names the key, the old policy stays, the
	// process keeps serving the same connection.
	config("10m", "1s", "warn", "") // ttl.default above ttl.max
	p.signal(syscall.SIGHUP)
	failed := p.waitLog("reload failed, keeping the running configuration")
	if err, _ := failed["error"].(string); !strings.Contains(err, "invalid ttl.default: must be within [ttl.min, ttl.max]") {
		t.Fatalf("reload failure = %v, want the key named", failed)
	}
	wantTTLNear(t, "after an invalid reload", sessTTL(t, c, "after-invalid"), 600)
	wantRaw(t, ops, status("PONG"), "PING")

	// log.level warn applied: stopping logs no info lines.
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Fatalf("sessproxy exited with %v; log: %v", p.waitErr, p.logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sessproxy did not stop on SIGTERM")
	}
	if n := p.count("shutting down") + p.count("stopped"); n != 0 {
		t.Fatalf("%d info lines at shutdown with log.level warn; log: %v", n, p.logs())
	}
}
