// Package proxy is sessproxy's client-facing side: listeners, connection
// limits, the request-size guard, and graceful shutdown. It is the only
// importer of redcon; what a command means is the commands package's
// business.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessproxy/sessproxy/commands"
	"go.uber.org/zap"
)

// Options configure the listeners and per-client limits.
type Options struct {
	// Listen is the TCP address. default: 127.0.0.1:6380
	Listen string
	// Unix is a unix socket path to listen on as well. default: none
	Unix string
	// TLSCert and TLSKey turn the TCP listener into a TLS one. default: none
	TLSCert, TLSKey string
	// MaxClients refuses connections beyond this many. default: 10000
	MaxClients int
	// IdleTimeout closes clients idle this long between requests; 0
	// never. default: 0
	IdleTimeout time.Duration
	// RequestTimeout closes a client whose request is not complete this
	// long after its first byte was read, or that does not take a piece of
	// its replies within it; negative never. default: 10s
	RequestTimeout time.Duration
	// MaxRequestBytes closes a client whose request is larger; at most
	// 1 GiB. default: 8 MiB
	MaxRequestBytes int64
	// MaxInflightBytes bounds the bytes held, over all clients, for requests
	// being run and replies not yet written; past it the proxy stops
	// reading new requests until bytes are released. default: 256 MiB
	MaxInflightBytes int64
	// MaxClientReplyBytes closes a client whose unsent replies grow past
	// it, as Redis's client-output-buffer-limit does. default: 64 MiB
	MaxClientReplyBytes int64
	// EventLoops serves plaintext clients (TCP without TLS, and the unix
	// socket) from this many event loops (loop.go) instead of a goroutine
	// each; 0: one per two CPUs (GOMAXPROCS), at least one, where epoll
	// exists (Linux), else none; negative: none, a goroutine per client.
	// default: 0
	EventLoops int
	// Logger. default: no-op
	Logger *zap.Logger
}

func (o *Options) init() {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:6380"
	}
	if o.MaxClients == 0 {
		o.MaxClients = 10000
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	// The request scanner is what keeps redcon safe from hostile headers,
	// so there is always a limit, and one far from overflowing an int.
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = 8 << 20
	}
	o.MaxRequestBytes = min(o.MaxRequestBytes, hardMaxRequestBytes)
	if o.MaxInflightBytes == 0 {
		o.MaxInflightBytes = 256 << 20
	}
	if o.MaxClientReplyBytes == 0 {
		o.MaxClientReplyBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

var errDraining = errors.New("server shutting down")

// Server accepts clients and runs their commands on an engine.
type Server struct {
	opts   Options
	engine *commands.Engine
	log    *zap.Logger
	budget *budget    // server.max_inflight_bytes
	large  largeReads // clients reading a large request (budget.go)
	// unfinished: what requests not yet whole hold, half the budget.
	unfinished *unfinishedBytes

	listeners []*drainListener
	ctx       context.Context // upstream calls; cancelled when shutdown gives up
	cancel    context.CancelFunc

	// Event loops (loop.go), when server.event_loops > 0, and the
	// listener through which they hand a client over to a goroutine of its
	// own.
	loops    []*loop
	nextLoop atomic.Uint32
	handoff  *handoffListener

	draining atomic.Bool
	mu       sync.Mutex
	conns    map[*guardedConn]struct{} // clients served by goroutines
	loopers  int                       // clients served by event loops
	allGone  chan struct{}             // closed when draining and the last client left
}

// connState is what the proxy keeps per client connection.
type connState struct {
	client   *commands.Client
	pipeline *commands.Pipeline
	conn     *guardedConn
	args     [][][]byte
	// held are the commands of a pipeline read so far while the client was
	// still sending its next command (see handle), each in requestReader's
	// bytes of its own; heldBytes is their size.
	held      [][][]byte
	heldBytes int
	// The replies of the batch being run (see reply.go).
	s           *Server
	out         []byte // written to the client in pieces of flushBytes
	replies     int64  // bytes taken from the budget for this batch's replies
	lastCost    int64  // the previous batch's request cost
	lastReplies int64  // and what its replies held
	overLimit   bool   // past max_client_reply_bytes: being closed
	writeErr    error
	push        pushQueue // CLIENT TRACKING's invalidations (push.go)
}

// Bounds on what handle holds back for one client: past them the commands
// read so far run, so a client that never stops sending is still served
// and still meets backpressure on its replies.
const (
	maxHeldCommands = 256
	maxHeldBytes    = 256 << 10
	// maxHeldReplyBytes bounds the replies a held batch is expected to
	// bring, at the reply-to-request ratio of the client's last batch.
	maxHeldReplyBytes = 4 << 20
)

// New returns a server for engine; Listen and Serve start it.
func New(engine *commands.Engine, opts Options) *Server {
	opts.init()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:       opts,
		engine:     engine,
		log:        opts.Logger,
		budget:     newBudget(opts.MaxInflightBytes),
		large:      newLargeReads(opts),
		unfinished: newUnfinishedBytes(max(opts.MaxInflightBytes/2, 1)),
		ctx:        ctx,
		cancel:     cancel,
		conns:      make(map[*guardedConn]struct{}),
		allGone:    make(chan struct{}),
	}
}

