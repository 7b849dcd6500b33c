package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// ServerOptions configure the HTTP server of /metrics, /healthz and
// /readyz.
type ServerOptions struct {
	// Addr is the host:port to listen on. default: 127.0.0.1:9380
	Addr string
	// Ready reports whether the proxy can serve: nil when the upstream
	// answers. /readyz answers 503 with its error otherwise. default:
	// always ready
	Ready func(context.Context) error
	// ReadyTimeout bounds one readiness check, so a probe never waits out
	// the upstream's own timeouts. default: 1s
	ReadyTimeout time.Duration
	// Logger. default: no-op
	Logger *zap.Logger
}

func (o *ServerOptions) init() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:9380"
	}
	if o.Ready == nil {
		o.Ready = func(context.Context) error { return nil }
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

// Server serves a Registry over HTTP.
type Server struct {
	opts ServerOptions
	http *http.Server
	ln   net.Listener
}

// NewServer returns a server for reg; Listen and Serve start it.
func NewServer(reg *Registry, opts ServerOptions) *Server {
	opts.init()
	s := &Server{opts: opts}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler())
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          zap.NewStdLog(opts.Logger.Named("metrics")),
	}
	return s
}

// Listen binds the address.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.opts.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the address listened on (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers requests until Shutdown; it needs Listen first.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}

// Shutdown stops accepting and waits for the requests in progress, until
// ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.http.Shutdown(ctx)
}

// healthz answers 200 while the process serves.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintln(w, msgHealthy)
}

// readyz answers 200 when the upstream answers a PING, 503 otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.ReadyTimeout)
	defer cancel()
	if err := s.opts.Ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, msgNotReady, err)
		return
	}
	fmt.Fprintln(w, msgReady)
}
