package lowrank

import (
	"context"
	"fmt"
	"math"

	"github.com/lowrank-go/lowrank/la"
)

// job is one computation in progress on an engine (a factorization, an
// SVD, a product): every Mat it allocates is freed by release, on success
// and failure alike. The products use only e and the Mat bookkeeping.
type job[T Float] struct {
	e    la.Engine[T]
	ctx  context.Context // nil: never stops
	cfg  *config
	w    Matrix[T]
	d, k int
	// W is computed on as W·2^-shift, a power of two (exact) that brings
	// ‖W‖_F near 1 when it is far from it (beyond 2^±100 in float64, 2^±30
	// in float32), so that neither the SVD nor the sums of squares
	// overflow or underflow for matrices near the limits of the float
	// type; norm is ‖W‖_F·2^-shift and results are scaled back at the end.
	shift int
	norm  float64
	mats  []la.Mat
	host  []hostBuf[T] // the mats of mats whose storage is the host pool's
}

// newJob starts a computation on W, whose norm ‖W‖_F the caller measured,
// that stops at the next block boundary once ctx ends. An engine that
// can wait on resources (la.Contexter) is bound to ctx.
func newJob[T Float](ctx context.Context, e la.Engine[T], cfg *config, w Matrix[T], norm float64) *job[T] {
	if c, ok := e.(la.Contexter[T]); ok && ctx != nil && ctx.Done() != nil {
		e = c.WithContext(ctx)
	}
	j := &job[T]{e: e, ctx: ctx, cfg: cfg, w: w, d: w.Rows, k: w.Cols, norm: norm}
	if j.norm > 0 && !math.IsInf(j.norm, 0) {
		// Norms well inside the float type's range need no scaling (the
		// scaling pass would only cost time): LAPACK and cuSOLVER rescale
		// what they must themselves.
		safe := 100
		if _, ok := any(T(0)).(float32); ok {
			safe = 30
		}
		if _, exp := math.Frexp(j.norm); exp > safe || exp < -safe {
			j.shift = exp &^ 1 // even, so that √(2^shift) is a power of two
			j.norm = math.Ldexp(j.norm, -j.shift)
		}
	}
	return j
}

// uploadW uploads W scaled by 2^-shift, in steps whose factor the float
// type can hold.
func (j *job[T]) uploadW() (la.Mat, error) {
	m, err := j.upload(j.d, j.k, j.w.Data)
	if err != nil {
		return nil, err
	}
	step := 1000
	if _, ok := any(T(0)).(float32); ok {
		step = 120
	}
	f := make([]T, j.d)
	for left := -j.shift; left != 0; {
		e := max(-step, min(step, left))
		left -= e
		for i := range f {
			f[i] = T(math.Ldexp(1, e))
		}
		if err := j.e.ScaleRows(m, f); err != nil {
			return nil, wrapBackend("scale", err)
		}
	}
	return m, nil
}

func (j *job[T]) keep(m la.Mat) la.Mat {
	j.mats = append(j.mats, m)
	return m
}

// free releases m now instead of at the end of the job.
func (j *job[T]) free(m la.Mat) {
	for i, x := range j.mats {
		if x == m {
			j.mats = append(j.mats[:i], j.mats[i+1:]...)
			break
		}
	}
	for i, h := range j.host {
		if h.m == m {
			putHost(h.data)
			j.host = append(j.host[:i], j.host[i+1:]...)
			break
		}
	}
	j.e.Free(m)
}

func (j *job[T]) release() {
	for _, m := range j.mats {
		j.e.Free(m)
	}
	j.mats = nil
	for _, h := range j.host {
		putHost(h.data)
	}
	j.host = nil
}

// scratch is zeros for a temporary that the job never hands out (the
// sketch's Q and B): on an engine that borrows host memory its storage
// comes from the host pool (getHost) and goes back there when it is
// freed, so that many factorizations in a row do not each fault in fresh
// pages for it.
func (j *job[T]) scratch(r, c int) (la.Mat, error) {
	b, ok := j.e.(la.Borrower[T])
	if !ok {
		return j.zeros(r, c)
	}
	data := getHost[T](r*c, true)
	m, err := b.Borrow(r, c, data)
	if err != nil {
		return nil, wrapBackend("allocate", err)
	}
	j.host = append(j.host, hostBuf[T]{m, data})
	return j.keep(m), nil
}

func (j *job[T]) zeros(r, c int) (la.Mat, error) {
	m, err := j.e.Zeros(r, c)
	if err != nil {
		return nil, wrapBackend("allocate", err)
	}
	return j.keep(m), nil
}

