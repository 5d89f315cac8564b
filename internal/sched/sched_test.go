package sched

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

func fixed(n int) func() int { return func() int { return n } }

func TestLoneLargeCallGetsEverything(t *testing.T) {
	b := New(fixed(4))
	g, err := b.Acquire(context.Background(), 16)
	if err != nil || g.Threads() != 4 {
		t.Fatalf("lone call wanting 16 of 4: %d threads, %v", g.Threads(), err)
	}
	if s := b.Stats(); s.Held != 4 {
		t.Errorf("an exclusive grant holds %d cores, want 4", s.Held)
	}
	// Nothing runs beside it: a small call waits until it is released.
	got := make(chan Grant)
	go func() {
		g, _ := b.Acquire(context.Background(), 1)
		got <- g
	}()
	waitFor(t, func() bool { return b.Stats().Waiting == 1 })
	b.Release(g)
	if g := <-got; g.Threads() != 1 {
		t.Errorf("the waiting small call got %d threads", g.Threads())
	} else {
		b.Release(g)
	}
	if s := b.Stats(); s.Held != 0 || s.Waiting != 0 {
		t.Errorf("after both released: %+v", s)
	}
}

func TestSmallCallsShare(t *testing.T) {
	b := New(fixed(3))
	var gs []Grant
	for range 3 {
		g, err := b.Acquire(context.Background(), 1)
		if err != nil || g.Threads() != 1 {
			t.Fatalf("small call: %d threads, %v", g.Threads(), err)
		}
		gs = append(gs, g)
	}
	// A large call finds the budget busy: it waits, then runs
	// single-threaded because others are still running.
	got := make(chan Grant)
	go func() {
		g, _ := b.Acquire(context.Background(), 8)
		got <- g
	}()
	waitFor(t, func() bool { return b.Stats().Waiting == 1 })
	b.Release(gs[0])
	if g := <-got; g.Threads() != 1 {
		t.Errorf("large call beside two small ones got %d threads, want 1", g.Threads())
	} else {
		b.Release(g)
	}
	b.Release(gs[1])
	b.Release(gs[2])
}

func TestJobsRunSingleThreaded(t *testing.T) {
	b := New(fixed(8))
	b.Join()
	b.Join()
	g, _ := b.Acquire(context.Background(), 8)
	if g.Threads() != 1 {
		t.Errorf("with two jobs registered a large call got %d threads, want 1", g.Threads())
	}
	b.Release(g)
	b.Leave()
	g, _ = b.Acquire(context.Background(), 8)
	if g.Threads() != 8 {
		t.Errorf("with one job left a large call got %d threads, want 8", g.Threads())
	}
	b.Release(g)
	b.Leave()
	if s := b.Stats(); s.Jobs != 0 || s.Held != 0 {
		t.Errorf("after Leave: %+v", s)
	}
}

func TestControlCapsAndSets(t *testing.T) {
	b := New(fixed(8))
	var set []int
	b.Control(3, func(n int) { set = append(set, n) })
	g, _ := b.Acquire(context.Background(), 8)
	if g.Threads() != 3 {
		t.Errorf("cap 3: got %d threads", g.Threads())
	}
	b.Release(g)
	g, _ = b.Acquire(context.Background(), 8) // same level: not set again
	b.Release(g)
	g, _ = b.Acquire(context.Background(), 1)
	b.Release(g)
	if len(set) != 2 || set[0] != 3 || set[1] != 1 {
		t.Errorf("levels set: %v, want [3 1]", set)
	}
	b.Control(1, nil) // a library without control: one thread per call
	if g, _ := b.Acquire(context.Background(), 8); g.Threads() != 1 {
		t.Errorf("uncontrolled library: %d threads", g.Threads())
	} else {
		b.Release(g)
	}
}

