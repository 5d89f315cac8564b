package cpu

import (
	"errors"

	"github.com/lowrank-go/lowrank/internal/blas"
)

// system runs on a BLAS/LAPACK loaded at run time (internal/blas). float32
// stays float32 throughout: sgemm, sgeqrf/sorgqr family, sgetrf (the
// range finder's normalization between power iterations), sgesdd.
//
// The engine's matrices are row-major; LAPACK is column-major. A row-major
// m×n matrix with row stride ld is the column-major n×m matrix with
// leading dimension ld over the same memory, so no routine copies:
//
//	SVD A = U·S·Vᵀ  ⇔  Aᵀ = V·S·Uᵀ:     ?gesdd on Aᵀ writes Uᵀ into our
//	                                    Vᵀ buffer and V into our U buffer
//
// The exceptions are QR and LU. The thin QR of a row-major A is the LQ of the
// column-major Aᵀ (?gelqf, ?orglq), but LAPACK's LQ runs 2–3.5× slower
// than its QR on the tall, thin sketches of the randomized method
// (measured with OpenBLAS 0.3.21: 4096×74 float32 20 ms against 8.5 ms,
// 11008×74 158 ms against 46 ms, including the copies), so qr transposes
// into a column-major scratch, runs ?geqrf + ?orgqr, and transposes back;
// the LU basis (luBasis) goes through the same scratch.
//
// The library's thread count is set by the thread budget when it grants
// (internal/sched; see threads.go), so the methods ignore nt.
type system[T float32 | float64] struct {
	l *blas.Lib
}

