package testlowrank

import (
	"fmt"
	"math"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/internal/testkit/oracle"
)

// checkWhitened runs data-aware factorization (WithInputCovariance,
// WithInputScale) on b: the output error of the factors, measured from B
// and A on the inputs themselves, meets the optimum computed from the SVD
// of W·Xᵀ (exactly for the exact method, within 1% for the randomized
// one) and never exceeds plain SVD's, also with a singular C.
func checkWhitened[T lowrank.Float](t *testing.T, b lowrank.Backend) {
	tol := 1e-8
	if _, ok := any(T(0)).(float32); ok {
		tol = 1e-3
	}
	for _, tc := range []struct {
		name string
		n    int
		eig  []float64
	}{
		{"anisotropic", 400, oracle.Geometric(60, 1e-5)},
		{"singular", 300, oracle.Geometric(20, 1e-2)},
	} {
		const d, k = 90, 60
		w64 := oracle.Spectrum("w", d, k, oracle.Decaying(k, 1), 31).W
		x := oracle.Inputs(tc.n, k, tc.eig, 32)
		c, _ := lowrank.NewMatrix(k, k, oracle.SecondMoment(tc.n, k, x))
		w, _ := lowrank.NewMatrix(d, k, oracle.ToT[T](w64))
		w64 = oracle.ToF64(w.Data) // the matrix the backend sees
		out := oracle.OutputSpectrum(d, k, tc.n, w64, x)
		outErr := func(f *lowrank.Factors[T]) float64 {
			ba := oracle.Matmul(d, f.Rank, k, oracle.ToF64(f.B.Data), oracle.ToF64(f.A.Data))
			return oracle.OutputError(d, k, tc.n, w64, ba, x)
		}
		cov := lowrank.WithInputCovariance(c)
		for _, m := range []lowrank.Method{lowrank.Exact, lowrank.Randomized} {
			for _, r := range []int{3, 12} {
				t.Run(fmt.Sprintf("%s/%v/rank%d", tc.name, m, r), func(t *testing.T) {
					f := factorize(t, w, lowrank.Rank(r), cov, lowrank.WithMethod(m), lowrank.WithBackend(b), lowrank.WithSeed(5))
					plain := factorize(t, w, lowrank.Rank(r), lowrank.WithMethod(m), lowrank.WithBackend(b), lowrank.WithSeed(5))
					if f.Backend != b || f.Weighting != lowrank.WeightCovariance {
						t.Errorf("ran on %v with weighting %v; want %s, covariance", f.Backend, f.Weighting, b.Name())
					}
					opt := oracle.EckartYoung(out, r)
					got := outErr(f)
					switch {
					case tc.name == "singular":
						if !(f.Ridge > 0) {
							t.Errorf("singular C: ridge %g; want > 0", f.Ridge)
						}
						if got > opt*(1+10*tol)+1e-6 {
							t.Errorf("output error %.9g; optimum %.9g", got, opt)
						}
					case m == lowrank.Exact && math.Abs(got-opt) > tol*opt:
						t.Errorf("output error %.12g; optimum %.12g", got, opt)
					case m == lowrank.Randomized && got > 1.01*opt:
						t.Errorf("randomized output error %.6g; optimum %.6g", got, opt)
					}
					if math.Abs(f.OutputRelError-got) > 10*tol*max(got, 1e-3) {
						t.Errorf("reported output error %.9g; measured %.9g", f.OutputRelError, got)
					}
					if base := outErr(plain); got > base*(1+tol) {
						t.Errorf("output error %.6g > plain SVD's %.6g", got, base)
					}
				})
			}
		}
		t.Run("scale/"+tc.name, func(t *testing.T) {
			s := make([]float64, k)
			for j := range s {
				s[j] = math.Sqrt(c.At(j, j))
			}
			f := factorize(t, w, lowrank.Rank(12), lowrank.WithInputScale(s), lowrank.WithBackend(b))
			plain := factorize(t, w, lowrank.Rank(12), lowrank.WithBackend(b))
			if got, base := outErr(f), outErr(plain); f.Weighting != lowrank.WeightScale || got > 1.5*base {
				t.Errorf("scale: output error %.6g, plain %.6g, weighting %v", got, base, f.Weighting)
			}
		})
	}
}

// crossCheckWhitened compares data-aware factors computed on b and ref.
func crossCheckWhitened[T lowrank.Float](t *testing.T, b, ref lowrank.Backend, tol float64) {
	const d, k, n = 300, 280, 500
	w64 := oracle.Spectrum("w", d, k, oracle.Decaying(k, 2), 41).W
	x := oracle.Inputs(n, k, oracle.Geometric(k, 1e-6), 42)
	c, _ := lowrank.NewMatrix(k, k, oracle.SecondMoment(n, k, x))
	w, _ := lowrank.NewMatrix(d, k, oracle.ToT[T](w64))
	cov := lowrank.WithInputCovariance(c)
	for _, m := range []lowrank.Method{lowrank.Exact, lowrank.Randomized} {
		for _, p := range []lowrank.Policy{lowrank.Rank(8), lowrank.Tolerance(0.1)} {
			t.Run(fmt.Sprintf("%v/%v", m, p), func(t *testing.T) {
				opts := []lowrank.Option{cov, lowrank.WithMethod(m), lowrank.WithSeed(3)}
				f := factorize(t, w, p, append(opts, lowrank.WithBackend(b))...)
				g := factorize(t, w, p, append(opts, lowrank.WithBackend(ref))...)
				if f.Rank != g.Rank || f.Method != g.Method {
					t.Fatalf("%s: rank %d (%v), %s: rank %d (%v)", b.Name(), f.Rank, f.Method, ref.Name(), g.Rank, g.Method)
				}
				if d := oracle.RelDiff(f.B.Data, g.B.Data); d > tol {
					t.Errorf("B differs by %.3g", d)
				}
				if d := oracle.RelDiff(f.A.Data, g.A.Data); d > tol {
					t.Errorf("A differs by %.3g", d)
				}
				if math.Abs(f.OutputRelError-g.OutputRelError) > tol || f.Ridge != g.Ridge {
					t.Errorf("output errors %.9g and %.9g, ridges %g and %g", f.OutputRelError, g.OutputRelError, f.Ridge, g.Ridge)
				}
			})
		}
	}
}
