package lowrank

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/lowrank-go/lowrank/la"
)

// What Factors and Dense share as layers y = op(x) + bias: the checks of
// Apply's arguments, and the applier prepared on first use, released by
// Close or, failing that, by the garbage collector.

// applyState is a layer's applier: made once, on the first Apply (so that
// a GPU holds the weights only once they are used), then read without a
// lock.
type applyState[T Float] struct {
	mu      sync.Mutex
	app     atomic.Pointer[la.Applier[T]]
	cleanup runtime.Cleanup
}

// preparedApplier returns owner's applier from s, calling prepare under
// s's lock the first time (its error is returned as it is). The applier
// is closed when owner becomes unreachable, should the caller never call
// Close. Callers check s.app first themselves, so that the closure of a
// prepared layer's Apply is never built.
func preparedApplier[O any, T Float](owner *O, s *applyState[T], prepare func() (la.Applier[T], error)) (la.Applier[T], error) {
	if p := s.app.Load(); p != nil {
		return *p, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.app.Load(); p != nil {
		return *p, nil
	}
	app, err := prepare()
	if err != nil {
		return nil, err
	}
	s.app.Store(&app)
	s.cleanup = runtime.AddCleanup(owner, func(a la.Applier[T]) { _ = a.Close() }, app)
	return app, nil
}

// close releases the applier, if one was made; the next Apply makes
// another.
func (s *applyState[T]) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.app.Swap(nil)
	if p == nil {
		return nil
	}
	s.cleanup.Stop()
	return wrapBackend("close", (*p).Close())
}

// checkApply checks ApplyTo's arguments for a d×k layer.
// unaliased returns v, or a copy of it when it shares memory with y (an
// in-place apply, y = W·y): the products write y while they read their
// inputs, so an input that overlaps y must be read from a copy.
func unaliased[T Float](y, v []T) []T {
	if len(y) == 0 || len(v) == 0 {
		return v
	}
	size := unsafe.Sizeof(y[0])
	y0, v0 := uintptr(unsafe.Pointer(unsafe.SliceData(y))), uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	if v0 < y0+uintptr(len(y))*size && y0 < v0+uintptr(len(v))*size {
		return slices.Clone(v)
	}
	return v
}

func checkApply[T Float](d, k int, y, x, bias []T) error {
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
	return nil
}

// checkApplyBatch checks ApplyBatchTo's arguments for a d×k layer.
func checkApplyBatch[T Float](d, k int, y, x Matrix[T], bias []T) error {
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
	return nil
}

// newBatchOutput allocates ApplyBatch's Y (n×d) for the n rows of X.
func newBatchOutput[T Float](d int, x Matrix[T]) (Matrix[T], error) {
	if x.Rows < 1 {
		return Matrix[T]{}, errorf(ErrEmpty, "X has %d rows; expected at least one input vector", x.Rows)
	}
	return Matrix[T]{Rows: x.Rows, Cols: d, Data: make([]T, x.Rows*d)}, nil
}
