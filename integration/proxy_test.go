package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/metrics"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store"
	"github.com/sessproxy/sessproxy/store/codec"
)

// Defaults of the proxy under test: SPEC's defaults.
const (
	defaultTTL = 24 * time.Hour
	maxTTL     = 30 * 24 * time.Hour
	grace      = 5 * time.Minute
	// ttlSlack is how far below the TTL it wrote a PTTL may have fallen by
	// the time the test reads it (slow -race runs on 2 cores included).
	ttlSlack = 10 * time.Second
)

// proxyHandle is a running in-process proxy.
type proxyHandle struct {
	up   *upstream
	srv  *proxy.Server
	st   *store.Store
	addr string
	port int
	// metricsURL is the base URL of its /metrics, /healthz and /readyz.
	metricsURL string
	// seeded are keys a test wrote directly without a TTL, exempt from the
	// every-session-key-has-a-TTL check.
	seeded map[string]bool
	// phpNativePrefix: PHP requests keep phpredis's own key prefix
	// (a proxy on the phpredis preset, presets_test.go).
	phpNativePrefix bool
	// process is the sessproxy binary serving, for a proxy started by
	// startPresetProcess; nil in process.
	process *sessproxyProcess
	// format is the tombstone format its destroys write.
	format store.TombstoneFormat
}

// startProxy flushes the upstream, starts a proxy on it with SPEC's
// defaults changed by tweak (may be nil), and registers its shutdown. On
// cleanup it checks that no write through the proxy left a session key
// without a TTL.
func startProxy(t *testing.T, up *upstream, tweak func(*commands.Options, *proxy.Options)) *proxyHandle {
	t.Helper()
	up.flush(t)
	return startSibling(t, up, tweak)
}

// startSibling is startProxy without the flush: another proxy, with its
// own options, on the keys already in the upstream (codec migrations, key
// rotation).
func startSibling(t *testing.T, up *upstream, tweak func(*commands.Options, *proxy.Options)) *proxyHandle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Auto-pipelining and metrics on, as the shipped config has them.
	reg := metrics.NewRegistry()
	st, err := store.Open(ctx, store.Options{Mode: up.mode, Addrs: up.addrs, MasterName: up.masterName,
		Password: up.password, SentinelPassword: up.sentinelPassword, AutoPipeline: true, Combine: true, Metrics: reg})
	if err != nil {
		t.Fatalf("open %s store: %v", up.name, err)
	}
	t.Cleanup(func() { st.Close() }) // registered first, so it runs after the shutdown below
	copts := commands.Options{
		Prefix:       "sess:",
		LockSuffixes: []string{"_LOCK"},
		Policy: ttl.Policy{
			Default: defaultTTL, Min: time.Second, Max: maxTTL,
			FromCookie: true, Touch: true, Persist: ttl.PersistDeny, LockMax: lockMax,
		},
		Tombstones: true,
		Grace:      grace,
		OnWrite:    commands.OnWriteError,
		Codec:      newCodec(t, codec.Options{MaxPayloadBytes: 1 << 20}),
		Version:    "test",
	}
	popts := proxy.Options{Listen: "127.0.0.1:0", MaxRequestBytes: 8 << 20}
	// make test runs the suite once more with the clients served by event
	// loops (server.event_loops).
	if n, err := strconv.Atoi(os.Getenv("SESSPROXY_TEST_EVENT_LOOPS")); err == nil {
		popts.EventLoops = n
	}
	if tweak != nil {
		tweak(&copts, &popts)
	}
	copts.Metrics = reg
	if copts.Logger == nil && popts.Logger == nil {
		log := newProxyLog(t, up) // runs after the shutdown below
		copts.Logger, popts.Logger = log, log
	}
	srv := proxy.New(commands.New(st, copts), popts)
	if err := srv.Listen(); err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	p := &proxyHandle{up: up, srv: srv, st: st, addr: srv.Addr().String(), seeded: map[string]bool{}, format: copts.TombstoneFormat}
	if p.format == "" {
		p.format = store.TombstoneString
	}
	p.port = srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("proxy shutdown: %v", err)
		}
		select {
		case <-served:
		case <-ctx.Done():
			t.Errorf("proxy Serve did not return after Shutdown")
		}
		if !t.Failed() {
			p.assertAllSessionKeysHaveTTL(t, copts.Prefix)
		}
	})
	p.metricsURL = serveMetrics(t, reg, srv)
	return p
}

