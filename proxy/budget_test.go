package proxy

import (
	"sync"
	"testing"
	"time"
)

// acquireAsync starts acquire(n) and returns a channel closed once it has
// the bytes.
func acquireAsync(b *budget, n int64) <-chan struct{} {
	done := make(chan struct{})
	go func() { b.acquire(n); close(done) }()
	return done
}

// waitWaiting polls until n acquires are queued.
func waitWaiting(t *testing.T, b *budget, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		b.mu.Lock()
		got := len(b.waiting)
		b.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acquires waiting, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestBudgetFitsAcquireRelease(t *testing.T) {
	b := newBudget(100)
	if !b.fits(100) || !b.fits(1000) {
		t.Fatal("an empty budget refuses a request")
	}
	b.acquire(60)
	if b.fits(41) || !b.fits(40) {
		t.Fatalf("with 60 of 100 held: fits(41) %v, fits(40) %v; want false, true", b.fits(41), b.fits(40))
	}
	b.acquire(40)
	b.take(30) // reply bytes already in memory go over without waiting
	if got := b.held(); got != 130 {
		t.Fatalf("held %d, want 130", got)
	}
	b.release(130)
	if got := b.held(); got != 0 {
		t.Fatalf("held %d after releasing everything, want 0", got)
	}
	b.release(0) // a batch that held nothing
	if got := b.held(); got != 0 {
		t.Fatalf("held %d after release(0)", got)
	}
}

// One request larger than the whole budget runs when nothing else is held,
// and then holds everything: the next waits for it.
func TestBudgetOversizedRequestRunsAlone(t *testing.T) {
	b := newBudget(100)
	done := make(chan struct{})
	go func() { b.acquire(250); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a request larger than the budget never ran on an empty budget")
	}
	small := acquireAsync(b, 1)
	waitWaiting(t, b, 1)
	b.release(250)
	<-small
}

// An oversized request waits while anything else is held, and runs once
// the budget is empty.
func TestBudgetOversizedRequestWaitsForEmpty(t *testing.T) {
	b := newBudget(100)
	b.acquire(10)
	big := acquireAsync(b, 250)
	waitWaiting(t, b, 1)
	if isDone(big) {
		t.Fatal("an oversized request ran beside another holder")
	}
	b.release(10)
	<-big
	if got := b.held(); got != 250 {
		t.Fatalf("held %d, want 250", got)
	}
}

// Waiters are served first come, first served: a large request at the head
// of the queue is not overtaken by small ones that would fit, and release
// wakes every waiter that fits, in order.
func TestBudgetFIFONoStarvation(t *testing.T) {
	b := newBudget(100)
	b.acquire(50)
	large := acquireAsync(b, 80) // does not fit beside 50
	waitWaiting(t, b, 1)
	small := acquireAsync(b, 10) // would fit, but queues behind the large one
	waitWaiting(t, b, 2)
	if isDone(small) {
		t.Fatal("a small request overtook the large one waiting before it")
	}
	b.release(50)
	<-large
	// 80 held: the small one (10) fits beside it and is woken by the same
	// release.
	<-small
	if got := b.held(); got != 90 {
		t.Fatalf("held %d, want 90", got)
	}
}

// A release wakes exactly the waiters that fit, and later releases the rest.
func TestBudgetReleaseWakesWaitersThatFit(t *testing.T) {
	b := newBudget(100)
	b.acquire(100)
	first := acquireAsync(b, 60)
	waitWaiting(t, b, 1)
	second := acquireAsync(b, 60)
	waitWaiting(t, b, 2)
	b.release(100)
	<-first
	waitWaiting(t, b, 1)
	if isDone(second) {
		t.Fatal("the second waiter ran over the budget beside the first")
	}
	b.release(60)
	<-second
	if got := b.held(); got != 60 {
		t.Fatalf("held %d, want 60", got)
	}
}

// Many goroutines acquiring, taking and releasing at once: every acquire
// completes (no deadlock, with oversized requests among them) and nothing
// is lost (held ends at 0).
func TestBudgetConcurrentNoDeadlock(t *testing.T) {
	const max = 1000
	b := newBudget(max)
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				n := int64((g*31+i*7)%300 + 1)
				if g == 0 && i%50 == 0 {
					n = 3 * max // now and then one larger than the budget
				}
				b.acquire(n)
				reply := int64(i % 5)
				b.take(reply)
				b.release(n + reply)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("acquires still waiting after 60s: held %d", b.held())
	}
	if got := b.held(); got != 0 {
		t.Fatalf("held %d after every release, want 0", got)
	}
}

// An event loop's client never waits in the budget: tryAcquire takes what
// fits when no one queues, enqueue takes a place in the same first-come
// queue as the goroutines' clients, and cancel gives the place back, or
// the bytes when they were granted meanwhile.
func TestBudgetEnqueueGrantedCancel(t *testing.T) {
	b := newBudget(100)
	if !b.tryAcquire(80) {
		t.Fatal("tryAcquire(80) of an empty budget of 100 failed")
	}
	if b.tryAcquire(30) {
		t.Fatal("tryAcquire(30) with 80 of 100 held succeeded")
	}
	w := b.enqueue(30)
	if w.granted() {
		t.Fatal("a waiter for 30 with 80 of 100 held was granted")
	}
	if b.tryAcquire(10) {
		t.Fatal("tryAcquire(10) went ahead of a waiter")
	}
	b.cancel(w) // its place given up
	if !b.tryAcquire(10) {
		t.Fatal("tryAcquire(10) failed with 80 of 100 held and no waiter")
	}
	w = b.enqueue(30)
	b.release(90) // everything: the waiter is granted
	if !w.granted() || b.held() != 30 {
		t.Fatalf("after release: granted %v, held %d; want true, 30", w.granted(), b.held())
	}
	b.cancel(w) // granted meanwhile: its bytes come back
	if got := b.held(); got != 0 {
		t.Fatalf("held %d after cancelling a granted waiter, want 0", got)
	}
	if w := b.enqueue(30); !w.granted() || b.held() != 30 {
		t.Fatalf("enqueue(30) of an empty budget: granted %v, held %d", w.granted(), b.held())
	}
}
