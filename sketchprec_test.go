package lowrank_test

import (
	"errors"
	"math"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/internal/testkit/oracle"
)

// TestSketchPrecisionAccuracy is the accuracy proof of the reduced-precision
// sketch before any GPU: the CPU backend emulates the tensor cores' rounding
// of the range finder's inputs (TF32: 10-bit mantissa, BF16: 7-bit), and
// the factors must stay as close to the Eckart–Young optimum as the float32
// sketch's — error/optimal at most 1.01, or within 0.1% of float32's where
// the randomized method itself is further (a flat spectrum with one power
// iteration) — on Gaussian, decaying, rank-deficient and wide matrices, for
// q = 1, 2 and 4. RelError, which the factors report, must still be their
// measured error: only the subspace is computed in reduced precision.
func TestSketchPrecisionAccuracy(t *testing.T) {
	cases := []oracle.Case{
		oracle.Gaussian("Gaussian", 500, 400, 21),
		oracle.Spectrum("decaying", 500, 400, oracle.Decaying(400, 1), 22),
		oracle.Spectrum("rank-deficient", 500, 400, invSqrt(60), 23),
		oracle.Gaussian("wide", 300, 700, 24),
	}
	if testing.Short() {
		cases = cases[1:3]
	}
	b := cpu.New()
	for _, c := range cases {
		w32 := oracle.ToT[float32](c.W)
		w64 := oracle.ToF64(w32)
		sigma := oracle.SVD(c.D, c.K, w64)
		norm := math.Sqrt(sumSq(sigma))
		w, _ := lowrank.NewMatrix(c.D, c.K, w32)
		for _, r := range []int{8, 32} {
			opt := math.Sqrt(sumSq(sigma[r:]))
			for _, q := range []int{1, 2, 4} {
				run := func(p lowrank.SketchPrecision) (*lowrank.Factors[float32], float64) {
					f, err := lowrank.Factorize(w, lowrank.Rank(r), lowrank.WithMethod(lowrank.Randomized),
						lowrank.WithPowerIters(q), lowrank.WithSketchPrecision(p), lowrank.WithBackend(b), lowrank.WithSeed(5))
					if err != nil {
						t.Fatalf("%s r=%d q=%d %v: %v", c.Name, r, q, p, err)
					}
					res := residual(c.D, c.K, r, w64, f)
					if d := math.Abs(f.RelError - res/norm); d > 1e-3*res/norm+1e-6 {
						t.Errorf("%s r=%d q=%d %v: RelError %.6g, measured %.6g", c.Name, r, q, p, f.RelError, res/norm)
					}
					return f, res / opt
				}
				f32, e32 := run(lowrank.SketchF32)
				for _, p := range []lowrank.SketchPrecision{lowrank.SketchTF32, lowrank.SketchBF16} {
					f, e := run(p)
					if e > max(1.01, e32*1.001) {
						t.Errorf("%s r=%d q=%d %v: error/optimal %.5f (float32 sketch: %.5f); want ≤ 1.01 or within 0.1%% of float32's",
							c.Name, r, q, p, e, e32)
					}
					if f.SketchPrecision != p {
						t.Errorf("%s r=%d q=%d %v: Factors.SketchPrecision %v (relative error %.3g)", c.Name, r, q, p, f.SketchPrecision, f.RelError)
					}
					if sameData(f.B.Data, f32.B.Data) {
						t.Errorf("%s r=%d q=%d %v: the factors equal the float32 sketch's bit for bit; the products were not rounded", c.Name, r, q, p)
					}
					if testing.Verbose() {
						t.Logf("%s r=%d q=%d: error/optimal f32 %.5f, %v %.5f", c.Name, r, q, e32, p, e)
					}
				}
			}
		}
	}
}

// TestSketchPrecisionFloor: factors more accurate than twice the reduced
// format's unit roundoff are computed again with the float32 sketch
// (and adaptive targets that ask for them run in float32 from the
// start), so that the rounding of W never dominates their error.
func TestSketchPrecisionFloor(t *testing.T) {
	s := make([]float64, 200)
	for i := range s {
		s[i] = math.Pow(0.7, float64(i))
	}
	c := oracle.Spectrum("geometric", 300, 200, s, 41)
	w, _ := lowrank.NewMatrix(c.D, c.K, oracle.ToT[float32](c.W))
	b := cpu.New()
	run := func(p lowrank.Policy, prec lowrank.SketchPrecision) *lowrank.Factors[float32] {
		f, err := lowrank.Factorize(w, p, lowrank.WithMethod(lowrank.Randomized), lowrank.WithSketchPrecision(prec), lowrank.WithBackend(b))
		if err != nil {
			t.Fatalf("%v %v: %v", p, prec, err)
		}
		return f
	}
	// Rank 16: relative error 0.7^16 ≈ 3.3e-3, between
	// TF32's floor (9.8e-4) and BF16's (7.8e-3).
	f32 := run(lowrank.Rank(16), lowrank.SketchF32)
	if f32.RelError < 0x1p-10 || f32.RelError > 0x1p-7 {
		t.Fatalf("rank 16: relative error %.3g, not between the floors", f32.RelError)
	}
	bf := run(lowrank.Rank(16), lowrank.SketchBF16)
	if bf.SketchPrecision != lowrank.SketchF32 || !sameData(bf.B.Data, f32.B.Data) {
		t.Errorf("BF16 at relative error %.3g: SketchPrecision %v; want the float32 sketch's factors", bf.RelError, bf.SketchPrecision)
	}
	tf := run(lowrank.Rank(16), lowrank.SketchTF32)
	if tf.SketchPrecision != lowrank.SketchTF32 || sameData(tf.B.Data, f32.B.Data) {
		t.Errorf("TF32 at relative error %.3g: SketchPrecision %v; want TF32 kept", tf.RelError, tf.SketchPrecision)
	}
	if tf.RelError > f32.RelError*1.01 {
		t.Errorf("TF32 at rank 16: relative error %.4g; float32's %.4g", tf.RelError, f32.RelError)
	}
	// An adaptive target below the floor runs in float32 from the start.
	tol := run(lowrank.Tolerance(1e-3), lowrank.SketchBF16)
	if tol.SketchPrecision != lowrank.SketchF32 || tol.RelError > 1e-3 {
		t.Errorf("Tolerance(1e-3) with BF16: SketchPrecision %v, relative error %.3g", tol.SketchPrecision, tol.RelError)
	}
	en := run(lowrank.Energy(0.9), lowrank.SketchBF16)
	if en.SketchPrecision != lowrank.SketchBF16 {
		t.Errorf("Energy(0.9) with BF16: SketchPrecision %v (relative error %.3g)", en.SketchPrecision, en.RelError)
	}
}

