// Package testlowrank is the API-level conformance suite: Run exercises a
// lowrank.Backend through the public API (SVD, Factorize exact and
// randomized with every policy and split, Apply, the products) on every
// matrix class of oracle.Cases, in float64 and float32, after the
// engine-level suite (testla) on its engines; CrossCheck compares two
// backends on the same inputs.
package testlowrank

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/internal/testkit/oracle"
	"github.com/lowrank-go/lowrank/internal/testkit/testla"
)

// Run runs the whole conformance suite on b: the engine primitives, then
// SVD, Factorize (exact and randomized, every policy, both splits) and
// Apply on every matrix of oracle.Cases, in float64 and float32, each result
// checked against the oracle, and data-aware factorization (whiten.go).
func Run(t *testing.T, b lowrank.Backend) {
	if err := b.Init(); err != nil {
		t.Fatalf("backend %s: %v", b.Name(), err)
	}
	t.Run("engine/float64", func(t *testing.T) { testla.EngineTest(t, b.Float64()) })
	t.Run("engine/float32", func(t *testing.T) { testla.EngineTest(t, b.Float32()) })
	t.Run("float64", func(t *testing.T) { runCases[float64](t, b) })
	t.Run("float32", func(t *testing.T) { runCases[float32](t, b) })
	t.Run("whitened/float64", func(t *testing.T) { checkWhitened[float64](t, b) }) // whiten.go
	t.Run("whitened/float32", func(t *testing.T) { checkWhitened[float32](t, b) })
}

// tolerances of one float type.
type tols struct {
	vec  float64 // orthonormality, reconstruction, Apply
	ey   float64 // |reported error − Eckart–Young bound|, relative part
	eyAb float64 // … and absolute floor
	rnd  float64 // absolute tolerance of the randomized error report
}

func tolsOf[T lowrank.Float]() tols {
	var z T
	if _, ok := any(z).(float32); ok {
		return tols{vec: 2e-5, ey: 1e-4, eyAb: 2e-5, rnd: 1e-3}
	}
	return tols{vec: 1e-11, ey: 1e-10, eyAb: 1e-10, rnd: 1e-7}
}

func matrixOf[T lowrank.Float](t *testing.T, c oracle.Case) (lowrank.Matrix[T], []float64) {
	t.Helper()
	w, err := lowrank.NewMatrix(c.D, c.K, oracle.ToT[T](c.W))
	if err != nil {
		t.Fatal(err)
	}
	// The oracle sees exactly the (possibly rounded) matrix the backend
	// sees.
	return w, oracle.SVD(c.D, c.K, oracle.ToF64(w.Data))
}

func runCases[T lowrank.Float](t *testing.T, b lowrank.Backend) {
	for _, c := range oracle.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			w, sigma := matrixOf[T](t, c)
			checkSVD(t, b, w, sigma)
			n := min(c.D, c.K)
			for _, r := range uniq(1, n/2, numRank(sigma), n) {
				f := factorize(t, w, lowrank.Rank(r), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Exact))
				checkFactors(t, w, sigma, f, true)
			}
			checkProducts(t, b, w, factorize(t, w, lowrank.Rank(max(1, n/2)), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Exact)))
			checkDense(t, b, w)
			checkSplits(t, b, w, sigma)
			checkPolicies(t, b, w, sigma, lowrank.Exact)
			if n >= 20 {
				checkPolicies(t, b, w, sigma, lowrank.Randomized)
				checkRandomized(t, b, w, sigma)
			}
		})
	}
}

