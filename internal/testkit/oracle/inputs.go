package oracle

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// References for data-aware factorization: calibration inputs with a
// known anisotropic second moment, and the best output error any rank-r
// matrix can reach on them, computed from the inputs themselves (the SVD
// of W·Xᵀ), a route that shares nothing with lowrank's whitening of C.

// Inputs returns n inputs of length k as the rows of a row-major n×k
// matrix X: xᵢ = Q·diag(√eig)·zᵢ with zᵢ standard normal and Q (k×len(eig))
// orthonormal, so that E[x·xᵀ] = Q·diag(eig)·Qᵀ, of rank len(eig) ≤ k.
func Inputs(n, k int, eig []float64, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 13))
	q := orthonormal(k, len(eig), rng)
	x := make([]float64, n*k)
	z := make([]float64, len(eig))
	for i := range n {
		for t := range z {
			z[t] = rng.NormFloat64() * math.Sqrt(eig[t])
		}
		for j := range k {
			var s float64
			for t, v := range z {
				s += q.At(j, t) * v
			}
			x[i*k+j] = s
		}
	}
	return x
}

// SecondMoment returns C = XᵀX/n (k×k, row-major, exactly symmetric) of
// the n×k inputs x.
func SecondMoment(n, k int, x []float64) []float64 {
	var c mat.SymDense
	c.SymOuterK(1/float64(n), mat.NewDense(n, k, x).T())
	out := make([]float64, k*k)
	for i := range k {
		for j := range k {
			out[i*k+j] = c.At(i, j)
		}
	}
	return out
}

// OutputSpectrum returns the singular values of W·Xᵀ (d×n) for the d×k W
// and the n×k inputs x: EckartYoung(OutputSpectrum(…), r) is the smallest
// ‖(W − M)·Xᵀ‖_F / ‖W·Xᵀ‖_F any matrix M of rank r reaches.
func OutputSpectrum(d, k, n int, w, x []float64) []float64 {
	var y mat.Dense
	y.Mul(mat.NewDense(d, k, w), mat.NewDense(n, k, x).T())
	var svd mat.SVD
	if !svd.Factorize(&y, mat.SVDNone) {
		panic("oracle: SVD of W·Xᵀ did not converge")
	}
	return svd.Values(nil)
}

// OutputError returns ‖(W − M)·Xᵀ‖_F / ‖W·Xᵀ‖_F for the d×k W and M and
// the n×k inputs x, in float64.
func OutputError(d, k, n int, w, m, x []float64) float64 {
	e := make([]float64, d*k)
	for i := range e {
		e[i] = w[i] - m[i]
	}
	xt := mat.NewDense(n, k, x).T()
	var ex, wx mat.Dense
	ex.Mul(mat.NewDense(d, k, e), xt)
	wx.Mul(mat.NewDense(d, k, w), xt)
	den := mat.Norm(&wx, 2)
	if den == 0 {
		return mat.Norm(&ex, 2)
	}
	return mat.Norm(&ex, 2) / den
}

// Geometric returns n values falling geometrically from 1 to last.
func Geometric(n int, last float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		if n == 1 {
			v[i] = 1
			continue
		}
		v[i] = math.Pow(last, float64(i)/float64(n-1))
	}
	return v
}