func TestSketchPrecisionOption(t *testing.T) {
	for s, want := range map[string]lowrank.SketchPrecision{"f32": lowrank.SketchF32, "TF32": lowrank.SketchTF32, " bf16": lowrank.SketchBF16} {
		p, err := lowrank.ParseSketchPrecision(s)
		if err != nil || p != want {
			t.Errorf("ParseSketchPrecision(%q) = %v, %v; want %v", s, p, err, want)
		}
	}
	if _, err := lowrank.ParseSketchPrecision("fp16"); !errors.Is(err, lowrank.ErrOption) || !hasPrefix(err, "lowrank: ") {
		t.Errorf("ParseSketchPrecision(fp16) = %v; want a lowrank: error wrapping ErrOption", err)
	}
	w32, _ := lowrank.NewMatrix(300, 300, make([]float32, 300*300))
	if _, err := lowrank.Factorize(w32, lowrank.Rank(4), lowrank.WithSketchPrecision(7)); !errors.Is(err, lowrank.ErrOption) {
		t.Errorf("WithSketchPrecision(7): %v; want ErrOption", err)
	}
	w64, _ := lowrank.NewMatrix(300, 300, make([]float64, 300*300))
	_, err := lowrank.Factorize(w64, lowrank.Rank(4), lowrank.WithSketchPrecision(lowrank.SketchBF16))
	if !errors.Is(err, lowrank.ErrOption) || !hasPrefix(err, "lowrank: ") {
		t.Errorf("float64 W with SketchBF16: %v; want a lowrank: error wrapping ErrOption", err)
	}
	if _, err := lowrank.Factorize(w64, lowrank.Rank(4), lowrank.WithSketchPrecision(lowrank.SketchF32)); err != nil {
		t.Errorf("float64 W with SketchF32: %v", err)
	}
	// The exact method ignores it; SVD rejects it like every other
	// factorization option.
	small, _ := lowrank.NewMatrix(20, 10, oracle.ToT[float32](oracle.Gaussian("g", 20, 10, 1).W))
	if _, err := lowrank.Factorize(small, lowrank.Rank(4), lowrank.WithSketchPrecision(lowrank.SketchTF32)); err != nil {
		t.Errorf("exact method with SketchTF32: %v", err)
	}
	if _, err := lowrank.SVD(small, lowrank.WithSketchPrecision(lowrank.SketchTF32)); !errors.Is(err, lowrank.ErrOption) {
		t.Errorf("SVD with WithSketchPrecision: %v; want ErrOption", err)
	}
	for p, s := range map[lowrank.SketchPrecision]string{lowrank.SketchF32: "f32", lowrank.SketchTF32: "tf32", lowrank.SketchBF16: "bf16"} {
		if p.String() != s {
			t.Errorf("%d.String() = %q; want %q", int(p), p.String(), s)
		}
	}
}

func hasPrefix(err error, p string) bool {
	return err != nil && len(err.Error()) >= len(p) && err.Error()[:len(p)] == p
}

func invSqrt(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = 1 / math.Sqrt(float64(i+1))
	}
	return s
}

func sumSq(s []float64) float64 {
	var t float64
	for _, v := range s {
		t += v * v
	}
	return t
}

func sameData(a, b []float32) bool {
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

// residual returns ‖W − B·A‖_F in float64.
func residual(d, k, r int, w []float64, f *lowrank.Factors[float32]) float64 {
	var ss float64
	row := make([]float64, k)
	for i := range d {
		copy(row, w[i*k:(i+1)*k])
		for l := range r {
			bil := float64(f.B.Data[i*r+l])
			a := f.A.Data[l*k : (l+1)*k]
			for j := range row {
				row[j] -= bil * float64(a[j])
			}
		}
		for _, v := range row {
			ss += v * v
		}
	}
	return math.Sqrt(ss)
}
