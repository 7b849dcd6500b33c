package commands

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/store/codec"
	"go.uber.org/zap/zapcore"
)

// refusalCounts is a Metrics that counts refused writes by reason.
type refusalCounts struct {
	nopMetrics
	mu sync.Mutex
	n  [NumRefusals]int
}

func (m *refusalCounts) WriteRefused(r Refusal) {
	m.mu.Lock()
	m.n[r]++
	m.mu.Unlock()
}

func (m *refusalCounts) get(r Refusal) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[r]
}

// fakeClock is a settable clock for the refusal log's rate limit.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func refusalFixture(t *testing.T, tweak func(*Options)) (*fixture, *refusalCounts, *fakeClock) {
	t.Helper()
	m := &refusalCounts{}
	f := newFixture(t, func(o *Options) {
		o.Metrics = m
		o.Codec = mustCodec(codec.Options{MaxPayloadBytes: 64})
		if tweak != nil {
			tweak(o)
		}
	})
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	f.e.refusals.now = clk.now
	return f, m, clk
}

// refusalLines are the WARN lines of refused writes.
func (f *fixture) refusalLines() []map[string]interface{} {
	var out []map[string]interface{}
	for _, e := range f.logs.FilterMessage("write refused").All() {
		if e.Level != zapcore.WarnLevel {
			f.t.Errorf("refusal logged at %v, want WARN", e.Level)
		}
		out = append(out, e.ContextMap())
	}
	return out
}

func TestRefusedWritesAreLoggedAndCounted(t *testing.T) {
	const secret = "s3cr3t-payload"
	tests := []struct {
		name   string
		tweak  func(*Options)
		setup  []string
		cmd    string
		reason Refusal
		key    string
		reply  string // the reply's prefix
	}{
		{"a write to a destroyed session", nil, []string{"SESS.DESTROY t1"},
			`SESS.SET t1 {"x":"` + secret + `"}`, RefusedTombstone, "sess:t1", "-TOMBSTONE "},
		{"a plain SET to a destroyed session", nil, []string{"DEL sess:t2"},
			`SET sess:t2 {"x":"` + secret + `"}`, RefusedTombstone, "sess:t2", "-TOMBSTONE "},
		{"a payload that is not JSON", nil, nil,
			`SESS.SET p1 ` + secret, RefusedPayload, "sess:p1", "-ERR invalid session payload"},
		{"a field that is not JSON", nil, nil,
			`SESS.FSET p2 f ` + secret, RefusedPayload, "sess:p2", "-ERR invalid session payload"},
		{"a payload too large", nil, nil,
			`SET sess:big {"x":"` + strings.Repeat(secret, 10) + `"}`, RefusedTooLarge, "sess:big", "-ERR invalid session payload"},
		{"a hash session write past max_payload_bytes", func(o *Options) { o.MaxHashBytes = 8 }, nil,
			`HSET sess:hb f ` + secret, RefusedTooLarge, "sess:hb", "-ERR hash session hb would exceed codec.max_payload_bytes"},
		{"a hash session write past max_hash_fields", func(o *Options) { o.MaxHashFields = 1 }, nil,
			`HSET sess:hf f ` + secret + ` g ` + secret, RefusedTooLarge, "sess:hf", "-ERR hash session hf would exceed codec.max_hash_fields"},
		{"a script's hash write past max_hash_fields", func(o *Options) { o.MaxHashFields = 1 }, nil,
			`EVAL 'return redis.pcall("HSET", KEYS[1], "f", ARGV[1], "g", ARGV[1])' 1 sess:hs ` + secret, RefusedTooLarge, "sess:hs", "-ERR hash session hs would exceed codec.max_hash_fields"},
		{"a write outside the prefix", nil, nil,
			`SET other:k ` + secret, RefusedOutsidePrefix, "other:k", "-NOPERM "},
		{"PERSIST under deny", nil, []string{`SESS.SET ps {}`},
			`PERSIST sess:ps`, RefusedPersist, "sess:ps", "-ERR PERSIST"},
		{"PERSIST on a lock under deny", nil, []string{`SET sess:ps_LOCK 1`},
			`PERSIST sess:ps_LOCK`, RefusedPersist, "sess:ps_LOCK", "-ERR PERSIST"},
		{"a script's write to a destroyed session", nil, []string{"SESS.DESTROY sc"},
			`EVAL 'return redis.pcall("SET", KEYS[1], ARGV[1])' 1 sess:sc ` + secret, RefusedTombstone, "sess:sc", "-TOMBSTONE "},
		{"a script's write under ttl.absolute", func(o *Options) { o.Policy.Absolute = time.Hour }, nil,
			`EVAL 'return redis.pcall("SET", KEYS[1], ARGV[1])' 1 sess:sa ` + secret, RefusedScript, "", "-ERR scripts cannot write"},
		{"a refused write queued in a transaction", nil, []string{"MULTI"},
			`SESS.SET tx ` + secret, RefusedPayload, "sess:tx", "-ERR invalid session payload"},
		{"a write to a destroyed session under hash_ids", func(o *Options) { o.HashIDs = true }, []string{"SESS.DESTROY h1"},
			`SESS.SET h1 {}`, RefusedTombstone, "sess:" + sha256Hex("h1"), "-TOMBSTONE "},
		{"an ignored write to a destroyed session", func(o *Options) { o.OnWrite = OnWriteIgnore }, []string{"SESS.DESTROY i1"},
			`SESS.SET i1 {}`, RefusedTombstone, "sess:i1", "+OK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, m, _ := refusalFixture(t, tt.tweak)
			for _, s := range tt.setup {
				f.one(s)
			}
			if got := f.one(tt.cmd); !strings.HasPrefix(got, tt.reply) {
				t.Fatalf("%s = %q, want %s…", tt.cmd, got, tt.reply)
			}
			if got := m.get(tt.reason); got != 1 {
				t.Errorf("refused writes with reason %s = %d, want 1", tt.reason, got)
			}
			lines := f.refusalLines()
			if len(lines) != 1 {
				t.Fatalf("%d refusal lines, want 1: %v", len(lines), lines)
			}
			l := lines[0]
			if l["reason"] != tt.reason.String() || l["key"] != tt.key || l["client"] != "127.0.0.1:1" {
				t.Errorf("logged %v, want reason %s, key %q, client 127.0.0.1:1", l, tt.reason, tt.key)
			}
			for _, e := range f.logs.All() {
				for k, v := range e.ContextMap() {
					if s, ok := v.(string); ok && strings.Contains(s, secret) {
						t.Errorf("log field %s holds the payload: %q", k, s)
					}
				}
			}
		})
	}
}

