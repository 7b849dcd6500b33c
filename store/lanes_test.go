package store

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// openLanes is a store as shipped outside a cluster (auto-pipelining on
// lanes) on a miniredis.
func openLanes(t *testing.T) *Store {
	t.Helper()
	m := miniredis.RunT(t)
	s, err := Open(context.Background(), Options{Mode: ModeStandalone, Addrs: []string{m.Addr()}, AutoPipeline: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.lanes == nil {
		t.Fatal("a standalone store with AutoPipeline has no lanes")
	}
	return s
}

// Clients sending at once through one lane share its pipelines, and each
// gets exactly its own replies, in its own order.
func TestLanesGiveEachClientItsOwnReplies(t *testing.T) {
	s := openLanes(t)
	const clients, batches, depth = 20, 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			b := s.NewBatch()
			key := fmt.Sprintf("counter-%d", c)
			for i := range batches {
				results := make([]ForwardResult, depth)
				for j := range results {
					results[j] = b.Forward(false, "incr", key)
				}
				if err := b.Exec(context.Background()); err != nil {
					errs <- err
					return
				}
				for j, r := range results {
					v, err := r.Result()
					if want := int64(i*depth + j + 1); err != nil || v != want {
						errs <- fmt.Errorf("client %d batch %d command %d: INCR = %v %v, want %d", c, i, j, v, err, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// New batches are spread over the lanes in turn.
func TestLanesPickRoundRobin(t *testing.T) {
	l := &lanes{n: 3}
	seen := map[int]int{}
	for range 9 {
		seen[l.pick()]++
	}
	if len(seen) != 3 || seen[0] != 3 || seen[1] != 3 || seen[2] != 3 {
		t.Fatalf("9 picks over 3 lanes: %v", seen)
	}
}

// The lanes are one per two CPUs, at least one, or as many as asked when
// that is more (a lane per event loop).
func TestLaneCount(t *testing.T) {
	def := max(1, runtime.GOMAXPROCS(0)/2)
	if got := laneCount(0); got != def {
		t.Errorf("laneCount(0) = %d, want %d", got, def)
	}
	if got := laneCount(def + 3); got != def+3 {
		t.Errorf("laneCount(%d) = %d, want as many", def+3, got)
	}
	if got := laneCount(1); got != def {
		t.Errorf("laneCount(1) = %d, want %d", got, def)
	}
}
