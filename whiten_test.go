package lowrank_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/internal/testkit/oracle"
)

// calib is a data-aware test problem: W (d×k), n inputs X (n×k) and their
// second moment C = XᵀX/n, with the optimum computed from X.
type calib struct {
	d, k, n int
	w, x    []float64
	c       lowrank.Matrix[float64]
	out     []float64 // singular values of W·Xᵀ
}

// newCalib builds W with singular values sigma and inputs whose second
// moment has the eigenvalues eig (fewer than k: rank-deficient).
func newCalib(d, k, n int, sigma, eig []float64, seed uint64) calib {
	w := oracle.Spectrum("w", d, k, sigma, seed).W
	x := oracle.Inputs(n, k, eig, seed+1)
	c, _ := lowrank.NewMatrix(k, k, oracle.SecondMoment(n, k, x))
	return calib{d: d, k: k, n: n, w: w, x: x, c: c, out: oracle.OutputSpectrum(d, k, n, w, x)}
}

func (p calib) weight() lowrank.Matrix[float64] {
	w, _ := lowrank.NewMatrix(p.d, p.k, append([]float64(nil), p.w...))
	return w
}

// outErr is the output error of f on the inputs, computed in float64 from
// B and A as they are.
func outErr[T lowrank.Float](p calib, f *lowrank.Factors[T]) float64 {
	ba := oracle.Matmul(p.d, f.Rank, p.k, oracle.ToF64(f.B.Data), oracle.ToF64(f.A.Data))
	return oracle.OutputError(p.d, p.k, p.n, p.w, ba, p.x)
}

func mustFactorize[T lowrank.Float](t *testing.T, w lowrank.Matrix[T], p lowrank.Policy, opts ...lowrank.Option) *lowrank.Factors[T] {
	t.Helper()
	f, err := lowrank.Factorize(w, p, opts...)
	if err != nil {
		t.Fatalf("Factorize(%v): %v", p, err)
	}
	return f
}

// TestInputCovarianceOptimal: on inputs with a strongly anisotropic second
// moment (eigenvalues from 1 to 1e-6), the data-aware factors reach the
// optimum of ‖(W − M)·Xᵀ‖ over rank-r M, computed independently from the
// SVD of W·Xᵀ, to 1e-8 relative at every rank, never do worse than plain
// SVD, and report that error, and their weight error, correctly.
func TestInputCovarianceOptimal(t *testing.T) {
	p := newCalib(60, 40, 300, oracle.Decaying(40, 1), oracle.Geometric(40, 1e-6), 1)
	w := p.weight()
	cov := lowrank.WithInputCovariance(p.c)
	better := 0
	for r := 1; r < p.k; r++ {
		f := mustFactorize(t, w, lowrank.Rank(r), cov, lowrank.WithMethod(lowrank.Exact))
		plain := mustFactorize(t, w, lowrank.Rank(r), lowrank.WithMethod(lowrank.Exact))
		opt := oracle.EckartYoung(p.out, r)
		got, base := outErr(p, f), outErr(p, plain)
		if math.Abs(got-opt) > 1e-8*opt {
			t.Errorf("rank %d: output error %.12g; the optimum is %.12g (rel. diff %.2g)", r, got, opt, math.Abs(got-opt)/opt)
		}
		if math.Abs(f.OutputRelError-opt) > 1e-8*opt {
			t.Errorf("rank %d: reported output error %.12g; the optimum is %.12g", r, f.OutputRelError, opt)
		}
		if math.Abs(f.OutputEnergy-(1-opt*opt)) > 1e-12 {
			t.Errorf("rank %d: OutputEnergy %.12g; want %.12g", r, f.OutputEnergy, 1-opt*opt)
		}
		if got > base*(1+1e-12) {
			t.Errorf("rank %d: data-aware output error %.6g > plain %.6g", r, got, base)
		}
		if got < 0.9*base {
			better++
		}
		if we := weightErr(w, f); math.Abs(f.RelError-we) > 1e-10 {
			t.Errorf("rank %d: RelError %.12g; ‖W − B·A‖/‖W‖ = %.12g", r, f.RelError, we)
		}
		if f.Weighting != lowrank.WeightCovariance || f.Ridge != 0 || f.Rank != r {
			t.Errorf("rank %d: Weighting %v, Ridge %g, Rank %d; want covariance, 0, %d", r, f.Weighting, f.Ridge, f.Rank, r)
		}
		if plain.Weighting != lowrank.WeightNone || plain.OutputRelError != plain.RelError {
			t.Errorf("plain factors: Weighting %v, OutputRelError %g ≠ RelError %g", plain.Weighting, plain.OutputRelError, plain.RelError)
		}
	}
	// The problem is anisotropic enough that whitening pays at most ranks.
	if better < p.k/2 {
		t.Errorf("data-aware factors beat plain SVD by 10%% at only %d of %d ranks", better, p.k-1)
	}
}

