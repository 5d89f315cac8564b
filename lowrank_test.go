package lowrank_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
)

// notebook builds the notebook's example: a d×k matrix of rank r as the
// product of two seeded Gaussian matrices, and a seeded x and bias.
func notebook[T lowrank.Float](d, k, r int, seed uint64) (w lowrank.Matrix[T], x, bias []T) {
	rng := rand.New(rand.NewPCG(seed, 0))
	g := func(n int) []T {
		v := make([]T, n)
		for i := range v {
			v[i] = T(rng.NormFloat64())
		}
		return v
	}
	g1, g2 := g(d*r), g(r*k)
	w, _ = lowrank.NewMatrix[T](d, k, nil)
	for i := range d {
		for j := range k {
			var s T
			for t := range r {
				s += g1[i*r+t] * g2[t*k+j]
			}
			w.Set(i, j, s)
		}
	}
	return w, g(k), g(d)
}

func dense[T lowrank.Float](w lowrank.Matrix[T], x, bias []T) []T {
	y := make([]T, w.Rows)
	for i := range w.Rows {
		s := bias[i]
		for j, v := range w.Row(i) {
			s += v * x[j]
		}
		y[i] = s
	}
	return y
}

// TestNotebook is the notebook the library generalizes: W (10×10) of rank
// 2; U, S, V of shapes (10,10), (10), (10,10); B (10,2), A (2,10); the
// dense and the factorized layer print the same numbers; 100 parameters
// become 40.
func TestNotebook(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testNotebook[float64](t) })
	t.Run("float32", func(t *testing.T) { testNotebook[float32](t) })
}

func testNotebook[T lowrank.Float](t *testing.T) {
	w, x, bias := notebook[T](10, 10, 2, 42)
	svd, err := lowrank.SVD(w)
	if err != nil {
		t.Fatal(err)
	}
	if svd.U.Rows != 10 || svd.U.Cols != 10 || len(svd.S) != 10 || svd.Vt.Rows != 10 || svd.Vt.Cols != 10 {
		t.Fatalf("SVD shapes U %d×%d S %d Vt %d×%d; want (10,10), (10), (10,10)", svd.U.Rows, svd.U.Cols, len(svd.S), svd.Vt.Rows, svd.Vt.Cols)
	}
	// Rank 2: the third singular value vanishes.
	if float64(svd.S[2]) > 1e-5*float64(svd.S[0]) {
		t.Errorf("σ₃/σ₁ = %g; W should have rank 2", svd.S[2]/svd.S[0])
	}
	f, err := lowrank.Factorize(w, lowrank.Rank(2))
	if err != nil {
		t.Fatal(err)
	}
	if f.B.Rows != 10 || f.B.Cols != 2 || f.A.Rows != 2 || f.A.Cols != 10 {
		t.Fatalf("B %d×%d A %d×%d; want (10,2) and (2,10)", f.B.Rows, f.B.Cols, f.A.Rows, f.A.Cols)
	}
	// B = U_r·S_r and A = V_r as the notebook builds them.
	for i := range 10 {
		for j := range 2 {
			if d := math.Abs(float64(f.B.At(i, j) - svd.U.At(i, j)*svd.S[j])); d > 1e-5 {
				t.Fatalf("B[%d,%d] = %v, U_r·S_r = %v", i, j, f.B.At(i, j), svd.U.At(i, j)*svd.S[j])
			}
			if d := math.Abs(float64(f.A.At(j, i) - svd.Vt.At(j, i))); d > 1e-5 {
				t.Fatalf("A[%d,%d] = %v, V_r = %v", j, i, f.A.At(j, i), svd.Vt.At(j, i))
			}
		}
	}
	y := dense(w, x, bias)
	yp, err := f.Apply(x, bias)
	if err != nil {
		t.Fatal(err)
	}
	for i := range y {
		if math.Abs(float64(y[i]-yp[i])) > 1e-5 {
			t.Errorf("y[%d] = %v, y'[%d] = %v", i, y[i], i, yp[i])
		}
	}
	if f.DenseParams() != 100 || f.Params() != 40 {
		t.Errorf("parameters %d → %d; want 100 → 40", f.DenseParams(), f.Params())
	}
	if f.RelError > 1e-5 {
		t.Errorf("relative error %g of a rank-2 matrix at rank 2", f.RelError)
	}
}