func uniq(rs ...int) []int {
	var out []int
	seen := map[int]bool{}
	for _, r := range rs {
		if r >= 1 && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// numRank is the numerical rank of the oracle spectrum.
func numRank(s []float64) int {
	n := 0
	for _, v := range s {
		if v > 1e-9*s[0] {
			n++
		}
	}
	return n
}

func factorize[T lowrank.Float](t *testing.T, w lowrank.Matrix[T], p lowrank.Policy, opts ...lowrank.Option) *lowrank.Factors[T] {
	t.Helper()
	f, err := lowrank.Factorize(w, p, opts...)
	if err != nil {
		t.Fatalf("Factorize(%v): %v", p, err)
	}
	// Apply keeps the factors on the device until Close.
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

// actualError returns ‖W − B·A‖_F / ‖W‖_F computed in float64.
func actualError[T lowrank.Float](w lowrank.Matrix[T], f *lowrank.Factors[T]) float64 {
	ba := oracle.Matmul(f.B.Rows, f.Rank, f.A.Cols, oracle.ToF64(f.B.Data), oracle.ToF64(f.A.Data))
	return oracle.RelDiff(ba, oracle.ToF64(w.Data))
}

func checkSVD[T lowrank.Float](t *testing.T, b lowrank.Backend, w lowrank.Matrix[T], sigma []float64) {
	t.Helper()
	tol := tolsOf[T]()
	res, err := lowrank.SVD(w, lowrank.WithBackend(b))
	if err != nil {
		t.Fatalf("SVD: %v", err)
	}
	p := min(w.Rows, w.Cols)
	if res.U.Rows != w.Rows || res.U.Cols != p || len(res.S) != p || res.Vt.Rows != p || res.Vt.Cols != w.Cols {
		t.Fatalf("SVD shapes U %d×%d S %d Vt %d×%d for W %d×%d", res.U.Rows, res.U.Cols, len(res.S), res.Vt.Rows, res.Vt.Cols, w.Rows, w.Cols)
	}
	if d := oracle.RelDiff(res.S, sigma); d > tol.vec {
		t.Errorf("SVD singular values differ from the oracle by %.3g", d)
	}
	oracle.CheckOrthonormalColumns(t, "U", w.Rows, p, oracle.ToF64(res.U.Data), tol.vec)
	oracle.CheckOrthonormalColumns(t, "V", w.Cols, p, oracle.Transpose(p, w.Cols, oracle.ToF64(res.Vt.Data)), tol.vec)
	us := oracle.ToF64(res.U.Data)
	for i := range w.Rows {
		for j := range p {
			us[i*p+j] *= float64(res.S[j])
		}
	}
	if d := oracle.RelDiff(oracle.Matmul(w.Rows, p, w.Cols, us, oracle.ToF64(res.Vt.Data)), oracle.ToF64(w.Data)); d > tol.vec {
		t.Errorf("U·S·Vt differs from W by %.3g", d)
	}
}

// checkFactors checks one factorization: shapes, finiteness, the reported
// error against the Eckart–Young bound and against ‖W − B·A‖, the
// orthonormality of U and V, and Apply against the dense layer.
func checkFactors[T lowrank.Float](t *testing.T, w lowrank.Matrix[T], sigma []float64, f *lowrank.Factors[T], exact bool) {
	t.Helper()
	tol := tolsOf[T]()
	d, k, r := w.Rows, w.Cols, f.Rank
	if f.B.Rows != d || f.B.Cols != r || f.A.Rows != r || f.A.Cols != k || len(f.S) != r {
		t.Fatalf("factors B %d×%d A %d×%d S %d for W %d×%d rank %d", f.B.Rows, f.B.Cols, f.A.Rows, f.A.Cols, len(f.S), d, k, r)
	}
	for _, v := range [][]float64{oracle.ToF64(f.B.Data), oracle.ToF64(f.A.Data), f.S} {
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Fatalf("factors hold %v", x)
			}
		}
	}
	if f.Params() != r*(d+k) || f.DenseParams() != d*k || f.BreakEven() != (r*(d+k) >= d*k) {
		t.Errorf("Params %d DenseParams %d BreakEven %v for %d×%d rank %d", f.Params(), f.DenseParams(), f.BreakEven(), d, k, r)
	}
	ey := oracle.EckartYoung(sigma, r)
	actual := actualError(w, f)
	if exact {
		if math.Abs(f.RelError-ey) > tol.ey*ey+tol.eyAb {
			t.Errorf("rank %d: reported error %.12g, Eckart–Young bound %.12g", r, f.RelError, ey)
		}
		if math.Abs(actual-ey) > tol.ey*ey+tol.eyAb+tol.vec {
			t.Errorf("rank %d: ‖W−BA‖/‖W‖ = %.12g, Eckart–Young bound %.12g", r, actual, ey)
		}
		if math.Abs(f.Energy-(1-ey*ey)) > tol.ey+tol.eyAb {
			t.Errorf("rank %d: energy %.12g, want %.12g", r, f.Energy, 1-ey*ey)
		}
	} else if math.Abs(f.RelError-actual) > tol.rnd+tol.ey*actual {
		t.Errorf("rank %d (%v): reported error %.9g, actual %.9g", r, f.Method, f.RelError, actual)
	}
	// U = B·S⁻¹ and V = Aᵀ have orthonormal columns (split US), for the
	// singular values that are not negligible.
	if f.Split == lowrank.SplitUS && len(sigma) > 0 && sigma[0] > 0 {
		keep := 0
		for _, s := range f.S {
			if float64(s) > 1e-6*sigma[0] {
				keep++
			}
		}
		u := make([]float64, d*keep)
		for i := range d {
			for j := range keep {
				u[i*keep+j] = float64(f.B.At(i, j)) / float64(f.S[j])
			}
		}
		oracle.CheckOrthonormalColumns(t, "U_r", d, keep, u, tol.vec*10)
		oracle.CheckOrthonormalColumns(t, "V_r", k, keep, oracle.Transpose(keep, k, oracle.ToF64(f.A.Data[:keep*k])), tol.vec*10)
	}
	checkApply(t, w, f)
}

// checkApply compares Apply, ApplyTo and ApplyBatch with the dense layer
// W·x + bias; the difference may not exceed the factors' own error.
func checkApply[T lowrank.Float](t *testing.T, w lowrank.Matrix[T], f *lowrank.Factors[T]) {
	t.Helper()
	tol := tolsOf[T]()
	rng := rand.New(rand.NewPCG(uint64(w.Rows), uint64(w.Cols)))
	const n = 5
	x := make([]T, n*w.Cols)
	for i := range x {
		x[i] = T(rng.NormFloat64())
	}
	bias := make([]T, w.Rows)
	for i := range bias {
		bias[i] = T(rng.NormFloat64() * scaleOf(w.Data))
	}
	ba := oracle.Matmul(f.B.Rows, f.Rank, f.A.Cols, oracle.ToF64(f.B.Data), oracle.ToF64(f.A.Data))
	want := oracle.Matmul(n, w.Cols, w.Rows, oracle.ToF64(x), oracle.Transpose(w.Rows, w.Cols, ba))
	for i := range n {
		for j := range w.Rows {
			want[i*w.Rows+j] += float64(bias[j])
		}
	}
	y, err := f.Apply(x[:w.Cols], bias)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if d := oracle.RelDiff(y, want[:w.Rows]); d > tol.vec*10 {
		t.Errorf("Apply differs from B·A·x + bias by %.3g", d)
	}
	xm, _ := lowrank.NewMatrix(n, w.Cols, x)
	ym, err := f.ApplyBatch(xm, bias)
	if err != nil {
		t.Fatalf("ApplyBatch: %v", err)
	}
	if d := oracle.RelDiff(ym.Data, want); d > tol.vec*10 {
		t.Errorf("ApplyBatch differs from X·(B·A)ᵀ + bias by %.3g", d)
	}
}

// checkDense checks the dense layer W·x + bias on b (Apply, ApplyBatch,
// and again after Close) against float64 loops.
func checkDense[T lowrank.Float](t *testing.T, b lowrank.Backend, w lowrank.Matrix[T]) {
	t.Helper()
	tol := tolsOf[T]().vec * 10
	m, err := lowrank.NewDense(w)
	if err != nil {
		t.Fatalf("NewDense: %v", err)
	}
	m.Backend = b
	defer func() {
		if err := m.Close(); err != nil {
			t.Errorf("Dense.Close: %v", err)
		}
	}()
	rng := rand.New(rand.NewPCG(uint64(w.Cols), uint64(w.Rows)))
	const n = 4
	x := make([]T, n*w.Cols)
	for i := range x {
		x[i] = T(rng.NormFloat64())
	}
	bias := make([]T, w.Rows)
	for i := range bias {
		bias[i] = T(rng.NormFloat64() * scaleOf(w.Data))
	}
	want := oracle.Matmul(n, w.Cols, w.Rows, oracle.ToF64(x), oracle.Transpose(w.Rows, w.Cols, oracle.ToF64(w.Data)))
	for i := range n {
		for j := range w.Rows {
			want[i*w.Rows+j] += float64(bias[j])
		}
	}
	for round := range 2 { // the second after Close: prepared again
		y, err := m.Apply(x[:w.Cols], bias)
		if err != nil {
			t.Fatalf("Dense.Apply: %v", err)
		}
		if d := oracle.RelDiff(y, want[:w.Rows]); d > tol {
			t.Errorf("Dense.Apply (round %d) differs from W·x + bias by %.3g", round, d)
		}
		xm, _ := lowrank.NewMatrix(n, w.Cols, x)
		ym, err := m.ApplyBatch(xm, bias)
		if err != nil {
			t.Fatalf("Dense.ApplyBatch: %v", err)
		}
		if d := oracle.RelDiff(ym.Data, want); d > tol {
			t.Errorf("Dense.ApplyBatch (round %d) differs from X·Wᵀ + bias by %.3g", round, d)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("Dense.Close: %v", err)
		}
	}
}

// checkProducts checks the products of f with dense matrices on b
// (Reconstruct, AddTo, AddTransposedTo, Residual) against float64 loops.
func checkProducts[T lowrank.Float](t *testing.T, b lowrank.Backend, w lowrank.Matrix[T], f *lowrank.Factors[T]) {
	t.Helper()
	tol := tolsOf[T]().vec * 10
	if f.Backend != b {
		t.Fatalf("Factors.Backend = %v; want the backend given", f.Backend)
	}
	d, k := w.Rows, w.Cols
	ba := oracle.Matmul(d, f.Rank, k, oracle.ToF64(f.B.Data), oracle.ToF64(f.A.Data))
	scale := scaleOf(w.Data)
	rec, err := f.Reconstruct()
	if err != nil {
		t.Fatalf("Reconstruct: %v", err)
	}
	if e := oracle.RelDiff(rec.Data, ba); e > tol {
		t.Errorf("Reconstruct: relative difference %.3g from B·A", e)
	}
	// W − B·A, computed by AddTo with alpha = −1, and its norm by Residual.
	diff := lowrank.Matrix[T]{Rows: d, Cols: k, Data: append([]T(nil), w.Data...)}
	if err := f.AddTo(diff, -1); err != nil {
		t.Fatalf("AddTo: %v", err)
	}
	var want float64
	for i, v := range w.Data {
		x := (float64(v) - ba[i]) / scale
		want += x * x
		if got := float64(diff.Data[i]); math.Abs(got-(float64(v)-ba[i])) > tol*scale {
			t.Fatalf("AddTo: (W − B·A)[%d] = %v, want %v", i, got, float64(v)-ba[i])
		}
	}
	want = math.Sqrt(want) * scale
	res, err := f.Residual(w)
	if err != nil {
		t.Fatalf("Residual: %v", err)
	}
	if math.Abs(res-want) > tol*scale*math.Sqrt(float64(d*k)) {
		t.Errorf("Residual = %.6g, want %.6g", res, want)
	}
	// Wᵀ + (B·A)ᵀ by AddTransposedTo.
	wt := lowrank.Matrix[T]{Rows: k, Cols: d, Data: oracle.ToT[T](oracle.Transpose(d, k, oracle.ToF64(w.Data)))}
	if err := f.AddTransposedTo(wt, 1); err != nil {
		t.Fatalf("AddTransposedTo: %v", err)
	}
	for i := range d {
		for j := range k {
			if want := float64(w.Data[i*k+j]) + ba[i*k+j]; math.Abs(float64(wt.Data[j*d+i])-want) > tol*scale {
				t.Fatalf("AddTransposedTo: [%d,%d] = %v, want %v", j, i, wt.Data[j*d+i], want)
			}
		}
	}
}

// scaleOf returns the largest |v|, or 1 when v is zero.
func scaleOf[T lowrank.Float](v []T) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	if m == 0 {
		return 1
	}
	return m
}

