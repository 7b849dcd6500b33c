package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/proxy"
	"github.com/sessproxy/sessproxy/store"
)

// metricsWait bounds how long a test polls for a metric or an HTTP status
// to reach its expected value.
const metricsWait = 10 * time.Second

// httpGet returns the status and body of url; an error when nothing answers.
func httpGet(url string) (int, string, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitStatus polls url until it answers status.
func waitStatus(t *testing.T, url string, status int) string {
	t.Helper()
	deadline := time.Now().Add(metricsWait)
	for {
		code, body, err := httpGet(url)
		if err == nil && code == status {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d %q (%v); want %d within %v", url, code, body, err, status, metricsWait)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// scrape reads /metrics into series ("name{labels}") → value.
func scrape(t *testing.T, baseURL string) map[string]float64 {
	t.Helper()
	code, body, err := httpGet(baseURL + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", code, err)
	}
	series := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics line %q is not `series value`", line)
		}
		series[line[:i]] = v
	}
	return series
}

// wantMetric polls /metrics until series has the value want: what a
// connection's close does is counted after the client has gone.
func wantMetric(t *testing.T, baseURL, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(metricsWait)
	for {
		got, ok := scrape(t, baseURL)[series]
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present: %v); want %v", series, got, ok, want)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func cmdSeries(command, result string) string {
	return fmt.Sprintf(`sessproxy_commands_total{command=%q,result=%q}`, command, result)
}

func testMetrics(t *testing.T, up *upstream) {
	p := startProxy(t, up, nil)
	waitStatus(t, p.metricsURL+"/healthz", http.StatusOK)
	waitStatus(t, p.metricsURL+"/readyz", http.StatusOK)

	rc := p.raw(t)
	wantRaw(t, rc, status("OK"), "SESS.SET", "m1", `{"n":1}`)
	wantRaw(t, rc, int64(1), "SESS.DESTROY", "m1")
	wantRawErrPrefix(t, rc, "TOMBSTONE session m1 was destroyed", "SESS.SET", "m1", `{"n":2}`)
	// Above ttl.max (30d), then below ttl.min (1s).
	wantRaw(t, rc, status("OK"), "SET", "sess:m2", `{}`, "EX", "99999999")
	wantRaw(t, rc, int64(1), "PEXPIRE", "sess:m2", "10")
	wantRawErrPrefix(t, rc, "ERR unknown or unsupported command", "NOSUCHCMD-metrics", "x")
	wantRawErrPrefix(t, rc, "ERR unknown or unsupported command", "FLUSHALL")
	wantRawErrPrefix(t, rc, "NOPERM key 'outside' is outside the session namespace", "GET", "outside")
	wantRawErrPrefix(t, rc, "ERR wrong number of arguments", "SESS.GET")
	// A pipeline: each command counted and timed.
	rc.write(append(append(encode("GET", "sess:p1"), encode("GET", "sess:p2")...), encode("GET", "sess:p3")...))
	for range 3 {
		if _, err := rc.read(); err != nil {
			t.Fatalf("pipelined GET: %v", err)
		}
	}

	m := scrape(t, p.metricsURL)
	want := map[string]float64{
		cmdSeries("sess.set", "ok"):                                    1,
		cmdSeries("sess.set", "tombstone"):                             1,
		cmdSeries("sess.destroy", "ok"):                                1,
		cmdSeries("set", "ok"):                                         1,
		cmdSeries("pexpire", "ok"):                                     1,
		cmdSeries("unknown", "error"):                                  2,
		cmdSeries("get", "noperm"):                                     1,
		cmdSeries("get", "ok"):                                         3,
		cmdSeries("sess.get", "error"):                                 1,
		cmdSeries("sess.get", "ok"):                                    0,
		`sessproxy_command_duration_seconds_count{command="sess.set"}`: 2,
		`sessproxy_command_duration_seconds_count{command="get"}`:      4,
		`sessproxy_tombstone_refusals_total`:                           1,
		`sessproxy_refused_writes_total{reason="tombstone"}`:           1,
		`sessproxy_refused_writes_total{reason="outside_prefix"}`:      0, // GET is a read
		`sessproxy_unsupported_commands_total{command="flushall"}`:     1,
		`sessproxy_unsupported_commands_total{command="unknown"}`:      1,
		`sessproxy_ttl_clamps_total{bound="max"}`:                      1,
		`sessproxy_ttl_clamps_total{bound="min"}`:                      1,
		`sessproxy_upstream_errors_total{kind="timeout"}`:              0,
		`sessproxy_upstream_errors_total{kind="connection"}`:           0,
		`sessproxy_connections_accepted_total`:                         1,
		`sessproxy_connected_clients`:                                  1,
	}
	for series, v := range want {
		if got, ok := m[series]; !ok || got != v {
			t.Errorf("%s = %v (present: %v); want %v", series, got, ok, v)
		}
	}
	if got := m[`sessproxy_command_duration_seconds_sum{command="sess.set"}`]; got <= 0 {
		t.Errorf("sess.set took %v seconds in all; want > 0", got)
	}
	for series := range m {
		s := strings.ToLower(series)
		if strings.Contains(s, "nosuchcmd") {
			t.Errorf("an unknown command name became a label: %s", series)
		}
		if strings.Contains(s, "flushall") && !strings.HasPrefix(s, "sessproxy_unsupported_commands_total{") {
			t.Errorf("an unsupported Redis command is a label outside sessproxy_unsupported_commands_total: %s", series)
		}
	}

	// The clients gauge follows connections and disconnections.
	second := p.raw(t)
	wantRaw(t, second, status("PONG"), "PING")
	wantMetric(t, p.metricsURL, `sessproxy_connected_clients`, 2)
	second.nc.Close()
	wantMetric(t, p.metricsURL, `sessproxy_connected_clients`, 1)
	rc.nc.Close()
	wantMetric(t, p.metricsURL, `sessproxy_connected_clients`, 0)
	wantMetric(t, p.metricsURL, `sessproxy_connections_accepted_total`, 2)
}

func TestMetricsRefusedConnections(t *testing.T) {
	p := startProxy(t, standaloneUp, func(_ *commands.Options, o *proxy.Options) { o.MaxClients = 1 })
	rc := p.raw(t)
	wantRaw(t, rc, status("PONG"), "PING")
	refused := dialRaw(t, p.addr)
	if reply, err := refused.read(); err != nil || !strings.Contains(fmt.Sprint(reply), "max number of clients") {
		t.Fatalf("a client beyond max_clients got %v, %v; want the max_clients error", reply, err)
	}
	wantMetric(t, p.metricsURL, `sessproxy_connections_refused_total`, 1)
	wantMetric(t, p.metricsURL, `sessproxy_connected_clients`, 1)
}

// A client the proxy closes is counted by reason; the others stay at 0.
func TestMetricsClosedClients(t *testing.T) {
	p := startProxy(t, standaloneUp, func(_ *commands.Options, o *proxy.Options) { o.MaxRequestBytes = 4096 })
	rc := p.raw(t)
	if _, err := io.WriteString(rc.nc, "*2\r\n$3\r\nGET\r\n$999999999\r\n"); err != nil {
		t.Fatal(err)
	}
	if reply, err := rc.read(); err != nil || !strings.Contains(fmt.Sprint(reply), "max_request_bytes") {
		t.Fatalf("an oversized request got %v, %v; want the max_request_bytes error", reply, err)
	}
	wantMetric(t, p.metricsURL, `sessproxy_clients_closed_total{reason="request_too_large"}`, 1)
	wantMetric(t, p.metricsURL, `sessproxy_clients_closed_total{reason="reply_limit"}`, 0)
}

// TestReadyzFollowsTheUpstream stops the upstream under a proxy and brings
// it back: /readyz goes 503 and 200 again, /healthz stays 200, and a
// command sent meanwhile counts as an upstream error.
func TestReadyzFollowsTheUpstream(t *testing.T) {
	srv := redistest.Standalone(t)
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2, DisableIdentity: true})
	// Registered before the proxy's cleanup, so they run after it: it
	// reads the upstream through direct.
	var back *redistest.Server // the upstream once restarted
	t.Cleanup(func() {
		direct.Close()
		if back != nil {
			back.Stop()
		}
	})
	up := &upstream{name: "restarted", mode: store.ModeStandalone, addrs: []string{srv.Addr}, direct: direct}
	p := startSibling(t, up, nil)
	waitStatus(t, p.metricsURL+"/readyz", http.StatusOK)

	srv.Stop()
	body := waitStatus(t, p.metricsURL+"/readyz", http.StatusServiceUnavailable)
	if !strings.Contains(body, srv.Addr) {
		t.Errorf("/readyz body %q does not say which upstream failed", body)
	}
	waitStatus(t, p.metricsURL+"/healthz", http.StatusOK)
	rc := p.raw(t)
	wantRawErrPrefix(t, rc, "ERR upstream error", "SESS.GET", "down")
	m := scrape(t, p.metricsURL)
	if got := m[cmdSeries("sess.get", "upstream_error")]; got != 1 {
		t.Errorf("sess.get upstream_error = %v; want 1", got)
	}
	if got := m[`sessproxy_upstream_errors_total{kind="connection"}`] + m[`sessproxy_upstream_errors_total{kind="timeout"}`]; got < 1 {
		t.Errorf("upstream errors = %v; want at least 1", got)
	}

	var err error
	if back, err = srv.Restart(); err != nil {
		t.Fatalf("restart redis-server on %s: %v", srv.Addr, err)
	}
	waitStatus(t, p.metricsURL+"/readyz", http.StatusOK)
	wantRaw(t, rc, status("OK"), "SESS.SET", "up", `{}`)
}