func (s system[T]) gemm(_ int, tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	switch a := any(a).(type) {
	case []float32:
		s.l.Sgemm(tA, tB, m, n, k, float32(alpha), a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		s.l.Dgemm(tA, tB, m, n, k, float64(alpha), a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

func (s system[T]) gemv(tA bool, m, n int, alpha T, a []T, lda int, x []T, beta T, y []T) {
	switch a := any(a).(type) {
	case []float32:
		s.l.Sgemv(tA, m, n, float32(alpha), a, lda, any(x).([]float32), float32(beta), any(y).([]float32))
	case []float64:
		s.l.Dgemv(tA, m, n, float64(alpha), a, lda, any(x).([]float64), float64(beta), any(y).([]float64))
	}
}

// qr orthonormalizes a: by CholeskyQR2 (two passes of blas.CholBasis in
// place; the second leaves the columns orthonormal to rounding) where a
// is well conditioned, otherwise by Householder QR (?geqrf, ?orgqr) on a
// column-major copy. For the last basis of the range finder, 4096×266
// float32: ≈ 12 ms against ≈ 25–33 ms.
func (s system[T]) qr(_, m, n int, a []T, lda int) error {
	if blas.HasChol[T](s.l) {
		err := blas.CholBasis(s.l, m, n, a, lda)
		if err == nil {
			err = blas.CholBasis(s.l, m, n, a, lda)
		}
		if !errors.Is(err, blas.ErrCholBreakdown) {
			return err
		}
		// a still spans the same columns (untouched, or after one pass).
	}
	return s.householder(m, n, a, lda)
}

// householder orthonormalizes a by Householder QR (?geqrf, ?orgqr) on a
// column-major copy: no limit on a's conditioning.
func (s system[T]) householder(m, n int, a []T, lda int) error {
	return s.colMajor(m, n, a, lda, blas.OrthQR[T])
}

// luBasis normalizes a range basis: by one pass of CholeskyQR in place
// (blas.CholBasis) where a is well enough conditioned for it, otherwise
// by ?getrf through the same column-major scratch as qr, or by Householder
// QR when the library has no ?getrf or the LU breaks down (not qr: its
// CholeskyQR has just failed on the same a).
func (s system[T]) luBasis(_, m, n int, a []T, lda int) error {
	if blas.HasChol[T](s.l) {
		err := blas.CholBasis(s.l, m, n, a, lda)
		if !errors.Is(err, blas.ErrCholBreakdown) {
			return err
		}
		// a is untouched.
	}
	if !blas.HasLU[T](s.l) {
		return s.householder(m, n, a, lda)
	}
	err := s.colMajor(m, n, a, lda, blas.LUBasis[T])
	if errors.Is(err, blas.ErrLUBreakdown) {
		// a is untouched (colMajor copies back only on success): the
		// QR has no such limit.
		return s.householder(m, n, a, lda)
	}
	return err
}

// colMajor runs the LAPACK routine f on a column-major copy of the
// row-major m×n matrix a and copies the result back. (A pooled scratch
// instead of a fresh one was measured and not kept: no consistent gain.)
func (s system[T]) colMajor(m, n int, a []T, lda int, f func(*blas.Lib, int, int, []T, int) error) error {
	t := make([]T, m*n)
	transposeInto(t, m, a, m, n, lda)
	if err := f(s.l, m, n, t, m); err != nil {
		return err
	}
	transposeFrom(a, lda, t, m, n, m)
	return nil
}

// transposeInto writes the row-major m×n a (stride lda) into the
// column-major t (leading dimension ldt), in tiles of 32 rows, one column
// of t at a time: the writes run along t, the reads stride by lda. (The
// other order, writing a row of a across 32 columns of t, strides by ldt
// — a multiple of 4 KiB for the sketches — so that every write in a tile
// lands in the same cache set: 10× slower for 4096×80, 3.5 ms against
// 0.35 ms.)
func transposeInto[T float32 | float64](t []T, ldt int, a []T, m, n, lda int) {
	const tile = 32
	for i0 := 0; i0 < m; i0 += tile {
		i1 := min(i0+tile, m)
		for j := range n {
			col := t[j*ldt+i0 : j*ldt+i1]
			for i := range col {
				col[i] = a[(i0+i)*lda+j]
			}
		}
	}
}

// transposeFrom writes the column-major m×n t (leading dimension ldt)
// into the row-major a (stride lda), in the same order as transposeInto:
// the reads run along t.
func transposeFrom[T float32 | float64](a []T, lda int, t []T, m, n, ldt int) {
	const tile = 32
	for i0 := 0; i0 < m; i0 += tile {
		i1 := min(i0+tile, m)
		for j := range n {
			col := t[j*ldt+i0 : j*ldt+i1]
			for i, v := range col {
				a[(i0+i)*lda+j] = v
			}
		}
	}
}

// svd computes the thin SVD with ?gesdd, or for a matrix at least
// wideSVD times wider than tall (the randomized method's l×k projection)
// by CholeskyQR2 on its rows and an l×l SVD (blas.WideSVD) where it is
// well conditioned enough for that.
func (s system[T]) svd(nt, m, n int, a []T, lda int, sv []float64, u []T, ldu int, vt []T, ldvt int) error {
	if ok, err := s.svdTop(nt, m, n, a, lda, sv, u, ldu, vt, ldvt, m); ok {
		return err
	}
	p := min(m, n)
	st := make([]T, p)
	if err := blas.Gesdd(s.l, n, m, a, lda, st, vt, ldvt, u, ldu); err != nil {
		return err
	}
	for i, v := range st {
		sv[i] = float64(v)
	}
	return nil
}

// svdTop is svd with only the first rows rows of vt (rows ≤ m), where it
// takes blas.WideSVD; ok is false, with a as it was (to rounding) and
// nothing else written, where it does not (the caller's full SVD then).
func (s system[T]) svdTop(_, m, n int, a []T, lda int, sv []float64, u []T, ldu int, vt []T, ldvt, rows int) (ok bool, err error) {
	if m*wideSVD > n || !blas.HasChol[T](s.l) {
		return false, nil
	}
	err = blas.WideSVD(s.l, m, n, a, lda, sv, u, ldu, vt, ldvt, rows)
	return !errors.Is(err, blas.ErrCholBreakdown), err
}

// wideSVD is the aspect ratio from which svd takes blas.WideSVD: its
// QR-first path pays off once the matrix is several times wider than tall
// (266×11008 float32: ≈ 56 against ≈ 87 ms; for a square matrix ?gesdd
// does no QR first).
const wideSVD = 4
