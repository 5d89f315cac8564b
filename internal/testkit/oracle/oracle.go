// Package oracle holds what the conformance suites (testla, testlowrank)
// check backends against: test matrices with known singular values
// (Cases), and float64 reference computations that share no code with any
// backend (gonum's mat package, plain loops).
package oracle

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// Case is a test matrix with known singular values.
type Case struct {
	Name string
	D, K int
	// W is row-major float64; the float32 suites round it.
	W []float64
	// Sigma holds the singular values W was built with, largest first
	// (min(D,K) of them), or nil when W is random.
	Sigma []float64
}

// Spectrum builds the d×k matrix U·diag(sigma)·Vᵀ with random orthonormal
// U and V drawn from seed. len(sigma) must be ≤ min(d, k).
func Spectrum(name string, d, k int, sigma []float64, seed uint64) Case {
	rng := rand.New(rand.NewPCG(seed, 7))
	n := len(sigma)
	u := orthonormal(d, n, rng)
	v := orthonormal(k, n, rng)
	w := make([]float64, d*k)
	for i := range d {
		for j := range k {
			var s float64
			for t := range n {
				s += u.At(i, t) * sigma[t] * v.At(j, t)
			}
			w[i*k+j] = s
		}
	}
	full := make([]float64, min(d, k))
	copy(full, sigma)
	return Case{Name: name, D: d, K: k, W: w, Sigma: full}
}

// Gaussian builds a d×k matrix of standard normal entries.
func Gaussian(name string, d, k int, seed uint64) Case {
	rng := rand.New(rand.NewPCG(seed, 11))
	w := make([]float64, d*k)
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	return Case{Name: name, D: d, K: k, W: w}
}

// orthonormal returns an m×n matrix with orthonormal columns (n ≤ m).
func orthonormal(m, n int, rng *rand.Rand) *mat.Dense {
	g := mat.NewDense(m, n, nil)
	for i := range m {
		for j := range n {
			g.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	return mat.DenseCopyOf(q.Slice(0, m, 0, n))
}

// Decaying returns n singular values σᵢ = scale/i.
func Decaying(n int, scale float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = scale / float64(i+1)
	}
	return s
}

// Cases is the conformance set: square, tall, wide, 1×1, 1×n, n×1,
// rank-deficient, badly scaled, zero, repeated singular values.
func Cases() []Case {
	var cs []Case
	cs = append(cs,
		Gaussian("square", 40, 40, 1),
		Gaussian("tall", 90, 30, 2),
		Gaussian("wide", 30, 90, 3),
		Gaussian("1x1", 1, 1, 4),
		Gaussian("1xn", 1, 57, 5),
		Gaussian("nx1", 57, 1, 6),
		Spectrum("rank-deficient", 60, 45, []float64{9, 5, 2, 1, 0.5}, 7),
		Spectrum("rank-deficient-wide", 35, 80, []float64{4, 3, 0.25}, 8),
		Spectrum("decaying", 120, 100, Decaying(100, 1), 9),
		Spectrum("tiny", 30, 20, scaled(Decaying(20, 1), 1e-30), 10),
		Spectrum("huge", 30, 20, scaled(Decaying(20, 1), 1e30), 11),
		Spectrum("repeated", 50, 40, []float64{3, 3, 3, 2, 2, 1, 1, 1, 1, 0.5}, 12),
		Case{Name: "zero", D: 12, K: 9, W: make([]float64, 12*9), Sigma: make([]float64, 9)},
		Spectrum("larger", 300, 200, Decaying(200, 10), 13),
	)
	return cs
}

func scaled(s []float64, f float64) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = v * f
	}
	return out
}

// SVD returns the singular values of the row-major d×k matrix w,
// computed in float64 by gonum, independently of any backend.
func SVD(d, k int, w []float64) []float64 {
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(d, k, append([]float64(nil), w...)), mat.SVDNone) {
		panic(fmt.Sprintf("oracle: SVD of %d×%d did not converge", d, k))
	}
	return svd.Values(nil)
}

// EckartYoung returns sqrt(Σ_{i>r} σᵢ²)/sqrt(Σ σᵢ²), 0 when all σ are 0.
func EckartYoung(s []float64, r int) float64 {
	var tail, all float64
	top := 0.0
	if len(s) > 0 {
		top = s[0]
	}
	if top == 0 {
		return 0
	}
	for i, v := range s {
		x := v / top
		all += x * x
		if i >= r {
			tail += x * x
		}
	}
	return math.Sqrt(tail / all)
}

// RelDiff returns ‖x − y‖ / ‖y‖ in float64 (‖x − y‖ when ‖y‖ = 0).
func RelDiff[T, U float32 | float64](x []T, y []U) float64 {
	var num, den float64
	sx, sy := 0.0, 0.0
	for i := range x {
		sx = max(sx, math.Abs(float64(x[i])))
		sy = max(sy, math.Abs(float64(y[i])))
	}
	scale := max(sx, sy)
	if scale == 0 {
		return 0
	}
	for i := range x {
		a, b := float64(x[i])/scale, float64(y[i])/scale
		num += (a - b) * (a - b)
		den += b * b
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// ToT converts a float64 slice to T.
func ToT[T float32 | float64](v []float64) []T {
	out := make([]T, len(v))
	for i, x := range v {
		out[i] = T(x)
	}
	return out
}

// ToF64 converts a T slice to float64.
func ToF64[T float32 | float64](v []T) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// Matmul returns the row-major product of a (m×n) and b (n×p) in float64.
func Matmul(m, n, p int, a, b []float64) []float64 {
	c := make([]float64, m*p)
	for i := range m {
		for t := range n {
			x := a[i*n+t]
			if x == 0 {
				continue
			}
			for j := range p {
				c[i*p+j] += x * b[t*p+j]
			}
		}
	}
	return c
}

// Transpose returns the Transpose of the row-major m×n matrix a.
func Transpose(m, n int, a []float64) []float64 {
	t := make([]float64, len(a))
	for i := range m {
		for j := range n {
			t[j*m+i] = a[i*n+j]
		}
	}
	return t
}

// CheckOrthonormalColumns fails t unless the m×n row-major q has
// orthonormal columns.
func CheckOrthonormalColumns(t testing.TB, name string, m, n int, q []float64, tol float64) {
	t.Helper()
	g := Matmul(n, m, n, Transpose(m, n, q), q)
	for i := range n {
		for j := range n {
			want := 0.0
			if i == j {
				want = 1
			}
			if math.Abs(g[i*n+j]-want) > tol*float64(max(m, 10)) {
				t.Fatalf("%s (%d×%d) not orthonormal: (QᵀQ)[%d,%d] = %.3g", name, m, n, i, j, g[i*n+j])
			}
		}
	}
}
