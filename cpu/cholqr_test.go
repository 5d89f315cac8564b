package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestCholQR2(t *testing.T) {
	if !useCholQR(400, 20) {
		t.Skip("gemm32 kernel not available")
	}
	rng := rand.New(rand.NewPCG(9, 9))
	m, n := 400, 20
	for _, cond := range []float64{1, 1e2, 1e4, 1e9} {
		// A = G·diag(σ)·H with σ from 1 to 1/cond and a Gaussian H that
		// mixes the columns: cond(A) ≈ cond·cond(H). (Scaling columns
		// alone would not do: CholeskyQR does not mind it.)
		g := randMat[float64](rng, m, n)
		h := randMat[float64](rng, n, n)
		a := make([]float32, m*n)
		for i := range m {
			for j := range n {
				var v float64
				for c := range n {
					v += g[i*n+c] * math.Pow(cond, -float64(c)/float64(n-1)) * h[c*n+j]
				}
				a[i*n+j] = float32(v)
			}
		}
		orig := append([]float32(nil), a...)
		ok := cholQR2(2, m, n, a, n)
		t.Logf("cond %.0e: CholeskyQR2 ok=%v", cond, ok)
		if cond <= 1e2 && !ok {
			t.Errorf("cond %.0e: CholeskyQR2 failed", cond)
		}
		if cond >= 1e9 && ok {
			t.Errorf("cond %.0e: CholeskyQR2 accepted a numerically singular matrix", cond)
		}
		// Whatever it reported, the engine's QR must give an orthonormal
		// basis of the same span.
		q := append([]float32(nil), orig...)
		if err := newGonum32(newGonum64()).qr(2, m, n, q, n); err != nil {
			t.Fatal(err)
		}
		checkOrthonormal(t, "Q", q, m, n, 2e-4)
		// span: each column of A is reproduced by Q·Qᵀ·a (relative).
		for j := range n {
			var na, nr float64
			coef := make([]float64, n)
			for c := range n {
				for i := range m {
					coef[c] += float64(q[i*n+c]) * float64(orig[i*n+j])
				}
			}
			for i := range m {
				var p float64
				for c := range n {
					p += float64(q[i*n+c]) * coef[c]
				}
				r := float64(orig[i*n+j]) - p
				na += float64(orig[i*n+j]) * float64(orig[i*n+j])
				nr += r * r
			}
			if math.Sqrt(nr/na) > 1e-4*math.Max(1, cond/1e4) {
				t.Fatalf("cond %.0e: column %d outside span(Q): %v", cond, j, math.Sqrt(nr/na))
			}
		}
	}
}