func weightErr[T lowrank.Float](w lowrank.Matrix[T], f *lowrank.Factors[T]) float64 {
	ba := oracle.Matmul(f.B.Rows, f.Rank, f.A.Cols, oracle.ToF64(f.B.Data), oracle.ToF64(f.A.Data))
	return oracle.RelDiff(ba, oracle.ToF64(w.Data))
}

// TestInputCovarianceIdentity: C = I (and s = 1) give exactly the plain
// factors, on both methods, both splits and both float types.
func TestInputCovarianceIdentity(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testIdentity[float64](t) })
	t.Run("float32", func(t *testing.T) { testIdentity[float32](t) })
}

func testIdentity[T lowrank.Float](t *testing.T) {
	const d, k = 300, 280
	c := oracle.Spectrum("w", d, k, oracle.Decaying(k, 2), 5)
	w, _ := lowrank.NewMatrix(d, k, oracle.ToT[T](c.W))
	id, _ := lowrank.NewMatrix[float64](k, k, nil)
	ones := make([]float64, k)
	for i := range k {
		id.Set(i, i, 1)
		ones[i] = 1
	}
	for _, m := range []lowrank.Method{lowrank.Exact, lowrank.Randomized} {
		for _, s := range []lowrank.Split{lowrank.SplitUS, lowrank.SplitSqrt} {
			for _, pol := range []lowrank.Policy{lowrank.Rank(20), lowrank.Energy(0.9)} {
				opts := []lowrank.Option{lowrank.WithMethod(m), lowrank.WithSplit(s), lowrank.WithSeed(4)}
				plain := mustFactorize(t, w, pol, opts...)
				for _, in := range []lowrank.Option{lowrank.WithInputCovariance(id), lowrank.WithInputScale(ones)} {
					f := mustFactorize(t, w, pol, append(opts, in)...)
					name := fmt.Sprintf("%v/%v/%v/%v", m, s, pol, f.Weighting)
					if f.Rank != plain.Rank || f.Method != plain.Method {
						t.Fatalf("%s: rank %d (%v); plain rank %d (%v)", name, f.Rank, f.Method, plain.Rank, plain.Method)
					}
					if !equal(f.B.Data, plain.B.Data) || !equal(f.A.Data, plain.A.Data) || !equal(f.S, plain.S) {
						t.Errorf("%s: factors differ from plain SVD's (B %.3g, A %.3g)", name,
							oracle.RelDiff(f.B.Data, plain.B.Data), oracle.RelDiff(f.A.Data, plain.A.Data))
					}
					tol := 1e-12
					if _, single := any(T(0)).(float32); single {
						tol = 1e-5 // plain's error comes from the spectrum, ours from B·A
					}
					if math.Abs(f.OutputRelError-plain.RelError) > tol || math.Abs(f.RelError-plain.RelError) > tol || f.Ridge != 0 {
						t.Errorf("%s: OutputRelError %g, RelError %g, Ridge %g; plain RelError %g", name, f.OutputRelError, f.RelError, f.Ridge, plain.RelError)
					}
				}
			}
		}
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestInputCovarianceScaleFree: C and c·C give the same factors.
func TestInputCovarianceScaleFree(t *testing.T) {
	p := newCalib(30, 20, 100, oracle.Decaying(20, 1), oracle.Geometric(20, 1e-3), 2)
	c2, _ := lowrank.NewMatrix[float64](p.k, p.k, nil)
	for i, v := range p.c.Data {
		c2.Data[i] = v * 1e-200
	}
	f := mustFactorize(t, p.weight(), lowrank.Rank(5), lowrank.WithInputCovariance(p.c))
	g := mustFactorize(t, p.weight(), lowrank.Rank(5), lowrank.WithInputCovariance(c2))
	if d := oracle.RelDiff(f.A.Data, g.A.Data) + oracle.RelDiff(f.B.Data, g.B.Data); d > 1e-12 {
		t.Errorf("C and 1e-200·C give factors that differ by %.3g", d)
	}
}

// TestInputCovarianceSingular: inputs of rank 12 in 40 dimensions (fewer
// samples than dimensions too) give a singular C. The ridge is reported
// and small, the factors are finite and no larger than W (in unseen
// directions they keep a projection of W, not noise), and the output
// error matches the optimum and never exceeds plain SVD's.
func TestInputCovarianceSingular(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		eig  []float64
	}{
		{"rank12", 200, oracle.Geometric(12, 1e-2)},
		{"n<k", 25, oracle.Geometric(40, 1e-2)},
		{"ill-conditioned", 300, oracle.Geometric(40, 1e-15)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newCalib(50, 40, tc.n, oracle.Decaying(40, 1), tc.eig, 3)
			w := p.weight()
			cov := lowrank.WithInputCovariance(p.c)
			cmax := 0.0
			for i := range p.k {
				cmax = max(cmax, p.c.At(i, i))
			}
			wn, _ := w.Norm()
			for _, r := range []int{1, 3, 6, 10, 11, 20, 30} {
				f := mustFactorize(t, w, lowrank.Rank(r), cov)
				plain := mustFactorize(t, w, lowrank.Rank(r))
				if !(f.Ridge > 0 && f.Ridge < 1e-4*cmax) {
					t.Errorf("rank %d: ridge %g; want 0 < ridge < 1e-4·max Cᵢᵢ = %g", r, f.Ridge, 1e-4*cmax)
				}
				ba, err := f.Reconstruct()
				if err != nil {
					t.Fatal(err)
				}
				if n, err := ba.Norm(); err != nil || n > wn*(1+1e-6) {
					t.Errorf("rank %d: ‖B·A‖ = %g (%v); want ≤ ‖W‖ = %g", r, n, err, wn)
				}
				opt := oracle.EckartYoung(p.out, r)
				got, base := outErr(p, f), outErr(p, plain)
				if got > base*(1+1e-9)+1e-12 {
					t.Errorf("rank %d: output error %.6g > plain %.6g", r, got, base)
				}
				if got > opt+1e-6 {
					t.Errorf("rank %d: output error %.9g; the optimum is %.9g", r, got, opt)
				}
				if math.Abs(f.OutputRelError-got) > 1e-6 {
					t.Errorf("rank %d: reported output error %.9g; measured %.9g", r, f.OutputRelError, got)
				}
			}
		})
	}
}