// TestErrors checks every kind of bad input: an error (never a panic) that
// starts with "lowrank:", says what was expected and wraps its sentinel.
func TestErrors(t *testing.T) {
	good, _ := lowrank.NewMatrix(4, 3, make([]float64, 12))
	for i := range good.Data {
		good.Data[i] = float64(i%5) - 1.5
	}
	f, err := lowrank.Factorize(good, lowrank.Rank(2))
	if err != nil {
		t.Fatal(err)
	}
	nan := append([]float64(nil), good.Data...)
	nan[7] = math.NaN()
	inf := append([]float64(nil), good.Data...)
	inf[0] = math.Inf(-1)
	cases := []struct {
		name string
		err  error
		kind error
		want string // a fragment of the message
	}{
		{"nil matrix", factorizeErr(lowrank.Matrix[float64]{}, lowrank.Rank(1)), lowrank.ErrEmpty, "expected a non-empty matrix"},
		{"zero rows", factorizeErr(lowrank.Matrix[float64]{Rows: 0, Cols: 3, Data: []float64{}}, lowrank.Rank(1)), lowrank.ErrEmpty, "0×3"},
		{"NewMatrix empty", newMatrixErr(0, 5, nil), lowrank.ErrEmpty, "expected at least 1×1"},
		{"NewMatrix length", newMatrixErr(2, 3, make([]float64, 5)), lowrank.ErrShape, "expected rows·cols = 2·3 = 6"},
		{"data length", factorizeErr(lowrank.Matrix[float64]{Rows: 4, Cols: 3, Data: make([]float64, 11)}, lowrank.Rank(1)), lowrank.ErrShape, "expected rows·cols"},
		{"NaN in W", factorizeErr(lowrank.Matrix[float64]{Rows: 4, Cols: 3, Data: nan}, lowrank.Rank(1)), lowrank.ErrNonFinite, "W[2,1] is NaN"},
		{"Inf in W", factorizeErr(lowrank.Matrix[float64]{Rows: 4, Cols: 3, Data: inf}, lowrank.Rank(1)), lowrank.ErrNonFinite, "W[0,0] is -Inf"},
		{"rank 0", factorizeErr(good, lowrank.Rank(0)), lowrank.ErrRank, "expected 1 ≤ rank ≤ min(d,k) = 3"},
		{"rank too big", factorizeErr(good, lowrank.Rank(4)), lowrank.ErrRank, "rank 4"},
		{"energy 0", factorizeErr(good, lowrank.Energy(0)), lowrank.ErrPolicy, "expected a value in (0, 1]"},
		{"energy > 1", factorizeErr(good, lowrank.Energy(1.5)), lowrank.ErrPolicy, "energy 1.5"},
		{"energy NaN", factorizeErr(good, lowrank.Energy(math.NaN())), lowrank.ErrPolicy, "energy NaN"},
		{"tolerance 0", factorizeErr(good, lowrank.Tolerance(0)), lowrank.ErrPolicy, "tolerance 0"},
		{"tolerance > 1", factorizeErr(good, lowrank.Tolerance(2)), lowrank.ErrPolicy, "expected a value in (0, 1]"},
		{"ratio too small", factorizeErr(good, lowrank.Ratio(0.1)), lowrank.ErrPolicy, "too small"},
		{"no policy", factorizeErr(good, lowrank.Policy{}), lowrank.ErrPolicy, "no rank policy"},
		{"oversampling", factorizeErr(good, lowrank.Rank(1), lowrank.WithOversampling(-1)), lowrank.ErrOption, "expected ≥ 0"},
		{"power iterations", factorizeErr(good, lowrank.Rank(1), lowrank.WithPowerIters(-2)), lowrank.ErrOption, "power iterations -2"},
		{"round-to", factorizeErr(good, lowrank.Rank(1), lowrank.WithRoundTo(-8)), lowrank.ErrOption, "round-to -8"},
		{"method", factorizeErr(good, lowrank.Rank(1), lowrank.WithMethod(lowrank.Method(9))), lowrank.ErrOption, "method 9"},
		{"split", factorizeErr(good, lowrank.Rank(1), lowrank.WithSplit(lowrank.Split(5))), lowrank.ErrOption, "split 5"},
		{"nil backend", factorizeErr(good, lowrank.Rank(1), lowrank.WithBackend(nil)), lowrank.ErrOption, "nil backend"},
		{"parse method", parseMethodErr("fast"), lowrank.ErrOption, "expected auto, exact or randomized"},
		{"parse split", parseSplitErr("left"), lowrank.ErrOption, "expected us or sqrt"},
		{"x too short", applyErr(f, make([]float64, 2), nil), lowrank.ErrShape, "x has length 2; expected 3"},
		{"x NaN", applyErr(f, []float64{1, math.NaN(), 2}, nil), lowrank.ErrNonFinite, "x[1] is NaN"},
		{"bias length", applyErr(f, make([]float64, 3), make([]float64, 3)), lowrank.ErrShape, "bias has length 3; expected 4"},
		{"bias Inf", applyErr(f, make([]float64, 3), []float64{0, 0, math.Inf(1), 0}), lowrank.ErrNonFinite, "bias[2] is +Inf"},
		{"y length", f.ApplyTo(make([]float64, 5), make([]float64, 3), nil), lowrank.ErrShape, "y has length 5; expected d = 4"},
		{"batch columns", batchErr(f, lowrank.Matrix[float64]{Rows: 2, Cols: 4, Data: make([]float64, 8)}), lowrank.ErrShape, "expected 3 columns"},
		{"batch empty", batchErr(f, lowrank.Matrix[float64]{}), lowrank.ErrEmpty, "X has 0 rows"},
		{"NewFactors shapes", newFactorsErr(2, 3, 2, 5), lowrank.ErrShape, "expected B.Cols = A.Rows"},
		{"SVD NaN", svdErr(lowrank.Matrix[float64]{Rows: 4, Cols: 3, Data: nan}), lowrank.ErrNonFinite, "expected finite values"},
		{"SVD option", svdErr(good, lowrank.WithBackend(cpu.New()), lowrank.WithSeed(3)), lowrank.ErrOption, "WithSeed has no effect on SVD; expected only WithBackend"},
		{"SVD method", svdErr(good, lowrank.WithMethod(lowrank.Randomized)), lowrank.ErrOption, "WithMethod has no effect on SVD"},
		{"unknown backend", lookupErr("tpu"), lowrank.ErrBackend, "expected auto, cpu or cuda"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.err == nil {
				t.Fatal("no error")
			}
			msg := c.err.Error()
			if !strings.HasPrefix(msg, "lowrank: ") {
				t.Errorf("error %q does not start with \"lowrank: \"", msg)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not say %q", msg, c.want)
			}
			if !errors.Is(c.err, c.kind) {
				t.Errorf("error %q is not %v", msg, c.kind)
			}
		})
	}
}

