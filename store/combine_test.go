package store

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// testRun is a run handed to a groupCommit under test.
type testRun struct {
	id   int
	sent bool
	err  error
}

// testCombiner is a groupCommit whose send records each group's runs and
// calls during (nil: nothing) before it returns.
func testCombiner(during func(group []*testRun)) (*groupCommit[*testRun], func() [][]int) {
	var mu sync.Mutex
	var groups [][]int
	g := &groupCommit[*testRun]{
		newBatch: func() *Batch { return &Batch{} },
		send: func(_ context.Context, _ *Batch, group []*testRun) {
			var ids []int
			for _, r := range group {
				ids = append(ids, r.id)
			}
			mu.Lock()
			groups = append(groups, ids)
			mu.Unlock()
			if during != nil {
				during(group)
			}
			for _, r := range group {
				r.sent = true
			}
		},
		noResult: func(r *testRun) {
			if !r.sent && r.err == nil {
				r.err = errNoResult
			}
		},
	}
	return g, func() [][]int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(groups)
	}
}

// waiting is the number of runs waiting for slot's call in flight.
func waiting(g *groupCommit[*testRun], slot int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if q := g.slots[slot]; q != nil {
		return len(q.waiting)
	}
	return 0
}

// waitFor polls until n runs wait on slot.
func waitFor(t *testing.T, g *groupCommit[*testRun], slot, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for waiting(g, slot) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d runs waiting on slot %d, want %d", waiting(g, slot), slot, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A lone run is sent at once, alone.
func TestGroupCommitLoneRunIsNotDelayed(t *testing.T) {
	g, groups := testCombiner(nil)
	r := &testRun{id: 1}
	g.do(context.Background(), 3, r)
	if !r.sent || r.err != nil {
		t.Fatalf("lone run: sent %v, err %v", r.sent, r.err)
	}
	if got := groups(); !slices.EqualFunc(got, [][]int{{1}}, slices.Equal[[]int]) {
		t.Fatalf("groups %v, want [[1]]", got)
	}
}

// The runs that arrive on a slot while its call is in flight are sent
// together as the next call; another slot's run does not wait for it.
func TestGroupCommitGroupsConcurrentRuns(t *testing.T) {
	release := make(chan struct{})
	g, groups := testCombiner(func(group []*testRun) {
		if group[0].id == 1 {
			<-release
		}
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() { g.do(ctx, 3, &testRun{id: 1}) })
	for start := time.Now(); len(groups()) == 0; {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the first run was not sent")
		}
		time.Sleep(time.Millisecond)
	}
	runs := []*testRun{{id: 2}, {id: 3}, {id: 4}}
	for i, r := range runs {
		wg.Go(func() { g.do(ctx, 3, r) })
		waitFor(t, g, 3, i+1)
	}
	other := &testRun{id: 9}
	g.do(ctx, 4, other) // another slot: not held by slot 3's call
	close(release)
	wg.Wait()
	got := groups()
	want := [][]int{{1}, {9}, {2, 3, 4}}
	if !slices.EqualFunc(got, want, slices.Equal[[]int]) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	for _, r := range runs {
		if !r.sent || r.err != nil {
			t.Fatalf("run %d: sent %v, err %v", r.id, r.sent, r.err)
		}
	}
}

// A send that panics still answers its group (errNoResult: whether a
// write was applied is unknown) and leaves the slot idle.
func TestGroupCommitPanickingSendReleasesWaiters(t *testing.T) {
	release := make(chan struct{})
	g, groups := testCombiner(func(group []*testRun) {
		switch group[0].id {
		case 1:
			<-release
		case 2:
			panic("send failed")
		}
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() { g.do(ctx, 3, &testRun{id: 1}) })
	for start := time.Now(); len(groups()) == 0; {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the first run was not sent")
		}
		time.Sleep(time.Millisecond)
	}
	leader, follower := &testRun{id: 2}, &testRun{id: 3}
	panicked := make(chan interface{}, 1)
	wg.Go(func() {
		defer func() { panicked <- recover() }()
		g.do(ctx, 3, leader)
	})
	waitFor(t, g, 3, 1)
	wg.Go(func() { g.do(ctx, 3, follower) })
	waitFor(t, g, 3, 2)
	close(release)
	wg.Wait()
	if p := <-panicked; p == nil {
		t.Fatal("the leading run's do did not panic")
	}
	for _, r := range []*testRun{leader, follower} {
		if r.err != errNoResult {
			t.Fatalf("run %d of the panicking group: err %v, want errNoResult", r.id, r.err)
		}
	}
	g.mu.Lock()
	busy := g.slots[3].busy
	g.mu.Unlock()
	if busy {
		t.Fatal("the slot stayed busy after a panicking send")
	}
	next := &testRun{id: 5}
	g.do(ctx, 3, next)
	if !next.sent {
		t.Fatal("a run after the panic was not sent")
	}
}

// upstream.combine switches the combiners: with it, a batch of one write
// or one read goes through its combiner; without, through the batch's
// own plan and sender.
func TestCombineSwitch(t *testing.T) {
	for _, combine := range []bool{true, false} {
		m := miniredis.RunT(t)
		s, err := Open(context.Background(), Options{Mode: ModeStandalone, Addrs: []string{m.Addr()}, AutoPipeline: true, Combine: combine})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		b := s.NewBatch()
		w := b.Write("sess:a", Write{Value: []byte("v"), TTL: time.Hour})
		if err := b.Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantWrite(t, w, Applied, nil)
		r := b.Get("sess:a")
		if err := b.Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantRead(t, r, "v")
		combined := s.writes != nil && s.reads != nil && len(s.writes.slots) == 1 && len(s.reads.slots) == 1
		if combined != combine {
			t.Fatalf("combine = %v: the single write and read went through the combiners: %v", combine, combined)
		}
	}
}