// checkSplits checks that SplitSqrt shares √σ between B and A and gives
// the same product as SplitUS.
func checkSplits[T lowrank.Float](t *testing.T, b lowrank.Backend, w lowrank.Matrix[T], sigma []float64) {
	t.Helper()
	tol := tolsOf[T]()
	r := max(1, min(3, numRank(sigma)))
	us := factorize(t, w, lowrank.Rank(r), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Exact))
	sq := factorize(t, w, lowrank.Rank(r), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Exact), lowrank.WithSplit(lowrank.SplitSqrt))
	if sq.Split != lowrank.SplitSqrt {
		t.Fatalf("Split = %v, want sqrt", sq.Split)
	}
	p1 := oracle.Matmul(us.B.Rows, r, us.A.Cols, oracle.ToF64(us.B.Data), oracle.ToF64(us.A.Data))
	p2 := oracle.Matmul(sq.B.Rows, r, sq.A.Cols, oracle.ToF64(sq.B.Data), oracle.ToF64(sq.A.Data))
	if d := oracle.RelDiff(p2, p1); d > tol.vec*10 {
		t.Errorf("SplitSqrt product differs from SplitUS by %.3g", d)
	}
	for j := range r {
		var nb, na float64
		for i := range sq.B.Rows {
			nb += float64(sq.B.At(i, j)) * float64(sq.B.At(i, j))
		}
		for i := range sq.A.Cols {
			na += float64(sq.A.At(j, i)) * float64(sq.A.At(j, i))
		}
		want := float64(sq.S[j])
		if math.Abs(nb-want) > tol.vec*100*(1+want) || math.Abs(na-want) > tol.vec*100*(1+want) {
			t.Errorf("SplitSqrt column %d: ‖B_j‖² = %.6g, ‖A_j‖² = %.6g, want σ = %.6g", j, nb, na, want)
		}
	}
}