func factorizeErr(w lowrank.Matrix[float64], p lowrank.Policy, opts ...lowrank.Option) error {
	_, err := lowrank.Factorize(w, p, opts...)
	return err
}

func newMatrixErr(r, c int, data []float64) error {
	_, err := lowrank.NewMatrix(r, c, data)
	return err
}

func parseMethodErr(s string) error {
	_, err := lowrank.ParseMethod(s)
	return err
}

func parseSplitErr(s string) error {
	_, err := lowrank.ParseSplit(s)
	return err
}

func applyErr(f *lowrank.Factors[float64], x, bias []float64) error {
	_, err := f.Apply(x, bias)
	return err
}

func batchErr(f *lowrank.Factors[float64], x lowrank.Matrix[float64]) error {
	_, err := f.ApplyBatch(x, nil)
	return err
}

func newFactorsErr(d, r1, r2, k int) error {
	b, _ := lowrank.NewMatrix[float64](d, r1, nil)
	a, _ := lowrank.NewMatrix[float64](r2, k, nil)
	_, err := lowrank.NewFactors(b, a)
	return err
}

func svdErr(w lowrank.Matrix[float64], opts ...lowrank.Option) error {
	_, err := lowrank.SVD(w, opts...)
	return err
}

func lookupErr(name string) error {
	_, err := lowrank.LookupBackend(name)
	return err
}

