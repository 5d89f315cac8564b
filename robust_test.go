package lowrank_test

import (
	"math"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
)

// TestExtremeShapes: vectors as matrices, 1×100000 and 100000×1, are rank
// one and come back exactly.
func TestExtremeShapes(t *testing.T) {
	for _, sh := range [][2]int{{1, 100000}, {100000, 1}} {
		w, _ := lowrank.NewMatrix[float32](sh[0], sh[1], nil)
		for i := range w.Data {
			w.Data[i] = float32(math.Sin(float64(i)))
		}
		for _, p := range []lowrank.Policy{lowrank.Rank(1), lowrank.Energy(0.9), lowrank.Tolerance(0.1)} {
			for _, m := range []lowrank.Method{lowrank.Auto, lowrank.Exact, lowrank.Randomized} {
				f, err := lowrank.Factorize(w, p, lowrank.WithMethod(m))
				if err != nil {
					t.Fatalf("%d×%d %v %v: %v", sh[0], sh[1], p, m, err)
				}
				if f.Rank != 1 || f.RelError > 1e-6 || math.IsNaN(f.RelError) {
					t.Errorf("%d×%d %v %v: rank %d error %g", sh[0], sh[1], p, m, f.Rank, f.RelError)
				}
				r, err := f.Reconstruct()
				if err != nil {
					t.Fatal(err)
				}
				for i, v := range r.Data {
					if math.Abs(float64(v-w.Data[i])) > 1e-5 {
						t.Fatalf("%d×%d: B·A[%d] = %v, want %v", sh[0], sh[1], i, v, w.Data[i])
					}
				}
			}
		}
	}
}

// TestZeroMatrix: every policy and method gives finite factors with B·A = 0
// and error 0.
func TestZeroMatrix(t *testing.T) {
	for _, sh := range [][2]int{{7, 5}, {300, 280}} {
		w, _ := lowrank.NewMatrix[float64](sh[0], sh[1], nil)
		for _, p := range []lowrank.Policy{lowrank.Rank(2), lowrank.Energy(0.99), lowrank.Tolerance(0.01), lowrank.Ratio(0.5)} {
			for _, m := range []lowrank.Method{lowrank.Exact, lowrank.Randomized} {
				f, err := lowrank.Factorize(w, p, lowrank.WithMethod(m))
				if err != nil {
					t.Fatalf("%v %v: %v", p, m, err)
				}
				if f.RelError != 0 || f.Energy != 1 {
					t.Errorf("%v %v: error %v energy %v; want 0 and 1", p, m, f.RelError, f.Energy)
				}
				if p.String() == "energy=0.99" || p.String() == "tol=0.01" {
					if f.Rank != 1 {
						t.Errorf("%v %v: rank %d; want 1 (nothing to keep)", p, m, f.Rank)
					}
				}
				for _, v := range append(append([]float64(nil), f.B.Data...), f.A.Data...) {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("%v %v: factor value %v", p, m, v)
					}
				}
				r, _ := f.Reconstruct()
				for _, v := range r.Data {
					if v != 0 {
						t.Fatalf("%v %v: B·A has %v", p, m, v)
					}
				}
			}
		}
	}
}

// TestDenormals: a matrix of subnormal float64 values factorizes exactly.
func TestDenormals(t *testing.T) {
	w, _ := lowrank.NewMatrix[float64](20, 10, nil)
	for i := range w.Data {
		w.Data[i] = float64(i%3+1) * 5e-320 * float64(i%10+1)
	}
	f, err := lowrank.Factorize(w, lowrank.Tolerance(1e-3))
	if err != nil {
		t.Fatal(err)
	}
	if math.IsNaN(f.RelError) || f.RelError > 1e-3 || f.S[0] <= 0 {
		t.Errorf("subnormal W: rank %d error %v σ₁ %v", f.Rank, f.RelError, f.S[0])
	}
	y, err := f.Apply(make([]float64, 10), nil)
	if err != nil || len(y) != 20 {
		t.Fatalf("Apply: %v", err)
	}
}

// TestRatioNoSaving: a 1×n matrix has no rank that saves parameters.
func TestRatioNoSaving(t *testing.T) {
	w, _ := lowrank.NewMatrix[float32](1, 1000, nil)
	_, err := lowrank.Factorize(w, lowrank.Ratio(1))
	if err == nil || !strings.Contains(err.Error(), "keep it dense") {
		t.Errorf("1×1000 ratio 1: %v; want an error saying no rank saves parameters", err)
	}
}