// checkPolicies checks Energy, Tolerance, Ratio and rounding with method m.
func checkPolicies[T lowrank.Float](t *testing.T, b lowrank.Backend, w lowrank.Matrix[T], sigma []float64, m lowrank.Method) {
	t.Helper()
	tol := tolsOf[T]()
	n := len(sigma)
	slack := tol.ey + tol.eyAb
	if m == lowrank.Randomized {
		slack = tol.rnd
	}
	opts := []lowrank.Option{lowrank.WithBackend(b), lowrank.WithMethod(m)}
	for _, e := range []float64{0.5, 0.9, 0.99} {
		f := factorize(t, w, lowrank.Energy(e), opts...)
		if m == lowrank.Exact {
			checkFactors(t, w, sigma, f, true)
		}
		// Smallest rank meeting the target, by the oracle.
		best := oracleRank(sigma, func(r int) bool { return 1-sq(oracle.EckartYoung(sigma, r)) >= e-1e-12 })
		if f.Energy < e-slack || 1-sq(actualError(w, f)) < e-slack-tol.vec {
			t.Errorf("%v energy %.2f: kept %.6g (actual %.6g) at rank %d", m, e, f.Energy, 1-sq(actualError(w, f)), f.Rank)
		}
		if f.Rank < best || f.Rank > best+max(1, best/10) && sigma[0] > 0 {
			t.Errorf("%v energy %.2f: rank %d, the smallest meeting it is %d", m, e, f.Rank, best)
		}
	}
	for _, tl := range []float64{0.5, 0.1, 0.02} {
		f := factorize(t, w, lowrank.Tolerance(tl), opts...)
		best := oracleRank(sigma, func(r int) bool { return oracle.EckartYoung(sigma, r) <= tl*(1+1e-12) })
		if f.RelError > tl+slack || actualError(w, f) > tl+slack+tol.vec {
			t.Errorf("%v tol %.2f: reported %.6g, actual %.6g at rank %d", m, tl, f.RelError, actualError(w, f), f.Rank)
		}
		if f.Rank < best || f.Rank > best+max(1, best/10) && sigma[0] > 0 {
			t.Errorf("%v tol %.2f: rank %d, the smallest meeting it is %d", m, tl, f.Rank, best)
		}
	}
	d, k := w.Rows, w.Cols
	for _, rho := range []float64{0.3, 0.6, 1} {
		want := min(int(rho*float64(d*k)/float64(d+k)), n)
		if want < 1 {
			if _, err := lowrank.Factorize(w, lowrank.Ratio(rho), opts...); err == nil {
				t.Errorf("ratio %.2f on %d×%d: no error, but even rank 1 does not fit", rho, d, k)
			}
			continue
		}
		f := factorize(t, w, lowrank.Ratio(rho), opts...)
		if f.Rank != want || f.Params() > int(rho*float64(d*k)+1e-9) {
			t.Errorf("ratio %.2f on %d×%d: rank %d (params %d), want %d", rho, d, k, f.Rank, f.Params(), want)
		}
	}
	if n >= 10 {
		f := factorize(t, w, lowrank.Energy(0.5), append(opts, lowrank.WithRoundTo(8))...)
		if f.Rank%8 != 0 && f.Rank != n {
			t.Errorf("%v WithRoundTo(8): rank %d is not a multiple of 8 nor min(d,k) = %d", m, f.Rank, n)
		}
		if !(m == lowrank.Randomized) {
			checkFactors(t, w, sigma, f, true)
		}
	}
}

