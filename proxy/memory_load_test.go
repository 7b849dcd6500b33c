//go:build !race

package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/internal/procmem"
	"github.com/sessproxy/sessproxy/store"
	"github.com/sessproxy/sessproxy/store/codec"
)

// The memory budget's scenarios, each against a real redis-server so the
// data volume is real: huge multi-key commands and a pipeline whose
// replies are not read. Each must stay within server.max_inflight_bytes
// plus 50 MB of RSS, keep answering another client meanwhile, and give the
// heap back once its clients have left.

const (
	testBudget = 64 << 20
	rssSlack   = 50 << 20
	hugeKeys   = 550_000
)

// loadProxy is a proxy on a real redis-server with a small budget.
type loadProxy struct {
	srv  *Server
	addr string
	up   *redis.Client
}

func startLoadProxy(t *testing.T) *loadProxy {
	t.Helper()
	rs := redistest.Standalone(t)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Mode: store.ModeStandalone, Addrs: []string{rs.Addr}, AutoPipeline: true, Combine: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := commands.New(st, commands.Options{
		Policy:     ttl.Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour},
		Tombstones: true, Grace: time.Minute,
	})
	opts := Options{MaxRequestBytes: 16 << 20, MaxInflightBytes: testBudget, MaxClients: 100}
	// As cmd/sessproxy runs it.
	old := debug.SetMemoryLimit(MemoryLimit(opts))
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	srv := startServerOn(t, eng, opts)
	up := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { up.Close() })
	return &loadProxy{srv: srv, addr: srv.Addr().String(), up: up}
}

// startServerOn serves eng on a free port until the test ends.
func startServerOn(t *testing.T, eng *commands.Engine, opts Options) *Server {
	t.Helper()
	opts.Listen = "127.0.0.1:0"
	srv := New(eng, testOpts(opts))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-served
	})
	return srv
}

// hugeKey is the i-th key of a huge command: short, so 550,000 of them fit
// in one request of about 8 MB, as in the report.
func hugeKey(i int) string { return "sess:" + strconv.FormatInt(int64(i)+36*36*36, 36) }

// writeCommand streams one command of name and n keys (key(i)), without
// building it in memory: the clients share this process's RSS.
func writeCommand(w *bufio.Writer, name string, n int, key func(int) string) {
	fmt.Fprintf(w, "*%d\r\n$%d\r\n%s\r\n", n+1, len(name), name)
	for i := 0; i < n; i++ {
		k := key(i)
		fmt.Fprintf(w, "$%d\r\n%s\r\n", len(k), k)
	}
}

// skipReply reads one RESP reply and returns its first line.
func skipReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	switch line[0] {
	case '*':
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		for i := 0; i < n; i++ {
			if _, err := skipReply(r); err != nil {
				return "", err
			}
		}
	case '$':
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		if n >= 0 {
			if _, err := r.Discard(n + 2); err != nil {
				return "", err
			}
		}
	}
	return line, nil
}

// load measures a scenario: the peak RSS above the start, the slowest
// PING and GET of another client meanwhile, and how long the heap takes to
// come back once the scenario's clients have left.
type load struct {
	t        *testing.T
	p        *loadProxy
	before   int64
	heap     int64
	peak     atomic.Int64
	slowest  atomic.Int64 // ns
	probes   atomic.Int64
	stop     chan struct{}
	done     sync.WaitGroup
	started  time.Time
	probeErr atomic.Value
}

