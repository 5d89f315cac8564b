package testla

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank-go/lowrank/la"
)

// PrecisionGemmTest checks e's la.PrecisionGemmer (it fails when e lacks
// it): for F32, TF32 and BF16, every combination of transposes, on whole
// matrices and on views, c = alpha·op(a)·op(b) + beta·c must equal the
// float64 sum of the products of the inputs rounded by Precision.Round,
// to float32 accumulation error; for TF32 and BF16 it must also differ
// from the unrounded product by far more than that, so that a GemmPrecision
// that ignored the precision fails. large adds a shape whose a exceeds
// 2^20 elements (an engine that rounds a block by block crosses a block).
func PrecisionGemmTest(t *testing.T, e la.Engine[float32], large bool) {
	pg, ok := e.(la.PrecisionGemmer[float32])
	if !ok {
		t.Fatalf("%T does not implement la.PrecisionGemmer[float32]", e)
	}
	rng := rand.New(rand.NewPCG(7, 15))
	shapes := [][3]int{{1, 1, 1}, {7, 5, 3}, {33, 9, 70}, {64, 16, 300}}
	if large {
		shapes = append(shapes, [3]int{1800, 3, 700}, [3]int{3, 1800, 700})
	}
	for _, p := range []la.Precision{la.F32, la.TF32, la.BF16} {
		for _, sh := range shapes {
			m, n, k := sh[0], sh[1], sh[2]
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					for _, beta := range []float32{0, 0.5} {
						checkPrecisionGemm(t, e, pg, rng, p, m, n, k, tA, tB, 0.75, beta, false)
					}
					if m > 1 && n > 1 && k > 1 && !large {
						checkPrecisionGemm(t, e, pg, rng, p, m, n, k, tA, tB, -1, 1, true)
					}
				}
			}
		}
	}
}

func checkPrecisionGemm(t *testing.T, e la.Engine[float32], pg la.PrecisionGemmer[float32], rng *rand.Rand,
	p la.Precision, m, n, k int, tA, tB bool, alpha, beta float32, views bool) {
	t.Helper()
	ar, ac := m, k
	if tA {
		ar, ac = k, m
	}
	br, bc := k, n
	if tB {
		br, bc = n, k
	}
	a := randSlice[float32](ar*ac, rng)
	b := randSlice[float32](br*bc, rng)
	c := randSlice[float32](m*n, rng)
	am, bm, cm := upload(t, e, ar, ac, a), upload(t, e, br, bc, b), upload(t, e, m, n, c)
	if views {
		// The same operands inside larger matrices, one row and column in.
		am = embed(t, e, rng, ar, ac, a)
		bm = embed(t, e, rng, br, bc, b)
		cm = embed(t, e, rng, m, n, c)
	}
	if err := pg.GemmPrecision(p, tA, tB, alpha, am, bm, beta, cm); err != nil {
		t.Fatalf("GemmPrecision(%v, %v, %v) %d×%d×%d: %v", p, tA, tB, m, n, k, err)
	}
	got := download(t, e, cm)
	at := func(x []float32, cols, i, j int, tr bool) float64 {
		if tr {
			i, j = j, i
		}
		return float64(x[i*cols+j])
	}
	var worst, apart float64
	for i := range m {
		for j := range n {
			var exact, plain, size float64
			for l := range k {
				x, y := at(a, ac, i, l, tA), at(b, bc, l, j, tB)
				rx, ry := float64(p.Round(float32(x))), float64(p.Round(float32(y)))
				exact += rx * ry
				plain += x * y
				size += math.Abs(rx * ry)
			}
			cij := float64(c[i*n+j])
			scale := math.Abs(float64(alpha))*size + math.Abs(float64(beta)*cij) + 1e-30
			g := float64(got[i*n+j])
			if beta == 0 {
				cij = 0
			}
			worst = max(worst, math.Abs(g-(float64(alpha)*exact+float64(beta)*cij))/scale)
			apart = max(apart, math.Abs(g-(float64(alpha)*plain+float64(beta)*cij))/scale)
		}
	}
	if testing.Verbose() {
		t.Logf("%v tA=%v tB=%v %dx%dx%d: worst %.3g apart %.3g", p, tA, tB, m, n, k, worst, apart)
	}
	const tol = 2e-6
	if worst > tol {
		t.Errorf("GemmPrecision(%v, tA=%v, tB=%v) %d×%d×%d views=%v: relative error %.3g from the product of the rounded inputs; want ≤ %g",
			p, tA, tB, m, n, k, views, worst, tol)
	}
	// Rounding to 11 (TF32) or 8 (BF16) significant bits moves a product
	// by about 2^-12 or 2^-9 of its size: far beyond float32's sums.
	if p != la.F32 && k >= 3 && apart < 10*tol {
		t.Errorf("GemmPrecision(%v, tA=%v, tB=%v) %d×%d×%d: within %.3g of the unrounded product; the inputs were not rounded to %v",
			p, tA, tB, m, n, k, apart, p)
	}
}

// embed uploads data as the r×c view at (1, 1) of a larger matrix
// filled with other values.
func embed(t *testing.T, e la.Engine[float32], rng *rand.Rand, r, c int, data []float32) la.Mat {
	t.Helper()
	big := randSlice[float32]((r+3)*(c+2), rng)
	for i := range r {
		copy(big[(i+1)*(c+2)+1:], data[i*c:(i+1)*c])
	}
	m := upload(t, e, r+3, c+2, big)
	v, err := e.View(m, 1, r+1, 1, c+1)
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return v
}
