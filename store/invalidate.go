package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Invalidations: one RESP3 connection per master with
// CLIENT TRACKING ON BCAST [PREFIX p …], so every write under the session
// prefix, wherever it comes from (this proxy, another one, redis-cli on
// the upstream itself), reaches the proxy as an `invalidate` push. The
// proxy fans those out to its own tracking clients (commands/tracking.go).
// The connection is the proxy's own, dialled with the pool's dialer (so
// TLS, and in sentinel mode the sentinels' current master, come with it),
// and speaks just enough RESP3 for HELLO, CLIENT TRACKING, ROLE and the
// pushes; go-redis has no API for a connection that only listens.

// ErrTrackingUnsupported: the upstream cannot track keys (the embedded
// miniredis has no CLIENT TRACKING).
var ErrTrackingUnsupported = errors.New("upstream has no CLIENT TRACKING (embedded mode)")

// InvalidationHandler receives what the tracking connections see. Its
// methods are called from the store's goroutines, one master's calls in
// order, and must not block.
type InvalidationHandler interface {
	// Invalidate: keys (upstream names) were written; nil keys: the
	// upstream flushed its data (FLUSHALL, FLUSHDB).
	Invalidate(keys []string)
	// Tracking: the tracking connection of a master came up, was lost
	// (writes until it is back are not seen), or is gone with its master
	// (cluster: no longer in the slot map).
	Tracking(master string, state TrackingState)
}

// TrackingState is what became of a master's tracking connection.
type TrackingState int

// Tracking states.
const (
	TrackingUp TrackingState = iota
	TrackingDown
	TrackingGone
)

// How the tracking connections are looked after: each sends ROLE every
// trackingCheckEvery (a demoted master, after a sentinel failover, is
// left for the new one) and is given up when no reply came within
// trackingDeadline; the masters are listed again every
// trackingCheckEvery (cluster: after a failover or a slot map change).
const (
	trackingCheckEvery = time.Second
	trackingDeadline   = 3 * time.Second
	trackingRetry      = 200 * time.Millisecond
)

// WatchInvalidations starts following writes under prefixes (none: every
// key) on every master, until Close. It fails at once only in embedded
// mode; an upstream that is down is retried in the background.
func (s *Store) WatchInvalidations(prefixes []string, h InvalidationHandler) error {
	if s.embedded != nil {
		return ErrTrackingUnsupported
	}
	s.stopped.Add(1)
	go s.superviseTracking(prefixes, h)
	return nil
}

// superviseTracking keeps one tracking connection per master.
func (s *Store) superviseTracking(prefixes []string, h InvalidationHandler) {
	defer s.stopped.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type watcher struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	running := map[string]*watcher{}
	defer func() {
		for _, w := range running {
			w.cancel()
			<-w.done
		}
	}()
	tick := time.NewTicker(trackingCheckEvery)
	defer tick.Stop()
	for {
		masters, err := s.trackingMasters(ctx)
		if err != nil {
			s.log().Debug("tracking: list masters", zap.Error(err))
		} else {
			// Down until its connection is up: writes on it are not seen
			// yet (and the first CLIENT TRACKING ON waits for them all).
			for name := range masters {
				if running[name] == nil {
					h.Tracking(name, TrackingDown)
				}
			}
			for name, c := range masters {
				if running[name] != nil {
					continue
				}
				wctx, wcancel := context.WithCancel(ctx)
				w := &watcher{cancel: wcancel, done: make(chan struct{})}
				running[name] = w
				go func() {
					defer close(w.done)
					s.trackMaster(wctx, name, c, prefixes, h)
				}()
			}
			for name, w := range running {
				if masters[name] == nil {
					w.cancel()
					<-w.done
					delete(running, name)
				}
			}
		}
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// trackingMasters names the masters to track: the one client outside a
// cluster, each master of the proxy's slot map in one.
func (s *Store) trackingMasters(ctx context.Context) (map[string]*redis.Client, error) {
	if s.cluster == nil {
		return map[string]*redis.Client{s.nodeName(s.client.(*redis.Client)): s.client.(*redis.Client)}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, trackingDeadline)
	defer cancel()
	masters, err := s.clusterMasters(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*redis.Client, len(masters))
	for _, m := range masters {
		out[m.Options().Addr] = m
	}
	return out, nil
}

// trackMaster keeps a tracking connection to one master until ctx ends,
// reconnecting after a failure.
func (s *Store) trackMaster(ctx context.Context, name string, c *redis.Client, prefixes []string, h InvalidationHandler) {
	for ctx.Err() == nil {
		err := s.trackOnce(ctx, c, prefixes, h, func() { h.Tracking(name, TrackingUp) })
		if ctx.Err() != nil {
			h.Tracking(name, TrackingGone)
			return
		}
		s.log().Warn("tracking connection lost", zap.String("master", name), zap.Error(err))
		h.Tracking(name, TrackingDown)
		select {
		case <-ctx.Done():
		case <-time.After(trackingRetry):
		}
	}
}

// trackOnce runs one tracking connection: it returns when the connection
// fails, the master is demoted, or ctx ends.
func (s *Store) trackOnce(ctx context.Context, c *redis.Client, prefixes []string, h InvalidationHandler, up func()) error {
	ctx, cancelConn := context.WithCancel(ctx) // ends the ROLE ticker with the connection
	defer cancelConn()
	opts := c.Options()
	dctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout)
	nc, err := opts.Dialer(dctx, "tcp", opts.Addr)
	cancel()
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	tc := &trackingConn{nc: nc, r: bufio.NewReader(nc)}
	hello := []string{"HELLO", "3"}
	if opts.Password != "" || opts.Username != "" {
		user := opts.Username
		if user == "" {
			user = "default"
		}
		hello = append(hello, "AUTH", user, opts.Password)
	}
	tracking := []string{"CLIENT", "TRACKING", "ON", "BCAST"}
	for _, p := range prefixes {
		tracking = append(tracking, "PREFIX", p)
	}
	for _, cmd := range [][]string{hello, {"CLIENT", "SETNAME", "sessproxy-tracking"}, tracking} {
		if err := tc.send(cmd...); err != nil {
			return err
		}
		v, err := tc.reply(h)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd[0], err)
		}
		if e, ok := v.(redisError); ok {
			return fmt.Errorf("%s: %s", strings.Join(cmd[:min(len(cmd), 3)], " "), string(e))
		}
	}
	up()
	// ROLE every trackingCheckEvery; the reader below gives up when a
	// reply is overdue.
	errs := make(chan error, 1)
	go func() {
		tick := time.NewTicker(trackingCheckEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := tc.send("ROLE"); err != nil {
				errs <- err
				return
			}
		}
	}()
	for {
		_ = nc.SetReadDeadline(time.Now().Add(trackingDeadline))
		v, err := tc.reply(h)
		if err != nil {
			return err
		}
		if role, ok := v.([]interface{}); ok && len(role) > 0 && role[0] != "master" {
			return fmt.Errorf("the node is now a %v", role[0])
		}
		select {
		case err := <-errs:
			return err
		default:
		}
	}
}