// Listen binds the TCP listener (and the unix socket, when configured),
// and opens the event loops.
func (s *Server) Listen() error {
	if err := s.openLoops(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		s.closeLoops()
		return fmt.Errorf("listen on %s: %w", s.opts.Listen, err)
	}
	tlsOn := s.opts.TLSCert != ""
	if tlsOn {
		cert, err := tls.LoadX509KeyPair(s.opts.TLSCert, s.opts.TLSKey)
		if err != nil {
			ln.Close()
			s.closeLoops()
			return fmt.Errorf("load server.tls_cert/tls_key: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	s.listeners = append(s.listeners, s.wrap(ln, tlsOn))
	if s.opts.Unix != "" {
		_ = os.Remove(s.opts.Unix) // a stale socket from a previous run
		uln, err := net.Listen("unix", s.opts.Unix)
		if err != nil {
			s.closeListeners()
			s.closeLoops()
			return fmt.Errorf("listen on unix socket %s: %w", s.opts.Unix, err)
		}
		s.listeners = append(s.listeners, s.wrap(uln, false))
	}
	return nil
}

// Addr is the TCP listener's address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.listeners[0].Addr() }

// Serve serves clients until Shutdown; it needs Listen first.
func (s *Server) Serve() error {
	errs := make(chan error, len(s.listeners)+len(s.loops)+1)
	running := 0
	serve := func(f func() error) {
		running++
		go func() { errs <- f() }()
	}
	for _, ln := range s.listeners {
		if len(s.loops) > 0 && !ln.tls {
			serve(func() error { return s.acceptToLoops(ln) })
			continue
		}
		serve(func() error { return s.serveGoroutines(ln) })
	}
	if len(s.loops) > 0 {
		for _, l := range s.loops {
			serve(l.run)
		}
		serve(func() error { return s.serveGoroutines(s.handoff) })
	}
	var first error
	for range running {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Shutdown stops accepting, lets every client finish the commands already
// read and receive their replies, then closes the connections. When ctx
// ends first, the remaining connections are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	s.closeListeners()
	for c := range s.conns {
		// Wake reads blocked waiting for the next command; a command in
		// progress finishes and is flushed first.
		_ = c.SetReadDeadline(time.Now())
	}
	if len(s.conns)+s.loopers == 0 {
		s.closeAllGone()
	}
	s.mu.Unlock()
	for _, l := range s.loops {
		l.wakeUp() // they drain their clients the same way
	}
	select {
	case <-s.allGone:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		for _, l := range s.loops {
			l.abort()
		}
		return fmt.Errorf("shutdown: %d clients still connected: %w", s.connCount(), ctx.Err())
	}
}

// Ready reports whether the server can take clients: nil when it is not
// shutting down and the upstream answers a PING (/readyz).
func (s *Server) Ready(ctx context.Context) error {
	if s.draining.Load() {
		return errDraining
	}
	return s.engine.Ping(ctx)
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) + s.loopers
}

func (s *Server) closeListeners() {
	for _, ln := range s.listeners {
		ln.Listener.Close()
	}
	if s.handoff != nil {
		s.handoff.Close()
	}
}

func (s *Server) closeAllGone() {
	select {
	case <-s.allGone:
	default:
		close(s.allGone)
	}
}

// serveGoroutines serves each client ln accepts from a goroutine of its
// own (serveClient), until ln fails: drainListener and handoffListener fail
// only once every client has left.
func (s *Server) serveGoroutines(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors, most likely: the clients already
			// served go on, and so does accepting, a moment later.
			s.log.Warn("accept failed", zap.Error(err))
			time.Sleep(10 * time.Millisecond)
			continue
		}
		gc := c.(*guardedConn)
		st := s.accept(gc)
		if st == nil {
			gc.Close()
			continue
		}
		go s.serveClient(st)
	}
}

// serveClient reads the client's commands and runs them until it leaves
// or is closed.
func (s *Server) serveClient(st *connState) {
	err := s.serveRequests(st)
	st.conn.Close()
	if errors.Is(err, io.EOF) {
		err = nil
	}
	s.closed(st, err)
}

// serveRequests serves the client until it is to be closed, and says why
// (nil: the proxy closes it).
func (s *Server) serveRequests(st *connState) (err error) {
	defer func() {
		// handle recovers its own; this is the last line for a bug in
		// reading: drop this client, keep serving.
		if r := recover(); r != nil {
			s.log.Error("panic serving client", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			_, _ = st.conn.Write([]byte("-" + msgInternal + "\r\n"))
			err = nil
		}
	}()
	rd := newRequestReader(st.conn)
	var args [][][]byte
	for {
		if args, err = rd.read(st.args[:0]); err != nil {
			return s.readFailed(st, args, err)
		}
		if !s.handle(st, args) {
			return nil
		}
	}
}

// readFailed ends a client whose read failed with err, after args, the
// commands it sent whole before. A request refused (a *limitError) is
// answered as Redis answers it: the commands before it run and are
// answered first, in order, then the refusal, then the close. Otherwise
// the client has gone or is being closed (a timeout, a drain): they run
// with no one left to answer (closed).
func (s *Server) readFailed(st *connState, args [][][]byte, err error) error {
	var lerr *limitError
	if !errors.As(err, &lerr) {
		st.hold(args)
		return err
	}
	// Nothing more is read: no command waits for the rest of a pipeline.
	st.conn.partial.Store(false)
	if !s.handle(st, args) {
		// QUIT among them, or their replies failed: Redis stops there
		// too, the refused request unanswered.
		return nil
	}
	_, _ = st.conn.Write([]byte("-" + lerr.msg + "\r\n"))
	return err
}

// accept returns the state of a client to serve, or nil when it is
// refused.
func (s *Server) accept(gc *guardedConn) *connState {
	if st := gc.handedOver; st != nil {
		// An event loop's client, counted in s.conns when it was handed
		// over (loop.handOver).
		gc.handedOver = nil
		return st
	}
	if !s.admit(gc.Conn, func() { s.conns[gc] = struct{}{} }) {
		return nil
	}
	client := s.engine.Connect(gc.RemoteAddr().String(), gc.LocalAddr().String())
	return s.newConnState(client, gc)
}

// admit counts a new client in (add, under s.mu), or refuses it past
// max_clients and while draining, with Redis's words.
func (s *Server) admit(c net.Conn, add func()) bool {
	s.mu.Lock()
	if s.draining.Load() || len(s.conns)+s.loopers >= s.opts.MaxClients {
		s.mu.Unlock()
		s.engine.Rejected()
		// Called from an accept loop, and on a TLS listener this write
		// runs the handshake first, which reads: bound both ways, or one
		// silent client would stop every later connection.
		_ = c.SetDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte(msgMaxClients))
		return false
	}
	add()
	s.mu.Unlock()
	return true
}

// newConnState is what a goroutine serving client on gc keeps.
func (s *Server) newConnState(client *commands.Client, gc *guardedConn) *connState {
	st := &connState{client: client, pipeline: s.engine.NewPipeline(client), conn: gc, s: s}
	st.pipeline.SetMeter(st)
	st.push.st = st
	client.SetPusher(&st.push)
	return st
}

// closed forgets a goroutine's client that has left or been closed; err is
// why, nil when it left.
func (s *Server) closed(st *connState, err error) {
	st.conn.releaseLarge()
	st.conn.holdUnfinished(0)
	st.conn.releaseTurn()
	var lerr *limitError
	var timeout net.Error
	switch {
	case errors.As(err, &lerr):
		// The client's own words are not logged: this is our reply to them.
		s.log.Warn("client closed: request refused", zap.String("addr", st.addr()), zap.String("reason", lerr.msg), zap.Int64("max_request_bytes", s.opts.MaxRequestBytes))
		if lerr.tooLarge {
			s.engine.Closed(commands.CloseRequestTooLarge)
		} else {
			s.engine.Closed(commands.CloseProtocolError)
		}
	case errors.Is(err, errRequestTimeout):
		s.log.Warn("client closed: request not completed in time", zap.String("addr", st.addr()), zap.Duration("request_timeout", s.opts.RequestTimeout))
		s.engine.Closed(commands.CloseRequestTimeout)
	case errors.As(err, &timeout) && timeout.Timeout() && !s.draining.Load():
		// A read's only deadline outside a drain is idle_timeout's.
		s.engine.Closed(commands.CloseIdleTimeout)
	}
	held := st.held
	st.held, st.heldBytes = nil, 0
	if len(held) == 0 {
		s.forget(st)
		return
	}
	// The client left (or the server drained, or a request was refused)
	// part-way through a command, after commands it had sent whole: Redis
	// would have run those, so they run, with no one left to answer. The
	// connection stays in s.conns until they are done: Shutdown waits for
	// them, and cancels s.ctx (which ends them) when it gives up.
	s.runDeparted(nil, st.pipeline, held, func() {
		// The replies no one will read still passed through the budget.
		s.budget.release(st.replies)
		st.replies = 0
		s.forget(st)
	})
}

// runDeparted runs, on a goroutine of their own and answering no one, the
// whole commands a departed client left, then calls done (which forgets
// the client). client, when not nil, is disconnected first.
func (s *Server) runDeparted(client *commands.Client, p *commands.Pipeline, held [][][]byte, done func()) {
	go func() {
		defer done()
		if client != nil {
			defer s.engine.Disconnect(client)
		}
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("panic running a departed client's commands", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			}
		}()
		p.Run(s.ctx, held, func([]byte) {})
	}()
}