// TestInputCovarianceRandomized: the randomized method on W·L stays within
// 1% of the optimal output error on decaying spectra, for fixed ranks and
// the adaptive policies.
func TestInputCovarianceRandomized(t *testing.T) {
	p := newCalib(400, 300, 600, oracle.Decaying(300, 5), oracle.Geometric(300, 1e-4), 4)
	w := p.weight()
	cov := lowrank.WithInputCovariance(p.c)
	for _, r := range []int{5, 20, 60} {
		f := mustFactorize(t, w, lowrank.Rank(r), cov, lowrank.WithMethod(lowrank.Randomized), lowrank.WithSeed(9))
		if f.Method != lowrank.Randomized {
			t.Fatalf("rank %d ran %v", r, f.Method)
		}
		opt := oracle.EckartYoung(p.out, r)
		got := outErr(p, f)
		if got > 1.01*opt {
			t.Errorf("rank %d: randomized output error %.6g; optimum %.6g (%.2f%% above)", r, got, opt, 100*(got/opt-1))
		}
		if math.Abs(f.OutputRelError-got) > 1e-7 {
			t.Errorf("rank %d: reported %.9g; measured %.9g", r, f.OutputRelError, got)
		}
	}
	for _, pol := range []lowrank.Policy{lowrank.Tolerance(0.05), lowrank.Energy(0.999)} {
		for _, m := range []lowrank.Method{lowrank.Exact, lowrank.Randomized, lowrank.Auto} {
			f := mustFactorize(t, w, pol, cov, lowrank.WithMethod(m))
			got := outErr(p, f)
			// The smallest rank whose optimal output error meets the target.
			want := 1
			for oracle.EckartYoung(p.out, want) > target(pol) {
				want++
			}
			if got > target(pol)*(1+1e-6) {
				t.Errorf("%v %v: output error %.6g above the target %g", pol, m, got, target(pol))
			}
			if f.Rank < want || f.Rank > want+2 {
				t.Errorf("%v %v: rank %d; the optimal rank is %d", pol, m, f.Rank, want)
			}
		}
	}
}

