package integration

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testRedisCLIStat runs redis-cli --stat for a couple of seconds: every
// figure it prints is sane (no field it reads is missing from INFO, which
// it would print as -9223372036854775808).
func testRedisCLIStat(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	for i := range 5 {
		wantReply(t, c, "OK", "SESS.SET", fmt.Sprintf("stat-%d", i), `{"i":1}`)
	}
	ctx, cancel := context.WithTimeout(bg, 2500*time.Millisecond)
	defer cancel()
	// stdbuf: redis-cli's stdout is a pipe here, and it is killed, not
	// left to flush.
	cmd := exec.CommandContext(ctx, "stdbuf", "-oL", "redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(p.port), "--stat", "-i", "0.5")
	out, _ := cmd.CombinedOutput()
	row := regexp.MustCompile(`^(\d+)\s+(\d+(?:\.\d+)?[BKMGT])\s+(\d+)\s+(\d+)\s+(\d+) \(\+(\d+)\)\s+(\d+)\s*$`)
	rows := 0
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, "---") || strings.HasPrefix(line, "keys ") {
			continue
		}
		m := row.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("redis-cli --stat printed %q: not a row of figures >= 0", line)
			continue
		}
		rows++
		if keys, _ := strconv.Atoi(m[1]); keys < 5 {
			t.Errorf("redis-cli --stat keys = %d, want at least the 5 sessions", keys)
		}
		if clients, _ := strconv.Atoi(m[3]); clients < 1 {
			t.Errorf("redis-cli --stat clients = %d, want at least its own connection", clients)
		}
	}
	if rows < 2 {
		t.Fatalf("redis-cli --stat printed %d rows in 2.5s:\n%s", rows, out)
	}
	if strings.Contains(string(out), "-9223372036854775808") {
		t.Errorf("redis-cli --stat printed LONG_MIN (a field missing from INFO):\n%s", out)
	}

	// The upstream's figures: memory and keyspace.
	info, err := c.Info(bg).Result()
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, l := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[k] = v
		}
	}
	if n, err := strconv.ParseInt(fields["used_memory"], 10, 64); err != nil || n <= 0 {
		t.Errorf("INFO used_memory = %q, want the upstream's bytes", fields["used_memory"])
	}
	if !regexp.MustCompile(`^keys=([5-9]|\d\d+),expires=([5-9]|\d\d+),avg_ttl=`).MatchString(fields["db0"]) {
		t.Errorf("INFO db0 = %q, want keys and expires of the 5 sessions at least", fields["db0"])
	}
}

// testRedisCLIHints types "SESS.SET " into an interactive redis-cli: the
// argument hint it built from COMMAND DOCS at startup shows.
func testRedisCLIHints(t *testing.T, up *upstream) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is not installed (apt-get install tmux): the interactive redis-cli test needs it (%v)", err)
	}
	p := startProxy(t, up, nil)
	m := &tmuxCLI{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock")}
	cli := fmt.Sprintf("env REDISCLI_HISTFILE=/dev/null REDISCLI_RCFILE=/dev/null redis-cli -h 127.0.0.1 -p %d", p.port)
	m.tmux("-f", "/dev/null", "new-session", "-d", "-s", "cli", "-x", "200", "-y", "50", cli)
	t.Cleanup(func() {
		_ = exec.Command("tmux", "-S", m.socket, "kill-server").Run()
	})
	prompt := fmt.Sprintf("127.0.0.1:%d>", p.port)
	m.waitFor(prompt)

	m.tmux("send-keys", "-t", "cli", "-l", "SESS.SET ")
	m.waitFor(prompt + " SESS.SET sid payload [TTL seconds]")
	m.tmux("send-keys", "-t", "cli", "-l", "hint-a ")
	m.waitFor(prompt + " SESS.SET hint-a payload [TTL seconds]")
	m.tmux("send-keys", "-t", "cli", "C-u")
	m.tmux("send-keys", "-t", "cli", "-l", "set ")
	m.waitFor(prompt + " set key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]")
	m.tmux("send-keys", "-t", "cli", "C-u")
	if got := m.run("help SESS.FSET", prompt); !strings.Contains(got, "SESS.FSET sid field json [field json ...]") || !strings.Contains(got, "group: sessions") {
		t.Errorf("redis-cli> help SESS.FSET\n%s", got)
	}
}

