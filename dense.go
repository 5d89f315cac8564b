package lowrank

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/lowrank-go/lowrank/la"
)

// Dense is a dense linear layer
//
//	y = W·x + bias
//
// held on a backend like Factors: the counterpart of Factors for a weight
// that is not factorized (a tensor kept dense because factors would save
// nothing, say), so that a model mixing both runs every layer in the same
// place. On a GPU, W is uploaded once, on the first Apply, and stays
// resident until Close; on the CPU it is used in place.
//
// The methods of a Dense are safe for concurrent use by many goroutines,
// except Close. W must not be modified after the first Apply.
type Dense[T Float] struct {
	// W is the d×k weight.
	W Matrix[T]
	// Backend is where Apply runs; nil: DefaultBackend. It may be set
	// before the first Apply, not after.
	Backend Backend

	apply applyState[T] // Apply's applier
}

// NewDense wraps the d×k weight w, which is used, not copied. It returns
// an error wrapping ErrEmpty or ErrShape for a malformed matrix, and a
// *NonFiniteError (name "W") for a NaN or ±Inf in it.
func NewDense[T Float](w Matrix[T]) (*Dense[T], error) {
	if err := w.validate("W"); err != nil {
		return nil, err
	}
	return &Dense[T]{W: w}, nil
}

// Dims returns the shape d×k of W.
func (m *Dense[T]) Dims() (d, k int) { return m.W.Rows, m.W.Cols }

// Apply returns y = W·x + bias for one input vector x of length k; bias
// has length d, or is nil for none. It returns an error wrapping ErrShape
// or ErrNonFinite for a vector of the wrong length or with a NaN or ±Inf.
func (m *Dense[T]) Apply(x, bias []T) ([]T, error) {
	d, _ := m.Dims()
	y := make([]T, d)
	if err := m.ApplyTo(y, x, bias); err != nil {
		return nil, err
	}
	return y, nil
}

// ApplyTo computes y = W·x + bias into y (length d). y may be x itself
// (in place, d = k) or overlap it or bias: they are then read from a copy.
func (m *Dense[T]) ApplyTo(y, x, bias []T) error {
	d, k := m.Dims()
	if err := checkApply(d, k, y, x, bias); err != nil {
		return err
	}
	app, err := m.applier()
	if err != nil {
		return err
	}
	return wrapBackend("apply", app.Apply(y, unaliased(y, x), 1, unaliased(y, bias)))
}

// ApplyBatch returns Y = X·Wᵀ + bias for the n input vectors held as the
// rows of X (n×k): row i of Y (n×d) is W·xᵢ + bias, the convention of
// PyTorch's Linear layer.
func (m *Dense[T]) ApplyBatch(x Matrix[T], bias []T) (Matrix[T], error) {
	d, _ := m.Dims()
	y, err := newBatchOutput(d, x)
	if err != nil {
		return Matrix[T]{}, err
	}
	if err := m.ApplyBatchTo(y, x, bias); err != nil {
		return Matrix[T]{}, err
	}
	return y, nil
}

// ApplyBatchTo computes ApplyBatch into y (n×d). y may share memory with
// x or bias, as for ApplyTo.
func (m *Dense[T]) ApplyBatchTo(y, x Matrix[T], bias []T) error {
	d, k := m.Dims()
	if err := checkApplyBatch(d, k, y, x, bias); err != nil {
		return err
	}
	app, err := m.applier()
	if err != nil {
		return err
	}
	return wrapBackend("apply", app.Apply(y.Data, unaliased(y.Data, x.Data), x.Rows, unaliased(y.Data, bias)))
}

// Close releases what the backend holds for Apply (W's device copy on a
// GPU). The layer stays usable: the next Apply prepares it again. Close
// must not run concurrently with Apply. A Dense that becomes unreachable
// releases its device memory without Close, at the garbage collector's
// pace.
func (m *Dense[T]) Close() error { return m.apply.close() }

// applier returns the dense applier, creating it on first use.
func (m *Dense[T]) applier() (la.Applier[T], error) {
	if p := m.apply.app.Load(); p != nil {
		return *p, nil
	}
	return preparedApplier(m, &m.apply, func() (la.Applier[T], error) {
		b, err := initOrDefault(m.Backend)
		if err != nil {
			return nil, err
		}
		d, k := m.Dims()
		app, _, _, err := onCPUIfOutOfMemory(b, "applying on the CPU", fmt.Sprintf("%d×%d dense", d, k),
			func(b Backend) (la.Applier[T], error) { return newDenseApplier(engineOf[T](b), d, k, m.W.Data) })
		return app, wrapBackend("prepare apply", err)
	})
}

// denseApplier evaluates Y = X·Wᵀ + bias with one Gemm on an engine: W is
// uploaded once (borrowed in place on an engine whose matrices live in
// host memory), X and Y travel with each call. It needs nothing of an
// engine beyond la.Engine, so every backend runs it.
type denseApplier[T Float] struct {
	e    la.Engine[T]
	bw   la.Borrower[T] // e's, when its matrices live in host memory
	d, k int
	w    la.Mat

	mu     sync.Mutex // Close against itself
	closed atomic.Bool
}

func newDenseApplier[T Float](e la.Engine[T], d, k int, w []T) (la.Applier[T], error) {
	a := &denseApplier[T]{e: e, d: d, k: k}
	var err error
	if bw, ok := e.(la.Borrower[T]); ok {
		a.bw = bw
		a.w, err = bw.Borrow(d, k, w)
	} else {
		a.w, err = e.Upload(d, k, w)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (a *denseApplier[T]) Apply(y, x []T, n int, bias []T) error {
	if n < 0 || len(x) != n*a.k || len(y) != n*a.d || (bias != nil && len(bias) != a.d) {
		return fmt.Errorf("%w: dense apply to %d inputs", la.ErrShape, n)
	}
	if a.closed.Load() {
		return errClosedDense
	}
	if n == 0 {
		return nil
	}
	e := a.e
	if a.bw != nil {
		xm, err := a.bw.Borrow(n, a.k, x)
		if err != nil {
			return err
		}
		ym, err := a.bw.Borrow(n, a.d, y)
		if err != nil {
			return err
		}
		if err := e.Gemm(false, true, 1, xm, a.w, 0, ym); err != nil {
			return err
		}
	} else {
		xm, err := e.Upload(n, a.k, x)
		if err != nil {
			return err
		}
		defer e.Free(xm)
		ym, err := e.Zeros(n, a.d)
		if err != nil {
			return err
		}
		defer e.Free(ym)
		if err := e.Gemm(false, true, 1, xm, a.w, 0, ym); err != nil {
			return err
		}
		if err := e.Download(y, ym); err != nil {
			return err
		}
	}
	if bias != nil {
		for i := range n {
			row := y[i*a.d : (i+1)*a.d]
			for j, b := range bias {
				row[j] += b
			}
		}
	}
	return nil
}

// errClosedDense is returned by Apply on a closed dense applier.
var errClosedDense = errors.New("apply on a closed dense applier")

func (a *denseApplier[T]) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Swap(true) {
		return nil
	}
	a.e.Free(a.w)
	return nil
}
