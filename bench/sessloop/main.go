//go:build linux

// Command sessloop is sessproxy's engine and store behind bench/epollfloor's
// event loop: a measurement of the restructuring docs/performance.md
// proposes for issue 16, not a server. One thread reads every ready
// client, dispatches its commands (the whole policy: resolve, codec, TTL,
// typed tombstones) into one batch shared by every client of the
// iteration, executes that batch once — one upstream pipeline through the
// store's lane, from the loop's own goroutine — and writes each client's
// replies. It has none of the proxy's limits, timeouts, TLS, transactions
// or metrics server; a command that needs a second round trip (a miss's
// hash check, a WRONGTYPE's TYPE) takes it from inside the loop.
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
	s := &server{ctx: ctx, eng: eng, round: eng.NewRound()}
	l, err := evloop.Listen(args[0], s)
	if err != nil {
		return err
	}
	return l.Run()
}

// server runs every client of an iteration on one shared batch.
type server struct {
	ctx     context.Context
	eng     *commands.Engine
	round   *commands.Round
	pending []*evloop.Client // queued this iteration, in order
}

// conn is a client's engine side, and the bytes its queued commands'
// arguments point into until Complete.
type conn struct {
	client *commands.Client
	p      *commands.Pipeline
	held   []byte
	cmds   [][][]byte
}

func (s *server) Open(_ *evloop.Loop, c *evloop.Client) {
	client := s.eng.Connect("sessloop", "sessloop")
	c.State = &conn{client: client, p: s.eng.NewPipelineIn(client, s.round)}
}

func (s *server) Closed(_ *evloop.Loop, c *evloop.Client) {
	s.eng.Disconnect(c.State.(*conn).client)
}

func (s *server) Ready(*evloop.Loop, int, uint32) error { return nil }

// Read queues every whole command in c.In on the shared batch.
func (s *server) Read(_ *evloop.Loop, c *evloop.Client) (int, error) {
	cn := c.State.(*conn)
	// The arguments must outlive c.In, which is compacted after Read.
	cn.held = append(cn.held[:0], c.In...)
	cn.cmds = cn.cmds[:0]
	at, err := resp2.Commands(cn.held, func(args [][]byte) { cn.cmds = append(cn.cmds, args) })
	if err != nil {
		return 0, err
	}
	if at == 0 {
		return 0, nil
	}
	cn.p.Queue(s.ctx, cn.cmds)
	s.pending = append(s.pending, c)
	return at, nil
}

// Idle executes the iteration's batch once, then writes every queued
// client's replies.
func (s *server) Idle(l *evloop.Loop) error {
	if len(s.pending) == 0 {
		return nil
	}
	s.round.Exec(s.ctx)
	for _, c := range s.pending {
		cn := c.State.(*conn)
		cn.p.Complete(func(reply []byte) { l.Write(c, reply) })
		if cn.client.Closing() { // QUIT: its reply, then the close
			l.CloseAfterWrite(c)
		}
	}
	clear(s.pending)
	s.pending = s.pending[:0]
	return nil
}
