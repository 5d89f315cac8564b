package lowrank

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/lowrank-go/lowrank/la"
)

// Factors is a rank-r factorization W ≈ B·A of a d×k matrix, as returned by
// Factorize or built by NewFactors. It applies the factorized linear layer
//
//	y = W·x + bias ≈ B·(A·x) + bias
//
// in (d+k)·r multiply-adds instead of d·k.
//
// The methods of a Factors are safe for concurrent use by many goroutines,
// except Close. B and A must not be modified after the first Apply: a
// backend may keep its own copy (on a GPU, the factors are uploaded once
// and stay resident until Close).
type Factors[T Float] struct {
	// B is d×r and A is r×k.
	B, A Matrix[T]
	// S holds the r kept singular values, largest first, in float64 for
	// every T (the singular values of a float32 matrix can exceed the
	// float32 range even when balanced factors do not).
	S []float64
	// Rank is r.
	Rank int
	// RelError is ‖W − B·A‖_F / ‖W‖_F, computed from the singular values
	// (Eckart–Young); 0 for W = 0. NaN for factors built by NewFactors.
	RelError float64
	// Energy is the fraction of ‖W‖_F² the factors keep, Σ_{i≤r}σᵢ²/‖W‖_F².
	// NaN for factors built by NewFactors.
	Energy float64
	// Method is the algorithm that ran (never Auto).
	Method Method
	// Policy is the rank policy that chose Rank.
	Policy Policy
	// Split says how S was shared between B and A.
	Split Split
	// Backend names the backend that computed the factors.
	Backend string
	// Fallback says why the factors were computed on the CPU instead of
	// the backend asked for (the device ran out of memory); "" otherwise.
	Fallback string

	backend Backend
	mu      sync.Mutex
	app     atomic.Pointer[la.Applier[T]]
	cleanup runtime.Cleanup
}

// NewFactors wraps existing factors B (d×r) and A (r×k), for instance ones
// read from a file, so that they can be applied. The data is used, not
// copied. It returns an error wrapping ErrEmpty, ErrShape or ErrNonFinite
// when the shapes do not fit or a value is not finite.
func NewFactors[T Float](b, a Matrix[T]) (*Factors[T], error) {
	if err := b.validate("B"); err != nil {
		return nil, err
	}
	if err := a.validate("A"); err != nil {
		return nil, err
	}
	if b.Cols != a.Rows {
		return nil, errorf(ErrShape, "B is %d×%d and A is %d×%d; expected B.Cols = A.Rows (the rank)", b.Rows, b.Cols, a.Rows, a.Cols)
	}
	return &Factors[T]{B: b, A: a, Rank: b.Cols, RelError: math.NaN(), Energy: math.NaN(), Method: Auto}, nil
}

// Dims returns the shape d×k of the matrix the factors approximate.
func (f *Factors[T]) Dims() (d, k int) { return f.B.Rows, f.A.Cols }

// Params returns the parameter count of the factors, r·(d+k).
func (f *Factors[T]) Params() int { return f.Rank * (f.B.Rows + f.A.Cols) }

// DenseParams returns the parameter count of the dense matrix, d·k.
func (f *Factors[T]) DenseParams() int { return f.B.Rows * f.A.Cols }

// BreakEven reports that the factors save nothing: r·(d+k) ≥ d·k. Callers
// that compress should then keep W dense.
func (f *Factors[T]) BreakEven() bool { return f.Params() >= f.DenseParams() }

// Reconstruct returns the d×k matrix B·A.
func (f *Factors[T]) Reconstruct() (Matrix[T], error) {
	d, k := f.Dims()
	out := Matrix[T]{Rows: d, Cols: k, Data: make([]T, d*k)}
	e := engineOf[T](cpuBackend())
	b, err := e.Upload(f.B.Rows, f.B.Cols, f.B.Data)
	if err != nil {
		return Matrix[T]{}, wrapBackend("reconstruct", err)
	}
	a, err := e.Upload(f.A.Rows, f.A.Cols, f.A.Data)
	if err != nil {
		return Matrix[T]{}, wrapBackend("reconstruct", err)
	}
	c, err := e.Zeros(d, k)
	if err != nil {
		return Matrix[T]{}, wrapBackend("reconstruct", err)
	}
	if err := e.Gemm(false, false, 1, b, a, 0, c); err != nil {
		return Matrix[T]{}, wrapBackend("reconstruct", err)
	}
	if err := e.Download(out.Data, c); err != nil {
		return Matrix[T]{}, wrapBackend("reconstruct", err)
	}
	return out, nil
}

