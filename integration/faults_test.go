package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A write Redis refuses for its own state (OOM past maxmemory, and the
// like) is the operator's to see, not only the client's: it is logged at
// WARN with Redis's reason and the client (rate-limited, as every refused
// write), counted in sessproxy_refused_writes_total{reason="upstream"} and
// as an upstream error of its command. Before, the proxy passed Redis's
// -OOM on to the client, counted it as result="error" with client
// mistakes, and logged nothing; an EXEC answered a bare EXECABORT, the OOM
// of the command it queued lost.
func TestRedisRefusedWriteIsLoggedAndCounted(t *testing.T) {
	srv := redistest.Standalone(t)
	direct := directClient(srv.Addr)
	t.Cleanup(func() { direct.Close() })
	up := &upstream{name: "standalone-maxmemory", mode: store.ModeStandalone, addrs: []string{srv.Addr}, direct: direct}
	core, logs := observer.New(zap.WarnLevel)
	log := zap.New(core)
	p := startSibling(t, up, func(o *commands.Options, po *proxy.Options) { o.Logger, po.Logger = log, log })
	c := p.client(t, func(o *redis.Options) { o.MaxRetries = -1 })
	ctx := context.Background()
	if err := direct.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.ConfigSet(context.Background(), "maxmemory", "0") })

	tests := []struct {
		name, command string
		do            func() error
	}{
		{"SESS.SET", "sess.set", func() error { return c.Do(ctx, "SESS.SET", "oom1", `{"a":1}`).Err() }},
		{"SET", "set", func() error { return c.Set(ctx, "sess:oom2", `{"a":1}`, 0).Err() }},
		{"SESS.FSET", "sess.fset", func() error { return c.Do(ctx, "SESS.FSET", "oom3", "a", "1").Err() }},
		{"MULTI SET EXEC", "exec", func() error {
			_, err := c.TxPipelined(ctx, func(pp redis.Pipeliner) error {
				pp.Set(ctx, "sess:oom4", `{"a":1}`, 0)
				return nil
			})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if err == nil || !strings.Contains(err.Error(), "OOM command not allowed") {
				t.Errorf("%s under maxmemory answered %v, want Redis's OOM", tt.name, err)
			}
			series := scrape(t, p.metricsURL)
			upstreamErrs := series[cmdSeries(tt.command, "upstream_error")]
			plainErrs := series[cmdSeries(tt.command, "error")]
			t.Logf("%s refused by Redis: reply %v; %s upstream_error=%v error=%v", tt.name, err, tt.command, upstreamErrs, plainErrs)
			if upstreamErrs != 1 {
				t.Errorf("sessproxy_commands_total{command=%q,result=\"upstream_error\"} = %v, want 1", tt.command, upstreamErrs)
			}
		})
	}
	refused := scrape(t, p.metricsURL)[`sessproxy_refused_writes_total{reason="upstream"}`]
	var lines []string
	for _, e := range logs.FilterMessageSnippet("refused").All() {
		lines = append(lines, e.Message+" "+fieldsOf(e))
	}
	t.Logf("refused_writes_total{reason=\"upstream\"}=%v; log lines: %q", refused, lines)
	if refused != float64(len(tests)) {
		t.Errorf("sessproxy_refused_writes_total{reason=\"upstream\"} = %v, want %d", refused, len(tests))
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "OOM") {
		t.Errorf("logged %q, want one line with Redis's reason (OOM), the rest rate-limited", lines)
	}
}

// fieldsOf is a log entry's fields as key=value.
func fieldsOf(e observer.LoggedEntry) string {
	var b strings.Builder
	for k, v := range e.ContextMap() {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " ")))
		b.WriteByte(' ')
	}
	return b.String()
}

func toString(v interface{}) string {
	if s, ok := v.(string); ok {
		return s
	}
	return strings.TrimSpace(strings.Trim(strings.ReplaceAll(strings.TrimSpace(fmtAny(v)), "\t", " "), " "))
}

func fmtAny(v interface{}) string { return fmt.Sprint(v) }

