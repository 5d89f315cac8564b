package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank-go/lowrank/internal/blas"
	"github.com/lowrank-go/lowrank/la"
)

// TestNormalizeRange: for a rank-deficient sketch (CholeskyQR breaks down
// on it), on the system LAPACK (P·L of an LU, where it has ?getrf) and on
// pure Go (a QR), NormalizeRange leaves a basis of the same column span
// with full rank, in a view with a row stride wider than its columns; on
// pure Go the basis is orthonormal. The span is checked by projecting the
// original columns onto the orthonormalized result.
func TestNormalizeRange(t *testing.T) {
	for _, b := range []*Backend{New(), NewGonum()} {
		t.Run(b.Describe()[0], func(t *testing.T) {
			testNormalizeRange[float32](t, b.Float32(), b.system() && blas.HasLU[float32](b.lib), 1e-4)
			testNormalizeRange[float64](t, b.Float64(), b.system() && blas.HasLU[float64](b.lib), 1e-10)
		})
	}
}

func testNormalizeRange[T la.Float](t *testing.T, e la.Engine[T], lu bool, tol float64) {
	rng := rand.New(rand.NewPCG(3, 4))
	m, n := 300, 24
	src := randMat[T](rng, m, n)
	for i := range m { // rank deficient: the last column repeats the first
		src[i*n+n-1] = src[i*n]
	}
	big, err := e.Upload(m, n+5, make([]T, m*(n+5)))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := e.View(big, 0, m, 2, n+2)
	d := a.(*dense[T])
	for i := range m {
		copy(d.data[i*d.stride:i*d.stride+n], src[i*n:(i+1)*n])
	}
	if err := e.(la.RangeNormalizer[T]).NormalizeRange(a); err != nil {
		t.Fatal(err)
	}
	got := make([]T, m*n)
	if err := e.Download(got, a); err != nil {
		t.Fatal(err)
	}
	if !lu {
		checkOrthonormal(t, "pure Go", got, m, n, tol)
	} else {
		// P·L: entries of magnitude ≤ 1 and a unit pivot in every column
		// (a QR's Q would have no entry exactly 1).
		for c := range n {
			pivot := false
			for i := range m {
				v := float64(got[i*n+c])
				if !(math.Abs(v) <= 1) {
					t.Fatalf("P·L entry (%d, %d) = %v, want |·| ≤ 1", i, c, v)
				}
				pivot = pivot || v == 1
			}
			if !pivot {
				t.Fatalf("column %d of P·L has no unit pivot: not an LU basis", c)
			}
		}
	}
	// Every original column lies in the span of the basis.
	q, _ := e.Upload(m, n, got)
	if err := e.Orthonormalize(q); err != nil {
		t.Fatal(err)
	}
	qd := make([]T, m*n)
	e.Download(qd, q)
	for c := range n {
		var norm, res float64
		for i := range m {
			norm += float64(src[i*n+c]) * float64(src[i*n+c])
		}
		r := make([]float64, m)
		for i := range m {
			r[i] = float64(src[i*n+c])
		}
		for j := range n {
			var dot float64
			for i := range m {
				dot += float64(qd[i*n+j]) * float64(src[i*n+c])
			}
			for i := range m {
				r[i] -= dot * float64(qd[i*n+j])
			}
		}
		for _, v := range r {
			res += v * v
		}
		if math.Sqrt(res/norm) > tol {
			t.Fatalf("column %d: relative residual outside the span %v", c, math.Sqrt(res/norm))
		}
	}
	// Full rank although src is not: the basis's smallest singular value
	// is far from zero.
	bm, _ := e.Upload(m, n, got)
	_, s, _, err := e.SVD(bm)
	if err != nil {
		t.Fatal(err)
	}
	if s[n-1] < 1e-3*s[0] {
		t.Fatalf("basis is (nearly) rank deficient: σ_min/σ_max = %v", s[n-1]/s[0])
	}
	wide, _ := e.Upload(3, 5, make([]T, 15))
	if err := e.(la.RangeNormalizer[T]).NormalizeRange(wide); err == nil {
		t.Error("wide matrix: no error")
	}
}

// TestNormalizeRangeTinyPivots: where the LU breaks down (pivots below the
// smallest normal number, see blas.TestLUBasisTinyPivots), NormalizeRange
// falls back to the QR: the result is finite and orthonormal.
func TestNormalizeRangeTinyPivots(t *testing.T) {
	e := New().Float64()
	rng := rand.New(rand.NewPCG(10, 11))
	m, n := 31, 16
	src := make([]float64, m*n) // row-major
	for i := range m {
		for c := range n {
			src[i*n+c] = rng.NormFloat64() * math.Pow(10, -float64(min(i, 1))*296-3*float64(i))
		}
	}
	a, _ := e.Upload(m, n, src)
	if err := e.(la.RangeNormalizer[float64]).NormalizeRange(a); err != nil {
		t.Fatal(err)
	}
	got := make([]float64, m*n)
	e.Download(got, a)
	for i, v := range got {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("entry %d = %v", i, v)
		}
	}
	checkOrthonormal(t, "QR fallback", got, m, n, 1e-10)
}

// TestNormalizeRangeWellConditioned: a well-conditioned sketch (as the
// power iterations' are on a Gaussian or a moderately decaying spectrum)
// is normalized by one pass of CholeskyQR on a system LAPACK with ?trmm,
// dpotrf and dtrtri (blas.CholBasis), by a QR on pure Go: either way the
// basis comes out orthonormal to rounding and spans the input.
func TestNormalizeRangeWellConditioned(t *testing.T) {
	for _, b := range []*Backend{New(), NewGonum()} {
		t.Run(b.Describe()[0], func(t *testing.T) {
			testNormalizeWell[float32](t, b.Float32(), 2e-4)
			testNormalizeWell[float64](t, b.Float64(), 1e-12)
		})
	}
}

func testNormalizeWell[T la.Float](t *testing.T, e la.Engine[T], tol float64) {
	rng := rand.New(rand.NewPCG(5, 6))
	m, n := 500, 40
	src := randMat[T](rng, m, n)
	for i := range m {
		for c := range n {
			src[i*n+c] *= T(1 + float64(c%5)) // cond ≈ 10
		}
	}
	a, _ := e.Upload(m, n, src)
	if err := e.(la.RangeNormalizer[T]).NormalizeRange(a); err != nil {
		t.Fatal(err)
	}
	got := make([]T, m*n)
	e.Download(got, a)
	checkOrthonormal(t, "well conditioned", got, m, n, tol)
	for c := range n { // every input column in the span
		var norm, proj float64
		for i := range m {
			norm += float64(src[i*n+c]) * float64(src[i*n+c])
		}
		for j := range n {
			var d float64
			for i := range m {
				d += float64(got[i*n+j]) * float64(src[i*n+c])
			}
			proj += d * d
		}
		if math.Abs(proj/norm-1) > 10*tol {
			t.Fatalf("column %d: %.3g of its norm² outside the span", c, 1-proj/norm)
		}
	}
}
