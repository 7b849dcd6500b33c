package commands

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/store"
)

// recordPusher is a client's out-of-band writer that keeps what it got.
type recordPusher struct {
	mu     sync.Mutex
	frames []string
}

func (p *recordPusher) Push(frame []byte) {
	p.mu.Lock()
	p.frames = append(p.frames, string(frame))
	p.mu.Unlock()
}

func (p *recordPusher) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.frames
	p.frames = nil
	return f
}

// trackingFixture is an engine on the embedded upstream (no upstream
// tracking: the proxy invalidates from its own writes) with two RESP3
// clients.
type trackingFixture struct {
	e      *Engine
	reader *fixture
	writer *fixture
	pushes *recordPusher
}

func newTrackingFixture(t *testing.T, tweak func(*Options)) *trackingFixture {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Mode: store.ModeEmbedded})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opts := defaultOptions()
	if tweak != nil {
		tweak(&opts)
	}
	e := New(st, opts)
	client := func() *fixture {
		c := e.Connect("127.0.0.1:1", "127.0.0.1:6380")
		return &fixture{t: t, e: e, client: c, p: e.NewPipeline(c)}
	}
	tf := &trackingFixture{e: e, reader: client(), writer: client(), pushes: &recordPusher{}}
	tf.reader.client.SetPusher(tf.pushes)
	tf.writer.client.SetPusher(&recordPusher{})
	for _, f := range []*fixture{tf.reader, tf.writer} {
		f.one("HELLO 3")
	}
	return tf
}

func push(keys ...string) string { return string(invalidation(keys)) }

func TestTrackingDefaultModeInvalidatesReadKeysOnce(t *testing.T) {
	tf := newTrackingFixture(t, nil)
	tf.reader.expect("CLIENT TRACKING ON", "+OK")
	tf.reader.one("GET sess:a")
	tf.reader.one("SESS.GET b")
	tf.writer.expect(`SET sess:a {"x":1} EX 60`, "+OK")
	tf.writer.expect(`SESS.SET b {"x":1}`, "+OK")
	got := tf.pushes.take()
	if len(got) != 2 || got[0] != push("sess:a") || got[1] != push("b") {
		t.Fatalf("pushes %q, want sess:a then b (SESS.* by id)", got)
	}
	tf.writer.expect(`SET sess:a {"x":2} EX 60`, "+OK")
	if got := tf.pushes.take(); len(got) != 0 {
		t.Fatalf("a second write without a read: pushes %q", got)
	}
	if n := tf.e.TrackedKeys(); n != 0 {
		t.Fatalf("table holds %d keys, want 0", n)
	}
}

func TestTrackingOwnWriteIsInBandBeforeTheReply(t *testing.T) {
	tf := newTrackingFixture(t, nil)
	tf.reader.expect("CLIENT TRACKING ON", "+OK")
	tf.reader.one("GET sess:own")
	var out strings.Builder
	tf.reader.p.Run(context.Background(), [][][]byte{{[]byte("SET"), []byte("sess:own"), []byte(`{}`), []byte("EX"), []byte("60")}}, func(b []byte) { out.Write(b) })
	if want := push("sess:own") + "+OK\r\n"; out.String() != want {
		t.Fatalf("reply %q, want %q", out.String(), want)
	}
	if got := tf.pushes.take(); len(got) != 0 {
		t.Fatalf("out-of-band pushes %q, want none", got)
	}
}

func TestTrackingNoLoopSkipsOwnWrites(t *testing.T) {
	tf := newTrackingFixture(t, nil)
	tf.reader.expect("CLIENT TRACKING ON NOLOOP", "+OK")
	tf.reader.one("GET sess:n")
	tf.reader.expect(`SET sess:n {} EX 60`, "+OK")
	if got := tf.pushes.take(); len(got) != 0 {
		t.Fatalf("pushes %q", got)
	}
}

