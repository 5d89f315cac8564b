package cpu

import (
	"context"
	"fmt"

	"github.com/lowrank-go/lowrank/internal/bf16"
	"github.com/lowrank-go/lowrank/internal/blas"
	"github.com/lowrank-go/lowrank/internal/sched"
)

// How the CPU engine uses its cores. Every product, QR and SVD holds a
// grant from the library-wide thread budget (internal/sched, GOMAXPROCS
// cores) while it runs:
//
//   - it asks for threadsFor(its multiply-adds) threads: one for small
//     work (applying the factors to one vector is memory-bound, and
//     threads would only add overhead), more for large products;
//   - it gets them only when it is alone (nothing else of lowrank's
//     running or waiting, at most one factorization in progress), and then
//     holds every core; otherwise it runs single-threaded beside the
//     others, at most GOMAXPROCS of them at once, the rest waiting in line.
//
// With a system BLAS the budget sets the library's own thread count
// (openblas_set_num_threads) to the grant; the pure-Go products split
// over that many goroutines.

// flopsPerThread is the work (multiply-adds) that earns a call one more
// thread: 2²¹, about a millisecond of one core, well above what it costs
// to wake a thread.
const flopsPerThread = 1 << 21

// threadsFor returns how many threads a computation of flops
// multiply-adds asks for.
func threadsFor(flops float64) int {
	if flops < 2*flopsPerThread {
		return 1
	}
	return int(min(flops/flopsPerThread, 1<<20))
}

// useLibrary registers the system library with the budget: its thread
// control, and its pool size as the cap on one grant.
func useLibrary(l *blas.Lib) {
	if l.ThreadControl == "" {
		// No control (the reference BLAS): take it to be
		// single-threaded, as the reference is.
		sched.Default.Control(1, nil)
		return
	}
	sched.Default.Control(l.Threads, func(n int) { l.SetThreads(n) })
	// The bf16 products run on OpenBLAS's own workers where it has a
	// pthreads pool: a grant of several threads means nothing else of
	// lowrank's is in the library, so they are idle (spinning).
	bf16.UseThreadPool(l.ThreadPool(), l.Threads)
}

// acquire waits for a grant of up to threadsFor(flops) threads. It stops
// waiting when the engine's context ends.
func (e engine[T]) acquire(flops float64) (sched.Grant, error) {
	g, err := sched.Default.Acquire(e.ctx, threadsFor(flops))
	if err != nil {
		return g, fmt.Errorf("cpu: stopped waiting for a core: %w", err)
	}
	return g, nil
}

// WithContext returns the engine bound to ctx (la.Contexter): its calls
// stop waiting for a core, and fail with an error wrapping ctx.Err(), once
// ctx ends. A call that is computing runs to its end.
func (e engine[T]) withContext(ctx context.Context) engine[T] {
	e.ctx = ctx
	return e
}
