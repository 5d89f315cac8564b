package cpu

import (
	"github.com/lowrank-go/lowrank/internal/blas"
)

// system runs on a BLAS/LAPACK loaded at run time (internal/blas). float32
// stays float32 throughout: sgemm, sgeqrf/sorgqr family, sgesdd.
//
// The engine's matrices are row-major; LAPACK is column-major. A row-major
// m×n matrix with row stride ld is the column-major n×m matrix with
// leading dimension ld over the same memory, so no routine copies:
//
//	QR of A (m×n)   = LQ of Aᵀ (n×m):  ?gelqf + ?orglq on Aᵀ
//	SVD A = U·S·Vᵀ  ⇔  Aᵀ = V·S·Uᵀ:     ?gesdd on Aᵀ writes Uᵀ into our
//	                                    Vᵀ buffer and V into our U buffer
type system[T float32 | float64] struct {
	l *blas.Lib
}

func (s system[T]) gemm(tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
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

func (s system[T]) qr(m, n int, a []T, lda int) error {
	return blas.OrthLQ(s.l, n, m, a, lda)
}

func (s system[T]) svd(m, n int, a []T, lda int, sv []float64, u []T, ldu int, vt []T, ldvt int) error {
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