// TestBinaryServesMetrics runs the real binary: the metrics server starts
// with the proxy on metrics.addr, and stops with it on SIGTERM.
func TestBinaryServesMetrics(t *testing.T) {
	bin := buildSessproxy(t)
	ports := make([]int, 2)
	for i := range ports {
		port, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = port
	}
	listen, metricsAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	config := filepath.Join(t.TempDir(), "sessproxy.toml")
	body := fmt.Sprintf("[server]\nlisten = %q\n[upstream]\nmode = \"standalone\"\naddrs = [%q]\n[metrics]\naddr = %q\n[log]\nlevel = \"error\"\n",
		listen, standaloneUp.addrs[0], metricsAddr)
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-config", config)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // a no-op once it has exited
		<-exited
	})

	base := "http://" + metricsAddr
	waitStatus(t, base+"/healthz", http.StatusOK)
	waitStatus(t, base+"/readyz", http.StatusOK)
	rc := dialRaw(t, listen)
	wantRaw(t, rc, status("PONG"), "PING")
	wantMetric(t, base, cmdSeries("ping", "ok"), 1)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("sessproxy exited with %v after SIGTERM; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("sessproxy did not exit within 15s of SIGTERM")
	}
	if _, _, err := httpGet(base + "/healthz"); err == nil {
		t.Errorf("the metrics server still answers after sessproxy exited")
	}
}

func TestMetricsTombstoneIgnored(t *testing.T) {
	p := startProxy(t, standaloneUp, func(o *commands.Options, _ *proxy.Options) { o.OnWrite = commands.OnWriteIgnore })
	rc := p.raw(t)
	wantRaw(t, rc, int64(0), "SESS.DESTROY", "gone")
	wantRaw(t, rc, status("OK"), "SET", "sess:gone", `{}`) // refused, answered as a success
	wantMetric(t, p.metricsURL, `sessproxy_tombstone_refusals_total`, 1)
	wantMetric(t, p.metricsURL, cmdSeries("set", "ok"), 1)
}
