// Package la holds the small types shared by lowrank and its backends: the
// Engine interface a backend implements once per float type, and the
// opaque matrices it hands out.
//
// It is a leaf package (it imports nothing from lowrank) so that backends
// such as lowrank/cpu and lowrank/gpu satisfy lowrank.Backend without
// importing the root package, in the way gonum's lapack/gonum satisfies
// lapack.Float64.
//
// All matrices are row-major from the caller's point of view: element (i, j)
// of an r×c matrix built from host data d is d[i*c+j]. How an engine stores a
// Mat internally (row-major host memory, column-major device memory) is its
// own business.
package la

import (
	"context"
	"errors"
	"fmt"
)

// Float is the set of element types lowrank computes in.
type Float interface {
	float32 | float64
}

// Mat is a matrix owned by an Engine. It may live in host or device memory;
// only the Engine that created it can read or operate on it. A Mat returned
// by Engine.View shares storage with its parent and must not be freed.
type Mat interface {
	Dims() (rows, cols int)
}

// Engine is the dense linear algebra lowrank's algorithms are written
// against. Every method is safe for concurrent use by several goroutines as
// long as they do not write the same Mat.
//
// Methods return an error for device failures (out of memory, a failed
// library call). Shape mismatches are programming errors of the caller
// (the lowrank package checks shapes before calling) and also return an
// error, never a panic.
type Engine[T Float] interface {
	// Upload copies the row-major rows×cols host matrix data into a new Mat.
	Upload(rows, cols int, data []T) (Mat, error)
	// Zeros returns a new rows×cols Mat filled with zeros.
	Zeros(rows, cols int) (Mat, error)
	// Download copies m into dst (row-major, len(dst) ≥ rows·cols).
	Download(dst []T, m Mat) error
	// Free releases m. Freeing nil or a view is a no-op.
	Free(m Mat)
	// View returns the sub-matrix of rows [i0, i1) and columns [j0, j1)
	// of m, sharing its storage.
	View(m Mat, i0, i1, j0, j1 int) (Mat, error)
	// Copy copies src into dst; both must have the same shape.
	Copy(dst, src Mat) error

	// Gemm computes c = alpha·op(a)·op(b) + beta·c, where op(x) is x or xᵀ.
	Gemm(transA, transB bool, alpha T, a, b Mat, beta T, c Mat) error
	// Orthonormalize replaces the m×n matrix a (m ≥ n) with the Q factor
	// of its thin QR decomposition, so that its columns are orthonormal and
	// span the columns of a.
	Orthonormalize(a Mat) error
	// SVD computes the thin singular value decomposition a = U·diag(s)·Vt
	// of the m×n matrix a, p = min(m, n): U is m×p, Vt is p×n, s holds the
	// p singular values in decreasing order (returned to the host in
	// float64 because rank decisions are made there). a is destroyed.
	SVD(a Mat) (u Mat, s []float64, vt Mat, err error)
	// ScaleColumns multiplies column j of a by d[j] (len(d) = cols).
	ScaleColumns(a Mat, d []T) error
	// ScaleRows multiplies row i of a by d[i] (len(d) = rows).
	ScaleRows(a Mat, d []T) error
	// SumSquares returns the sum of the squares of the elements of a,
	// accumulated in float64 so that it neither overflows nor underflows
	// for float32 data.
	SumSquares(a Mat) (float64, error)

	// NewApplier prepares y = B·(A·x) + bias for repeated use, with B
	// (d×r) and A (r×k) given row-major on the host. The engine may keep
	// its own copy (device-resident factors); the caller may reuse b and a
	// afterwards.
	NewApplier(d, r, k int, b, a []T) (Applier[T], error)
}

// Borrower is an optional capability of an Engine whose matrices live in
// host memory (the CPU engine): Borrow wraps the row-major rows×cols host
// matrix data in a Mat without copying it. The Mat shares data: the engine
// reads data through it, and an operation that writes to the Mat (or to a
// View of it) writes to data. The caller must not change data while the
// Mat is in use; Free of a borrowed Mat leaves data alone.
//
// lowrank looks for it with a type assertion, as io.Copy looks for
// io.WriterTo, and uses it to compute on the caller's matrices in place
// (the randomized method's products with W, Factors.AddTo); an engine
// without it gets uploaded copies.
type Borrower[T Float] interface {
	Borrow(rows, cols int, data []T) (Mat, error)
}