func TestRefusalsNotCounted(t *testing.T) {
	f, m, _ := refusalFixture(t, nil)
	for _, cmd := range []string{"GET other:k", "SESS.SET ok {}", "SESS.GET gone", "EVAL 'return 1' 0"} {
		f.one(cmd)
	}
	for r := range NumRefusals {
		if n := m.get(r); n != 0 {
			t.Errorf("reason %s counted %d, want 0 (a read is not a refused write)", r, n)
		}
	}
	if lines := f.refusalLines(); len(lines) != 0 {
		t.Errorf("refusal lines %v, want none", lines)
	}
}

func TestRefusalLogRateLimit(t *testing.T) {
	f, m, clk := refusalFixture(t, nil)
	for i := 0; i < 5; i++ {
		f.one("SESS.SET r1 nope")
	}
	f.one("PERSIST sess:r1") // another reason has its own budget
	// Another connection from the same host shares the budget.
	other := f.e.Connect("127.0.0.1:2", "127.0.0.1:6380")
	op := f.e.NewPipeline(other)
	of := &fixture{t: t, m: f.m, e: f.e, logs: f.logs, client: other, p: op}
	of.one("SESS.SET r2 nope")
	// Another host does not.
	far := f.e.Connect("10.0.0.9:3", "127.0.0.1:6380")
	ff := &fixture{t: t, m: f.m, e: f.e, logs: f.logs, client: far, p: f.e.NewPipeline(far)}
	ff.one("SESS.SET r3 nope")

	lines := f.refusalLines()
	if len(lines) != 3 {
		t.Fatalf("%d lines within the window, want 3 (payload from 127.0.0.1, persist, payload from 10.0.0.9): %v", len(lines), lines)
	}
	if got := m.get(RefusedPayload); got != 7 {
		t.Errorf("payload refusals counted %d, want 7: the metric counts every one", got)
	}

	clk.t = clk.t.Add(refusalWindow - time.Millisecond)
	f.one("SESS.SET r1 nope")
	if n := len(f.refusalLines()); n != 3 {
		t.Fatalf("%d lines before the window passed, want 3", n)
	}
	clk.t = clk.t.Add(time.Millisecond)
	f.one("SESS.SET r1 nope")
	lines = f.refusalLines()
	if len(lines) != 4 {
		t.Fatalf("%d lines after the window, want 4", len(lines))
	}
	if got := lines[3]["suppressed"]; got != int64(6) {
		t.Errorf("suppressed = %v, want 6 (4 + 1 + 1 left out since the first line)", got)
	}
	if _, ok := lines[0]["suppressed"]; ok {
		t.Errorf("the first line has a suppressed count: %v", lines[0])
	}
}

func TestRefusalLogBounded(t *testing.T) {
	var l refusalLog
	now := time.Unix(0, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < maxRefusalHosts; i++ {
		if ok, _ := l.admit(RefusedPayload, "10.0."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256)+":1"); !ok {
			t.Fatalf("host %d's first refusal not logged", i)
		}
	}
	// Full: the next new host shares the others' budget.
	if ok, _ := l.admit(RefusedPayload, "192.168.0.1:1"); !ok {
		t.Fatal("the first refusal of the shared budget not logged")
	}
	if ok, _ := l.admit(RefusedPayload, "192.168.0.2:1"); ok {
		t.Fatal("a second new host past the bound was logged within the window")
	}
	if len(l.seen) > maxRefusalHosts+1 {
		t.Errorf("%d entries, want at most %d", len(l.seen), maxRefusalHosts+1)
	}
	// Once the window has passed, old entries go.
	now = now.Add(refusalWindow)
	if ok, _ := l.admit(RefusedPayload, "192.168.0.3:1"); !ok {
		t.Fatal("a new host after the window not logged")
	}
	if len(l.seen) != 1 {
		t.Errorf("%d entries after pruning, want 1", len(l.seen))
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