// TestApplyToAllocates nothing once the factors have been applied once.
func TestApplyToAllocatesNothing(t *testing.T) {
	w, x, bias := notebook[float32](64, 48, 8, 1)
	f, err := lowrank.Factorize(w, lowrank.Rank(8))
	if err != nil {
		t.Fatal(err)
	}
	y := make([]float32, 64)
	if err := f.ApplyTo(y, x, bias); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = f.ApplyTo(y, x, bias) }); n != 0 {
		t.Errorf("ApplyTo allocates %v times per call", n)
	}
	xb, _ := lowrank.NewMatrix[float32](16, 48, nil)
	yb, _ := lowrank.NewMatrix[float32](16, 64, nil)
	if err := f.ApplyBatchTo(yb, xb, bias); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = f.ApplyBatchTo(yb, xb, bias) }); n != 0 {
		t.Errorf("ApplyBatchTo allocates %v times per call", n)
	}
}

// TestConcurrent applies one Factors from many goroutines while others
// factorize, and checks every result.
func TestConcurrent(t *testing.T) {
	w, _, _ := notebook[float64](50, 40, 5, 3)
	f, err := lowrank.Factorize(w, lowrank.Rank(5))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			x, bias := make([]float64, 40), make([]float64, 50)
			y := make([]float64, 50)
			for range 200 {
				for i := range x {
					x[i] = rng.NormFloat64()
				}
				if err := f.ApplyTo(y, x, bias); err != nil {
					errs <- err
					return
				}
				want := dense(w, x, bias)
				for i := range y {
					if math.Abs(y[i]-want[i]) > 1e-9*(1+math.Abs(want[i])) {
						errs <- errors.New("concurrent Apply gave a wrong result")
						return
					}
				}
			}
			if g%4 == 0 {
				h, err := lowrank.Factorize(w, lowrank.Energy(0.999), lowrank.WithMethod(lowrank.Randomized), lowrank.WithSeed(uint64(g)))
				if err != nil {
					errs <- err
					return
				}
				if h.Rank != 5 || h.RelError > 1e-6 {
					errs <- errors.New("concurrent Factorize gave a wrong result")
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSaves: rank 5 of 10×10 (100 parameters) saves nothing, rank 4 (80)
// does; the deprecated BreakEven is its negation.
func TestSaves(t *testing.T) {
	w, _, _ := notebook[float64](10, 10, 6, 5)
	f, err := lowrank.Factorize(w, lowrank.Rank(5))
	if err != nil {
		t.Fatal(err)
	}
	if f.Saves() || !f.BreakEven() || f.Params() != 100 {
		t.Errorf("rank 5 of 10×10: params %d, Saves %v, BreakEven %v; want 100, false, true", f.Params(), f.Saves(), f.BreakEven())
	}
	g, _ := lowrank.Factorize(w, lowrank.Rank(4))
	if !g.Saves() || g.BreakEven() {
		t.Errorf("rank 4 of 10×10 (80 params): Saves %v, BreakEven %v; want true, false", g.Saves(), g.BreakEven())
	}
	h, _ := lowrank.Factorize(w, lowrank.Rank(7))
	if h.Saves() || !h.BreakEven() {
		t.Errorf("rank 7 of 10×10 (140 params): Saves %v, BreakEven %v; want false, true", h.Saves(), h.BreakEven())
	}
}

// TestTranspose copies: writing the result leaves m alone.
func TestTranspose(t *testing.T) {
	m, _ := lowrank.NewMatrix(2, 3, []float64{1, 2, 3, 4, 5, 6})
	for _, tr := range []lowrank.Matrix[float64]{m.Transpose(), m.T()} {
		if tr.Rows != 3 || tr.Cols != 2 {
			t.Fatalf("transpose of 2×3 is %d×%d", tr.Rows, tr.Cols)
		}
		for i := range 2 {
			for j := range 3 {
				if tr.At(j, i) != m.At(i, j) {
					t.Errorf("transpose[%d,%d] = %v, want %v", j, i, tr.At(j, i), m.At(i, j))
				}
			}
		}
		tr.Set(0, 1, 99)
		if m.At(1, 0) != 4 {
			t.Errorf("writing the transpose changed m: %v", m.Data)
		}
	}
}

// TestRoundTo rounds up to a multiple, capped at min(d,k), and down for
// Ratio.
func TestRoundTo(t *testing.T) {
	w, _, _ := notebook[float64](30, 20, 20, 6)
	for _, c := range []struct {
		p    lowrank.Policy
		m    int
		want int
	}{
		{lowrank.Rank(3), 8, 8},
		{lowrank.Rank(8), 8, 8},
		{lowrank.Rank(17), 8, 20}, // 24 capped at min(d,k)
		{lowrank.Rank(3), 0, 3},
		{lowrank.Ratio(0.5), 4, 4}, // ratio rank 6, rounded down
		{lowrank.Ratio(0.2), 8, 2}, // ratio rank 2 < 8 stays
	} {
		f, err := lowrank.Factorize(w, c.p, lowrank.WithRoundTo(c.m))
		if err != nil {
			t.Fatal(err)
		}
		if f.Rank != c.want {
			t.Errorf("%v round %d: rank %d, want %d", c.p, c.m, f.Rank, c.want)
		}
	}
}

// TestAutoMethod checks the documented rule of Auto.
func TestAutoMethod(t *testing.T) {
	small, _, _ := notebook[float32](100, 80, 10, 1)
	big, _, _ := notebook[float32](600, 512, 40, 1)
	for _, c := range []struct {
		w    lowrank.Matrix[float32]
		p    lowrank.Policy
		want lowrank.Method
	}{
		{small, lowrank.Rank(5), lowrank.Exact},         // min(d,k) < 256
		{big, lowrank.Rank(40), lowrank.Randomized},     // 40+10 ≤ 512/4
		{big, lowrank.Rank(200), lowrank.Exact},         // 210 > 128
		{big, lowrank.Energy(0.99), lowrank.Randomized}, // rank 40 found by the sketch
	} {
		f, err := lowrank.Factorize(c.w, c.p)
		if err != nil {
			t.Fatal(err)
		}
		if f.Method != c.want {
			t.Errorf("%d×%d %v: method %v, want %v", c.w.Rows, c.w.Cols, c.p, f.Method, c.want)
		}
	}
	// A flat spectrum needs a large rank: the adaptive sketch gives up at
	// min(d,k)/4 and the exact SVD runs.
	flat, _, _ := notebook[float32](300, 300, 300, 2)
	f, err := lowrank.Factorize(flat, lowrank.Energy(0.99))
	if err != nil {
		t.Fatal(err)
	}
	if f.Method != lowrank.Exact || f.Energy < 0.99 {
		t.Errorf("flat spectrum energy 0.99: method %v energy %v; want exact, ≥ 0.99", f.Method, f.Energy)
	}
}

// TestFactorsBackend: Factors.Backend is the very backend that computed
// them (the one WithBackend gave), nil for NewFactors, and Apply runs on
// the one set before the first Apply.
func TestFactorsBackend(t *testing.T) {
	w, x, _ := notebook[float64](6, 5, 2, 9)
	g := cpu.NewGonum()
	f, err := lowrank.Factorize(w, lowrank.Rank(2), lowrank.WithBackend(g))
	if err != nil {
		t.Fatal(err)
	}
	if f.Backend != lowrank.Backend(g) || f.Backend.Name() != "cpu" {
		t.Errorf("Factors.Backend = %v; want the backend given with WithBackend", f.Backend)
	}
	n, err := lowrank.NewFactors(f.B, f.A)
	if err != nil {
		t.Fatal(err)
	}
	if n.Backend != nil {
		t.Errorf("NewFactors: Backend = %v; want nil (Apply uses DefaultBackend)", n.Backend)
	}
	n.Backend = g
	y1, err1 := n.Apply(x, nil)
	y2, err2 := f.Apply(x, nil)
	if err1 != nil || err2 != nil || !slices.Equal(y1, y2) {
		t.Errorf("Apply on a set Backend: %v %v, %v vs %v", err1, err2, y1, y2)
	}
}

// TestBackendEnv runs the test binary again with LOWRANK_BACKEND set, since
// the default backend is chosen once per process.
func TestBackendEnv(t *testing.T) {
	if v := os.Getenv("LOWRANK_TEST_CHILD"); v != "" {
		b, err := lowrank.DefaultBackend()
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			return
		}
		os.Stdout.WriteString("backend: " + b.Name() + "\n")
		return
	}
	cudaOK := false
	for _, b := range lowrank.Backends() {
		if b.Name == "cuda" && b.Available {
			cudaOK = true
		}
	}
	for _, c := range []struct{ env, want string }{
		{"cpu", "backend: cpu"},
		{"", "backend: "},
		{"auto", "backend: "},
		{"tpu", `error: lowrank: LOWRANK_BACKEND="tpu"; expected auto, cpu or cuda`},
		{"cuda", map[bool]string{true: "backend: cuda", false: "error: lowrank: backend cuda: "}[cudaOK]},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBackendEnv$")
		cmd.Env = append(os.Environ(), "LOWRANK_TEST_CHILD=1", "LOWRANK_BACKEND="+c.env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("LOWRANK_BACKEND=%s: %v\n%s", c.env, err, out)
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("LOWRANK_BACKEND=%q: got %q, want %q", c.env, out, c.want)
		}
	}
}

// TestFloat32Limits: a float32 matrix whose singular values exceed the
// float32 range cannot have U·S factors in float32 (a clear error), but
// its balanced √S split fits and reproduces W.
func TestFloat32Limits(t *testing.T) {
	w, _ := lowrank.NewMatrix[float32](4, 4, nil)
	for i := range w.Data {
		w.Data[i] = 3e38
	}
	w.Data[5] = -3e38
	_, err := lowrank.Factorize(w, lowrank.Rank(2))
	if !errors.Is(err, lowrank.ErrNonFinite) || !strings.Contains(err.Error(), "SplitSqrt") {
		t.Fatalf("U·S factors beyond float32: err = %v; want ErrNonFinite suggesting SplitSqrt", err)
	}
	f, err := lowrank.Factorize(w, lowrank.Rank(2), lowrank.WithSplit(lowrank.SplitSqrt))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		for j := range 4 {
			var s float64
			for r := range 2 {
				s += float64(f.B.At(i, r)) * float64(f.A.At(r, j))
			}
			if math.Abs(s-float64(w.At(i, j))) > 1e-5*3e38 {
				t.Fatalf("B·A[%d,%d] = %g, want %g", i, j, s, w.At(i, j))
			}
		}
	}
	// Tiny values, subnormal ones included, factorize without NaN.
	tiny, _ := lowrank.NewMatrix[float32](3, 3, []float32{1e-38, 0, 1e-45, 0, 2e-38, 0, 1e-40, 0, 3e-38})
	g, err := lowrank.Factorize(tiny, lowrank.Rank(2))
	if err != nil {
		t.Fatal(err)
	}
	if math.IsNaN(g.RelError) || g.S[0] <= 0 {
		t.Errorf("tiny float32 matrix: error %v, σ₁ %v", g.RelError, g.S[0])
	}
}