// serveMetrics starts the proxy's /metrics, /healthz and /readyz on a free
// port, as cmd/sessproxy does, and returns their base URL.
func serveMetrics(t *testing.T, reg *metrics.Registry, srv *proxy.Server) string {
	t.Helper()
	ms := metrics.NewServer(reg, metrics.ServerOptions{Addr: "127.0.0.1:0", Ready: srv.Ready})
	if err := ms.Listen(); err != nil {
		t.Fatalf("metrics listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- ms.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ms.Shutdown(ctx); err != nil {
			t.Errorf("metrics shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("metrics Serve: %v", err)
		}
	})
	return "http://" + ms.Addr().String()
}

// newCodec builds a codec the proxy under test uses.
func newCodec(t *testing.T, o codec.Options) codec.Codec {
	t.Helper()
	c, err := codec.New(o)
	if err != nil {
		t.Fatalf("codec %+v: %v", o, err)
	}
	return c
}

// client is a go-redis client of the proxy, closed at the end of the test.
// It speaks RESP2 so replies decode to the same Go values as the direct
// client's; RESP3 clients are driven in clients_test.go.
func (p *proxyHandle) client(t *testing.T, tweak ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: p.addr, Protocol: 2, DisableIdentity: true}
	for _, f := range tweak {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// conn is one dedicated go-redis connection to the proxy, for tests of
// per-connection state (AUTH, CLIENT SETNAME…).
func (p *proxyHandle) conn(t *testing.T, tweak ...func(*redis.Options)) *redis.Conn {
	t.Helper()
	c := p.client(t, tweak...).Conn()
	t.Cleanup(func() { c.Close() })
	return c
}

// raw opens a raw RESP connection to the proxy.
func (p *proxyHandle) raw(t *testing.T) *rawConn {
	t.Helper()
	return dialRaw(t, p.addr)
}

// assertAllSessionKeysHaveTTL is SPEC §3's invariant: no write through the
// proxy ever leaves a session key without a TTL.
func (p *proxyHandle) assertAllSessionKeysHaveTTL(t *testing.T, prefix string) {
	t.Helper()
	var mu sync.Mutex
	var bad []string
	err := p.up.forEachMaster(bg, func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, prefix+"*").Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			if p.seeded[k] {
				continue
			}
			d, err := c.PTTL(ctx, k).Result()
			if err != nil {
				return err
			}
			if d == -1 {
				mu.Lock()
				bad = append(bad, clip(k))
				mu.Unlock()
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("check session key TTLs: %v", err)
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Errorf("invariant broken: %d session keys have no TTL in the upstream, e.g. %q", len(bad), bad[:min(len(bad), 5)])
	}
}

// allKeys is every key in the upstream (every master), sorted.
func (p *proxyHandle) allKeys(t *testing.T) []string {
	t.Helper()
	var mu sync.Mutex
	var all []string
	err := p.up.forEachMaster(bg, func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, "*").Result()
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatalf("KEYS * on the upstream: %v", err)
	}
	sort.Strings(all)
	return all
}

// seedNoTTL writes key directly into the upstream without a TTL: a legacy
// key the proxy did not write.
func (p *proxyHandle) seedNoTTL(t *testing.T, key, value string) {
	t.Helper()
	p.seeded[key] = true
	if err := p.up.direct.Set(context.Background(), key, value, 0).Err(); err != nil {
		t.Fatalf("seed %s: %v", key, err)
	}
}

// --- assertions -------------------------------------------------------------

var bg = context.Background()

// doer is what both *redis.Client and *redis.Conn are.
type doer interface {
	Do(ctx context.Context, args ...interface{}) *redis.Cmd
}

// mustDo runs a command and fails on any error.
func mustDo(t *testing.T, c doer, args ...interface{}) interface{} {
	t.Helper()
	v, err := c.Do(bg, args...).Result()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

// wantReply runs a command and compares its reply (nil for a null reply).
func wantReply(t *testing.T, c doer, want interface{}, args ...interface{}) {
	t.Helper()
	v, err := c.Do(bg, args...).Result()
	if errors.Is(err, redis.Nil) {
		v, err = nil, nil
	}
	if err != nil {
		t.Errorf("%s: error %v, want %s", show(args), err, clip(fmt.Sprintf("%#v", want)))
		return
	}
	if fmt.Sprint(v) != fmt.Sprint(want) || (v == nil) != (want == nil) {
		t.Errorf("%s = %s, want %s", show(args), clip(fmt.Sprintf("%#v", v)), clip(fmt.Sprintf("%#v", want)))
	}
}

// wantErr runs a command and checks its error reply is exactly msg.
func wantErr(t *testing.T, c doer, msg string, args ...interface{}) {
	t.Helper()
	v, err := c.Do(bg, args...).Result()
	if err == nil || errors.Is(err, redis.Nil) || err.Error() != msg {
		t.Errorf("%s = %s, %v; want error %q", show(args), clip(fmt.Sprintf("%#v", v)), err, msg)
	}
}

// wantErrPrefix runs a command and checks its error reply starts with prefix.
func wantErrPrefix(t *testing.T, c doer, prefix string, args ...interface{}) {
	t.Helper()
	v, err := c.Do(bg, args...).Result()
	if err == nil || errors.Is(err, redis.Nil) || !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("%s = %s, %v; want error starting %q", show(args), clip(fmt.Sprintf("%#v", v)), err, prefix)
	}
}

