//go:build linux

// Command sessloop is sessproxy's engine and store behind bench/epollfloor's
// event loop: a measurement of the restructuring docs/performance.md
// proposes for issue 16, not a server. One thread reads every ready
// client, dispatches its commands (the whole policy: resolve, codec, TTL,
// typed tombstones) into one batch shared by every client of the
// iteration, and hands the batch to a worker goroutine that executes it —
// one upstream pipeline through the store's lane — while the loop fills
// the next; when the worker is done the loop writes those clients'
// replies. It has none of the proxy's limits, timeouts, TLS, transactions
// or metrics server; a command that needs a second round trip during
// dispatch takes it from inside the loop.
//
//	sessloop LISTEN_ADDR UPSTREAM_ADDR
//
// The options are BenchmarkPipeline's (integration/bench_test.go): the
// shipped defaults, typed tombstones past their transition, metrics on.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sessproxy/sessproxy/bench/internal/evloop"
	"github.com/sessproxy/sessproxy/bench/internal/resp2"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/metrics"
	"github.com/sessproxy/sessproxy/store"
	"github.com/sessproxy/sessproxy/store/codec"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sessloop:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: sessloop LISTEN_ADDR UPSTREAM_ADDR")
	}
	ctx := context.Background()
	reg := metrics.NewRegistry()
	st, err := store.Open(ctx, store.Options{Mode: store.ModeStandalone, Addrs: []string{args[1]}, AutoPipeline: true, Combine: true, Metrics: reg})
	if err != nil {
		return err
	}
	defer st.Close()
	cdc, err := codec.New(codec.Options{MaxPayloadBytes: 1 << 20})
	if err != nil {
		return err
	}
	eng := commands.New(st, commands.Options{
		Prefix:     "sess:",
		Policy:     ttl.Policy{Default: 24 * time.Hour, Min: time.Second, Max: 30 * 24 * time.Hour, FromCookie: true, Touch: true},
		Tombstones: true, Grace: 5 * time.Minute, OnWrite: commands.OnWriteError,
		TombstoneFormat: store.TombstoneTyped, TombstoneTransition: -1,
		Codec: cdc, Metrics: reg,
	})
	s, err := newServer(ctx, eng, st)
	if err != nil {
		return err
	}
	l, err := evloop.Listen(args[0], s)
	if err != nil {
		return err
	}
	if err := l.Watch(s.efd, unix.EPOLLIN); err != nil {
		return err
	}
	return l.Run()
}

// server queues the clients of an iteration on one shared batch, and keeps
// one batch executing on a worker goroutine while the loop fills the next:
// Redis works while the loop reads, dispatches and writes, as it does
// behind twemproxy. A client whose batch is in flight is not dispatched
// again until its replies are written (its bytes wait in its In).
type server struct {
	ctx     context.Context
	eng     *commands.Engine
	batches [2]*store.Batch
	filling int              // the batch being filled: 0 or 1
	pending []*evloop.Client // queued on it, in order
	// inflight is the batch the worker executes (nil: none); its clients
	// come back on done, with a wake-up on efd for the loop.
	inflight []*evloop.Client
	work     chan *store.Batch
	done     chan struct{}
	efd      int
}

// conn is a client's engine side, a pipeline on each batch, and the bytes
// its queued commands' arguments point into until Complete.
type conn struct {
	client *commands.Client
	p      [2]*commands.Pipeline
	on     int  // the batch its last commands were queued on
	busy   bool // queued, replies not yet written
	held   []byte
	cmds   [][][]byte
}

func newServer(ctx context.Context, eng *commands.Engine, st *store.Store) (*server, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	s := &server{ctx: ctx, eng: eng, batches: [2]*store.Batch{st.NewBatch(), st.NewBatch()},
		work: make(chan *store.Batch), done: make(chan struct{}, 1), efd: efd}
	go s.execute()
	return s, nil
}

// execute runs on its own goroutine: each batch handed over is executed,
// then the loop is told (done for the memory order, efd to wake it).
func (s *server) execute() {
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for b := range s.work {
		_ = b.Exec(s.ctx) // each command's own result carries a failure
		s.done <- struct{}{}
		_, _ = unix.Write(s.efd, one)
	}
}

func (s *server) Open(_ *evloop.Loop, c *evloop.Client) {
	client := s.eng.Connect("sessloop", "sessloop")
	c.State = &conn{client: client, p: [2]*commands.Pipeline{
		s.eng.NewPipelineOn(client, s.batches[0]), s.eng.NewPipelineOn(client, s.batches[1])}}
}

func (s *server) Closed(_ *evloop.Loop, c *evloop.Client) {
	s.eng.Disconnect(c.State.(*conn).client)
}

// Read queues every whole command in c.In on the batch being filled,
// unless c's previous commands are still in flight.
func (s *server) Read(_ *evloop.Loop, c *evloop.Client) (int, error) {
	cn := c.State.(*conn)
	if cn.busy {
		return 0, nil
	}
	at := 0
	for at < len(c.In) {
		m, err := resp2.Frame(c.In[at:])
		if err != nil {
			return 0, err
		}
		if m == 0 {
			break
		}
		at += m
	}
	if at == 0 {
		return 0, nil
	}
	cn.held = append(cn.held[:0], c.In[:at]...) // c.In is compacted after Read
	cn.cmds = cn.cmds[:0]
	for rest := cn.held; len(rest) > 0; {
		m, _ := resp2.Frame(rest)
		args := resp2.Args(rest[:m])
		if args == nil {
			return 0, errors.New("not a command")
		}
		cn.cmds = append(cn.cmds, args)
		rest = rest[m:]
	}
	cn.on, cn.busy = s.filling, true
	cn.p[cn.on].Queue(s.ctx, cn.cmds)
	s.pending = append(s.pending, c)
	return at, nil
}

// Ready is the worker's wake-up: the batch in flight has executed; its
// clients' replies are written, and what they sent meanwhile is queued.
func (s *server) Ready(l *evloop.Loop, fd int, _ uint32) error {
	var buf [8]byte
	if _, err := unix.Read(fd, buf[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("read eventfd: %w", err)
	}
	select {
	case <-s.done:
	default:
		return nil
	}
	done := s.inflight
	s.inflight = nil
	for _, c := range done {
		cn := c.State.(*conn)
		cn.p[cn.on].Complete(func(reply []byte) { l.Write(c, reply) })
		cn.busy = false
		l.Feed(c)
	}
	return nil
}

// Idle hands the filled batch to the worker when none is in flight.
func (s *server) Idle(*evloop.Loop) error {
	if s.inflight != nil || len(s.pending) == 0 {
		return nil
	}
	s.inflight = append([]*evloop.Client(nil), s.pending...)
	clear(s.pending)
	s.pending = s.pending[:0]
	s.work <- s.batches[s.filling]
	s.filling ^= 1
	return nil
}