// target is the output error a Tolerance or Energy policy allows.
func target(p lowrank.Policy) float64 {
	var v float64
	if _, err := fmt.Sscanf(p.String(), "tol=%g", &v); err == nil {
		return v
	}
	fmt.Sscanf(p.String(), "energy=%g", &v)
	return math.Sqrt(1 - v)
}

// TestInputCovarianceFloat32: float32 W gets the float64 answer to
// float32 accuracy, also with a badly conditioned C.
func TestInputCovarianceFloat32(t *testing.T) {
	for _, last := range []float64{1e-4, 1e-12} {
		p := newCalib(80, 60, 300, oracle.Decaying(60, 1), oracle.Geometric(60, last), 6)
		w32, _ := lowrank.NewMatrix(p.d, p.k, oracle.ToT[float32](p.w))
		for _, r := range []int{4, 15, 30} {
			f := mustFactorize(t, w32, lowrank.Rank(r), lowrank.WithInputCovariance(p.c))
			opt := oracle.EckartYoung(p.out, r)
			if got := outErr(p, f); math.Abs(got-opt) > 1e-4*opt+1e-6 {
				t.Errorf("eig ≥ %g, rank %d: float32 output error %.7g; optimum %.7g", last, r, got, opt)
			}
			if math.Abs(f.OutputRelError-opt) > 1e-4*opt+1e-6 {
				t.Errorf("eig ≥ %g, rank %d: reported %.7g; optimum %.7g", last, r, f.OutputRelError, opt)
			}
			// B·A = P·W for a projection P: rounding magnified in the
			// directions the inputs barely reach must stay small.
			ba, _ := f.Reconstruct()
			bn, _ := ba.Norm()
			wn, _ := w32.Norm()
			t.Logf("eig ≥ %g, rank %d: ‖B·A‖/‖W‖ = %.6g, ridge %g", last, r, bn/wn, f.Ridge)
			if bn > 1.01*wn {
				t.Errorf("eig ≥ %g, rank %d: ‖B·A‖ = %.6g·‖W‖; want ≤ ‖W‖", last, r, bn/wn)
			}
		}
	}
}

// TestInputCovarianceSplit: SplitSqrt shares the scale differently, not
// the product.
func TestInputCovarianceSplit(t *testing.T) {
	p := newCalib(30, 25, 100, oracle.Decaying(25, 1), oracle.Geometric(25, 1e-4), 7)
	cov := lowrank.WithInputCovariance(p.c)
	f := mustFactorize(t, p.weight(), lowrank.Rank(6), cov)
	g := mustFactorize(t, p.weight(), lowrank.Rank(6), cov, lowrank.WithSplit(lowrank.SplitSqrt))
	fb, _ := f.Reconstruct()
	gb, _ := g.Reconstruct()
	if d := oracle.RelDiff(gb.Data, fb.Data); d > 1e-12 {
		t.Errorf("SplitSqrt's B·A differs from SplitUS's by %.3g", d)
	}
}

