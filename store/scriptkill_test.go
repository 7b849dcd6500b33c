package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/integration/redistest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A client's script that never ends held Redis for ever: once Redis's
// busy-reply-threshold passed, it answered every other command, every
// session's, BUSY, and the proxy, which does not serve SCRIPT KILL to
// clients, never sent it either. Now the store sends SCRIPT KILL once the
// script's client has been answered its read_timeout error, and Redis
// serves again within the threshold; the kill is logged, without the
// script's text.
func TestRunawayScriptIsKilled(t *testing.T) {
	redistest.RequireBinaries(t)
	srv := redistest.Standalone(t)
	// Redis 7's busy-reply-threshold under its older name, which 6.2 knows.
	if _, err := srv.Command("CONFIG", "SET", "lua-time-limit", "1000"); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	ctx := context.Background()
	for _, how := range []string{"lanes", "no auto-pipelining", "transaction"} {
		auto := how == "lanes"
		s, err := Open(ctx, Options{Mode: ModeStandalone, Addrs: []string{srv.Addr}, AutoPipeline: auto, Combine: auto,
			ReadTimeout: 500 * time.Millisecond, Logger: zap.New(core)})
		if err != nil {
			t.Fatal(err)
		}
		runaway := NewUserScript("local secret = 'payload' while true do end")
		if how == "transaction" {
			if err := s.LoadUserScript(ctx, runaway); err != nil {
				t.Fatal(err)
			}
			p, err := s.Pin(ctx, "sess:probe")
			if err != nil {
				t.Fatal(err)
			}
			b := p.Batch()
			b.Eval(runaway, false, []string{"sess:probe"}, nil)
			if err := b.Commit(ctx); err == nil {
				t.Fatal("a transaction whose script never ends was answered")
			}
			p.Release(ctx)
		} else {
			b := s.NewBatch()
			res := b.Eval(runaway, false, nil, nil)
			_ = b.Exec(ctx)
			if _, err := res.Result(); err == nil {
				t.Fatal("a script that never ends was answered")
			}
		}
		answered := time.Now()
		var busy time.Duration
		for {
			_, err := srv.Command("GET", "sess:probe")
			busy = time.Since(answered)
			if err == nil || !strings.HasPrefix(err.Error(), "BUSY") || busy > 10*time.Second {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s: Redis answered BUSY for %v after the script's client had its error (lua-time-limit 1 s)", how, busy.Round(10*time.Millisecond))
		if busy > 5*time.Second {
			t.Fatalf("Redis still BUSY %v after the script's client had its error", busy)
		}
		s.Close()
	}
	kills := logs.FilterMessageSnippet("SCRIPT KILL").All()
	if len(kills) == 0 {
		t.Fatalf("the kill was not logged: %v", logs.All())
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message+fmt.Sprint(e.ContextMap()), "payload") {
			t.Fatalf("a log line carries the script's text: %v", e)
		}
	}
}