// stallLatency is what the clients saw while the upstream was stalled.
type stallLatency struct {
	mu                  sync.Mutex
	ok, failed          int
	slowestErr, slowest time.Duration
	firstOKAfter        time.Time
	resumed             time.Time
}

func (l *stallLatency) record(start time.Time, err error) {
	took := time.Since(start)
	l.mu.Lock()
	defer l.mu.Unlock()
	if took > l.slowest {
		l.slowest = took
	}
	if err != nil {
		l.failed++
		if took > l.slowestErr {
			l.slowestErr = took
		}
		return
	}
	l.ok++
	if !l.resumed.IsZero() && l.firstOKAfter.IsZero() && start.After(l.resumed) {
		l.firstOKAfter = time.Now()
	}
}

// A stalled Redis (SIGSTOP: its connections stay open and silent) costs
// each command at most upstream.read_timeout once the proxy sends it (an
// event loop's client may also wait for the round in flight before its
// own: twice it), and the proxy serves again once Redis resumes.
//
// Before Batch.sendDeadline, with a 15 s stall and the 3 s read timeout,
// 16 clients got 16 errors in all, the slowest after 9.0 s, and a command
// waited 12.0 s and then succeeded when Redis resumed (lanes, event loops
// or a goroutine per client alike): go-redis's HELLO on each new
// connection gets a read_timeout of its own, and a batch queued behind a
// lane's timed-out pipeline waited for it first. Now 3.0 s with a
// goroutine per client, 6.0 s on an event loop.
func TestStalledUpstreamAnswersWithinTheReadTimeout(t *testing.T) {
	const readTimeout = 3 * time.Second // store.Options' default, as startSibling opens it
	srv := redistest.Standalone(t)
	direct := directClient(srv.Addr)
	t.Cleanup(func() { direct.Close() })
	up := &upstream{name: "standalone-stall", mode: store.ModeStandalone, addrs: []string{srv.Addr}, direct: direct}
	p := startSibling(t, up, nil)
	ctx := context.Background()
	var lat stallLatency
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		c := p.client(t, func(o *redis.Options) { o.MaxRetries, o.ReadTimeout = -1, 30*time.Second })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				err := c.Do(ctx, "SESS.SET", fmt.Sprintf("stall%d-%d", w, i%50), `{"a":1}`).Err()
				lat.record(start, err)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := srv.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const stall = 5 * readTimeout
	time.Sleep(stall)
	if err := srv.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	lat.mu.Lock()
	lat.resumed = time.Now()
	lat.mu.Unlock()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	lat.mu.Lock()
	defer lat.mu.Unlock()
	served := "never"
	if !lat.firstOKAfter.IsZero() {
		served = lat.firstOKAfter.Sub(lat.resumed).Round(time.Millisecond).String()
	}
	t.Logf("SIGSTOP for %v (read_timeout %v): ok=%d failed=%d slowest error after %v, slowest reply %v; resumed→served %s",
		stall, readTimeout, lat.ok, lat.failed, lat.slowestErr.Round(time.Millisecond), lat.slowest.Round(time.Millisecond), served)
	if lat.failed == 0 {
		t.Errorf("no command failed while Redis was stopped")
	}
	if lat.slowest > 2*readTimeout+time.Second {
		t.Errorf("a command waited %v for its reply, past twice read_timeout %v", lat.slowest, readTimeout)
	}
	if lat.firstOKAfter.IsZero() {
		t.Errorf("the proxy did not serve again within 2s of Redis resuming")
	}
}

