package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store"
)

func TestRegistryCounts(t *testing.T) {
	r := NewRegistry()
	get := r.Command("get").(*commandMetrics)
	get.Done(commands.ResultOK, time.Millisecond)
	get.Done(commands.ResultOK, time.Millisecond)
	get.Done(commands.ResultTombstone, time.Millisecond)
	r.WriteRefused(commands.RefusedTombstone)
	flushall := r.Unsupported("flushall")
	flushall.Inc()
	flushall.Inc()
	r.Unsupported(commands.UnknownCommand).Inc()
	r.WriteRefused(commands.RefusedTooLarge)
	r.WriteRefused(commands.RefusedTooLarge)
	r.TTLClamped(ttl.BoundMin)
	r.TTLClamped(ttl.BoundMax)
	r.TTLClamped(ttl.BoundMax)
	r.TTLClamped(ttl.BoundAbsolute) // not a clamp into [min, max]
	r.UpstreamError(store.FailureTimeout)
	r.ClientConnected()
	r.ClientConnected()
	r.ClientDisconnected()
	r.ConnectionRefused()
	r.ClientClosed(commands.CloseWriteTimeout)
	r.ClientClosed(commands.CloseWriteTimeout)
	r.ClientClosed(commands.CloseReplyLimit)

	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"get ok", testutil.ToFloat64(r.commands.WithLabelValues("get", "ok")), 2},
		{"get tombstone", testutil.ToFloat64(r.commands.WithLabelValues("get", "tombstone")), 1},
		{"get error", testutil.ToFloat64(r.commands.WithLabelValues("get", "error")), 0},
		{"tombstone refusals", testutil.ToFloat64(r.tombstoneRefusals), 1},
		{"refused writes, tombstone", testutil.ToFloat64(r.refusedWrites[commands.RefusedTombstone]), 1},
		{"refused writes, payload_too_large", testutil.ToFloat64(r.refusedWrites[commands.RefusedTooLarge]), 2},
		{"unsupported flushall", testutil.ToFloat64(r.unsupported.WithLabelValues("flushall")), 2},
		{"unsupported unknown", testutil.ToFloat64(r.unsupported.WithLabelValues("unknown")), 1},
		{"refused writes, persist", testutil.ToFloat64(r.refusedWrites[commands.RefusedPersist]), 0},
		{"clamps min", testutil.ToFloat64(r.clampMin), 1},
		{"clamps max", testutil.ToFloat64(r.clampMax), 2},
		{"upstream timeouts", testutil.ToFloat64(r.upstreamErrors[store.FailureTimeout]), 1},
		{"upstream connection errors", testutil.ToFloat64(r.upstreamErrors[store.FailureConnection]), 0},
		{"clients", testutil.ToFloat64(r.clients), 1},
		{"accepted", testutil.ToFloat64(r.accepted), 2},
		{"refused", testutil.ToFloat64(r.refused), 1},
		{"closed for write_timeout", testutil.ToFloat64(r.closed[commands.CloseWriteTimeout]), 2},
		{"closed for reply_limit", testutil.ToFloat64(r.closed[commands.CloseReplyLimit]), 1},
		{"closed for request_too_large", testutil.ToFloat64(r.closed[commands.CloseRequestTooLarge]), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(r.duration, "sessproxy_command_duration_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1 (get's)", n)
	}
}

// TestExposition: each sessproxy_ family is described, and every
// result of a command and every close reason exists from the start (a
// rate over a series that appears late misses its first increment).
func TestExposition(t *testing.T) {
	r := NewRegistry()
	r.Command("sess.set")
	srv := start(t, r, nil)
	code, body := get(t, srv, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, family := range []string{"sessproxy_commands_total", "sessproxy_command_duration_seconds", "sessproxy_upstream_errors_total",
		"sessproxy_tombstone_refusals_total", "sessproxy_refused_writes_total", "sessproxy_ttl_clamps_total", "sessproxy_connected_clients",
		"sessproxy_connections_accepted_total", "sessproxy_connections_refused_total", "sessproxy_clients_closed_total"} {
		if !strings.Contains(body, "# HELP "+family+" ") {
			t.Errorf("/metrics has no HELP for %s", family)
		}
	}
	for res := range commands.NumResults {
		if series := `sessproxy_commands_total{command="sess.set",result="` + res.String() + `"} 0`; !strings.Contains(body, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	for _, reason := range []string{"request_too_large", "protocol_error", "request_timeout", "reply_limit", "write_timeout", "idle_timeout"} {
		if series := `sessproxy_clients_closed_total{reason="` + reason + `"} 0`; !strings.Contains(body, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}

func start(t *testing.T, r *Registry, ready func(context.Context) error) *Server {
	t.Helper()
	s := NewServer(r, ServerOptions{Addr: "127.0.0.1:0", Ready: ready, ReadyTimeout: 200 * time.Millisecond})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve after Shutdown: %v", err)
		}
	})
	return s
}

func get(t *testing.T, s *Server, path string) (int, string) {
	t.Helper()
	client := http.Client{Timeout: 5 * time.Second} // a hung handler fails the test, not the run
	resp, err := client.Get("http://" + s.Addr().String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestHealthAndReadiness(t *testing.T) {
	upstreamErr := errors.New("dial tcp 127.0.0.1:1: connection refused")
	tests := []struct {
		name     string
		ready    func(context.Context) error
		want     int
		wantBody string
	}{
		{"upstream answers", func(context.Context) error { return nil }, http.StatusOK, "ready"},
		{"upstream fails", func(context.Context) error { return upstreamErr }, http.StatusServiceUnavailable, upstreamErr.Error()},
		{"upstream hangs: the probe's own timeout", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, http.StatusServiceUnavailable, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, NewRegistry(), tt.ready)
			if code, body := get(t, s, "/healthz"); code != http.StatusOK {
				t.Errorf("/healthz = %d %q, want 200", code, body)
			}
			code, body := get(t, s, "/readyz")
			if code != tt.want || !strings.Contains(body, tt.wantBody) {
				t.Errorf("/readyz = %d %q, want %d with %q", code, body, tt.want, tt.wantBody)
			}
		})
	}
}

func TestListenFailureNamesTheAddress(t *testing.T) {
	first := start(t, NewRegistry(), nil)
	taken := first.Addr().String()
	err := NewServer(NewRegistry(), ServerOptions{Addr: taken}).Listen()
	if err == nil || !strings.Contains(err.Error(), taken) {
		t.Fatalf("Listen on a taken address = %v; want an error naming %s", err, taken)
	}
}

// Recording a command is on every request's path: no allocation.
func TestDoneDoesNotAllocate(t *testing.T) {
	m := NewRegistry().Command("get")
	if n := testing.AllocsPerRun(1000, func() { m.Done(commands.ResultOK, time.Millisecond) }); n != 0 {
		t.Fatalf("Done allocates %v times per command, want 0", n)
	}
}

func BenchmarkDone(b *testing.B) {
	m := NewRegistry().Command("get")
	b.ReportAllocs()
	for b.Loop() {
		m.Done(commands.ResultOK, 300*time.Microsecond)
	}
}