// show renders a command for a failure message.
func show(args []interface{}) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = fmt.Sprintf("%q", fmt.Sprint(a))
	}
	return clip(strings.Join(parts, " "))
}

// clip shortens long values (100 KiB payloads, 257-byte ids) in messages.
func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

// stored is the value at key in the upstream; ok false when missing.
func (p *proxyHandle) stored(t *testing.T, key string) (string, bool) {
	t.Helper()
	v, err := p.up.direct.Get(bg, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", false
	}
	if err != nil {
		t.Fatalf("direct GET %s: %v", key, err)
	}
	return v, true
}

// wantStored checks the upstream holds exactly value at key.
func (p *proxyHandle) wantStored(t *testing.T, key, value string) {
	t.Helper()
	v, ok := p.stored(t, key)
	if !ok {
		t.Errorf("upstream: %s missing, want %q", clip(key), clip(value))
	} else if v != value {
		t.Errorf("upstream: %s = %q, want %q", clip(key), clip(v), clip(value))
	}
}

// wantMissing checks the upstream has no key.
func (p *proxyHandle) wantMissing(t *testing.T, key string) {
	t.Helper()
	if v, ok := p.stored(t, key); ok {
		t.Errorf("upstream: %s = %q, want no such key", clip(key), clip(v))
	}
}

// pttl is the upstream's PTTL of key, as a Duration; -2ms missing, -1ms none.
func (p *proxyHandle) pttl(t *testing.T, key string) time.Duration {
	t.Helper()
	ms, err := p.up.direct.Do(bg, "PTTL", key).Int64()
	if err != nil {
		t.Fatalf("direct PTTL %s: %v", key, err)
	}
	return time.Duration(ms) * time.Millisecond
}

// wantTTL checks the upstream's TTL of key is want, give or take the time
// the test took since the write (ttlSlack).
func (p *proxyHandle) wantTTL(t *testing.T, key string, want time.Duration) {
	t.Helper()
	got := p.pttl(t, key)
	if got > want || got < want-ttlSlack {
		t.Errorf("upstream: PTTL %s = %v, want %v (within %v below)", clip(key), got, want, ttlSlack)
	}
}

// wantTombstone checks key holds a tombstone of p's format with about the
// grace TTL.
func (p *proxyHandle) wantTombstone(t *testing.T, key string) {
	t.Helper()
	if f := p.tombstoneAt(t, key); f != p.format {
		t.Errorf("upstream: %s holds tombstone format %q, want %q", clip(key), f, p.format)
	}
	p.wantTTL(t, key, grace)
}

// wantTombstoneSince checks a tombstone written at written: its TTL is the
// grace less the time since (a failover in between can take long).
func (p *proxyHandle) wantTombstoneSince(t *testing.T, key string, written time.Time) {
	t.Helper()
	if f := p.tombstoneAt(t, key); f != p.format {
		t.Errorf("upstream: %s holds tombstone format %q, want %q", clip(key), f, p.format)
	}
	ttl := p.pttl(t, key)
	if max := grace - time.Since(written) + time.Second; ttl <= 0 || ttl > max || ttl < max-10*time.Second {
		t.Errorf("upstream: PTTL %s = %v, want about %v (the grace less the %v since it was written)", key, ttl, max, time.Since(written))
	}
}

// tombstoneAt is the format of the tombstone key holds, "" when it holds
// none.
func (p *proxyHandle) tombstoneAt(t *testing.T, key string) store.TombstoneFormat {
	t.Helper()
	typ, err := p.up.direct.Type(bg, key).Result()
	if err != nil {
		t.Fatalf("direct TYPE %s: %v", key, err)
	}
	switch typ {
	case "string":
		if v, _ := p.stored(t, key); v == store.Tombstone {
			return store.TombstoneString
		}
	case "set":
		members, err := p.up.direct.SMembers(bg, key).Result()
		if err != nil {
			t.Fatalf("direct SMEMBERS %s: %v", key, err)
		}
		if len(members) == 1 && members[0] == store.Tombstone {
			return store.TombstoneTyped
		}
	}
	return ""
}

