package lowrank

import (
	"fmt"

	"github.com/lowrank-go/lowrank/la"
)

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
// allocate once the factors have been applied once, except when y shares
// memory with x or bias (in place, d = k): they are then read from a copy.
func (f *Factors[T]) ApplyTo(y, x, bias []T) error {
	d, k := f.Dims()
	if err := checkApply(d, k, y, x, bias); err != nil {
		return err
	}
	app, err := f.applier()
	if err != nil {
		return err
	}
	return wrapBackend("apply", app.Apply(y, unaliased(y, x), 1, unaliased(y, bias)))
}

// ApplyBatch returns Y = X·Aᵀ·Bᵀ + bias for the n input vectors held as the
// rows of X (n×k); row i of Y (n×d) is B·(A·xᵢ) + bias. This is the
// convention of PyTorch's Linear layer.
func (f *Factors[T]) ApplyBatch(x Matrix[T], bias []T) (Matrix[T], error) {
	d, _ := f.Dims()
	y, err := newBatchOutput(d, x)
	if err != nil {
		return Matrix[T]{}, err
	}
	if err := f.ApplyBatchTo(y, x, bias); err != nil {
		return Matrix[T]{}, err
	}
	return y, nil
}

// ApplyBatchTo computes ApplyBatch into y (n×d). It does not allocate once
// the factors have been applied once; y may share memory with x or bias,
// as for ApplyTo.
func (f *Factors[T]) ApplyBatchTo(y, x Matrix[T], bias []T) error {
	d, k := f.Dims()
	if err := checkApplyBatch(d, k, y, x, bias); err != nil {
		return err
	}
	app, err := f.applier()
	if err != nil {
		return err
	}
	return wrapBackend("apply", app.Apply(y.Data, unaliased(y.Data, x.Data), x.Rows, unaliased(y.Data, bias)))
}

// Close releases what the backend holds for Apply (device memory on a
// GPU). The factors stay usable: the next Apply prepares them again. Close
// must not run concurrently with Apply. Factors that become unreachable
// release their device memory without Close, at the garbage collector's
// pace; Close releases it now.
func (f *Factors[T]) Close() error { return f.apply.close() }

// applier returns the backend's applier, creating it on first use.
func (f *Factors[T]) applier() (la.Applier[T], error) {
	if p := f.apply.app.Load(); p != nil {
		return *p, nil
	}
	return preparedApplier(f, &f.apply, func() (la.Applier[T], error) {
		b, err := f.backendOrDefault()
		if err != nil {
			return nil, err
		}
		d, k := f.Dims()
		app, _, _, err := onCPUIfOutOfMemory(b, "applying on the CPU", fmt.Sprintf("%d×%d rank %d", d, k, f.Rank),
			func(b Backend) (la.Applier[T], error) {
				return engineOf[T](b).NewApplier(d, f.Rank, k, f.B.Data, f.A.Data)
			})
		return app, wrapBackend("prepare apply", err)
	})
}