// testRedisCLIMemKeys: redis-cli --memkeys walks SCAN, TYPE and MEMORY
// USAGE through the proxy and reports the sessions' bytes.
func testRedisCLIMemKeys(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	wantReply(t, c, "OK", "SESS.SET", "mk-big", `{"data":"`+strings.Repeat("x", 2000)+`"}`)
	wantReply(t, c, "OK", "SESS.SET", "mk-small", `{}`)
	wantReply(t, c, int64(1), "HSET", "sess:mk-hash", "f", "v")
	wantReply(t, c, int64(0), "SESS.DESTROY", "mk-gone")

	out, err := p.redisCLI(t, "--memkeys")
	if err != nil {
		t.Fatalf("redis-cli --memkeys: %v\n%s", err, out)
	}
	big := regexp.MustCompile(`Biggest string found '"sess:mk-big"' has (\d+) bytes`).FindStringSubmatch(out)
	if big == nil {
		t.Fatalf("redis-cli --memkeys does not name sess:mk-big as the biggest string:\n%s", out)
	}
	if n, _ := strconv.Atoi(big[1]); n < 2000 {
		t.Errorf("sess:mk-big has %d bytes, want at least its 2000-byte payload", n)
	}
	if !regexp.MustCompile(`1 hashs with [1-9]\d* bytes`).MatchString(out) || !strings.Contains(out, "Sampled 3 keys") {
		t.Errorf("redis-cli --memkeys: want 3 keys sampled (no tombstone), the hash with bytes:\n%s", out)
	}

	if n, err := c.MemoryUsage(bg, "sess:mk-small").Result(); err != nil || n <= 0 {
		t.Errorf("MEMORY USAGE sess:mk-small = %d, %v", n, err)
	}
	if n, err := c.MemoryUsage(bg, "sess:mk-gone").Result(); err != redis.Nil {
		t.Errorf("MEMORY USAGE of a tombstone = %d, %v; want nil", n, err)
	}
	if n, err := c.MemoryUsage(bg, "sess:mk-big", 5).Result(); err != nil || n < 2000 {
		t.Errorf("MEMORY USAGE sess:mk-big SAMPLES 5 = %d, %v", n, err)
	}
}

// testScanType: SCAN … TYPE filters by Redis type, across every master,
// and never lists a tombstone.
func testScanType(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	var strs []string
	for i := range 20 {
		sid := fmt.Sprintf("st-%d", i)
		wantReply(t, c, "OK", "SESS.SET", sid, `{}`)
		strs = append(strs, "sess:"+sid)
	}
	wantReply(t, c, int64(1), "HSET", "sess:st-hash", "f", "v")
	wantReply(t, c, int64(0), "SESS.DESTROY", "st-gone")

	scanAll := func(typ string) []string {
		t.Helper()
		var keys []string
		var cursor uint64
		for {
			page, next, err := c.ScanType(bg, cursor, "", 5, typ).Result()
			if err != nil {
				t.Fatalf("SCAN %d TYPE %s: %v", cursor, typ, err)
			}
			keys = append(keys, page...)
			if cursor = next; cursor == 0 {
				return keys
			}
		}
	}
	if got := scanAll("string"); !sameSet(got, strs) {
		t.Errorf("SCAN TYPE string = %v, want the 20 sessions", got)
	}
	if got := scanAll("hash"); !sameSet(got, []string{"sess:st-hash"}) {
		t.Errorf("SCAN TYPE hash = %v, want sess:st-hash", got)
	}
	for _, typ := range []string{"set", "list", "zset", "stream"} {
		if got := scanAll(typ); len(got) != 0 {
			t.Errorf("SCAN TYPE %s = %v, want nothing (a tombstone is never listed)", typ, got)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s]--; seen[s] < 0 {
			return false
		}
	}
	return true
}

// testCommandGetKeys: COMMAND GETKEYS names the keys as Redis does,
// SESS.* and scripts included; and redis-cli's view of COMMAND DOCS holds
// SESS.SET's arguments.
func testCommandGetKeys(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	c := p.client(t)
	tests := []struct {
		args []interface{}
		want []string
	}{
		{[]interface{}{"SET", "sess:a", "v", "EX", "10"}, []string{"sess:a"}},
		{[]interface{}{"MSET", "sess:a", "1", "sess:b", "2"}, []string{"sess:a", "sess:b"}},
		{[]interface{}{"SESS.DESTROY", "x", "y"}, []string{"x", "y"}},
		{[]interface{}{"EVAL", "return 1", "2", "sess:a", "sess:b", "arg"}, []string{"sess:a", "sess:b"}},
		{[]interface{}{"MEMORY", "USAGE", "sess:a"}, []string{"sess:a"}},
	}
	for _, tt := range tests {
		got, err := c.CommandGetKeys(bg, tt.args...).Result()
		if err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("COMMAND GETKEYS %v = %v, %v; want %v", tt.args, got, err, tt.want)
		}
	}
	wantErr(t, c, "ERR The command has no key arguments", "COMMAND", "GETKEYS", "PING")
	wantErr(t, c, "ERR Invalid command specified", "COMMAND", "GETKEYS", "FLUSHALL")

	docs, err := c.Do(bg, "COMMAND", "DOCS", "sess.set").Result()
	if err != nil {
		t.Fatalf("COMMAND DOCS sess.set: %v", err)
	}
	out, err := p.redisCLI(t, "--no-raw", "COMMAND", "DOCS", "sess.set")
	if err != nil || !strings.Contains(out, `"payload"`) || !strings.Contains(out, `"TTL"`) || docs == nil {
		t.Errorf("COMMAND DOCS sess.set = %v; redis-cli shows %s (%v)", docs, out, err)
	}
}
