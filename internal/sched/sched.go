// Package sched is lowrank's thread budget: every CPU computation of the
// library (a BLAS or LAPACK call, a pure-Go product) holds a grant from it
// while it runs, so that the library never computes on more threads than
// it was given (GOMAXPROCS), however many goroutines call it.
//
// The model:
//
//   - The budget is Limit() cores, GOMAXPROCS by default (and never more
//     than the BLAS library's own thread pool; see SetMax).
//   - A call that asks for one thread (a small product: applying the
//     factors to one vector is memory-bound) takes one core and runs on
//     the calling goroutine's thread, single-threaded. Calls that ask for
//     one thread run side by side, as many at once as there are cores;
//     the others wait in line (first come, first served).
//   - A large call (want > 1) gets several threads only when it has the
//     machine to itself: nothing else of the library is running or
//     waiting and at most one job is registered (Join). It then holds the
//     whole budget, so nothing runs beside it, and uses
//     min(want, Limit()) threads.
//   - Otherwise a large call runs single-threaded like a small one:
//     concurrent callers are faster side by side, one core each, than
//     taking turns with all of them (threaded BLAS on a shared pool
//     serializes, and its idle threads spin).
//
// Because a multi-threaded grant is exclusive, the library's thread count
// can be one process-wide setting (openblas_set_num_threads), changed
// only while nothing of lowrank's is inside the library: the budget calls
// the setter registered with Control when it makes a grant whose thread
// count differs from the last one set, before the grant is handed out, so
// a holder's calls into the library run on exactly Grant.Threads threads.
//
// A grant must be released exactly once, on every path (defer). Acquire
// honours a context: a caller waiting in line stops waiting, holding
// nothing, when its context ends.
package sched

import (
	"context"
	"runtime"
	"sync"
)

// Grant is permission to compute on Threads threads until Release.
type Grant struct {
	threads int
	all     bool // holds the whole budget (exclusive)
}

// Threads is the number of threads the holder may compute on (≥ 1).
func (g Grant) Threads() int { return g.threads }

// Budget is a budget of cores shared by every caller.
type Budget struct {
	limit func() int // the budget; GOMAXPROCS for Default

	mu      sync.Mutex
	perCall int       // the most threads one grant may use (0: no cap)
	set     func(int) // sets the library's thread count, or nil
	level   int       // the count last set (0: unknown)
	held    int       // cores held by grants in flight
	all     bool
	jobs    int // registered jobs (Join)
	queue   []*waiter
	cores   int // Limit(), as read at the last idle moment
	grants  uint64
	peak    int // the most cores ever held at once
	peakThr int // the most threads ever granted at once (sum over grants)
	thr     int // threads granted to grants in flight
}

type waiter struct {
	want  int
	ready chan Grant
}

var waiters = sync.Pool{New: func() any { return &waiter{ready: make(chan Grant, 1)} }}

// New returns a budget of limit() cores; limit is read again whenever
// the budget is idle, so that a change of GOMAXPROCS takes effect.
func New(limit func() int) *Budget { return &Budget{limit: limit} }

// Default is the budget every CPU computation of lowrank draws from:
// GOMAXPROCS cores.
var Default = New(func() int { return runtime.GOMAXPROCS(0) })

// Control registers the library whose threads the budget governs:
// perCall caps the threads one grant may use (the library's own pool, when it was
// started with fewer threads than GOMAXPROCS, for instance by
// OPENBLAS_NUM_THREADS; < 1 for no cap), and set, when not nil, sets the
// library's process-wide thread count. A library without a thread
// control is taken to be single-threaded (the reference BLAS): register
// it with perCall 1 and set nil.
func (b *Budget) Control(perCall int, set func(n int)) {
	b.mu.Lock()
	b.perCall, b.set, b.level = max(perCall, 0), set, 0
	b.mu.Unlock()
}

// SetMax changes the cap Control set on the threads of one grant (< 1:
// none) and returns the previous cap. With a cap of 1 every call runs
// single-threaded.
func (b *Budget) SetMax(n int) (old int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old, b.perCall = b.perCall, max(n, 0)
	return old
}

// Limit returns the budget: the number of cores.
func (b *Budget) Limit() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cap()
}

func (b *Budget) cap() int {
	if b.held == 0 || b.cores == 0 {
		b.cores = max(1, b.limit())
	}
	return b.cores
}