// typedTombstones is a startProxy tweak: tombstone.format = "typed", its
// transition over (writes are native SET … GET).
func typedTombstones(o *commands.Options, _ *proxy.Options) {
	o.TombstoneFormat, o.TombstoneTransition = store.TombstoneTyped, -1
}

// typedInTransition is tombstone.format = "typed" just after a switch:
// for a grace, writes still go through the scripts that see both formats.
func typedInTransition(o *commands.Options, _ *proxy.Options) {
	o.TombstoneFormat = store.TombstoneTyped
}

// slot is the cluster hash slot of key, asked of the cluster itself.
func (u *upstream) slot(t *testing.T, key string) int64 {
	t.Helper()
	n, err := u.direct.ClusterKeySlot(bg, key).Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
	}
	return n
}

// spreadKeys returns n keys "<prefix><i>". On the cluster they sit in n
// different slots spread over every master, which it checks with CLUSTER
// KEYSLOT, so multi-key commands over them cross slots and nodes.
func (u *upstream) spreadKeys(t *testing.T, prefix string, n int) []string {
	t.Helper()
	if !u.cluster() {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return keys
	}
	cc := u.direct.(*redis.ClusterClient)
	byMaster := map[string][]string{}
	var order []string
	for i := 0; i < 10*n+30; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		m, err := cc.MasterForKey(bg, k)
		if err != nil {
			t.Fatalf("master for %s: %v", k, err)
		}
		addr := m.Options().Addr
		if _, seen := byMaster[addr]; !seen {
			order = append(order, addr)
		}
		byMaster[addr] = append(byMaster[addr], k)
	}
	if len(order) < 3 {
		t.Fatalf("keys %s* reach %d masters, want 3", prefix, len(order))
	}
	var keys []string
	for i := 0; len(keys) < n; i++ {
		m := byMaster[order[i%len(order)]]
		keys = append(keys, m[i/len(order)])
	}
	slots := map[int64]string{}
	for _, k := range keys {
		s := u.slot(t, k)
		if other, dup := slots[s]; dup {
			t.Fatalf("%s and %s share slot %d", k, other, s)
		}
		slots[s] = k
	}
	return keys
}

// --- raw RESP connection ----------------------------------------------------

// rawConn speaks RESP2 over TCP with no client library in between: for
// QUIT, request limits, unknown commands on one connection, and shutdown.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// respError is an error reply.
type respError string

func (e respError) Error() string { return string(e) }

// status is a simple-string reply.
type status string

// encode renders a command as a RESP array of bulk strings.
func encode(args ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// do sends one command and reads its reply.
func (c *rawConn) do(args ...string) interface{} {
	c.t.Helper()
	c.write(encode(args...))
	v, err := c.read()
	if err != nil {
		c.t.Fatalf("%s: read reply: %v", clip(fmt.Sprintf("%q", args)), err)
	}
	return v
}

// wantReplies reads one reply per want (scalars, compared with ==) and
// checks each; it stops at the first that cannot be read.
func (c *rawConn) wantReplies(wants ...interface{}) {
	c.t.Helper()
	for i, want := range wants {
		got, err := c.read()
		if err != nil {
			c.t.Fatalf("reply %d: %v", i, err)
		}
		if got != want {
			c.t.Errorf("reply %d = %#v, want %#v", i, got, want)
		}
	}
}

// read reads one reply: status, respError, int64, string or nil (bulk),
// []interface{} (array).
func (c *rawConn) read() (interface{}, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(line, "\r\n") || len(line) < 3 {
		return nil, fmt.Errorf("malformed reply line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return status(body), nil
	case '-':
		return respError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("bad array length %q", line)
		}
		if n < 0 {
			return nil, nil
		}
		out := make([]interface{}, n)
		for i := range out {
			if out[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply line %q", line)
}

// wantEOF checks the proxy closed the connection with nothing more to say.
func (c *rawConn) wantEOF() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.r.ReadByte()
	if err == nil {
		rest, _ := c.r.Peek(c.r.Buffered())
		c.t.Errorf("connection still open: read %q, want EOF", append([]byte{b}, rest...))
		return
	}
	if !errors.Is(err, io.EOF) && !isConnReset(err) {
		c.t.Errorf("read after close: %v, want EOF", err)
	}
}

func isConnReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}