// applier returns the backend's applier, creating it on first use.
func (f *Factors[T]) applier() (la.Applier[T], error) {
	if p := f.app.Load(); p != nil {
		return *p, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.app.Load(); p != nil {
		return *p, nil
	}
	b := f.backend
	if b == nil {
		var err error
		if b, err = DefaultBackend(); err != nil {
			return nil, err
		}
	}
	d, k := f.Dims()
	app, err := engineOf[T](b).NewApplier(d, f.Rank, k, f.B.Data, f.A.Data)
	if err != nil && errors.Is(err, la.ErrDeviceMemory) && b.Name() != "cpu" {
		logger().Warn("lowrank: applying on the CPU", "backend", b.Name(), "shape", fmt.Sprintf("%d×%d rank %d", d, k, f.Rank), "reason", err)
		app, err = engineOf[T](cpuBackend()).NewApplier(d, f.Rank, k, f.B.Data, f.A.Data)
	}
	if err != nil {
		return nil, wrapBackend("prepare apply", err)
	}
	f.app.Store(&app)
	// Device memory held for Apply is released when the Factors become
	// unreachable, should the caller never call Close.
	f.cleanup = runtime.AddCleanup(f, func(a la.Applier[T]) { _ = a.Close() }, app)
	return app, nil
}

// Apply returns y = B·(A·x) + bias for one input vector x of length k.
// bias has length d, or is nil for none. It returns an error wrapping
// ErrShape or ErrNonFinite for a vector of the wrong length or with a NaN
// or ±Inf.
func (f *Factors[T]) Apply(x, bias []T) ([]T, error) {
	d, _ := f.Dims()
	y := make([]T, d)
	if err := f.ApplyTo(y, x, bias); err != nil {
		return nil, err
	}
	return y, nil
}

// ApplyTo computes y = B·(A·x) + bias into y (length d). It does not
// allocate once the factors have been applied once.
func (f *Factors[T]) ApplyTo(y, x, bias []T) error {
	d, k := f.Dims()
	if err := checkVector("x", x, k); err != nil {
		return err
	}
	if bias != nil {
		if err := checkVector("bias", bias, d); err != nil {
			return err
		}
	}
	if len(y) != d {
		return errorf(ErrShape, "y has length %d; expected d = %d", len(y), d)
	}
	app, err := f.applier()
	if err != nil {
		return err
	}
	return wrapBackend("apply", app.Apply(y, x, 1, bias))
}

// ApplyBatch returns Y = X·Aᵀ·Bᵀ + bias for the n input vectors held as the
// rows of X (n×k); row i of Y (n×d) is B·(A·xᵢ) + bias. This is the
// convention of PyTorch's Linear layer.
func (f *Factors[T]) ApplyBatch(x Matrix[T], bias []T) (Matrix[T], error) {
	d, _ := f.Dims()
	if x.Rows < 1 {
		return Matrix[T]{}, errorf(ErrEmpty, "X has %d rows; expected at least one input vector", x.Rows)
	}
	y := Matrix[T]{Rows: x.Rows, Cols: d, Data: make([]T, x.Rows*d)}
	if err := f.ApplyBatchTo(y, x, bias); err != nil {
		return Matrix[T]{}, err
	}
	return y, nil
}

// ApplyBatchTo computes ApplyBatch into y (n×d). It does not allocate once
// the factors have been applied once.
func (f *Factors[T]) ApplyBatchTo(y, x Matrix[T], bias []T) error {
	d, k := f.Dims()
	if err := x.validate("X"); err != nil {
		return err
	}
	if x.Cols != k {
		return errorf(ErrShape, "X is %d×%d; expected %d columns (k), one input vector per row", x.Rows, x.Cols, k)
	}
	if y.Rows != x.Rows || y.Cols != d || len(y.Data) != x.Rows*d {
		return errorf(ErrShape, "Y is %d×%d with %d values; expected %d×%d", y.Rows, y.Cols, len(y.Data), x.Rows, d)
	}
	if bias != nil {
		if err := checkVector("bias", bias, d); err != nil {
			return err
		}
	}
	app, err := f.applier()
	if err != nil {
		return err
	}
	return wrapBackend("apply", app.Apply(y.Data, x.Data, x.Rows, bias))
}

// Close releases what the backend holds for Apply (device memory on a
// GPU). The factors stay usable: the next Apply prepares them again. Close
// must not run concurrently with Apply. Factors that become unreachable
// release their device memory without Close, at the garbage collector's
// pace; Close releases it now.
func (f *Factors[T]) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.app.Swap(nil)
	if p == nil {
		return nil
	}
	f.cleanup.Stop()
	return wrapBackend("close", (*p).Close())
}
