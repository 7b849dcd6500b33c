package store

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func openMini(t *testing.T) (*Store, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	s, err := Open(context.Background(), Options{Mode: ModeStandalone, Addrs: []string{m.Addr()}, AutoPipeline: true, Combine: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, m
}

// openFlushed is a store on a miniredis holding plain = "old", whose script
// cache is then emptied, as a restart or a failover would.
func openFlushed(t *testing.T) *Store {
	t.Helper()
	s, m := openMini(t)
	m.Set("plain", "old")
	direct := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer direct.Close()
	if err := direct.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// After a NOSCRIPT, the scripts that did not run are sent again, and so are
// the reads after them — but not a read queued before a write that did
// run: sent again, it would see a write queued after it.
func TestNoScriptResendKeepsOrder(t *testing.T) {
	ctx := context.Background()
	s := openFlushed(t)
	b := s.NewBatch()
	write := b.Write("sess:a", Write{Value: []byte(`{"v":1}`), TTL: time.Hour})
	readA := b.Get("sess:a")                     // after the failed script: must see it
	readPlain := b.Forward(true, "get", "plain") // before a write that runs: first answer
	b.Forward(false, "set", "plain", "new")      // not a script: runs the first time
	readAfter := b.Forward(true, "get", "plain") // after that write
	if err := b.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if outcome, _, err := write.Result(); err != nil || outcome != Applied {
		t.Fatalf("write after NOSCRIPT: %v %v", outcome, err)
	}
	if v, err := readA.Result(); err != nil || string(v) != `{"v":1}` {
		t.Fatalf("read after the re-sent write = %q %v", v, err)
	}
	if v, _ := readPlain.Result(); v != "old" {
		t.Fatalf("read before a write that ran = %v, want its first answer", v)
	}
	if v, _ := readAfter.Result(); v != "new" {
		t.Fatalf("read after the write = %v", v)
	}
}

// TestNoScriptResendReadRun: reads merged into one MGET are re-sent after a
// NOSCRIPT unless a later write to one of their keys ran, so they still see
// the re-sent write queued before them.
func TestNoScriptResendReadRun(t *testing.T) {
	ctx := context.Background()
	s := openFlushed(t)
	b := s.NewBatch()
	b.Write("sess:a", Write{Value: []byte(`{"v":1}`), TTL: time.Hour})
	readA := b.Get("sess:a") // one MGET with the next read
	readB := b.Get("sess:b")
	b.Forward(false, "set", "plain", "new") // runs the first time, on another key
	if err := b.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := readA.Result(); err != nil || string(v) != `{"v":1}` {
		t.Fatalf("read in a run after the re-sent write = %q %v, want the write", v, err)
	}
	if _, err := readB.Result(); err != ErrNotFound {
		t.Fatalf("missing key in the run: %v, want ErrNotFound", err)
	}
}