// TestInputScale: WithInputScale reaches the optimum of
// ‖(W − M)·diag(s)‖ (the SVD of W·diag(s), computed by gonum) and beats
// plain SVD in that measure.
func TestInputScale(t *testing.T) {
	const d, k = 50, 40
	c := oracle.Spectrum("w", d, k, oracle.Decaying(k, 1), 8)
	w, _ := lowrank.NewMatrix(d, k, c.W)
	s := make([]float64, k)
	ws := make([]float64, d*k)
	for j := range k {
		s[j] = math.Pow(10, -3*float64(j%7)/6) // 1 … 1e-3
	}
	for i := range d {
		for j := range k {
			ws[i*k+j] = c.W[i*k+j] * s[j]
		}
	}
	sigma := oracle.SVD(d, k, ws)
	scaledErr := func(f *lowrank.Factors[float64]) float64 {
		ba := oracle.Matmul(d, f.Rank, k, f.B.Data, f.A.Data)
		for i := range d {
			for j := range k {
				ba[i*k+j] *= s[j]
			}
		}
		return oracle.RelDiff(ba, ws)
	}
	for _, r := range []int{1, 5, 10, 20, 39} {
		f := mustFactorize(t, w, lowrank.Rank(r), lowrank.WithInputScale(s))
		plain := mustFactorize(t, w, lowrank.Rank(r))
		opt := oracle.EckartYoung(sigma, r)
		got := scaledErr(f)
		if math.Abs(got-opt) > 1e-9*opt || math.Abs(f.OutputRelError-opt) > 1e-9*opt {
			t.Errorf("rank %d: scaled error %.12g (reported %.12g); optimum %.12g", r, got, f.OutputRelError, opt)
		}
		if base := scaledErr(plain); got > base*(1+1e-12) {
			t.Errorf("rank %d: scaled error %.6g > plain %.6g", r, got, base)
		}
		if f.Weighting != lowrank.WeightScale {
			t.Errorf("Weighting %v", f.Weighting)
		}
	}
}

