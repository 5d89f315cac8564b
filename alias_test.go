package lowrank_test

import (
	"math"
	"testing"

	"github.com/lowrank-go/lowrank"
)

// TestApplyInPlace: y may be x itself (an in-place layer, d = k) or
// overlap it, for Dense and Factors, one vector or a batch: the result is
// the one computed into a separate buffer. Before, Dense wrote y while
// reading x and returned wrong numbers with no error.
func TestApplyInPlace(t *testing.T) {
	const n = 40
	w := gaussian32(n, n, 7)
	dense, err := lowrank.NewDense(w)
	if err != nil {
		t.Fatal(err)
	}
	f, err := lowrank.Factorize(w, lowrank.Rank(8))
	if err != nil {
		t.Fatal(err)
	}
	bias := gaussian32(1, n, 8).Data
	type applier interface {
		ApplyTo(y, x, bias []float32) error
		ApplyBatchTo(y, x lowrank.Matrix[float32], bias []float32) error
	}
	for name, a := range map[string]applier{"Dense": dense, "Factors": f} {
		x := gaussian32(3, n, 9)
		want := make([]float32, n)
		if err := a.ApplyTo(want, x.Data[:n], bias); err != nil {
			t.Fatal(err)
		}
		buf := append([]float32(nil), x.Data[:n]...)
		if err := a.ApplyTo(buf, buf, bias); err != nil {
			t.Fatal(err)
		}
		if e := maxDiff32(buf, want); e > 1e-5 {
			t.Errorf("%s.ApplyTo(x, x): off by %g", name, e)
		}
		// y shifted by one element over x.
		buf = make([]float32, n+1)
		copy(buf[1:], x.Data[:n])
		if err := a.ApplyTo(buf[:n], buf[1:], bias); err != nil {
			t.Fatal(err)
		}
		if e := maxDiff32(buf[:n], want); e > 1e-5 {
			t.Errorf("%s.ApplyTo(overlapping): off by %g", name, e)
		}
		wantB := make([]float32, 3*n)
		yb, _ := lowrank.NewMatrix(3, n, wantB)
		if err := a.ApplyBatchTo(yb, x, bias); err != nil {
			t.Fatal(err)
		}
		xb, _ := lowrank.NewMatrix(3, n, append([]float32(nil), x.Data...))
		if err := a.ApplyBatchTo(xb, xb, bias); err != nil {
			t.Fatal(err)
		}
		if e := maxDiff32(xb.Data, wantB); e > 1e-5 {
			t.Errorf("%s.ApplyBatchTo(X, X): off by %g", name, e)
		}
	}
}

func maxDiff32(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}