// Lender is an optional capability of an Engine whose matrices live in
// host memory (the CPU engine): Lend returns the row-major storage of m
// when its rows×cols elements lie in it without gaps (a Mat from Zeros or
// SVD, or a View of whole rows of one), with the slice's capacity reaching
// to the end of the storage underneath, and false otherwise. lowrank uses
// it to hand a result to the caller without a copy, and does not use m
// after that.
type Lender[T Float] interface {
	Lend(m Mat) ([]T, bool)
}

// TopSVD is an optional capability of an Engine: SVDTop is SVD for a
// caller that uses only the first rows rows of Vt (1 ≤ rows ≤ min(m, n)).
// Vt then may have just those rows, which saves their share of the work
// and memory; an engine that cannot save them returns the whole Vt, as
// SVD does. U and s are whole.
type TopSVD interface {
	SVDTop(a Mat, rows int) (u Mat, s []float64, vt Mat, err error)
}

// RangeNormalizer is an optional capability of an Engine: NormalizeRange
// replaces the columns of m (rows ≥ cols) with a basis of their span that
// is well conditioned but need not be orthonormal, for less work than
// Orthonormalize. The randomized range finder normalizes with it between
// its power iterations, where only the span matters, and orthonormalizes
// the last basis; an engine without it orthonormalizes every time.
type RangeNormalizer[T Float] interface {
	NormalizeRange(m Mat) error
}

// Contexter is an optional capability of an Engine: WithContext returns
// the engine bound to ctx, working on the same matrices, whose calls stop
// waiting for a shared resource (the CPU's thread budget) once ctx ends
// and then fail with an error wrapping ctx.Err(). A call that is already
// computing runs to its end. lowrank binds each factorization's context
// this way; an engine without it is used as it is.
type Contexter[T Float] interface {
	WithContext(ctx context.Context) Engine[T]
}

// Applier evaluates a factorized linear layer many times. It is safe for
// concurrent use by several goroutines.
type Applier[T Float] interface {
	// Apply computes y = B·(A·x) + bias for n vectors at once. x holds the
	// n input vectors as the rows of an n×k row-major matrix, y receives
	// the n outputs as the rows of an n×d matrix (the convention of
	// PyTorch's Linear: Y = X·Wᵀ + b). bias has length d or is nil.
	Apply(y, x []T, n int, bias []T) error
	// Close releases the resources (device memory) held by the Applier.
	Close() error
}

// ErrShape is returned (wrapped) by engines for operands whose shapes do
// not fit together.
var ErrShape = errors.New("la: shape mismatch")

// ErrForeign is returned when a Mat made by one engine is given to another.
var ErrForeign = errors.New("la: matrix belongs to another engine")

// ErrDeviceMemory is wrapped by an engine's error when an operation does
// not fit in the device's memory (its workspace plan, or an allocation,
// failed). lowrank then reruns the computation on the CPU backend and
// logs why, instead of failing.
var ErrDeviceMemory = errors.New("la: not enough device memory")

// ErrNoConvergence is wrapped by an engine's error when an iterative
// solver (the SVD's QR or Jacobi sweeps) did not converge.
var ErrNoConvergence = errors.New("la: the SVD did not converge")

// GemmDims returns the shape of c = op(a)·op(b): op(a) is m×k and op(b)
// is k×n. It returns an error wrapping ErrShape when the inner dimensions
// differ or c is not m×n. Engines use it to check Gemm's operands.
func GemmDims(transA, transB bool, a, b, c Mat) (m, n, k int, err error) {
	m, ka := a.Dims()
	if transA {
		m, ka = ka, m
	}
	kb, n := b.Dims()
	if transB {
		kb, n = n, kb
	}
	cr, cc := c.Dims()
	if ka != kb || cr != m || cc != n {
		return 0, 0, 0, fmt.Errorf("%w: gemm of %d×%d by %d×%d into %d×%d", ErrShape, m, ka, kb, n, cr, cc)
	}
	return m, n, ka, nil
}
