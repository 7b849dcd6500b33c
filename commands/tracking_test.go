package commands

import (
	"context"
	"fmt"
	"maps"
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
			existing = slices.Sorted(slices.Values(e)) // as a client keeps them
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

// A client's BCAST prefixes stay for as long as it does, and cannot be
// invalidated to make room as keys are, so all clients' together are
// bounded, apart from the keys: past the bound a CLIENT TRACKING ON BCAST
// is refused and changes nothing. Unbounded, 8 clients that each sent
// 24 MB of prefixes held 1695 MiB (TestMemoryTrackingPrefixesAreBounded).
func TestTrackingBcastPrefixesAreBounded(t *testing.T) {
	const room = 3 * (bcastEntryBytes + 7) // three prefixes of 7 bytes
	tf := newTrackingFixture(t, func(o *Options) { o.TrackingMaxBytes = room })
	tooMany := "-" + errTrackingPrefixesTooLarge(room)
	tf.reader.expect("CLIENT TRACKING ON BCAST PREFIX sess:b1 PREFIX sess:a1", "+OK")
	tf.reader.expect("CLIENT TRACKING ON BCAST PREFIX sess:c1 PREFIX sess:d1", tooMany)
	tf.writer.expect("CLIENT TRACKING ON BCAST PREFIX sess:c1 PREFIX sess:d1", tooMany)
	tf.writer.expect("CLIENT TRACKING ON BCAST PREFIX sess:c1", "+OK")
	tf.writer.expect("CLIENT TRACKING ON BCAST PREFIX sess:d1", tooMany)
	// A refused call kept the client's prefixes, which it lists in byte
	// order as Redis does.
	if got := tf.reader.one("CLIENT TRACKINGINFO"); !strings.HasSuffix(got, "$prefixes [$sess:a1 $sess:b1]}") {
		t.Fatalf("TRACKINGINFO %q", got)
	}
	tr := &tf.e.tracking
	tr.mu.Lock()
	checkBcastIndex(t, tr)
	tr.mu.Unlock()
	tf.reader.expect("CLIENT TRACKING OFF", "+OK")
	tf.writer.expect("CLIENT TRACKING ON BCAST PREFIX sess:d1 PREFIX sess:e1", "+OK")
	tf.e.Disconnect(tf.writer.client)
	if tr.bcastBytes != 0 {
		t.Fatalf("every client gone, prefixes hold %d bytes", tr.bcastBytes)
	}
	// BCAST alone is the prefix "", which counts too.
	tf = newTrackingFixture(t, func(o *Options) { o.TrackingMaxBytes = bcastEntryBytes })
	tf.reader.expect("CLIENT TRACKING ON BCAST", "+OK")
	tf.writer.expect("CLIENT TRACKING ON BCAST", "-"+errTrackingPrefixesTooLarge(bcastEntryBytes))
}

// A client's later CLIENT TRACKING ON BCAST costs what it adds. Each
// sorted every prefix the client had, in the order it gave them, with the
// new ones: after 200,000 given in no order (54 MB of them, within the
// default bound) one more took 73 ms of a core, so a client could keep a
// core busy with requests of a few dozen bytes.
func TestTrackingBcastLaterPrefixesCostWhatTheyAdd(t *testing.T) {
	tf := newTrackingFixture(t, nil)
	args := [][]byte{[]byte("CLIENT"), []byte("TRACKING"), []byte("ON"), []byte("BCAST")}
	for _, i := range rand.New(rand.NewSource(1)).Perm(200000) {
		args = append(args, []byte("PREFIX"), []byte(fmt.Sprintf("sess:p%07d:", i)))
	}
	var out strings.Builder
	tf.reader.p.Run(context.Background(), [][][]byte{args}, func(b []byte) { out.Write(b) })
	if out.String() != "+OK\r\n" {
		t.Fatalf("200,000 prefixes: %q", out.String())
	}
	took := make([]time.Duration, 9)
	for i := range took {
		start := time.Now()
		tf.reader.expect(fmt.Sprintf("CLIENT TRACKING ON BCAST PREFIX sess:q%d:", i), "+OK")
		took[i] = time.Since(start)
	}
	tf.reader.expect("CLIENT TRACKING ON BCAST PREFIX sess:p0123456:x", "-"+errPrefixOverlap("sess:p0123456:x", "sess:p0123456:", "an existing"))
	tf.reader.expect("CLIENT TRACKING ON BCAST PREFIX sess:p0123", "-"+errPrefixOverlap("sess:p0123", "sess:p0123000:", "an existing"))
	slices.Sort(took)
	t.Logf("one more prefix after 200,000: %v (median of %d)", took[len(took)/2], len(took))
	if took[len(took)/2] > 25*time.Millisecond {
		t.Fatalf("one more prefix after 200,000 took %v", took[len(took)/2])
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

// The table is bounded in bytes as well as keys: a key of a megabyte
// (outside the prefix, passed through) fits a million-key bound, and 200 of
// them held 206 MB. Its byte count goes back down as keys leave it.
func TestTrackingTableIsBoundedInBytes(t *testing.T) {
	tf := newTrackingFixture(t, func(o *Options) {
		o.TrackingMaxBytes = 3 * (100 + 2*trackingEntryBytes + 100)
		o.OutsidePrefix = OutsidePassthrough
	})
	tf.reader.expect("CLIENT TRACKING ON", "+OK")
	for i := 0; i < 10; i++ {
		tf.reader.one(fmt.Sprintf("GET %099d", i)) // 100-byte keys outside the prefix
	}
	if n := tf.e.TrackedKeys(); n != 3 {
		t.Errorf("table holds %d keys of 100 bytes, want 3 in %d bytes", n, 3*(100+2*trackingEntryBytes+100))
	}
	if got := tf.pushes.take(); len(got) != 7 {
		t.Errorf("%d eviction pushes, want 7", len(got))
	}
	if b := tf.e.tracking.bytes; b > tf.e.tracking.maxBytes {
		t.Errorf("table holds %d bytes, over %d", b, tf.e.tracking.maxBytes)
	}
	tf.reader.expect("CLIENT TRACKING OFF", "+OK")
	if n, b := tf.e.TrackedKeys(), tf.e.tracking.bytes; n != 0 || b != 0 {
		t.Errorf("after OFF the table holds %d keys, %d bytes", n, b)
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

// bcastRegister has cl follow n BCAST prefixes sess:p<i>: (i from first),
// given calls CLIENT TRACKING ON BCAST at a time, as a client may pile
// them up: 270,000 fit in one 8 MiB request.
func bcastRegister(t *testing.T, f *fixture, first, n, calls int) {
	t.Helper()
	per := (n + calls - 1) / calls
	for i := first; i < first+n; i += per {
		args := [][]byte{[]byte("CLIENT"), []byte("TRACKING"), []byte("ON"), []byte("BCAST")}
		for j := i; j < min(i+per, first+n); j++ {
			args = append(args, []byte("PREFIX"), []byte(fmt.Sprintf("sess:p%07d:", j)))
		}
		var out strings.Builder
		f.p.Run(context.Background(), [][][]byte{args}, func(b []byte) { out.Write(b) })
		if out.String() != "+OK\r\n" {
			t.Fatalf("CLIENT TRACKING ON BCAST with %d prefixes: %q", len(args)/2-2, out.String())
		}
	}
}

// matchesLinear is the lookup bcastFollowers replaced, for reference:
// whether a BCAST client follows key, by a scan of its prefixes.
func matchesLinear(ct *clientTracking, key string) bool {
	for _, p := range ct.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// A write looks up its key's BCAST followers by the key's own prefixes,
// one map lookup per distinct prefix length, as Redis walks its radix
// tree. It took a scan of every BCAST prefix of every client, under the
// tracker's lock, which one client's 500,000 prefixes made 14 ms more a
// write under -race (2,000 writes: 43 s), 0.5 ms more without.
func TestTrackingBcastManyPrefixesKeepWritesFast(t *testing.T) {
	// 500,000 prefixes take about 130 MB: past the default bound.
	tf := newTrackingFixture(t, func(o *Options) { o.TrackingMaxBytes = 1 << 30 })
	tf.reader.expect("CLIENT TRACKING ON BCAST PREFIX sess:z", "+OK")
	const writes = 200
	// medianWrite is the median time of writes SETs of keys under no
	// prefix (where a scan reads every prefix), less sensitive than a
	// total to what else runs on the machine.
	medianWrite := func(key string) time.Duration {
		took := make([]time.Duration, writes)
		for i := range took {
			start := time.Now()
			tf.writer.expect(fmt.Sprintf(`SET sess:%s%d {}`, key, i), "+OK")
			took[i] = time.Since(start)
		}
		slices.Sort(took)
		return took[writes/2]
	}
	before := medianWrite("b")
	start := time.Now()
	bcastRegister(t, tf.reader, 0, 500000, 2)
	t.Logf("registering 500,000 prefixes: %v", time.Since(start))
	// What one scan of them costs here: the fastest of a few.
	scan := time.Hour
	for range 5 {
		start := time.Now()
		if matchesLinear(tf.reader.client.tracking, "sess:q0") {
			t.Fatal("sess:q0 is under a prefix")
		}
		scan = min(scan, time.Since(start))
	}
	after := medianWrite("q")
	t.Logf("a write: %v with one prefix, %v with 500,001; a scan of them: %v", before, after, scan)
	if after-before > scan/2 {
		t.Fatalf("500,000 prefixes make a write %v slower; a scan of them takes %v", after-before, scan)
	}
	if got := tf.pushes.take(); len(got) != 0 {
		t.Fatalf("writes under no prefix: pushes %q", got)
	}
	tf.writer.expect(`SET sess:p0312345:x {}`, "+OK")
	tf.writer.expect(`SET sess:p0312345 {}`, "+OK") // shorter than the prefix
	tf.writer.expect(`SET sess:z1 {}`, "+OK")
	if got := tf.pushes.take(); len(got) != 2 || got[0] != push("sess:p0312345:x") || got[1] != push("sess:z1") {
		t.Fatalf("pushes %q, want sess:p0312345:x then sess:z1", got)
	}
}

// bcastLinear is who a write of keys invalidated before bcastFollowers,
// for reference: every BCAST client's prefixes scanned for each key.
func bcastLinear(t *tracker, keys []string) map[*Client][]string {
	out := map[*Client][]string{}
	for cl, ct := range t.clients {
		if !ct.bcast {
			continue
		}
		for _, k := range keys {
			if matchesLinear(ct, k) {
				out[cl] = append(out[cl], k)
			}
		}
	}
	return out
}

// bcastIndexed is who a write of keys invalidates, grouped as
// upstreamFeed.Invalidate and tracker.wrote group them.
func bcastIndexed(t *tracker, keys []string) map[*Client][]string {
	out := map[*Client][]string{}
	for _, k := range keys {
		t.bcastFollowers(k, func(cl *Client) { out[cl] = append(out[cl], k) })
	}
	return out
}

// checkBcastIndex compares the tracker's BCAST index with the one its
// clients' prefixes make.
func checkBcastIndex(t *testing.T, tr *tracker) {
	t.Helper()
	want := map[string]map[*Client]struct{}{}
	var lengths []prefixLength
	for cl, ct := range tr.clients {
		if !ct.bcast {
			continue
		}
		for _, p := range ct.prefixes {
			if want[p] == nil {
				want[p] = map[*Client]struct{}{}
				i := slices.IndexFunc(lengths, func(l prefixLength) bool { return l.n == len(p) })
				if i < 0 {
					i = len(lengths)
					lengths = append(lengths, prefixLength{n: len(p)})
				}
				lengths[i].prefixes++
			}
			want[p][cl] = struct{}{}
		}
	}
	slices.SortFunc(lengths, func(a, b prefixLength) int { return a.n - b.n })
	cost := int64(0)
	for p, followers := range want {
		cost += int64(len(followers)) * (int64(len(p)) + bcastEntryBytes)
	}
	if tr.bcastBytes != cost {
		t.Fatalf("the index counts %d bytes of prefixes, its prefixes cost %d", tr.bcastBytes, cost)
	}
	if !maps.EqualFunc(tr.bcast, want, maps.Equal) || !slices.Equal(tr.bcastLengths, lengths) {
		t.Fatalf("index %v (lengths %v), want %v (lengths %v)", tr.bcast, tr.bcastLengths, want, lengths)
	}
}

// The BCAST index finds, for random prefix sets and keys, the clients
// and keys the scan of every client's prefixes found, in the same
// grouping, while clients turn tracking on and off, RESET and go away.
func TestTrackingBcastIndexAgreesWithTheScan(t *testing.T) {
	tf := newTrackingFixture(t, nil)
	rnd := rand.New(rand.NewSource(1))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "ab"[rnd.Intn(2)]
		}
		return string(b)
	}
	prefix := func() string {
		switch rnd.Intn(8) {
		case 0:
			return "s" // outside the session prefix: sess:… keys only
		case 1:
			return "sess:"
		}
		return "sess:" + word(1+rnd.Intn(3))
	}
	connect := func() *fixture {
		c := tf.e.Connect("127.0.0.1:3", "127.0.0.1:6380")
		c.SetPusher(&recordPusher{})
		f := &fixture{t: t, e: tf.e, client: c, p: tf.e.NewPipeline(c)}
		f.one("HELLO 3")
		return f
	}
	clients := make([]*fixture, 6)
	for i := range clients {
		clients[i] = connect()
	}
	tr := &tf.e.tracking
	matched := 0
	for step := 0; step < 3000; step++ {
		f := clients[rnd.Intn(len(clients))]
		switch op := rnd.Intn(10); {
		case op < 6: // ON BCAST, refused when a prefix overlaps one it has
			cmd := "CLIENT TRACKING ON BCAST"
			for range rnd.Intn(4) {
				cmd += " PREFIX " + prefix()
			}
			if rnd.Intn(3) == 0 {
				cmd += " NOLOOP"
			}
			f.one(cmd)
		case op == 6:
			f.one("CLIENT TRACKING ON") // refused for a BCAST client
		case op == 7:
			f.expect("CLIENT TRACKING OFF", "+OK")
		case op == 8:
			f.expect("RESET", "+RESET")
			f.one("HELLO 3")
		default:
			tf.e.Disconnect(f.client)
			i := slices.Index(clients, f)
			clients[i] = connect()
		}
		tr.mu.Lock()
		checkBcastIndex(t, tr)
		for range 5 {
			keys := make([]string, 1+rnd.Intn(4))
			for i := range keys {
				keys[i] = "sess:" + word(rnd.Intn(6))
			}
			want := bcastLinear(tr, keys)
			if got := bcastIndexed(tr, keys); !maps.EqualFunc(got, want, slices.Equal) {
				tr.mu.Unlock()
				t.Fatalf("step %d, keys %q: %v, want %v", step, keys, got, want)
			}
			matched += len(want)
		}
		tr.mu.Unlock()
	}
	if matched == 0 {
		t.Fatal("no key was under a prefix: the cases test nothing")
	}
	for _, f := range clients {
		tf.e.Disconnect(f.client)
	}
	tf.e.Disconnect(tf.reader.client)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.bcast) != 0 || len(tr.bcastLengths) != 0 {
		t.Fatalf("every client gone, the index holds %v (lengths %v)", tr.bcast, tr.bcastLengths)
	}
}

// A BCAST client's own write through the proxy: its invalidation comes
// in-band ahead of the reply, none with NOLOOP, and the other BCAST
// clients following the key get theirs out of band.
func TestTrackingBcastOwnWrites(t *testing.T) {
	tests := []struct {
		name   string
		noloop string
		want   string
	}{
		{"the writer's invalidation comes before the reply", "", push("sess:a1") + "+OK\r\n"},
		{"NOLOOP: none for the writer", " NOLOOP", "+OK\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := newTrackingFixture(t, nil)
			writerPushes := &recordPusher{}
			tf.writer.client.SetPusher(writerPushes)
			tf.reader.expect("CLIENT TRACKING ON BCAST PREFIX sess:a PREFIX sess:c", "+OK")
			tf.writer.expect("CLIENT TRACKING ON BCAST PREFIX sess:a"+tt.noloop, "+OK")
			var out strings.Builder
			tf.writer.p.Run(context.Background(), [][][]byte{{[]byte("MSET"), []byte("sess:a1"), []byte("{}"), []byte("sess:b1"), []byte("{}"), []byte("sess:c1"), []byte("{}")}},
				func(b []byte) { out.Write(b) })
			if out.String() != tt.want {
				t.Fatalf("reply %q, want %q", out.String(), tt.want)
			}
			if got := writerPushes.take(); len(got) != 0 {
				t.Fatalf("the writer's out-of-band pushes %q, want none", got)
			}
			if got := tf.pushes.take(); len(got) != 1 || got[0] != push("sess:a1", "sess:c1") {
				t.Fatalf("the other client's pushes %q, want sess:a1 and sess:c1 in one", got)
			}
		})
	}
}