// forget drops a closed client; the last one out of a draining server lets
// Shutdown return.
func (s *Server) forget(st *connState) {
	s.engine.Disconnect(st.client)
	st.push.close()
	s.mu.Lock()
	delete(s.conns, st.conn)
	s.lastOneOut()
	s.mu.Unlock()
}

// lastOneOut lets Shutdown return once a draining server's last client has
// left; under s.mu.
func (s *Server) lastOneOut() {
	if s.draining.Load() && len(s.conns)+s.loopers == 0 {
		s.closeAllGone()
	}
}

// handle runs the commands of a pipeline that one read brought together,
// so they share one upstream round trip; false: the client is to be
// closed.
func (s *Server) handle(st *connState, args [][][]byte) (open bool) {
	defer func() {
		// The pipeline recovers panics per command; this is the last line
		// for a bug in the proxy itself: drop this client, keep serving.
		if r := recover(); r != nil {
			s.log.Error("panic serving client", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			_, _ = st.conn.Write([]byte("-" + msgInternal + "\r\n"))
			open = false
		}
	}()
	// A read brings at most readBufferBytes of small requests, so a
	// pipeline of 1 KB sessions arrives as several batches, each of which would be its
	// own upstream round trip and script call. When the client is part-way
	// through its next command, the rest of the pipeline is on its way:
	// hold these commands and run them with it. Not after a batch whose
	// replies were large for its request (MGETs of big sessions): a batch
	// holds all its replies at once, so those run in smaller batches.
	if st.conn.midRequest() && len(st.held)+len(args) <= maxHeldCommands && st.heldBytes <= maxHeldBytes && st.heldBytes*st.replyRatio() <= maxHeldReplyBytes {
		st.hold(args)
		clear(args)
		st.args = args[:0]
		return true
	}
	if len(st.held) > 0 {
		args = append(st.held, args...)
		st.held, st.heldBytes = nil, 0
	}
	s.runBatches(st, args)
	clear(args)
	st.args = args[:0]
	if !st.conn.midRequest() {
		st.conn.releaseLarge() // its large request, if any, has run
	}
	switch {
	case st.overLimit:
		s.log.Warn("client closed: unsent replies over the limit", zap.String("addr", st.addr()), zap.Int64("max_client_reply_bytes", s.opts.MaxClientReplyBytes))
		s.engine.Closed(commands.CloseReplyLimit)
		_, _ = st.conn.Write([]byte(errReplyLimit(s.opts.MaxClientReplyBytes)))
		return false
	case errors.Is(st.writeErr, errWriteTimeout):
		s.log.Warn("client closed: replies not taken in time", zap.String("addr", st.addr()), zap.Duration("request_timeout", s.opts.RequestTimeout))
		s.engine.Closed(commands.CloseWriteTimeout)
		return false
	case st.writeErr != nil || st.client.Closing():
		return false
	}
	return true
}

// addr is the client's address, for the log.
func (st *connState) addr() string { return st.conn.RemoteAddr().String() }

// hold keeps args until the rest of the pipeline arrives. No copy:
// requestReader gives every batch's commands bytes of their own, never
// the buffer it reads on into (TestReaderArgsOutliveTheNextRead).
func (st *connState) hold(args [][][]byte) {
	for _, cmd := range args {
		for _, a := range cmd {
			st.heldBytes += len(a)
		}
	}
	st.held = append(st.held, args...)
}

// drainListener wraps each accepted connection in a guardedConn and, once
// the server drains, holds its accept loop (serveGoroutines) until every
// client has left, so that Serve returns only then.
type drainListener struct {
	net.Listener
	s   *Server
	tls bool // served by goroutines even with event loops
}

func (s *Server) wrap(ln net.Listener, tls bool) *drainListener {
	return &drainListener{Listener: ln, s: s, tls: tls}
}

func (l *drainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		if l.s.draining.Load() {
			<-l.s.allGone
		}
		return nil, err
	}
	return l.s.guard(c), nil
}

// guard wraps a client's connection in the proxy's limits.
func (s *Server) guard(c net.Conn) *guardedConn {
	return &guardedConn{
		Conn:           c,
		scanner:        requestScanner{max: s.opts.MaxRequestBytes, trackEnds: true},
		idle:           s.opts.IdleTimeout,
		requestTimeout: max(s.opts.RequestTimeout, 0),
		writeTimeout:   max(s.opts.RequestTimeout, 0),
		draining:       &s.draining,
		large:          s.large,
		unfinished:     s.unfinished,
	}
}