// TestInputStatsErrors: every bad C or s is a lowrank: error that says
// what was expected, wrapping the right sentinel.
func TestInputStatsErrors(t *testing.T) {
	w, _ := lowrank.NewMatrix(4, 3, []float64{1, 2, 3, 4, 5, 6, 7, 8, 10, 1, 0, 1})
	mat := func(k int, v ...float64) lowrank.Matrix[float64] {
		return lowrank.Matrix[float64]{Rows: k, Cols: k, Data: v}
	}
	good := mat(3, 2, 1, 0, 1, 2, 0, 0, 0, 1)
	for _, tc := range []struct {
		name string
		opts []lowrank.Option
		is   error
		says string
	}{
		{"size", []lowrank.Option{lowrank.WithInputCovariance(mat(2, 1, 0, 0, 1))}, lowrank.ErrShape, "expected 3×3"},
		{"data", []lowrank.Option{lowrank.WithInputCovariance(lowrank.Matrix[float64]{Rows: 3, Cols: 3, Data: make([]float64, 8)})}, lowrank.ErrShape, "C has 8 values"},
		{"nan", []lowrank.Option{lowrank.WithInputCovariance(mat(3, 2, 1, 0, 1, math.NaN(), 0, 0, 0, 1))}, lowrank.ErrNonFinite, "C[1,1] is NaN"},
		{"inf", []lowrank.Option{lowrank.WithInputCovariance(mat(3, 2, 1, 0, 1, 2, 0, math.Inf(1), 0, 1))}, lowrank.ErrNonFinite, "C[2,0] is +Inf"},
		{"asymmetric", []lowrank.Option{lowrank.WithInputCovariance(mat(3, 2, 1, 0, 0.5, 2, 0, 0, 0, 1))}, lowrank.ErrOption, "not symmetric: C[1,0] = 0.5 but C[0,1] = 1"},
		{"negative eigenvalue", []lowrank.Option{lowrank.WithInputCovariance(mat(3, 1, 2, 0, 2, 1, 0, 0, 0, 1))}, lowrank.ErrOption, "negative eigenvalue -1"},
		{"negative diagonal", []lowrank.Option{lowrank.WithInputCovariance(mat(3, 1, 0, 0, 0, -1, 0, 0, 0, 1))}, lowrank.ErrOption, "C[1,1] = -1 is negative"},
		{"zero", []lowrank.Option{lowrank.WithInputCovariance(mat(3, 0, 0, 0, 0, 0, 0, 0, 0, 0))}, lowrank.ErrOption, "no positive diagonal entry"},
		{"negative definite", []lowrank.Option{lowrank.WithInputCovariance(mat(3, -2, 0, 0, 0, -1, 0, 0, 0, -3))}, lowrank.ErrOption, "C[0,0] = -2 is negative"},
		{"scale length", []lowrank.Option{lowrank.WithInputScale([]float64{1, 2})}, lowrank.ErrShape, "length 2; expected 3"},
		{"scale zero", []lowrank.Option{lowrank.WithInputScale([]float64{1, 0, 2})}, lowrank.ErrOption, "s[1] = 0; expected positive"},
		{"scale nan", []lowrank.Option{lowrank.WithInputScale([]float64{1, math.NaN(), 2})}, lowrank.ErrNonFinite, "s[1] is NaN"},
		{"both", []lowrank.Option{lowrank.WithInputCovariance(good), lowrank.WithInputScale([]float64{1, 1, 1})}, lowrank.ErrOption, "expected one of them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lowrank.Factorize(w, lowrank.Rank(1), tc.opts...)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.is) || !strings.HasPrefix(err.Error(), "lowrank: ") || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q; want one wrapping %v that says %q", err, tc.is, tc.says)
			}
			// Bad contents of C or s, and only those, are ErrInputStats.
			if stats := tc.is == lowrank.ErrOption && tc.name != "both"; errors.Is(err, lowrank.ErrInputStats) != stats {
				t.Errorf("error %q: errors.Is(ErrInputStats) = %v; want %v", err, !stats, stats)
			}
		})
	}
	if _, err := lowrank.SVD(w, lowrank.WithInputCovariance(good)); !errors.Is(err, lowrank.ErrOption) {
		t.Errorf("SVD with WithInputCovariance: %v; want ErrOption", err)
	}
	// Rounding-level asymmetry and negative eigenvalues are accepted.
	near := mat(3, 1, 0.5+1e-12, 0, 0.5, 1, 0, 0, 0, 0)
	f, err := lowrank.Factorize(w, lowrank.Rank(1), lowrank.WithInputCovariance(near))
	if err != nil || !(f.Ridge > 0) {
		t.Errorf("C within rounding of a singular PSD matrix: %v, ridge %v; want success with a ridge", err, f)
	}
}

// TestInputCovarianceMemory: EstimateMemory counts the whitening and
// refuses a C of the wrong size, as Factorize does.
func TestInputCovarianceMemory(t *testing.T) {
	c, _ := lowrank.NewMatrix[float64](300, 300, nil)
	plain, err := lowrank.EstimateMemory(500, 300, 4, lowrank.Rank(20))
	if err != nil {
		t.Fatal(err)
	}
	aware, err := lowrank.EstimateMemory(500, 300, 4, lowrank.Rank(20), lowrank.WithInputCovariance(c))
	if err != nil {
		t.Fatal(err)
	}
	// At least W·L (500×300 float32) and L (300×300 float64) more.
	if aware.Bytes < plain.Bytes+4*500*300+8*300*300 {
		t.Errorf("estimate with a covariance %d bytes; without %d", aware.Bytes, plain.Bytes)
	}
	shape := lowrank.Matrix[float64]{Rows: 300, Cols: 300} // no data: the estimate reads the shape only
	if e, err := lowrank.EstimateMemory(500, 300, 4, lowrank.Rank(20), lowrank.WithInputCovariance(shape)); err != nil || e != aware {
		t.Errorf("estimate with a C of shape only: %v, %v; want %v", e, err, aware)
	}
	if _, err := lowrank.EstimateMemory(500, 200, 4, lowrank.Rank(20), lowrank.WithInputCovariance(c)); !errors.Is(err, lowrank.ErrShape) {
		t.Errorf("C 300×300 for k = 200: %v; want ErrShape", err)
	}
}