func TestTrackingOptInTracksAfterCachingYes(t *testing.T) {
	tf := newTrackingFixture(t, nil)
	tf.reader.expect("CLIENT TRACKING ON OPTIN", "+OK")
	tf.reader.one("GET sess:untracked")
	tf.reader.expect("CLIENT CACHING YES", "+OK")
	tf.reader.one("GET sess:tracked")
	tf.reader.one("GET sess:after")
	tf.writer.do(`MSET sess:untracked {} sess:tracked {} sess:after {}`)
	if got := tf.pushes.take(); len(got) != 1 || got[0] != push("sess:tracked") {
		t.Fatalf("pushes %q, want sess:tracked only", got)
	}
}

func TestTrackingBcastPrefixes(t *testing.T) {
	tf := newTrackingFixture(t, nil)
	tf.reader.expect("CLIENT TRACKING ON BCAST PREFIX sess:x PREFIX sess:y", "+OK")
	tf.writer.do(`MSET sess:x1 {} sess:z1 {} sess:y1 {}`)
	if got := tf.pushes.take(); len(got) != 1 || got[0] != push("sess:x1", "sess:y1") {
		t.Fatalf("pushes %q", got)
	}
	tf.reader.expect("CLIENT TRACKING ON BCAST PREFIX sess:", "-ERR Prefix 'sess:' overlaps with an existing prefix 'sess:x'. Prefixes for a single client must not overlap.")
}

func TestTrackingBcastRefusesOverlappingPrefixes(t *testing.T) {
	overlaps := func(p, q, which string) string { return "-" + errPrefixOverlap(p, q, which) }
	tests := []struct {
		name    string
		earlier string // an earlier CLIENT TRACKING ON BCAST's PREFIX arguments
		args    string
		want    string
	}{
		{"disjoint prefixes are kept", "", "PREFIX a PREFIX b PREFIX c", "+OK"},
		{"a duplicate overlaps", "", "PREFIX r PREFIX r", overlaps("r", "r", "another provided")},
		{"a prefix of a later one", "", "PREFIX q PREFIX qz PREFIX q", overlaps("q", "qz", "another provided")},
		{"the first given of those that overlap is named", "", "PREFIX ba PREFIX a PREFIX ab", overlaps("a", "ab", "another provided")},
		{"with the first later one it overlaps", "", "PREFIX b PREFIX a PREFIX ba PREFIX bb", overlaps("b", "ba", "another provided")},
		{"a later one that starts it", "", "PREFIX x PREFIX abc PREFIX ab", overlaps("abc", "ab", "another provided")},
		{"a prefix given by an earlier call", "PREFIX sess:a", "PREFIX sess:b PREFIX sess:a", overlaps("sess:a", "sess:a", "an existing")},
		{"an existing one before a later new one", "PREFIX abc", "PREFIX zz PREFIX ab PREFIX a", overlaps("ab", "abc", "an existing")},
		{"the existing one first in byte order", "PREFIX ac PREFIX ab", "PREFIX a", overlaps("a", "ab", "an existing")},
		{"BCAST alone follows every key", "", "", "+OK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := newTrackingFixture(t, nil)
			if tt.earlier != "" {
				tf.reader.expect("CLIENT TRACKING ON BCAST "+tt.earlier, "+OK")
			}
			tf.reader.expect(strings.TrimSpace("CLIENT TRACKING ON BCAST "+tt.args), tt.want)
		})
	}
	tf := newTrackingFixture(t, nil)
	tf.reader.expect("CLIENT TRACKING ON BCAST", "+OK")
	tf.reader.expect("CLIENT TRACKING ON BCAST PREFIX a", overlaps("a", "", "an existing"))
}

