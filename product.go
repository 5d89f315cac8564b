package lowrank

import (
	"fmt"
	"math"

	"github.com/lowrank-go/lowrank/la"
)

// The products of factors with a dense matrix: B·A itself (Reconstruct),
// W + alpha·B·A (merging an adapter into a weight) and ‖W − B·A‖_F (the
// error of factors rounded to a narrower type). They run on the factors'
// backend, through la.Engine like Factorize, one block of rows of W at a
// time: a GPU holds the factors and a block, never a second d×k matrix,
// and the CPU backend computes on W in place (la.Borrower).

// productBlock is the most elements of W a product holds on an engine at
// once (4 MiB of float32). A variable so that tests can make it small.
var productBlock = 1 << 20

// Reconstruct returns the d×k matrix B·A, computed on f.Backend (the
// default backend for factors made by NewFactors).
func (f *Factors[T]) Reconstruct() (Matrix[T], error) {
	d, k := f.Dims()
	out := Matrix[T]{Rows: d, Cols: k, Data: make([]T, d*k)}
	if err := f.add(out, 1, false); err != nil {
		return Matrix[T]{}, err
	}
	return out, nil
}

// AddTo adds alpha·B·A to the d×k matrix W, in place:
//
//	W ← W + alpha·B·A
//
// which merges a LoRA adapter into its base weight (alpha = α/r) or, with
// -alpha, takes it out again. It runs on f.Backend (the default backend
// for factors made by NewFactors), falling back to the CPU for the rows
// not yet done should the device run out of memory. It returns an error
// wrapping ErrShape when W is not d×k, and a *NonFiniteError (or an error
// wrapping ErrNonFinite for alpha) when an input is not finite. A sum
// beyond the range of T becomes ±Inf; AddTo does not check the result.
func (f *Factors[T]) AddTo(w Matrix[T], alpha T) error {
	if err := f.checkAddend(w, alpha, false); err != nil {
		return err
	}
	return f.add(w, alpha, false)
}

// AddTransposedTo adds alpha·(B·A)ᵀ to the k×d matrix W, in place:
//
//	W ← W + alpha·Aᵀ·Bᵀ
//
// for a weight stored transposed (PEFT's fan_in_fan_out, GPT-2's Conv1D).
// It is otherwise AddTo.
func (f *Factors[T]) AddTransposedTo(w Matrix[T], alpha T) error {
	if err := f.checkAddend(w, alpha, true); err != nil {
		return err
	}
	return f.add(w, alpha, true)
}

// Residual returns the Frobenius norm of W − B·A for the d×k matrix W:
//
//	‖W − B·A‖_F
//
// computed on f.Backend one block of rows at a time, with the factors as
// they are now. Divided by Norm, it is the relative error of factors
// changed since Factorize reported RelError, such as factors rounded to a
// narrower type for storage. It returns an error wrapping ErrShape when W
// is not d×k, and a *NonFiniteError for a NaN or ±Inf in W.
func (f *Factors[T]) Residual(w Matrix[T]) (float64, error) {
	if err := f.checkAddend(w, 1, false); err != nil {
		return 0, err
	}
	b, err := f.backendOrDefault()
	if err != nil {
		return 0, err
	}
	d, k := f.Dims()
	res, _, _, err := onCPUIfOutOfMemory(b, "falling back to the CPU", fmt.Sprintf("%d×%d rank %d", d, k, f.Rank),
		func(b Backend) (float64, error) { return residual(engineOf[T](b), w, f.B, f.A) })
	return res, err
}

// checkAddend checks W (d×k, or k×d when transposed) and alpha.
func (f *Factors[T]) checkAddend(w Matrix[T], alpha T, transposed bool) error {
	d, k := f.Dims()
	op := "B·A"
	if transposed {
		d, k, op = k, d, "(B·A)ᵀ"
	}
	if err := w.checkShape("W"); err != nil {
		return err
	}
	if w.Rows != d || w.Cols != k {
		return errorf(ErrShape, "W is %d×%d; expected %d×%d, the shape of %s", w.Rows, w.Cols, d, k, op)
	}
	if a := float64(alpha); math.IsNaN(a) || math.IsInf(a, 0) {
		return errorf(ErrNonFinite, "alpha is %v; expected a finite value", a)
	}
	return w.validate("W")
}

