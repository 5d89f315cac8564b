package cpu

import (
	"fmt"
	"github.com/lowrank-go/lowrank/la"

	"github.com/lowrank-go/lowrank/internal/gemm32"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/lapack"
	lapackgonum "gonum.org/v1/gonum/lapack/gonum"
)

// kernels are the typed BLAS and LAPACK routines the engine is built on.
// All matrices are row-major with a leading dimension (row stride).
//
// nt is the number of threads the caller's grant from the thread budget
// (internal/sched) allows. A system library already runs on that many:
// the budget sets its thread count when it grants; the pure-Go kernels
// split their work over at most nt goroutines.
type kernels[T float32 | float64] interface {
	// gemm computes c = alpha·op(a)·op(b) + beta·c with op(a) m×k, op(b) k×n.
	gemm(nt int, tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int)
	// gemv computes y = alpha·op(a)·x + beta·y for the m×n matrix a, on
	// one thread.
	gemv(tA bool, m, n int, alpha T, a []T, lda int, x []T, beta T, y []T)
	// qr overwrites the m×n matrix a (m ≥ n) with the Q of its thin QR.
	qr(nt, m, n int, a []T, lda int) error
	// svd computes the thin SVD of the m×n matrix a (destroyed): u is
	// m×p, vt is p×n, s has p entries, p = min(m, n).
	svd(nt, m, n int, a []T, lda int, s []float64, u []T, ldu int, vt []T, ldvt int) error
}

// luKernels are kernels with a fast LU factorization (the system LAPACK's).
type luKernels[T float32 | float64] interface {
	// luBasis overwrites the m×n matrix a (m ≥ n) with a well-conditioned
	// basis of its column span, P·L of its LU factorization.
	luBasis(nt, m, n int, a []T, lda int) error
}

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// gonum64 runs on gonum's pure-Go BLAS and LAPACK. gonum spreads a large
// float64 product over goroutines of its own (at most GOMAXPROCS at once),
// whatever nt says: they are goroutines, so Go's scheduler keeps them
// within GOMAXPROCS threads.
type gonum64 struct {
	b blas.Float64
	l lapack.Float64
}

func newGonum64() gonum64 {
	return gonum64{b: gonum.Implementation{}, l: lapackgonum.Implementation{}}
}

func (g gonum64) gemm(_ int, tA, tB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	g.b.Dgemm(trans(tA), trans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (g gonum64) gemv(tA bool, m, n int, alpha float64, a []float64, lda int, x []float64, beta float64, y []float64) {
	g.b.Dgemv(trans(tA), m, n, alpha, a, lda, x, 1, beta, y, 1)
}

func (g gonum64) qr(_, m, n int, a []float64, lda int) error {
	if n == 0 {
		return nil
	}
	tau := make([]float64, n)
	work := []float64{0}
	g.l.Dgeqrf(m, n, a, lda, tau, work, -1)
	lw := int(work[0])
	g.l.Dorgqr(m, n, n, a, lda, tau, work, -1)
	lw = max(lw, int(work[0]), 1)
	work = make([]float64, lw)
	g.l.Dgeqrf(m, n, a, lda, tau, work, lw)
	g.l.Dorgqr(m, n, n, a, lda, tau, work, lw)
	return nil
}

func (g gonum64) svd(_, m, n int, a []float64, lda int, s []float64, u []float64, ldu int, vt []float64, ldvt int) error {
	work := []float64{0}
	g.l.Dgesvd(lapack.SVDStore, lapack.SVDStore, m, n, a, lda, s, u, ldu, vt, ldvt, work, -1)
	lw := max(int(work[0]), 1)
	work = make([]float64, lw)
	if !g.l.Dgesvd(lapack.SVDStore, lapack.SVDStore, m, n, a, lda, s, u, ldu, vt, ldvt, work, lw) {
		return fmt.Errorf("%w (dgesvd, %d×%d)", la.ErrNoConvergence, m, n)
	}
	return nil
}

// gonum32 runs float32 products on internal/gemm32's AVX2 kernel (gonum's
// float32 BLAS on CPUs without AVX2 and for tiny products) and widens to
// float64 for QR and SVD, which gonum implements in float64 only.
type gonum32 struct {
	b   blas.Float32
	f64 kernels[float64]
}

func newGonum32(f64 kernels[float64]) gonum32 {
	return gonum32{b: gonum.Implementation{}, f64: f64}
}

func (g gonum32) gemm(nt int, tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if gemm32.Worth(m, n, k) {
		gemm32.Sgemm(nt, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	g.b.Sgemm(trans(tA), trans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (g gonum32) gemv(tA bool, m, n int, alpha float32, a []float32, lda int, x []float32, beta float32, y []float32) {
	g.b.Sgemv(trans(tA), m, n, alpha, a, lda, x, 1, beta, y, 1)
}

func (g gonum32) qr(nt, m, n int, a []float32, lda int) error {
	if useCholQR(m, n) && cholQR2(nt, m, n, a, lda) {
		return nil
	}
	w := widen(m, n, a, lda)
	if err := g.f64.qr(nt, m, n, w, n); err != nil {
		return err
	}
	narrow(m, n, a, lda, w)
	return nil
}

func (g gonum32) svd(nt, m, n int, a []float32, lda int, s []float64, u []float32, ldu int, vt []float32, ldvt int) error {
	p := min(m, n)
	w := widen(m, n, a, lda)
	u64 := make([]float64, m*p)
	vt64 := make([]float64, p*n)
	if err := g.f64.svd(nt, m, n, w, n, s, u64, p, vt64, n); err != nil {
		return err
	}
	narrow(m, p, u, ldu, u64)
	narrow(p, n, vt, ldvt, vt64)
	return nil
}

// widen copies the m×n float32 matrix a into a new dense float64 slice.
func widen(m, n int, a []float32, lda int) []float64 {
	w := make([]float64, m*n)
	widenInto(w, m, n, a, lda)
	return w
}

// widenInto copies the m×n float32 matrix a into the dense float64 w.
func widenInto(w []float64, m, n int, a []float32, lda int) {
	for i := range m {
		row := a[i*lda : i*lda+n]
		for j, v := range row {
			w[i*n+j] = float64(v)
		}
	}
}

// narrow copies the dense m×n float64 matrix w into a.
func narrow(m, n int, a []float32, lda int, w []float64) {
	for i := range m {
		row := a[i*lda : i*lda+n]
		for j := range row {
			row[j] = float32(w[i*n+j])
		}
	}
}