func sq(x float64) float64 { return x * x }

// oracleRank returns the smallest r in [1, n] with ok(r), or n.
func oracleRank(sigma []float64, ok func(int) bool) int {
	for r := 1; r <= len(sigma); r++ {
		if ok(r) {
			return r
		}
	}
	return len(sigma)
}

// checkRandomized checks the randomized method at a fixed rank: the error
// is within 1% of the optimum on decaying spectra, the reported error is
// the actual one, the same seed gives identical factors and another seed
// a different sketch.
func checkRandomized[T lowrank.Float](t *testing.T, b lowrank.Backend, w lowrank.Matrix[T], sigma []float64) {
	t.Helper()
	n := len(sigma)
	r := max(1, min(10, n/4))
	opts := []lowrank.Option{lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Randomized), lowrank.WithSeed(7)}
	f := factorize(t, w, lowrank.Rank(r), opts...)
	if r+lowrank.DefaultOversampling < n && f.Method != lowrank.Randomized {
		t.Fatalf("Method = %v, want randomized", f.Method)
	}
	checkFactors(t, w, sigma, f, f.Method == lowrank.Exact)
	if opt := oracle.EckartYoung(sigma, r); opt > 1e-6 {
		ratio := actualError(w, f) / opt
		// Decaying spectra are the documented target (1%); a flat
		// spectrum is the hardest case for any range finder.
		limit := 1.01
		if sigma[n-1] > 0.5*sigma[0] {
			limit = 1.05
		}
		if ratio > limit {
			t.Errorf("randomized rank %d: error/optimal = %.5f > %.2f", r, ratio, limit)
		}
	}
	g := factorize(t, w, lowrank.Rank(r), opts...)
	if oracle.RelDiff(g.B.Data, f.B.Data) != 0 || oracle.RelDiff(g.A.Data, f.A.Data) != 0 {
		t.Errorf("same seed gave different factors")
	}
	if f.Method == lowrank.Randomized && sigma[0] > 0 {
		h := factorize(t, w, lowrank.Rank(r), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Randomized), lowrank.WithSeed(8), lowrank.WithPowerIters(0))
		if oracle.RelDiff(h.B.Data, f.B.Data) == 0 {
			t.Errorf("seeds 7 and 8 gave identical factors: is the seed used?")
		}
	}
}

