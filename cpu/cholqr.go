package cpu

import (
	"math"

	"github.com/lowrank-go/lowrank/internal/gemm32"
)

// CholeskyQR for the pure-Go float32 path. gonum implements Householder
// QR in float64 only and in level-2 loops: 24 ms for a 4096×74 matrix,
// 230 ms for 4096×266, five of them per randomized factorization. Two
// passes of CholeskyQR ("CholeskyQR2", Fukaya, Nakatsukasa, Yanagisawa and
// Yamamoto 2014) are two float32 products on internal/gemm32 each,
//
//	G = AᵀA,   G = RᵀR (Cholesky, float64),   A ← A·R⁻¹
//
// and give an orthonormal Q spanning the columns of A, with R's diagonal
// positive (the unique thin QR). The Gram matrix is float32, so the first
// pass needs cond(A) below ≈ 10³; a small Cholesky pivot (or a first
// pass that left QᵀQ far from I) reports failure and the caller runs
// Householder QR instead, which has no such bound. With a system
// BLAS/LAPACK this is not used: its Householder QR is as fast (measured).

// cholPivotMin is the smallest accepted ratio of a squared Cholesky pivot
// to the diagonal entry of G it came from, ≈ cond(A)⁻² (cond ≤ 10³).
const cholPivotMin = 1e-6

// cholMaxDeviation is the largest |QᵀQ − I| entry after the first pass
// for which the second pass is trusted.
const cholMaxDeviation = 0.5

// useCholQR reports whether CholeskyQR is tried for an m×n matrix: tall
// and thin, with n small enough for the Cholesky factorization (n³/3 flops
// in Go), and gemm32 available.
func useCholQR(m, n int) bool {
	return gemm32.Available() && n >= 2 && n <= 1024 && m >= 4*n
}

// cholQR2 overwrites the m×n row-major a with its thin QR's Q factor and
// returns true, or returns false (a then holds a matrix with the same
// column span) when the Cholesky factorization breaks down. Its products
// use at most nt goroutines.
func cholQR2(nt, m, n int, a []float32, lda int) bool {
	g32 := make([]float32, n*n)
	g := make([]float64, n*n)
	rinv := make([]float32, n*n)
	c := make([]float32, m*n)
	for pass := range 2 {
		gemm32.Sgemm(nt, true, false, n, n, m, 1, a, lda, a, lda, 0, g32, n)
		for i, v := range g32 {
			g[i] = float64(v)
		}
		if pass == 1 {
			for i := range n {
				for j := range n {
					want := 0.0
					if i == j {
						want = 1
					}
					if math.Abs(g[i*n+j]-want) > cholMaxDeviation {
						return false
					}
				}
			}
		}
		if !cholUpperInverse(n, g, rinv) {
			return false
		}
		gemm32.Sgemm(nt, false, false, m, n, n, 1, a, lda, rinv, n, 0, c, n)
		for i := range m {
			copy(a[i*lda:i*lda+n], c[i*n:(i+1)*n])
		}
	}
	return true
}

// cholUpperInverse factors the symmetric positive definite n×n g = RᵀR
// in place (upper triangle) and writes R⁻¹ (upper triangular) into rinv
// as float32. It returns false when a pivot is not safely positive.
func cholUpperInverse(n int, g []float64, rinv []float32) bool {
	for i := range n {
		orig := g[i*n+i]
		d := orig
		for k := range i {
			d -= g[k*n+i] * g[k*n+i]
		}
		if !(orig > 0) || !(d > cholPivotMin*orig) || math.IsInf(orig, 0) {
			return false
		}
		rii := math.Sqrt(d)
		g[i*n+i] = rii
		for j := i + 1; j < n; j++ {
			s := g[i*n+j]
			for k := range i {
				s -= g[k*n+i] * g[k*n+j]
			}
			g[i*n+j] = s / rii
		}
	}
	// R⁻¹ by back substitution, one column at a time: R·x = e_j.
	inv := make([]float64, n*n)
	for j := range n {
		inv[j*n+j] = 1 / g[j*n+j]
		for i := j - 1; i >= 0; i-- {
			var s float64
			for k := i + 1; k <= j; k++ {
				s += g[i*n+k] * inv[k*n+j]
			}
			inv[i*n+j] = -s / g[i*n+i]
		}
	}
	clear(rinv)
	for i := range n {
		for j := i; j < n; j++ {
			rinv[i*n+j] = float32(inv[i*n+j])
		}
	}
	return true
}