func (p *loadProxy) measure(t *testing.T) *load {
	debug.FreeOSMemory()
	l := &load{t: t, p: p, before: procmem.RSS(t), heap: heapInUse(), stop: make(chan struct{}), started: time.Now()}
	l.peak.Store(l.before)
	l.done.Add(2)
	go func() { // RSS sampler
		defer l.done.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
				if rss := procmem.RSS(t); rss > l.peak.Load() {
					l.peak.Store(rss)
				}
			}
		}
	}()
	go func() { // another client, answered meanwhile
		defer l.done.Done()
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			l.probeErr.Store(err)
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			select {
			case <-l.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			_ = c.SetDeadline(start.Add(30 * time.Second))
			if _, err := io.WriteString(c, "PING\r\nGET sess:probe\r\n"); err != nil {
				l.probeErr.Store(err)
				return
			}
			for i := 0; i < 2; i++ {
				if _, err := skipReply(r); err != nil {
					l.probeErr.Store(err)
					return
				}
			}
			if d := int64(time.Since(start)); d > l.slowest.Load() {
				l.slowest.Store(d)
			}
			l.probes.Add(1)
		}
	}()
	return l
}

// finish stops measuring, checks the bounds, and waits for the heap to
// come back down.
func (l *load) finish(name string) {
	t := l.t
	elapsed := time.Since(l.started)
	close(l.stop)
	l.done.Wait()
	if err, _ := l.probeErr.Load().(error); err != nil {
		t.Errorf("%s: the other client was not answered: %v", name, err)
	}
	grown := l.peak.Load() - l.before
	slowest := time.Duration(l.slowest.Load())
	start := time.Now()
	var heap int64
	for {
		debug.FreeOSMemory()
		if heap = heapInUse(); heap <= l.heap+16<<20 || time.Since(start) > time.Minute {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	back := time.Since(start)
	t.Logf("%s: %.1f s; peak RSS +%.1f MB (budget %d MiB + %d MB); other client: %d probes, slowest PING+GET %v; heap in use %.1f MB after, back within %v",
		name, elapsed.Seconds(), float64(grown)/(1<<20), testBudget>>20, rssSlack>>20, l.probes.Load(), slowest.Round(time.Millisecond), float64(heap)/(1<<20), back.Round(10*time.Millisecond))
	if grown > testBudget+rssSlack {
		t.Errorf("%s: RSS grew by %d MB, over the budget plus %d MB", name, grown>>20, rssSlack>>20)
	}
	if heap > l.heap+16<<20 {
		t.Errorf("%s: heap in use %d MB a minute after the clients left (%d MB before)", name, heap>>20, l.heap>>20)
	}
	if l.probes.Load() == 0 {
		t.Errorf("%s: the other client got no answer during the load", name)
	}
	// A huge command runs in chunks, each a round trip, and must not hold
	// the other clients for its whole run: an event loop ran the chunks
	// of a DEL of 550,000 keys while its other clients waited 5.7 s; it
	// now hands such a command to a goroutine (tens to hundreds of ms).
	if slowest > 2*time.Second {
		t.Errorf("%s: the other client waited %v for an answer", name, slowest.Round(time.Millisecond))
	}
}

// hugeCommands runs n clients at once, each sending one command of
// hugeKeys keys and reading its reply; it returns the first lines.
func (p *loadProxy) hugeCommands(t *testing.T, name string, n int) []string {
	lines := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			go func() {
				w := bufio.NewWriterSize(c, 64<<10)
				writeCommand(w, name, hugeKeys, hugeKey)
				_ = w.Flush()
			}()
			line, err := skipReply(bufio.NewReaderSize(c, 64<<10))
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			lines[i] = line
		}()
	}
	wg.Wait()
	return lines
}

// One MGET of 550,000 keys, then three at once.
func TestMemoryHugeMGet(t *testing.T) {
	p := startLoadProxy(t)
	for _, n := range []int{1, 3} {
		l := p.measure(t)
		for _, line := range p.hugeCommands(t, "MGET", n) {
			if line != "*"+strconv.Itoa(hugeKeys)+"\r\n" {
				t.Errorf("MGET reply %q", line)
			}
		}
		l.finish(fmt.Sprintf("%d× MGET of %d keys", n, hugeKeys))
	}
}

// Two DELs of 550,000 keys at once.
func TestMemoryHugeDel(t *testing.T) {
	p := startLoadProxy(t)
	l := p.measure(t)
	for _, line := range p.hugeCommands(t, "DEL", 2) {
		if !strings.HasPrefix(line, ":") {
			t.Errorf("DEL reply %q", line)
		}
	}
	l.finish(fmt.Sprintf("2× DEL of %d keys", hugeKeys))
}