// A transaction whose upstream connection died between WATCH (or MULTI)
// and EXEC is answered with an error, never run on a fresh connection
// without its WATCH, and the client can run the next transaction.
func TestTransactionAcrossARedisRestart(t *testing.T) {
	srv := redistest.StandaloneWith(t, "--appendonly", "yes", "--appendfsync", "always")
	direct := directClient(srv.Addr)
	t.Cleanup(func() { direct.Close() })
	up := &upstream{name: "standalone-restart", mode: store.ModeStandalone, addrs: []string{srv.Addr}, direct: direct}
	p := startSibling(t, up, nil)
	ctx := context.Background()
	for _, watch := range []bool{true, false} {
		name := "MULTI"
		if watch {
			name = "WATCH"
		}
		t.Run(name, func(t *testing.T) {
			rc := p.raw(t)
			key := "sess:tx-restart-" + name
			if watch {
				if got := rc.do("WATCH", key); got != status("OK") {
					t.Fatalf("WATCH = %v", got)
				}
			}
			if got := rc.do("MULTI"); got != status("OK") {
				t.Fatalf("MULTI = %v", got)
			}
			if got := rc.do("SET", key, `{"a":1}`); got != status("QUEUED") {
				t.Fatalf("SET = %v", got)
			}
			srv.Kill()
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got := rc.do("EXEC")
			stored, err := direct.Get(ctx, key).Result()
			t.Logf("%s, Redis restarted, EXEC: %v after %v; stored %q (%v)", name, got, time.Since(start).Round(time.Millisecond), stored, err)
			if watch {
				if _, ok := got.(respError); !ok && got != nil {
					t.Errorf("EXEC after the WATCH's connection died = %v, want an error or a null (not run)", got)
				}
				if err != redis.Nil {
					t.Errorf("the transaction ran without its WATCH: %q stored", stored)
				}
			}
			if got := rc.do("MULTI"); got != status("OK") {
				t.Fatalf("the next MULTI = %v", got)
			}
			rc.do("SET", key, `{"a":2}`)
			if got, ok := rc.do("EXEC").([]interface{}); !ok || len(got) != 1 {
				t.Errorf("the next EXEC = %v, want one reply", got)
			}
		})
	}
}

// fakeSentinel is a sentinel that answers get-master-addr-by-name with
// addr, whatever the real sentinels say: a stale or misconfigured one.
func fakeSentinel(t *testing.T, addr string, asked *atomic.Int32) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ln := redistest.ServeConns(t, func(c net.Conn, _ func(net.Conn)) {
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			args, err := redistest.ReadCommand(r)
			if err != nil {
				return
			}
			var reply string
			switch strings.ToLower(args[0]) {
			case "ping":
				reply = "+PONG\r\n"
			case "client", "auth", "select":
				reply = "+OK\r\n"
			case "sentinel":
				if len(args) > 1 && strings.EqualFold(args[1], "get-master-addr-by-name") {
					asked.Add(1)
					reply = fmt.Sprintf("*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(host), host, len(port), port)
				} else {
					reply = "*0\r\n"
				}
			case "subscribe", "psubscribe":
				for i, ch := range args[1:] {
					reply += fmt.Sprintf("*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n:%d\r\n", len(args[0]), strings.ToLower(args[0]), len(ch), ch, i+1)
				}
			default:
				reply = "-ERR unknown command '" + args[0] + "'\r\n"
			}
			if _, err := c.Write([]byte(reply)); err != nil {
				return
			}
		}
	})
	return ln.Addr().String()
}