// CrossCheck factorizes the same matrices on b and ref, with the same
// options and seed, and checks that both give the same rank, singular
// values and factors (signs are normalized by the library), to within the
// float type's tolerance scaled by the spectral gaps.
func CrossCheck(t *testing.T, b, ref lowrank.Backend) {
	for _, be := range []lowrank.Backend{b, ref} {
		if err := be.Init(); err != nil {
			t.Fatalf("backend %s: %v", be.Name(), err)
		}
	}
	t.Run("float64", func(t *testing.T) { crossCheck[float64](t, b, ref, 1e-8) })
	t.Run("float32", func(t *testing.T) { crossCheck[float32](t, b, ref, 2e-3) })
	t.Run("whitened/float64", func(t *testing.T) { crossCheckWhitened[float64](t, b, ref, 1e-8) }) // whiten.go
	t.Run("whitened/float32", func(t *testing.T) { crossCheckWhitened[float32](t, b, ref, 2e-3) })
}

func crossCheck[T lowrank.Float](t *testing.T, b, ref lowrank.Backend, tol float64) {
	cases := []oracle.Case{
		oracle.Spectrum("decaying", 120, 100, oracle.Decaying(100, 1), 21),
		oracle.Spectrum("decaying-wide", 80, 150, oracle.Decaying(80, 3), 22),
		oracle.Spectrum("larger", 400, 300, oracle.Decaying(300, 10), 23),
	}
	for _, c := range cases {
		w, _ := matrixOf[T](t, c)
		for _, m := range []lowrank.Method{lowrank.Exact, lowrank.Randomized} {
			for _, p := range []lowrank.Policy{lowrank.Rank(8), lowrank.Energy(0.9)} {
				name := fmt.Sprintf("%s/%v/%v", c.Name, m, p)
				t.Run(name, func(t *testing.T) {
					opts := []lowrank.Option{lowrank.WithMethod(m), lowrank.WithSeed(3)}
					f := factorize(t, w, p, append(opts, lowrank.WithBackend(b))...)
					g := factorize(t, w, p, append(opts, lowrank.WithBackend(ref))...)
					if f.Rank != g.Rank || f.Method != g.Method {
						t.Fatalf("%s: rank %d (%v), %s: rank %d (%v)", b.Name(), f.Rank, f.Method, ref.Name(), g.Rank, g.Method)
					}
					if d := oracle.RelDiff(f.S, g.S); d > tol {
						t.Errorf("singular values differ by %.3g", d)
					}
					if d := oracle.RelDiff(f.B.Data, g.B.Data); d > tol {
						t.Errorf("B differs by %.3g", d)
					}
					if d := oracle.RelDiff(f.A.Data, g.A.Data); d > tol {
						t.Errorf("A differs by %.3g", d)
					}
					if math.Abs(f.RelError-g.RelError) > tol*10 {
						t.Errorf("errors %.9g and %.9g", f.RelError, g.RelError)
					}
				})
			}
		}
	}
}