func (j *job[T]) upload(r, c int, data []T) (la.Mat, error) {
	m, err := j.e.Upload(r, c, data)
	if err != nil {
		return nil, wrapBackend("upload", err)
	}
	return j.keep(m), nil
}

func (j *job[T]) view(m la.Mat, i0, i1, j0, j1 int) (la.Mat, error) {
	v, err := j.e.View(m, i0, i1, j0, j1)
	return v, wrapBackend("view", err)
}

// check is a block boundary: it returns the error that stops the job
// when its context has ended, nil otherwise.
func (j *job[T]) check() error {
	if j.ctx == nil {
		return nil
	}
	if err := j.ctx.Err(); err != nil {
		return &stoppedError{what: fmt.Sprintf("computation on a %d×%d matrix", j.d, j.k), err: err}
	}
	return nil
}

// svd computes the SVD of a (destroyed), checking the context before
// and after: LAPACK and cuSOLVER cannot be interrupted.
func (j *job[T]) svd(a la.Mat) (la.Mat, []float64, la.Mat, error) {
	return j.svdTop(a, 0)
}

// svdTop is svd for a caller that uses only the first rows rows of Vt
// (la.TopSVD, where the engine has it; 0: all of them).
func (j *job[T]) svdTop(a la.Mat, rows int) (la.Mat, []float64, la.Mat, error) {
	if err := j.check(); err != nil {
		return nil, nil, nil, err
	}
	var u, vt la.Mat
	var s []float64
	var err error
	if t, ok := j.e.(la.TopSVD); ok && rows > 0 {
		u, s, vt, err = t.SVDTop(a, rows)
	} else {
		u, s, vt, err = j.e.SVD(a)
	}
	if err != nil {
		return nil, nil, nil, wrapBackend("svd", err)
	}
	j.keep(u)
	j.keep(vt)
	if err := j.check(); err != nil {
		return nil, nil, nil, err
	}
	return u, s, vt, nil
}

// gemm computes c = alpha·op(a)·op(b) + beta·c, a block boundary.
func (j *job[T]) gemm(tA, tB bool, alpha T, a, b la.Mat, beta T, c la.Mat) error {
	if err := j.check(); err != nil {
		return err
	}
	return wrapBackend("gemm", j.e.Gemm(tA, tB, alpha, a, b, beta, c))
}

// orthonormalize replaces a's columns with an orthonormal basis of their
// span, a block boundary.
func (j *job[T]) orthonormalize(a la.Mat) error {
	if err := j.check(); err != nil {
		return err
	}
	return wrapBackend("qr", j.e.Orthonormalize(a))
}

// normalize replaces a's columns with a well-conditioned basis of their
// span: la.RangeNormalizer where the engine has it, else Orthonormalize.
func (j *job[T]) normalize(a la.Mat) error {
	if err := j.check(); err != nil {
		return err
	}
	if n, ok := j.e.(la.RangeNormalizer[T]); ok {
		return wrapBackend("qr", n.NormalizeRange(a))
	}
	return wrapBackend("qr", j.e.Orthonormalize(a))
}

// borrowW returns W itself as a read-only Mat, with alpha = 2^-shift, when
// the engine can borrow host memory (la.Borrower) and W's norm is in a range where
// products with unscaled W cannot overflow; otherwise nil, and the caller
// uploads W·2^-shift (uploadW). The randomized path then scales every
// product with W by alpha, which gives the same numbers as products with
// W·2^-shift (a power of two commutes with rounding), without copying W:
// on a 4096×11008 float32 W the copy and scaling cost ≈ 40 ms and 180 MB
// of fresh pages per call.
func (j *job[T]) borrowW() (la.Mat, T, error) {
	b, ok := j.e.(la.Borrower[T])
	limit := 500 // float64: products stay far inside 2^±1000
	if _, single := any(T(0)).(float32); single {
		limit = 60 // float32: |W·Ω| ≤ 2^60·‖Ω‖ stays far inside 2^±126
	}
	if !ok || j.shift < -limit || j.shift > limit {
		return nil, 0, nil
	}
	m, err := b.Borrow(j.d, j.k, j.w.Data)
	if err != nil {
		return nil, 0, wrapBackend("upload", err)
	}
	return m, T(math.Ldexp(1, -j.shift)), nil
}

// borrow returns a read-only Mat over host data: shared when the engine
// can borrow host memory, an uploaded copy otherwise.
func (j *job[T]) borrow(r, c int, data []T) (la.Mat, error) {
	if b, ok := j.e.(la.Borrower[T]); ok {
		m, err := b.Borrow(r, c, data)
		return m, wrapBackend("upload", err)
	}
	return j.upload(r, c, data)
}
