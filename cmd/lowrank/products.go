package main

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/la"
)

var impl gonum.Implementation

// gemm computes c = alpha·op(a)·op(b) + beta·c for row-major slices (m×n
// result, inner dimension k), in float32 or float64.
func gemm[T lowrank.Float](ta, tb bool, m, n, k int, alpha float64, a []T, lda int, b []T, ldb int, beta float64, c []T, ldc int) {
	tA, tB := blas.NoTrans, blas.NoTrans
	if ta {
		tA = blas.Trans
	}
	if tb {
		tB = blas.Trans
	}
	switch a := any(a).(type) {
	case []float32:
		impl.Sgemm(tA, tB, m, n, k, float32(alpha), a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		impl.Dgemm(tA, tB, m, n, k, alpha, a, lda, any(b).([]float64), ldb, beta, any(c).([]float64), ldc)
	}
}

// addProduct adds alpha·B·A (d×k) to w, or alpha·(B·A)ᵀ when w is stored
// transposed (k×d, PEFT's fan_in_fan_out).
func addProduct[T lowrank.Float](w lowrank.Matrix[T], alpha float64, b, a lowrank.Matrix[T], transposed bool) {
	if transposed { // W (k×d) += alpha·Aᵀ·Bᵀ
		gemm(true, true, w.Rows, w.Cols, a.Rows, alpha, a.Data, a.Cols, b.Data, b.Cols, 1, w.Data, w.Cols)
		return
	}
	gemm(false, false, w.Rows, w.Cols, b.Cols, alpha, b.Data, b.Cols, a.Data, a.Cols, 1, w.Data, w.Cols)
}

// relResidual returns ‖W − B·A‖_F / ‖W‖_F (0 when W = 0), computed in
// blocks of rows so that it needs memory for a few rows only.
func relResidual[T lowrank.Float](w, b, a lowrank.Matrix[T]) float64 {
	const block = 64
	d, k, r := w.Rows, w.Cols, b.Cols
	buf := make([]T, min(block, d)*k)
	var ss la.SumSq
	for i0 := 0; i0 < d; i0 += block {
		i1 := min(i0+block, d)
		c := buf[:(i1-i0)*k]
		copy(c, w.Data[i0*k:i1*k])
		gemm(false, false, i1-i0, k, r, -1, b.Data[i0*r:i1*r], r, a.Data, k, 1, c, k)
		for _, x := range c {
			ss.Add(float64(x))
		}
	}
	n := frob(w.Data)
	if n == 0 {
		return 0
	}
	return ss.Norm() / n
}
