// Package metrics is sessproxy's observability endpoint: Prometheus
// metrics on /metrics, and /healthz and /readyz. It is the only importer
// of the Prometheus client. The command engine and the store report into
// it through their own narrow interfaces (commands.Metrics,
// store.Metrics), and every labelled series is resolved here once, when
// the proxy starts, so counting a command costs a few atomic adds and no
// allocation.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/store"
)

// Registry holds one proxy's metrics. Each proxy has its own (tests run
// many in one process); nothing is registered globally.
type Registry struct {
	registry *prometheus.Registry

	commands          *prometheus.CounterVec
	duration          *prometheus.HistogramVec
	upstreamErrors    [store.NumFailureKinds]prometheus.Counter
	tombstoneRefusals prometheus.Counter
	refusedWrites     [commands.NumRefusals]prometheus.Counter
	unsupported       *prometheus.CounterVec
	clampMin          prometheus.Counter
	clampMax          prometheus.Counter
	clients           prometheus.Gauge
	accepted          prometheus.Counter
	refused           prometheus.Counter
	closed            [commands.NumCloseReasons]prometheus.Counter
}

var (
	_ commands.Metrics = (*Registry)(nil)
	_ store.Metrics    = (*Registry)(nil)
)

// NewRegistry returns an empty set of sessproxy metrics, with the Go
// runtime's and the process's own.
func NewRegistry() *Registry {
	// The buckets span a pipelined read served from Redis's memory (a few
	// hundred µs through the proxy) to a command that waits out an
	// upstream timeout (3s by default).
	durationBuckets := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	r := &Registry{
		registry: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessproxy_commands_total",
			Help: "Commands answered, by command name (\"unknown\" for every name sessproxy does not serve) and result (ok, error, tombstone, noperm, noauth, upstream_error).",
		}, []string{"command", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sessproxy_command_duration_seconds",
			Help:    "Time from the proxy starting a client's batch of pipelined commands to their replies being ready, observed once per command of the batch, by command name.",
			Buckets: durationBuckets,
		}, []string{"command"}),
		tombstoneRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessproxy_tombstone_refusals_total",
			Help: "Writes refused because their session was destroyed (tombstone.on_write = \"error\" answers -TOMBSTONE, \"ignore\" answers success).",
		}),
		unsupported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessproxy_unsupported_commands_total",
			Help: "Commands sessproxy does not serve, by name: a Redis 7.0 command's own name (flushall, subscribe…), \"unknown\" for any other name.",
		}, []string{"command"}),
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sessproxy_connected_clients",
			Help: "Client connections currently open.",
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessproxy_connections_accepted_total",
			Help: "Client connections accepted.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessproxy_connections_refused_total",
			Help: "Client connections refused: server.max_clients reached, or the server shutting down.",
		}),
	}
	clamps := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessproxy_ttl_clamps_total",
		Help: "TTLs the policy moved into [ttl.min, ttl.max], by the bound that moved them (min: raised, max: lowered).",
	}, []string{"bound"})
	r.clampMin, r.clampMax = clamps.WithLabelValues("min"), clamps.WithLabelValues("max")
	upstreamErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessproxy_upstream_errors_total",
		Help: "Upstream Redis commands that failed without an answer, by kind (timeout, connection). Redis's error replies and nil replies are answers and are not counted.",
	}, []string{"kind"})
	for k := range store.NumFailureKinds {
		r.upstreamErrors[k] = upstreamErrors.WithLabelValues(k.String())
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessproxy_refused_writes_total",
		Help: "Writes the proxy refused, by reason (tombstone, invalid_payload, payload_too_large, outside_prefix, persist, no_expires, script, upstream: Redis refused it for its state, OOM…); each is also logged at WARN, rate-limited.",
	}, []string{"reason"})
	for reason := range commands.NumRefusals {
		r.refusedWrites[reason] = refused.WithLabelValues(reason.String())
	}
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessproxy_clients_closed_total",
		Help: "Client connections the proxy closed itself, by reason (request_too_large, protocol_error, request_timeout, reply_limit, write_timeout, idle_timeout). Clients that leave on their own, QUIT included, are not counted.",
	}, []string{"reason"})
	for reason := range commands.NumCloseReasons {
		r.closed[reason] = closed.WithLabelValues(reason.String())
	}
	r.registry.MustRegister(
		r.commands, r.duration, upstreamErrors, r.tombstoneRefusals, refused, r.unsupported, clamps,
		r.clients, r.accepted, r.refused, closed,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return r
}

// Handler serves the metrics in Prometheus's text format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.registry, promhttp.HandlerOpts{})
}

// Command resolves the series of one command name, for every result.
func (r *Registry) Command(name string) commands.CommandMetrics {
	c := &commandMetrics{duration: r.duration.WithLabelValues(name)}
	for res := range commands.NumResults {
		c.results[res] = r.commands.WithLabelValues(name, res.String())
	}
	return c
}

// commandMetrics are the series of one command name.
type commandMetrics struct {
	results  [commands.NumResults]prometheus.Counter
	duration prometheus.Observer
}

func (c *commandMetrics) Done(result commands.Result, elapsed time.Duration) {
	c.results[result].Inc()
	c.duration.Observe(elapsed.Seconds())
}

// Unsupported implements commands.Metrics: the series of one name
// sessproxy does not serve, resolved once.
func (r *Registry) Unsupported(name string) commands.Counter {
	return r.unsupported.WithLabelValues(name)
}

// WriteRefused implements commands.Metrics. A tombstone also counts in
// sessproxy_tombstone_refusals_total, the series older dashboards read.
func (r *Registry) WriteRefused(reason commands.Refusal) {
	r.refusedWrites[reason].Inc()
	if reason == commands.RefusedTombstone {
		r.tombstoneRefusals.Inc()
	}
}

// TTLClamped implements commands.Metrics.
func (r *Registry) TTLClamped(bound ttl.Bound) {
	switch bound {
	case ttl.BoundMin:
		r.clampMin.Inc()
	case ttl.BoundMax:
		r.clampMax.Inc()
	}
}

// ClientConnected implements commands.Metrics.
func (r *Registry) ClientConnected() {
	r.accepted.Inc()
	r.clients.Inc()
}

// ClientDisconnected implements commands.Metrics.
func (r *Registry) ClientDisconnected() { r.clients.Dec() }

// ConnectionRefused implements commands.Metrics.
func (r *Registry) ConnectionRefused() { r.refused.Inc() }

// ClientClosed implements commands.Metrics.
func (r *Registry) ClientClosed(reason commands.CloseReason) { r.closed[reason].Inc() }

// UpstreamError implements store.Metrics.
func (r *Registry) UpstreamError(kind store.FailureKind) { r.upstreamErrors[kind].Inc() }