// add computes W ← W + alpha·op(B·A) on f's backend, and on the CPU for
// the rows left when the device runs out of memory.
func (f *Factors[T]) add(w Matrix[T], alpha T, transposed bool) error {
	b, err := f.backendOrDefault()
	if err != nil {
		return err
	}
	d, k := f.Dims()
	done := 0 // rows of W updated so far, on whichever backend
	_, _, _, err = onCPUIfOutOfMemory(b, "falling back to the CPU", fmt.Sprintf("%d×%d rank %d", d, k, f.Rank),
		func(b Backend) (struct{}, error) {
			var err error
			done, err = addProduct(engineOf[T](b), w, alpha, f.B, f.A, transposed, done)
			return struct{}{}, err
		})
	return err
}

// backendOrDefault returns the backend f computes on: f.Backend, or the
// default backend for factors made by NewFactors.
func (f *Factors[T]) backendOrDefault() (Backend, error) { return initOrDefault(f.Backend) }

// initOrDefault returns b, initialized, or DefaultBackend when b is nil.
func initOrDefault(b Backend) (Backend, error) {
	if b == nil {
		return DefaultBackend()
	}
	if err := b.Init(); err != nil {
		return nil, errorf(ErrBackend, "backend %s: %v", b.Name(), err)
	}
	return b, nil
}

// addProduct computes W ← W + alpha·op(B·A) on e for the rows of W from
// row from on, and returns the first row not done (W.Rows when all are):
// each row before it has been updated exactly once and none after it,
// because a block's result reaches W only once it is whole on the host.
// op(B·A) is B·A, or Aᵀ·Bᵀ when transposed.
func addProduct[T Float](e la.Engine[T], w Matrix[T], alpha T, b, a Matrix[T], transposed bool, from int) (int, error) {
	j := &job[T]{e: e}
	defer j.release()
	r, cols := b.Cols, w.Cols
	am, err := j.borrow(a.Rows, a.Cols, a.Data)
	if err != nil {
		return from, err
	}
	if h, ok := e.(la.Borrower[T]); ok && from == 0 {
		// W itself, in one product.
		wm, err := h.Borrow(w.Rows, cols, w.Data)
		if err != nil {
			return from, wrapBackend("upload", err)
		}
		bm, err := j.borrow(b.Rows, r, b.Data)
		if err != nil {
			return from, err
		}
		if transposed {
			err = e.Gemm(true, true, alpha, am, bm, 1, wm)
		} else {
			err = e.Gemm(false, false, alpha, bm, am, 1, wm)
		}
		if err != nil {
			return from, wrapBackend("gemm", err)
		}
		return w.Rows, nil
	}
	var bAll la.Mat // all of B, for Aᵀ·Bᵀ
	if transposed {
		if bAll, err = j.borrow(b.Rows, r, b.Data); err != nil {
			return from, err
		}
	}
	rows := max(1, productBlock/cols)
	host := make([]T, min(rows, w.Rows-from)*cols)
	for i0 := from; i0 < w.Rows; i0 += rows {
		i1 := min(i0+rows, w.Rows)
		blk := w.Data[i0*cols : i1*cols]
		wm, err := j.upload(i1-i0, cols, blk)
		if err != nil {
			return i0, err
		}
		if transposed { // rows i0:i1 of Aᵀ·Bᵀ are columns i0:i1 of A
			av, err := j.view(am, 0, r, i0, i1)
			if err != nil {
				return i0, err
			}
			if err := wrapBackend("gemm", e.Gemm(true, true, alpha, av, bAll, 1, wm)); err != nil {
				return i0, err
			}
		} else {
			bm, err := j.borrow(i1-i0, r, b.Data[i0*r:i1*r])
			if err != nil {
				return i0, err
			}
			if err := wrapBackend("gemm", e.Gemm(false, false, alpha, bm, am, 1, wm)); err != nil {
				return i0, err
			}
			j.free(bm)
		}
		out := host[:len(blk)]
		if err := wrapBackend("download", e.Download(out, wm)); err != nil {
			return i0, err
		}
		copy(blk, out)
		j.free(wm)
	}
	return w.Rows, nil
}