// Join registers a job: a computation made of many calls (a
// factorization). While more than one job is registered every grant is
// single-threaded, so that the jobs run side by side on one core each
// instead of taking turns on all of them. Leave ends it.
func (b *Budget) Join() {
	b.mu.Lock()
	b.jobs++
	b.mu.Unlock()
}

// Leave ends a job registered by Join.
func (b *Budget) Leave() {
	b.mu.Lock()
	b.jobs--
	if b.jobs < 0 {
		b.mu.Unlock()
		panic("sched: Leave without Join")
	}
	b.mu.Unlock()
}

// Acquire waits until the caller may compute and returns its grant, at
// most want threads (want < 1 counts as 1). It returns ctx.Err(), holding
// nothing, when ctx ends first.
func (b *Budget) Acquire(ctx context.Context, want int) (Grant, error) {
	b.mu.Lock()
	if len(b.queue) == 0 {
		if g, ok := b.grant(want, 0); ok {
			b.mu.Unlock()
			return g, nil
		}
	}
	w := waiters.Get().(*waiter)
	w.want = want
	b.queue = append(b.queue, w)
	b.mu.Unlock()

	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	select {
	case g := <-w.ready:
		waiters.Put(w)
		return g, nil
	case <-done:
		b.mu.Lock()
		for i, q := range b.queue {
			if q == w {
				b.remove(i)
				b.mu.Unlock()
				waiters.Put(w)
				return Grant{}, ctx.Err()
			}
		}
		b.mu.Unlock()
		// Granted meanwhile: hand the grant back.
		g := <-w.ready
		waiters.Put(w)
		b.Release(g)
		return Grant{}, ctx.Err()
	}
}

// grant decides, with b.mu held, whether a call wanting want threads can
// run now, others of the queue still waiting behind it; if so it records
// the grant.
func (b *Budget) grant(want, others int) (Grant, bool) {
	if b.all {
		return Grant{}, false
	}
	lim := b.cap()
	if b.held >= lim {
		return Grant{}, false
	}
	n := 1
	if want > 1 && b.held == 0 && others == 0 && b.jobs <= 1 {
		n = min(want, lim)
		if b.perCall > 0 {
			n = min(n, b.perCall)
		}
	}
	g := Grant{threads: n}
	if n > 1 {
		g.all = true
		b.all = true
		b.held = lim
	} else {
		b.held++
	}
	if b.set != nil && b.level != n {
		// Nothing else runs: an exclusive grant holds the whole budget,
		// and a single-threaded grant finds either others already at
		// level 1 or nothing running (the level was last set by an
		// exclusive grant, since released).
		b.set(n)
		b.level = n
	}
	b.thr += n
	b.grants++
	b.peak = max(b.peak, b.held)
	b.peakThr = max(b.peakThr, b.thr)
	return g, true
}

// Release returns a grant's cores and hands them to the callers waiting
// in line, in order.
func (b *Budget) Release(g Grant) {
	if g.threads == 0 {
		return // the zero Grant of a failed Acquire
	}
	b.mu.Lock()
	if g.all {
		b.all = false
		b.held = 0
	} else {
		b.held--
	}
	b.thr -= g.threads
	for len(b.queue) > 0 {
		w := b.queue[0]
		ng, ok := b.grant(w.want, len(b.queue)-1)
		if !ok {
			break
		}
		b.remove(0)
		w.ready <- ng
	}
	b.mu.Unlock()
}

// remove takes entry i out of the queue, keeping the backing array so
// that a busy queue does not allocate.
func (b *Budget) remove(i int) {
	n := len(b.queue)
	copy(b.queue[i:], b.queue[i+1:])
	b.queue[n-1] = nil
	b.queue = b.queue[:n-1]
}

// Stats is a snapshot of a budget, for tests and diagnostics.
type Stats struct {
	Limit   int    // the budget, in cores
	Held    int    // cores held now
	Waiting int    // callers waiting in line
	Jobs    int    // registered jobs
	Grants  uint64 // grants made so far
	// PeakCores is the most cores ever held at once and PeakThreads the
	// most threads ever granted at once; neither exceeds Limit.
	PeakCores, PeakThreads int
}

// Stats returns the budget's state.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Limit: b.cap(), Held: b.held, Waiting: len(b.queue), Jobs: b.jobs, Grants: b.grants, PeakCores: b.peak, PeakThreads: b.peakThr}
}

// ResetPeaks clears the peaks of Stats.
func (b *Budget) ResetPeaks() {
	b.mu.Lock()
	b.peak, b.peakThr = b.held, b.thr
	b.mu.Unlock()
}