// BenchmarkInputCovariance: a 2048×2048 float32 W with a 2048×2048 C, rank
// 256 randomized, against the same without C (the whitening's cost: the
// Cholesky factorization, W·L and the solve).
func BenchmarkInputCovariance(b *testing.B) {
	const d, k = 2048, 2048
	w64 := oracle.Gaussian("w", d, k, 1).W
	w, _ := lowrank.NewMatrix(d, k, oracle.ToT[float32](w64))
	x := oracle.Gaussian("x", 2*k, k, 2).W
	for j := range k { // anisotropic channels
		s := math.Pow(10, -3*float64(j)/float64(k))
		for i := range 2 * k {
			x[i*k+j] *= s
		}
	}
	c, _ := lowrank.NewMatrix(k, k, oracle.SecondMoment(2*k, k, x))
	for _, tc := range []struct {
		name string
		opts []lowrank.Option
	}{{"plain", nil}, {"covariance", []lowrank.Option{lowrank.WithInputCovariance(c)}}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				// A new option each time: the factorization of C is counted.
				opts := tc.opts
				if opts != nil {
					opts = []lowrank.Option{lowrank.WithInputCovariance(c)}
				}
				if _, err := lowrank.Factorize(w, lowrank.Rank(256), append(opts, lowrank.WithMethod(lowrank.Randomized))...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestInputCovarianceBlocked: the blocked Cholesky factorization and
// solve (blocks of 7 columns for k = 40, so that the last block is
// partial) give the unblocked answer, on the CPU and on every backend the
// suite runs.
func TestInputCovarianceBlocked(t *testing.T) {
	p := newCalib(60, 40, 300, oracle.Decaying(40, 1), oracle.Geometric(40, 1e-6), 1)
	sing := newCalib(50, 40, 200, oracle.Decaying(40, 1), oracle.Geometric(12, 1e-2), 3)
	for _, q := range []calib{p, sing} {
		want := mustFactorize(t, q.weight(), lowrank.Rank(9), lowrank.WithInputCovariance(q.c))
		restore := lowrank.SetCholBlock(7)
		got := mustFactorize(t, q.weight(), lowrank.Rank(9), lowrank.WithInputCovariance(q.c))
		restore()
		if d := oracle.RelDiff(got.A.Data, want.A.Data) + oracle.RelDiff(got.B.Data, want.B.Data); d > 1e-9 || got.Ridge != want.Ridge {
			t.Errorf("blocked factors differ by %.3g (ridge %g, unblocked %g)", d, got.Ridge, want.Ridge)
		}
		if math.Abs(outErr(q, got)-outErr(q, want)) > 1e-12 {
			t.Errorf("blocked output error %.15g; unblocked %.15g", outErr(q, got), outErr(q, want))
		}
	}
}

// TestInputCovarianceConcurrent: one option shared by goroutines that
// factorize different weights at once (C is factorized once, under a
// lock) gives each the answer it gets alone.
func TestInputCovarianceConcurrent(t *testing.T) {
	p := newCalib(40, 30, 100, oracle.Decaying(30, 1), oracle.Geometric(30, 1e-3), 11)
	cov := lowrank.WithInputCovariance(p.c)
	want := mustFactorize(t, p.weight(), lowrank.Rank(5), lowrank.WithInputCovariance(p.c))
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := lowrank.Factorize(p.weight(), lowrank.Rank(5), cov)
			if err != nil {
				errs <- err.Error()
				return
			}
			if d := oracle.RelDiff(f.A.Data, want.A.Data); d > 1e-12 {
				errs <- fmt.Sprintf("A differs by %.3g", d)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestInputMoments: with the inputs' mean, the factors and BiasShift
// reach the optimum of min over rank-r M and a bias change δ of
// ‖(W − M)·Xᵀ + δ·1ᵀ‖, computed independently from the SVD of W·(X − μ)ᵀ,
// and beat WithInputCovariance (the uncentred whitening) in that measure.
func TestInputMoments(t *testing.T) {
	const d, k, n = 50, 40, 300
	w := oracle.Spectrum("w", d, k, oracle.Decaying(k, 1), 12).W
	x := oracle.Inputs(n, k, oracle.Geometric(k, 1e-4), 13)
	mu := make([]float64, k)
	for j := range k { // a large mean, as after a ReLU
		mu[j] = 2 + math.Sin(float64(j))
	}
	for i := range n {
		for j := range k {
			x[i*k+j] += mu[j]
		}
	}
	for j := range k { // μ of the data itself
		mu[j] = 0
		for i := range n {
			mu[j] += x[i*k+j] / n
		}
	}
	xc := make([]float64, n*k)
	for i := range n {
		for j := range k {
			xc[i*k+j] = x[i*k+j] - mu[j]
		}
	}
	c, _ := lowrank.NewMatrix(k, k, oracle.SecondMoment(n, k, x))
	wm, _ := lowrank.NewMatrix(d, k, append([]float64(nil), w...))
	out := oracle.OutputSpectrum(d, k, n, w, xc)
	// ‖(W − B·A)·Xᵀ − shift·1ᵀ‖ / ‖W·Xcᵀ‖: the layer's output error once
	// the bias has absorbed shift.
	centredErr := func(f *lowrank.Factors[float64], shift []float64) float64 {
		ba := oracle.Matmul(d, f.Rank, k, f.B.Data, f.A.Data)
		var num, den float64
		for i := range n {
			for r := range d {
				var e, y float64
				for j := range k {
					e += (w[r*k+j] - ba[r*k+j]) * x[i*k+j]
					y += w[r*k+j] * xc[i*k+j]
				}
				e -= shift[r]
				num += e * e
				den += y * y
			}
		}
		return math.Sqrt(num / den)
	}
	for _, r := range []int{1, 4, 10, 25} {
		f := mustFactorize(t, wm, lowrank.Rank(r), lowrank.WithInputMoments(c, mu))
		g := mustFactorize(t, wm, lowrank.Rank(r), lowrank.WithInputCovariance(c))
		opt := oracle.EckartYoung(out, r)
		if len(f.BiasShift) != d {
			t.Fatalf("BiasShift has length %d; want %d", len(f.BiasShift), d)
		}
		got := centredErr(f, f.BiasShift)
		if math.Abs(got-opt) > 1e-8*opt || math.Abs(f.OutputRelError-opt) > 1e-8*opt {
			t.Errorf("rank %d: centred output error %.12g (reported %.12g); optimum %.12g", r, got, f.OutputRelError, opt)
		}
		// The uncentred factors, even with the best bias change for them.
		gShift := make([]float64, d)
		gba := oracle.Matmul(d, r, k, g.B.Data, g.A.Data)
		for i := range d {
			for j := range k {
				gShift[i] += (w[i*k+j] - gba[i*k+j]) * mu[j]
			}
		}
		if base := centredErr(g, gShift); got > base*(1+1e-12) {
			t.Errorf("rank %d: with the mean %.6g; without %.6g", r, got, base)
		}
		if g.BiasShift != nil {
			t.Errorf("WithInputCovariance set BiasShift")
		}
	}
	for _, tc := range []struct {
		mean []float64
		is   error
		says string
	}{
		{mu[:3], lowrank.ErrShape, "mean μ has length 3; expected 40"},
		{append([]float64{math.NaN()}, mu[1:]...), lowrank.ErrNonFinite, "mean[0] is NaN"},
		{append([]float64{100}, mu[1:]...), lowrank.ErrInputStats, "C − μμᵀ has a negative diagonal entry at [0,0]"},
	} {
		_, err := lowrank.Factorize(wm, lowrank.Rank(2), lowrank.WithInputMoments(c, tc.mean))
		if !errors.Is(err, tc.is) || !strings.Contains(fmt.Sprint(err), tc.says) {
			t.Errorf("error %v; want %v saying %q", err, tc.is, tc.says)
		}
	}
}