// A sentinel that is down, and one that names a replica as the master
// (stale, or watching another setup under the same name): the proxy
// serves through the others. go-redis keeps the first sentinel that
// answers and never checks its answer, so a lying one that answered
// first pinned the proxy to the replica: every write READONLY (187 tries
// in 10 s) while both real sentinels named the master. The real ones are
// stopped while the proxy starts, so that the liar answers first.
func TestSentinelThatLiesOrIsDown(t *testing.T) {
	si := redistest.Sentinel(t, redistest.SentinelOptions{Sentinels: 2})
	master, replica := si.Data[0], si.Data[1]
	var asked atomic.Int32
	tests := []struct {
		name  string
		addrs func() []string
	}{
		{"first sentinel down", func() []string {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			dead := ln.Addr().String()
			ln.Close()
			return append([]string{dead}, si.Addrs...)
		}},
		{"a sentinel names the replica", func() []string {
			for _, s := range si.Sentinels {
				if err := s.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
			}
			time.AfterFunc(500*time.Millisecond, func() {
				for _, s := range si.Sentinels {
					_ = s.Signal(syscall.SIGCONT)
				}
			})
			return append([]string{fakeSentinel(t, replica.Addr, &asked)}, si.Addrs...)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &upstream{name: "sentinel-faults", mode: store.ModeSentinel, addrs: tt.addrs(),
				masterName: redistest.MasterName, master: master.Addr, direct: directClient(master.Addr)}
			t.Cleanup(func() { up.direct.Close() })
			p := startSibling(t, up, nil)
			c := p.client(t, func(o *redis.Options) { o.MaxRetries = -1 })
			ctx := context.Background()
			start := time.Now()
			var err error
			var tries int
			for time.Since(start) < 10*time.Second {
				tries++
				if err = c.Do(ctx, "SESS.SET", "sentinel-faults", `{"a":1}`).Err(); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("%s: SESS.SET after %d tries, %v: %v (the lying sentinel was asked %d times)", tt.name, tries, time.Since(start).Round(time.Millisecond), err, asked.Load())
			if err != nil {
				t.Errorf("no write went through in 10s: %v", err)
			}
		})
	}
}

// A cluster whose master died without a replica answers CLUSTERDOWN for
// every slot once the other nodes mark it failed: clients get an error at
// once, the proxy neither spins nor hangs, /readyz says 503, and it serves
// again when the master comes back.
func TestClusterDownWithoutAReplica(t *testing.T) {
	cl := redistest.ClusterWith(t, redistest.ClusterOptions{NodeTimeout: time.Second})
	direct := redis.NewClusterClient(&redis.ClusterOptions{Addrs: slices.Clone(cl.Addrs), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { direct.Close() })
	up := &upstream{name: "cluster-down", mode: store.ModeCluster, addrs: cl.Addrs, direct: direct}
	p := startSibling(t, up, nil)
	c := p.client(t, func(o *redis.Options) { o.MaxRetries, o.ReadTimeout = -1, 30*time.Second })
	ctx := context.Background()
	victim := cl.Nodes[0]
	victim.Kill()
	killed := time.Now()
	var firstDown time.Time
	var slowest time.Duration
	var answered, failed int
	var last error
	cpuBefore := processCPU(t)
	for time.Since(killed) < 5*time.Second {
		start := time.Now()
		err := c.Do(ctx, "SESS.SET", fmt.Sprintf("down-%d", answered), `{"a":1}`).Err()
		slowest = max(slowest, time.Since(start))
		answered++
		if err != nil {
			failed++
			last = err
			if firstDown.IsZero() && strings.Contains(err.Error(), "CLUSTERDOWN") {
				firstDown = time.Now()
			}
		}
	}
	cpu := processCPU(t) - cpuBefore
	code, _, _ := httpGet(p.metricsURL + "/readyz")
	t.Logf("master killed, no replica: %d commands in 5s, %d failed (last: %v), CLUSTERDOWN after %v, slowest reply %v, test process CPU %v, /readyz %d",
		answered, failed, last, firstDown.Sub(killed).Round(time.Millisecond), slowest.Round(time.Millisecond), cpu.Round(time.Millisecond), code)
	if failed == 0 || firstDown.IsZero() {
		t.Errorf("no command answered CLUSTERDOWN")
	}
	if slowest > 3*time.Second+time.Second {
		t.Errorf("a command waited %v, past read_timeout", slowest)
	}
	if code != 503 {
		t.Errorf("/readyz = %d while the cluster is down, want 503", code)
	}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	for {
		if err := c.Do(ctx, "SESS.SET", "down-back", `{"a":1}`).Err(); err == nil {
			break
		}
		if time.Since(started) > 20*time.Second {
			t.Fatalf("not served 20s after the master came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("master back: served after %v", time.Since(started).Round(time.Millisecond))
}

// processCPU is the CPU time this process (the proxy and the test's
// clients) has used.
func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