// prefixOverlap names the pair Redis's pairwise check names.
func TestPrefixOverlapAgreesWithThePairwiseCheck(t *testing.T) {
	pairwise := func(existing, added []string) string {
		existing = slices.Sorted(slices.Values(existing)) // Redis's radix tree order
		for i, p := range added {
			for _, q := range existing {
				if overlap(p, q) {
					return errPrefixOverlap(p, q, "an existing")
				}
			}
			for _, q := range added[i+1:] {
				if overlap(p, q) {
					return errPrefixOverlap(p, q, "another provided")
				}
			}
		}
		return ""
	}
	rnd := rand.New(rand.NewSource(1))
	random := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			b := make([]byte, rnd.Intn(4))
			for j := range b {
				b[j] = "ab"[rnd.Intn(2)]
			}
			out = append(out, string(b))
		}
		return out
	}
	refused := 0
	for i := 0; i < 20000; i++ {
		var existing []string
		// Existing prefixes passed the same check when they were added.
		if e := random(rnd.Intn(4)); pairwise(nil, e) == "" {
			existing = e
		}
		added := random(rnd.Intn(6))
		want := pairwise(existing, added)
		if got := prefixOverlap(existing, added); got != want {
			t.Fatalf("existing %q, added %q: %q, want %q", existing, added, got, want)
		}
		if want != "" {
			refused++
		}
	}
	if refused == 0 || refused == 20000 {
		t.Fatalf("%d of 20000 refused: the cases test nothing", refused)
	}
}

// An 8 MiB request holds 270,000 prefixes; checking them pairwise took
// 11 s for 40,000 and 51 s for 100,000.
func TestTrackingBcastManyPrefixesAreCheckedQuickly(t *testing.T) {
	tf := newTrackingFixture(t, nil)
	args := [][]byte{[]byte("CLIENT"), []byte("TRACKING"), []byte("ON"), []byte("BCAST")}
	for i := 0; i < 200000; i++ {
		args = append(args, []byte("PREFIX"), []byte(fmt.Sprintf("sess:%07d", i)))
	}
	start := time.Now()
	var out strings.Builder
	tf.reader.p.Run(context.Background(), [][][]byte{args}, func(b []byte) { out.Write(b) })
	took := time.Since(start)
	if out.String() != "+OK\r\n" {
		t.Fatalf("reply %q", out.String())
	}
	if took > 2*time.Second {
		t.Fatalf("200,000 prefixes took %v", took)
	}
	t.Logf("200,000 prefixes: %v", took)
	// One more, overlapping the last of them, is refused as quickly.
	start = time.Now()
	tf.reader.expect("CLIENT TRACKING ON BCAST PREFIX x PREFIX sess:0199999", "-"+errPrefixOverlap("sess:0199999", "sess:0199999", "an existing"))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the refusal took %v", took)
	}
}

func TestTrackingTableIsBounded(t *testing.T) {
	tf := newTrackingFixture(t, func(o *Options) { o.TrackingMaxKeys = 2 })
	tf.reader.expect("CLIENT TRACKING ON", "+OK")
	tf.reader.do("GET sess:1", "GET sess:2", "GET sess:3")
	if n := tf.e.TrackedKeys(); n != 2 {
		t.Fatalf("table holds %d keys, want 2", n)
	}
	if got := tf.pushes.take(); len(got) != 1 || (got[0] != push("sess:1") && got[0] != push("sess:2")) {
		t.Fatalf("eviction pushes %q", got)
	}
}

func TestTrackingHashIDsReportTheClientsNames(t *testing.T) {
	tf := newTrackingFixture(t, func(o *Options) { o.HashIDs = true })
	tf.reader.expect("CLIENT TRACKING ON", "+OK")
	tf.reader.one("GET sess:h")
	tf.writer.expect(`SESS.DESTROY h`, ":0")
	if got := tf.pushes.take(); len(got) != 1 || got[0] != push("sess:h") {
		t.Fatalf("pushes %q", got)
	}
}