// residual returns ‖W − B·A‖_F, computed on e one block of rows at a time.
func residual[T Float](e la.Engine[T], w, b, a Matrix[T]) (float64, error) {
	j := &job[T]{e: e}
	defer j.release()
	r, cols := b.Cols, w.Cols
	am, err := j.borrow(a.Rows, a.Cols, a.Data)
	if err != nil {
		return 0, err
	}
	rows := max(1, productBlock/cols)
	var host []T
	var sum la.SumSq // of the blocks' norms, so that it cannot overflow
	// On an engine that borrows host memory the blocks are copied into one
	// buffer of the host pool, reused block after block (a fresh copy per
	// block faulted in the whole of W's size again, 32 MB for a 2048×4096
	// float32 W, ≈ 100 ms where a page fault costs 15 µs).
	var blk []T
	if _, ok := e.(la.Borrower[T]); ok {
		blk = getHost[T](min(rows, w.Rows)*cols, false)
		defer putHost(blk)
	}
	for i0 := 0; i0 < w.Rows; i0 += rows {
		i1 := min(i0+rows, w.Rows)
		var c la.Mat
		if blk != nil {
			n := copy(blk, w.Data[i0*cols:i1*cols]) // a copy: W stays as it is
			c, err = j.borrow(i1-i0, cols, blk[:n])
		} else {
			c, err = j.upload(i1-i0, cols, w.Data[i0*cols:i1*cols])
		}
		if err != nil {
			return 0, err
		}
		bm, err := j.borrow(i1-i0, r, b.Data[i0*r:i1*r])
		if err != nil {
			return 0, err
		}
		if err := wrapBackend("gemm", e.Gemm(false, false, -1, bm, am, 1, c)); err != nil {
			return 0, err
		}
		ss, err := e.SumSquares(c)
		if err != nil {
			return 0, wrapBackend("norm", err)
		}
		switch {
		case !math.IsInf(ss, 0) && !math.IsNaN(ss):
			sum.Add(math.Sqrt(ss))
		case math.IsNaN(ss):
			sum.Add(residualRows(w, b, a, i0, i1))
		default: // float64 residuals beyond 1e154: sum the block on the host, scaled
			if n := (i1 - i0) * cols; cap(host) < n {
				host = make([]T, n)
			}
			host = host[:(i1-i0)*cols]
			if err := wrapBackend("download", e.Download(host, c)); err != nil {
				return 0, err
			}
			var blk la.SumSq
			for _, v := range host {
				blk.Add(float64(v))
			}
			if math.IsInf(blk.Norm(), 0) || math.IsNaN(blk.Norm()) {
				sum.Add(residualRows(w, b, a, i0, i1)) // B·A overflowed T
			} else {
				sum.Add(blk.Norm())
			}
		}
		j.free(bm)
		j.free(c)
	}
	return sum.Norm(), nil
}

// residualRows returns ‖W − B·A‖_F over rows [i0, i1) computed on the host
// in float64, for a block whose product B·A overflowed T (a float32 W near
// its largest values, whose B·A rounds past them).
func residualRows[T Float](w, b, a Matrix[T], i0, i1 int) float64 {
	var blk la.SumSq
	r := b.Cols
	for i := i0; i < i1; i++ {
		bi := b.Data[i*r : (i+1)*r]
		for j := range w.Cols {
			v := float64(w.Data[i*w.Cols+j])
			for l, x := range bi {
				v -= float64(x) * float64(a.Data[l*a.Cols+j])
			}
			blk.Add(v)
		}
	}
	return blk.Norm()
}