func TestLimitFollowsGOMAXPROCSWhenIdle(t *testing.T) {
	n := 2
	b := New(func() int { return n })
	if b.Limit() != 2 {
		t.Fatal(b.Limit())
	}
	n = 5
	if g, _ := b.Acquire(context.Background(), 9); g.Threads() != 5 {
		t.Errorf("after the limit grew: %d threads", g.Threads())
	} else {
		b.Release(g)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	b := New(fixed(1))
	g, _ := b.Acquire(context.Background(), 1)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := b.Acquire(ctx, 1)
		errc <- err
	}()
	waitFor(t, func() bool { return b.Stats().Waiting == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	if s := b.Stats(); s.Waiting != 0 || s.Held != 1 {
		t.Errorf("after the cancelled wait: %+v", s)
	}
	b.Release(g)
	if s := b.Stats(); s.Held != 0 {
		t.Errorf("budget not whole again: %+v", s)
	}
	// An already cancelled context still gets a free core at once: the
	// caller checks its context itself between calls.
	if g, err := b.Acquire(ctx, 1); err != nil {
		t.Errorf("free core with a cancelled context: %v", err)
	} else {
		b.Release(g)
	}
}

func TestFirstComeFirstServed(t *testing.T) {
	b := New(fixed(1))
	g, _ := b.Acquire(context.Background(), 1)
	order := make(chan int, 5)
	for i := range 5 {
		go func() {
			g, _ := b.Acquire(context.Background(), 1)
			order <- i
			b.Release(g)
		}()
		waitFor(t, func() bool { return b.Stats().Waiting == i+1 })
	}
	b.Release(g)
	for i := range 5 {
		if got := <-order; got != i {
			t.Fatalf("waiter %d served in place %d", got, i)
		}
	}
}

// fakeLib is a BLAS whose thread count is one process-wide setting, as
// OpenBLAS's is: every call runs on the count set when it starts. It
// records what the budget asks of it and checks the budget's promise.
type fakeLib struct {
	t       *testing.T
	limit   int
	mu      sync.Mutex
	level   int
	running int // calls inside the library
	threads int // threads they run on
	peak    int
	sets    int
}

func (f *fakeLib) set(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets++
	if f.running > 0 && n != f.level {
		f.t.Errorf("thread count changed from %d to %d with %d calls running", f.level, n, f.running)
	}
	f.level = n
}

func (f *fakeLib) call(g Grant) {
	f.mu.Lock()
	if f.level != g.Threads() {
		f.t.Errorf("a grant of %d threads calls a library set to %d", g.Threads(), f.level)
	}
	f.running++
	f.threads += f.level
	f.peak = max(f.peak, f.threads)
	if f.threads > f.limit {
		f.t.Errorf("%d threads running, budget %d", f.threads, f.limit)
	}
	lvl := f.level
	f.mu.Unlock()
	runtime.Gosched()
	f.mu.Lock()
	f.running--
	f.threads -= lvl
	f.mu.Unlock()
}

// TestBudgetNeverExceeded: many goroutines, small and large calls, jobs
// joining and leaving, some waits cancelled; the fake library never runs
// more threads than the budget and its count never changes under a
// running call.
func TestBudgetNeverExceeded(t *testing.T) {
	const limit = 4
	b := New(fixed(limit))
	lib := &fakeLib{t: t, limit: limit}
	b.Control(0, lib.set)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			job := w%3 == 0
			if job {
				b.Join()
				defer b.Leave()
			}
			for range 300 {
				want := 1
				if rng.IntN(3) == 0 {
					want = 1 + rng.IntN(8)
				}
				ctx := context.Background()
				if rng.IntN(20) == 0 {
					c, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(50))*time.Microsecond)
					defer cancel()
					ctx = c
				}
				g, err := b.Acquire(ctx, want)
				if err != nil {
					continue
				}
				if g.Threads() < 1 || g.Threads() > want && want > 1 || g.Threads() > limit {
					t.Errorf("want %d: granted %d", want, g.Threads())
				}
				lib.call(g)
				b.Release(g)
			}
		}()
	}
	wg.Wait()
	s := b.Stats()
	t.Logf("%d grants, %d level changes, peak %d threads in the library, budget %+v", s.Grants, lib.sets, lib.peak, s)
	if s.Held != 0 || s.Waiting != 0 || s.Jobs != 0 {
		t.Errorf("budget not whole after the run: %+v", s)
	}
	if s.PeakCores > limit || s.PeakThreads > limit {
		t.Errorf("peaks %d cores, %d threads over a budget of %d", s.PeakCores, s.PeakThreads, limit)
	}
}

// waitFor polls cond (a state reached by other goroutines) for up to a
// minute; it never measures time, only bounds the wait.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 60000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition not reached")
}

func TestSetMax(t *testing.T) {
	b := New(fixed(4))
	if old := b.SetMax(1); old != 0 {
		t.Errorf("first cap %d, want 0", old)
	}
	if g, _ := b.Acquire(context.Background(), 4); g.Threads() != 1 {
		t.Errorf("cap 1: %d threads", g.Threads())
	} else {
		b.Release(g)
	}
	if old := b.SetMax(0); old != 1 {
		t.Errorf("previous cap %d, want 1", old)
	}
	if g, _ := b.Acquire(context.Background(), 4); g.Threads() != 4 {
		t.Errorf("no cap: %d threads", g.Threads())
	} else {
		b.Release(g)
	}
}