func TestTrackingOffAndDisconnectForgetKeys(t *testing.T) {
	tf := newTrackingFixture(t, nil)
	tf.reader.expect("CLIENT TRACKING ON", "+OK")
	tf.reader.one("GET sess:k")
	tf.reader.expect("CLIENT TRACKING OFF", "+OK")
	if n := tf.e.TrackedKeys(); n != 0 {
		t.Fatalf("after OFF the table holds %d keys", n)
	}
	tf.reader.expect("CLIENT TRACKING ON", "+OK")
	tf.reader.one("GET sess:k")
	tf.e.Disconnect(tf.reader.client)
	if n := tf.e.TrackedKeys(); n != 0 || tf.e.tracking.active.Load() != 0 {
		t.Fatalf("after the disconnect: %d keys, %d tracking clients", n, tf.e.tracking.active.Load())
	}
}

func TestTrackingInfoAndRedirect(t *testing.T) {
	tf := newTrackingFixture(t, nil)
	tf.reader.expect("CLIENT GETREDIR", ":-1")
	tf.reader.expect("CLIENT TRACKING ON OPTOUT NOLOOP", "+OK")
	tf.reader.expect("CLIENT CACHING NO", "+OK")
	if got := tf.reader.one("CLIENT TRACKINGINFO"); !strings.Contains(got, "optout") || !strings.Contains(got, "caching-no") || !strings.Contains(got, "noloop") {
		t.Fatalf("TRACKINGINFO %q", got)
	}
	tf.reader.expect("CLIENT TRACKING ON REDIRECT 999", "-"+msgRedirectMissing)
	tf.reader.expect("CLIENT TRACKING ON REDIRECT "+strconv.FormatInt(tf.writer.client.ID, 10), "+OK")
	tf.reader.expect("CLIENT GETREDIR", ":"+strconv.FormatInt(tf.writer.client.ID, 10))
}

func TestParseTrackingOptions(t *testing.T) {
	tests := []struct {
		args string
		want string
	}{
		{"ON", ""},
		{"OFF", ""},
		{"MAYBE", msgSyntax},
		{"ON PREFIX", msgSyntax},
		{"ON REDIRECT", msgSyntax},
		{"ON BCAST PREFIX a PREFIX b NOLOOP", ""},
		{"ON FOO", msgSyntax},
	}
	for _, tt := range tests {
		var args [][]byte
		for _, a := range strings.Fields(tt.args) {
			args = append(args, []byte(a))
		}
		if _, got := parseTrackingOptions(args); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.args, got, tt.want)
		}
	}
}

// TestTrackingRedirectToSubscriber: a tracking client's invalidations go
// to the RESP2 connection it REDIRECTs to, subscribed to
// __redis__:invalidate, as pub/sub messages; its own are not pushed to it.
func TestTrackingRedirectToSubscriber(t *testing.T) {
	tf := newTrackingFixture(t, nil)
	subConn := tf.e.Connect("127.0.0.1:2", "127.0.0.1:6380")
	subPushes := &recordPusher{}
	subConn.SetPusher(subPushes)
	sub := &fixture{t: t, e: tf.e, client: subConn, p: tf.e.NewPipeline(subConn)}
	sub.expect("SUBSCRIBE __redis__:invalidate", "[$subscribe $__redis__:invalidate :1]")
	sub.expect("GET sess:a", "-"+errSubscribedOnly("get"))
	tf.reader.expect("CLIENT TRACKING ON REDIRECT "+strconv.FormatInt(subConn.ID, 10), "+OK")
	tf.reader.one("GET sess:a")
	tf.writer.expect(`SET sess:a {"v":1}`, "+OK")
	want := string(invalidateMessage([]string{"sess:a"}))
	subPushes.mu.Lock()
	got := append([]string(nil), subPushes.frames...)
	subPushes.mu.Unlock()
	if len(got) != 1 || got[0] != want {
		t.Fatalf("subscriber got %q, want one %q", got, want)
	}
	tf.pushes.mu.Lock()
	defer tf.pushes.mu.Unlock()
	if len(tf.pushes.frames) != 0 {
		t.Fatalf("the redirecting client got pushes itself: %q", tf.pushes.frames)
	}
}