// A client pipelines 3,000 MGETs of 100 keys of 3 KB each and reads
// nothing until it has sent them all (or the proxy stops reading).
func TestMemoryPipelinedMGetsUnread(t *testing.T) {
	const (
		gets  = 3000
		keys  = 100
		value = 3 << 10
	)
	p := startLoadProxy(t)
	ctx := context.Background()
	pipe := p.up.Pipeline()
	key := func(i int) string { return "sess:big" + strconv.Itoa(i) }
	for i := 0; i < keys; i++ {
		pipe.Set(ctx, key(i), strings.Repeat("v", value), time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	l := p.measure(t)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := make(chan int, 1)
	go func() {
		// Sent one at a time: a command the proxy stopped reading part-way
		// through gets no reply, and is not counted.
		var cmd strings.Builder
		bw := bufio.NewWriter(&cmd)
		writeCommand(bw, "MGET", keys, key)
		_ = bw.Flush()
		n := 0
		for ; n < gets; n++ {
			_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.WriteString(c, cmd.String()); err != nil {
				t.Logf("the proxy stopped reading after %d MGETs (%v)", n, err)
				break
			}
		}
		sent <- n
	}()
	n := <-sent
	// Now read what was answered.
	r := bufio.NewReaderSize(c, 64<<10)
	got := 0
	for ; got < n; got++ {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := skipReply(r)
		if err != nil {
			break
		}
		if line != "*100\r\n" {
			t.Fatalf("reply %d: %q", got, line)
		}
	}
	t.Logf("sent %d MGETs, read %d replies", n, got)
	c.Close()
	l.finish(fmt.Sprintf("%d pipelined MGETs of %d × %d KB unread", gets, keys, value>>10))
}

// SESS.BYOWNER and SESS.DESTROYOWNER check an owner's index against the
// sessions themselves, whose values the proxy must fetch for that. An
// index has no size bound, and fetching every member's session in one
// round trip held them all at once (100 sessions of 4 MiB: +800 MiB of RSS
// for a reply of 100 ids). Here 2,000 sessions of 64 KiB, 125 MiB of
// values: the replies are the same, and the proxy holds a chunk of them at
// a time, within the scenarios' bound. Before the chunks: +275 MiB for
// each command with event loops; without, the fetched values counted as
// unsent replies and the client was closed instead of answered.
func TestMemoryOwnerCommandsHoldAChunkOfSessions(t *testing.T) {
	rs := redistest.Standalone(t)
	st, err := store.Open(context.Background(), store.Options{Mode: store.ModeStandalone, Addrs: []string{rs.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := commands.New(st, commands.Options{OwnerField: "u", Policy: ttl.Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour}})
	opts := Options{MaxInflightBytes: testBudget, MaxClients: 100}
	// As cmd/sessproxy runs it.
	old := debug.SetMemoryLimit(MemoryLimit(opts))
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	srv := startServerOn(t, eng, opts)
	c, r := dial(t, "tcp", srv.Addr().String())
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	const n, size = 2000, 64 << 10
	value := `{"u":"ada","p":"` + strings.Repeat("x", size) + `"}`
	w := bufio.NewWriter(c)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "*3\r\n$3\r\nSET\r\n$9\r\nsess:%04d\r\n$%d\r\n%s\r\n", i, len(value), value)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
			t.Fatalf("SET %d: %q, %v", i, line, err)
		}
	}
	// grown sends cmd, reads its reply's first line and lines more, and
	// returns them with how much the process's peak RSS grew meanwhile.
	grown := func(cmd string, lines int) (string, []string, int64) {
		debug.FreeOSMemory()
		procmem.ResetPeak(t)
		before := procmem.Peak(t)
		got := roundTrip(t, c, r, cmd)
		rest := make([]string, lines)
		for i := range rest {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			rest[i] = strings.TrimSpace(line)
		}
		return got, rest, procmem.Peak(t) - before
	}
	const bound = testBudget + rssSlack
	got, lines, grew := grown("SESS.BYOWNER ada\r\n", 2*n)
	t.Logf("SESS.BYOWNER over %d sessions of %d KiB: peak RSS +%d MiB", n, size>>10, grew>>20)
	if got != fmt.Sprintf("*%d", n) {
		t.Fatalf("SESS.BYOWNER: %q, want %d ids", got, n)
	}
	seen := make(map[string]bool, n)
	for i := 1; i < len(lines); i += 2 {
		seen[lines[i]] = true
	}
	for i := 0; i < n; i++ {
		if !seen[fmt.Sprintf("%04d", i)] {
			t.Fatalf("SESS.BYOWNER: %04d missing", i)
		}
	}
	if grew > bound {
		t.Errorf("SESS.BYOWNER grew peak RSS by %d MiB, over %d MiB of sessions", grew>>20, n*size>>20)
	}
	got, _, grew = grown("SESS.DESTROYOWNER ada\r\n", 0)
	t.Logf("SESS.DESTROYOWNER over %d sessions of %d KiB: peak RSS +%d MiB", n, size>>10, grew>>20)
	if got != fmt.Sprintf(":%d", n) {
		t.Fatalf("SESS.DESTROYOWNER: %q, want :%d", got, n)
	}
	if grew > bound {
		t.Errorf("SESS.DESTROYOWNER grew peak RSS by %d MiB, over %d MiB of sessions", grew>>20, n*size>>20)
	}
	if got := roundTrip(t, c, r, "SESS.BYOWNER ada\r\n"); got != "*0" {
		t.Errorf("SESS.BYOWNER after SESS.DESTROYOWNER: %q", got)
	}
}

// A session value in Redis that decompresses a thousandfold (written
// there by something other than the proxy: a codec lets no client store
// one) is decoded once per key an MGET names: six names of one planted
// 2 KB value held 385 MB for a client allowed 1 MiB of replies. MGET now
// stops decoding once what it holds passes the client's reply room, and
// the client gets the reply limit's error.
func TestMemoryMGetOfDecompressionBombs(t *testing.T) {
	rs := redistest.Standalone(t)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Mode: store.ModeStandalone, Addrs: []string{rs.Addr}, AutoPipeline: true, Combine: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	zstdCodec := func(max int) codec.Codec {
		c, err := codec.New(codec.Options{Compress: codec.CompressZstd, MaxPayloadBytes: max})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	eng := commands.New(st, commands.Options{Codec: zstdCodec(1 << 20),
		Policy: ttl.Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour}})
	opts := Options{MaxInflightBytes: testBudget, MaxClients: 100, MaxClientReplyBytes: 1 << 20}
	old := debug.SetMemoryLimit(MemoryLimit(opts))
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	srv := startServerOn(t, eng, opts)

	// 64 MiB of JSON, stored as a codec that allowed it would store it.
	payload := make([]byte, 64<<20)
	for i := range payload {
		payload[i] = ' '
	}
	copy(payload, `{"a":"`)
	copy(payload[len(payload)-2:], `"}`)
	stored, err := zstdCodec(64<<20).Encode(payload, codec.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	payload = nil
	up := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer up.Close()
	if err := up.Set(ctx, "sess:bomb", stored, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	c, r := dial(t, "tcp", srv.Addr().String())
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	debug.FreeOSMemory()
	procmem.ResetPeak(t)
	before := procmem.Peak(t)
	const names = 6
	got := roundTrip(t, c, r, "MGET"+strings.Repeat(" sess:bomb", names)+"\r\n")
	grew := procmem.Peak(t) - before
	t.Logf("MGET naming a %d-byte value (64 MiB decoded) %d times: peak RSS +%d MiB; reply %.60q", len(stored), names, grew>>20, got)
	if !strings.HasPrefix(got, "-") {
		t.Errorf("MGET of %d × 64 MiB for a client allowed 1 MiB of replies: %.60q, want the reply limit's error", names, got)
	}
	// One decoded value, and the decoder's own, is what it may hold.
	if bound := int64(2*64<<20 + rssSlack); grew > bound {
		t.Errorf("MGET grew peak RSS by %d MiB, over %d MiB", grew>>20, bound>>20)
	}
}

// startOnRedis serves a proxy on a real redis-server holding n sessions
// with ids of 250 bytes (SPEC §2 allows 256): the longest names a walk
// of the keyspace can gather. The budget and the Go memory limit are the
// scenarios' (startLoadProxy), so that what is measured is what is held,
// not garbage the collector has not yet been asked for.
func startOnRedis(t *testing.T, opts Options, n int) (*Server, *redis.Client) {
	t.Helper()
	opts.MaxInflightBytes, opts.MaxClients = testBudget, 100
	old := debug.SetMemoryLimit(MemoryLimit(opts))
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	ctx := context.Background()
	up := redistest.Standalone(t)
	rc := redis.NewClient(&redis.Options{Addr: up.Addr})
	t.Cleanup(func() { rc.Close() })
	pad := strings.Repeat("x", 240)
	for i := 0; i < n; i += 10000 {
		p := rc.Pipeline()
		for j := i; j < min(n, i+10000); j++ {
			p.Set(ctx, fmt.Sprintf("sess:%s%08d", pad, j), "{}", 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(ctx, store.Options{Mode: store.ModeStandalone, Addrs: []string{up.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := commands.New(st, commands.Options{Policy: ttl.Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour}})
	return startServerOn(t, eng, opts), rc
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// manyIDs is a request of cmd followed by the ids 0 … n-1.
func manyIDs(cmd string, n int) string {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(n+1) + "\r\n$" + strconv.Itoa(len(cmd)) + "\r\n" + cmd + "\r\n")
	for i := range n {
		id := strconv.Itoa(i)
		b.WriteString("$" + strconv.Itoa(len(id)) + "\r\n" + id + "\r\n")
	}
	return b.String()
}

// SESS.DESTROY and SESS.EXISTS of 300,000 ids (a 3.4 MB request) run in
// chunks of 1024 ids, as DEL and EXISTS do, and answer the count summed
// over the chunks. As one batch of an operation per id they peaked the
// proxy at +294 MiB and +258 MiB here, 4 s of CPU each (+553 and +477 MiB
// without the memory limit; 900,000 ids: +1962 MiB, and an upstream i/o
// timeout after destroying some); a goroutine-served client's SESS.EXISTS
// was closed for its 300,000 integer replies, over its 1 MiB. Chunked:
// about +76 MiB, 0.5 s.
func TestMemorySessDestroyOfManyIdsIsChunked(t *testing.T) {
	srv, rc := startOnRedis(t, Options{MaxClientReplyBytes: 1 << 20}, 0)
	const n = 300000
	// Live sessions in the first chunk, a later one and the last.
	live := []int{5, 150000, n - 1}
	for _, i := range live {
		if err := rc.Set(context.Background(), "sess:"+strconv.Itoa(i), "{}", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c, r := dial(t, "tcp", srv.Addr().String())
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	for _, tt := range []struct{ cmd, want string }{
		{"SESS.EXISTS", ":3"},
		{"SESS.DESTROY", ":3"},
		{"SESS.EXISTS", ":0"},
	} {
		req := manyIDs(tt.cmd, n)
		debug.FreeOSMemory()
		procmem.ResetPeak(t)
		before := procmem.Peak(t)
		cpu0 := cpuTime(t)
		got := roundTrip(t, c, r, req)
		cpu := cpuTime(t) - cpu0
		grew := procmem.Peak(t) - before
		t.Logf("%s of %d ids (%d KiB): %v of CPU, peak RSS +%d MiB: %.60q", tt.cmd, n, len(req)>>10, cpu.Round(time.Millisecond), grew>>20, got)
		if got != tt.want {
			t.Errorf("%s of %d ids: %.60q, want %s", tt.cmd, n, got, tt.want)
		}
		if bound := 25*int64(len(req)) + 32<<20; grew > bound {
			t.Errorf("%s: peak RSS +%d MiB for a request of %d KiB, over %d MiB", tt.cmd, grew>>20, len(req)>>10, bound>>20)
		}
	}
}

// KEYS and SESS.IDS stop gathering names once they pass the room the
// client's reply has left, and the client gets the reply limit's error, as
// SESS.ALL does. Gathered whole first, four at once over 200,000 sessions
// of 250-byte ids peaked the proxy at +222 MiB (SESS.IDS +228 MiB) and 5.7
// s of CPU here, +460 MiB (+423 MiB) without the memory limit, for clients
// allowed 1 MiB of replies; stopped, +32 MiB and 0.06 s.
func TestMemoryKeysStopsAtTheReplyLimit(t *testing.T) {
	const sessions = 200000
	const limit = 1 << 20
	srv, _ := startOnRedis(t, Options{MaxClientReplyBytes: limit}, sessions)
	want := "-ERR reply larger than server.max_client_reply_bytes (" + strconv.Itoa(limit) + "): closing the connection"
	for _, args := range [][]string{{"KEYS", "*"}, {"SESS.IDS"}} {
		const clients = 4
		debug.FreeOSMemory()
		procmem.ResetPeak(t)
		before := procmem.Peak(t)
		cpu0 := cpuTime(t)
		start := time.Now()
		var wg sync.WaitGroup
		replies := make([]string, clients)
		for i := range clients {
			c, r := dial(t, "tcp", srv.Addr().String())
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.WriteString(c, encodeRESP(args...))
				line, _ := r.ReadString('\n')
				replies[i] = strings.TrimSpace(line)
			}()
		}
		wg.Wait()
		cpu := cpuTime(t) - cpu0
		grew := procmem.Peak(t) - before
		t.Logf("%d× %s over %d sessions of 250-byte ids, clients allowed 1 MiB: %v, %v of CPU, peak RSS +%d MiB; first reply %.60q",
			clients, args[0], sessions, time.Since(start).Round(time.Millisecond), cpu.Round(time.Millisecond), grew>>20, replies[0])
		for _, got := range replies {
			if got != want {
				t.Errorf("%s: %.60q, want %q", args[0], got, want)
			}
		}
		if grew > 64<<20 {
			t.Errorf("%s: peak RSS grew by %d MiB", args[0], grew>>20)
		}
	}
}

// SCAN's COUNT is capped at 1000 (commands.maxScanCount): one SCAN 0
// COUNT 1000000000 walked the whole keyspace in one Redis call and held
// the whole page, +395 MiB for a client allowed 1 MiB of replies.
func TestMemoryScanCountIsBounded(t *testing.T) {
	const sessions = 200000
	srv, _ := startOnRedis(t, Options{MaxClientReplyBytes: 1 << 20}, sessions)
	c, r := dial(t, "tcp", srv.Addr().String())
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	debug.FreeOSMemory()
	procmem.ResetPeak(t)
	before := procmem.Peak(t)
	cpu0 := cpuTime(t)
	start := time.Now()
	got := roundTrip(t, c, r, encodeRESP("SCAN", "0", "COUNT", "1000000000"))
	took, cpu := time.Since(start), cpuTime(t)-cpu0
	rest, err := skipReply(r) // the page
	if err != nil {
		t.Fatal(err)
	}
	grew := procmem.Peak(t) - before
	t.Logf("SCAN 0 COUNT 1e9 over %d sessions: %v, %v of CPU, peak RSS +%d MiB, reply %q %q", sessions, took.Round(time.Millisecond), cpu.Round(time.Millisecond), grew>>20, got, rest)
	if got != "*2" {
		t.Errorf("SCAN: %.60q, want a cursor and a page", got)
	}
	if grew > 64<<20 {
		t.Errorf("peak RSS grew by %d MiB", grew>>20)
	}
}