// trackingConn is a minimal RESP3 connection: commands out, replies in,
// pushes handed to the handler as they come.
type trackingConn struct {
	nc net.Conn
	r  *bufio.Reader
	mu sync.Mutex // send: the ROLE ticker and the handshake
}

type redisError string

func (tc *trackingConn) send(args ...string) error {
	var b []byte
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	_ = tc.nc.SetWriteDeadline(time.Now().Add(trackingDeadline))
	_, err := tc.nc.Write(b)
	return err
}

// reply reads the next reply, handing every push before it to h.
func (tc *trackingConn) reply(h InvalidationHandler) (interface{}, error) {
	for {
		v, push, err := readRESP3(tc.r)
		if err != nil {
			return nil, err
		}
		if !push {
			return v, nil
		}
		msg, _ := v.([]interface{})
		if len(msg) != 2 || msg[0] != "invalidate" {
			continue
		}
		if msg[1] == nil {
			h.Invalidate(nil)
			continue
		}
		raw, _ := msg[1].([]interface{})
		keys := make([]string, 0, len(raw))
		for _, k := range raw {
			if s, ok := k.(string); ok {
				keys = append(keys, s)
			}
		}
		h.Invalidate(keys)
	}
}

// maxTrackingFrame bounds one length the tracking connection accepts.
const maxTrackingFrame = 512 << 20

// readRESP3 reads one RESP3 value: string (simple, bulk, verbatim, big
// number), redisError, int64, float64 (as its text), bool, nil, or
// []interface{} (array, set, map as key value …, push); push reports a
// push frame. Attributes are skipped.
func readRESP3(r *bufio.Reader) (v interface{}, push bool, err error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, false, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, false, fmt.Errorf("malformed RESP line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+', ',', '(':
		return body, false, nil
	case '-', '!':
		if line[0] == '!' {
			s, err := readBlob(r, body)
			return redisError(s), false, err
		}
		return redisError(body), false, nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		return n, false, err
	case '#':
		return body == "t", false, nil
	case '_':
		return nil, false, nil
	case '$', '=':
		if body == "-1" {
			return nil, false, nil
		}
		s, err := readBlob(r, body)
		if line[0] == '=' && len(s) >= 4 {
			s = s[4:] // "txt:"
		}
		return s, false, err
	case '*', '~', '%', '>', '|':
		n, err := strconv.Atoi(body)
		if err != nil || n > maxTrackingFrame {
			return nil, false, fmt.Errorf("bad aggregate length %q", line)
		}
		if n < 0 {
			return nil, false, nil
		}
		if line[0] == '%' || line[0] == '|' {
			n *= 2
		}
		out := make([]interface{}, 0, min(n, 1024))
		for range n {
			e, _, err := readRESP3(r)
			if err != nil {
				return nil, false, err
			}
			out = append(out, e)
		}
		if line[0] == '|' {
			return readRESP3(r) // the attribute's value follows it
		}
		return out, line[0] == '>', nil
	}
	return nil, false, fmt.Errorf("unexpected RESP type %q", line[0])
}

func readBlob(r *bufio.Reader, size string) (string, error) {
	n, err := strconv.Atoi(size)
	if err != nil || n < 0 || n > maxTrackingFrame {
		return "", fmt.Errorf("bad length %q", size)
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// log is the store's logger, or a no-op one.
func (s *Store) log() *zap.Logger {
	if s.opts.Logger == nil {
		return zap.NewNop()
	}
	return s.opts.Logger
}
