package proxy

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/sessproxy/sessproxy/commands"
	"github.com/sessproxy/sessproxy/commands/ttl"
	"github.com/sessproxy/sessproxy/integration/redistest"
	"github.com/sessproxy/sessproxy/store"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A client that sends one byte a little more often than idle_timeout is
// never idle; request_timeout closes it once its request has taken too
// long, and says so in the log.
func TestRequestTimeoutClosesATrickle(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	srv := startServer(t, Options{IdleTimeout: 200 * time.Millisecond, RequestTimeout: 600 * time.Millisecond, Logger: zap.New(core)})
	c, r := dial(t, "tcp", srv.Addr().String())
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		frame := "*2\r\n$4\r\nECHO\r\n$1000\r\n" + strings.Repeat("x", 1000)
		for i := 0; i < len(frame); i++ {
			if _, err := io.WriteString(c, frame[i:i+1]); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("the trickling client got a reply")
	}
	if took := time.Since(start); took < 500*time.Millisecond || took > 3*time.Second {
		t.Fatalf("closed after %v; want about the request timeout (600ms)", took)
	}
	for deadline := time.Now().Add(5 * time.Second); logs.FilterMessage("client closed: request not completed in time").Len() == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no log line; logs: %v", logs.All())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// request_timeout bounds one request, not the connection: a client whose
// requests each arrive quickly stays as long as it likes.
func TestRequestTimeoutLeavesQuickRequestsAlone(t *testing.T) {
	srv := startServer(t, Options{RequestTimeout: 300 * time.Millisecond})
	c, r := dial(t, "tcp", srv.Addr().String())
	// A request split over two writes, finished in time, then more.
	for i := 0; i < 8; i++ {
		if _, err := io.WriteString(c, "*1\r\n$4\r\nPI"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if got := roundTrip(t, c, r, "NG\r\n"); got != "+PONG" {
			t.Fatalf("round %d: %q", i, got)
		}
	}
}

// stallingProxy forwards TCP to addr and, while stalled, holds back the
// upstream's replies: an upstream that has stopped answering.
type stallingProxy struct {
	ln    net.Listener
	stall atomic.Bool
}

func newStallingProxy(t *testing.T, addr string) *stallingProxy {
	t.Helper()
	p := &stallingProxy{}
	p.ln = redistest.Relay(t, addr, func(down, up net.Conn) {
		redistest.BothWays(func() { io.Copy(up, down); up.Close() }, func() {
			defer down.Close()
			buf := make([]byte, 4096)
			for {
				n, err := up.Read(buf)
				for p.stall.Load() {
					time.Sleep(10 * time.Millisecond)
				}
				if n > 0 {
					if _, werr := down.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
	})
	return p
}

// The commands a departing client left whole run against the upstream
// after it left; a slow upstream there must not hold redcon's lock, which
// its accept loop needs for every new client. With event loops, accepting
// is a goroutine of its own and the new client is counted at once; its
// PING is answered when its loop is free, which a loop waiting for the
// stalled upstream is not (README, "Event loops").
func TestDepartedClientsCommandsDoNotBlockAccepting(t *testing.T) {
	m := miniredis.RunT(t)
	up := newStallingProxy(t, m.Addr())
	st, err := store.Open(context.Background(), store.Options{Mode: store.ModeStandalone, Addrs: []string{up.ln.Addr().String()}, ReadTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.stall.Store(false); st.Close() })
	eng := commands.New(st, commands.Options{Policy: ttl.Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour}})
	srv := New(eng, testOpts(Options{Listen: "127.0.0.1:0"}))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		up.stall.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addr := srv.Addr().String()
	// Warm the upstream pool, so the held command's call is the stalled one.
	warm, warmR := dial(t, "tcp", addr)
	if got := roundTrip(t, warm, warmR, "*2\r\n$8\r\nSESS.GET\r\n$1\r\nz\r\n"); got != "$-1" {
		t.Fatalf("warm-up: %q", got)
	}

	leaving, _ := dial(t, "tcp", addr)
	if _, err := io.WriteString(leaving, "*3\r\n$8\r\nSESS.SET\r\n$1\r\na\r\n$2\r\n{}\r\n*3\r\n$8\r\nSESS"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !srv.anyMidRequest(); {
		if time.Now().After(deadline) {
			t.Fatal("the proxy never read the command and a half")
		}
		time.Sleep(time.Millisecond)
	}
	up.stall.Store(true)
	leaving.Close()
	time.Sleep(100 * time.Millisecond) // let closed start its upstream call

	// The departing client is counted until its stalled call returns.
	before := srv.connCount()
	start := time.Now()
	c, r := dial(t, "tcp", addr)
	if len(srv.loops) > 0 {
		for srv.connCount() <= before {
			if time.Since(start) > time.Second {
				t.Fatalf("a new client was not accepted within %v while a departed client's upstream call stalled", time.Since(start))
			}
			time.Sleep(time.Millisecond)
		}
		up.stall.Store(false)
	}
	if got := roundTrip(t, c, r, "PING\r\n"); got != "+PONG" {
		t.Fatalf("new client's PING: %q", got)
	}
	if took := time.Since(start); took > time.Second && len(srv.loops) == 0 {
		t.Fatalf("a new client waited %v for the departed client's upstream call", took)
	}
	up.stall.Store(false)
	for deadline := time.Now().Add(5 * time.Second); !m.Exists("sess:a"); {
		if time.Now().After(deadline) {
			t.Fatal("the departed client's whole command never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
