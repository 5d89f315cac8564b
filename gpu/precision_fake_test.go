//go:build cgo

package gpu_test

import (
	"math"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/internal/testkit/fakecuda"
	"github.com/lowrank-go/lowrank/internal/testkit/oracle"
	"github.com/lowrank-go/lowrank/internal/testkit/testla"
	"github.com/lowrank-go/lowrank/la"
)

// TestFakeGemmPrecision: the float32 engine's reduced-precision products
// go through cublasGemmEx in the FAST_TF32 and FAST_16BF compute types,
// whose rounding of the inputs the fake emulates, with the same
// row-major/column-major mapping as Gemm.
func TestFakeGemmPrecision(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	fakecuda.ResetCalls()
	testla.PrecisionGemmTest(t, b.Float32(), false)
	if fakecuda.Calls("cublasGemmEx") == 0 {
		t.Error("no cublasGemmEx call")
	}
	pg := b.Float64().(la.PrecisionGemmer[float64])
	e := b.Float64()
	a, _ := e.Upload(2, 2, []float64{1, 2, 3, 4})
	c, _ := e.Zeros(2, 2)
	defer e.Free(a)
	defer e.Free(c)
	if err := pg.GemmPrecision(la.BF16, false, false, 1, a, a, 0, c); err == nil || !strings.Contains(err.Error(), "float32") {
		t.Errorf("BF16 on the float64 engine: %v; want an error asking for float32", err)
	}
}

// TestFakeSketchPrecisionMatchesCPU: a factorization with the TF32 and
// BF16 sketch on the cuda backend (over the fake) gives the CPU
// emulation's result, and only the range finder's three products with W
// per block run in reduced precision.
func TestFakeSketchPrecisionMatchesCPU(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	c := oracle.Spectrum("decaying", 300, 200, oracle.Decaying(200, 1), 31)
	w, _ := lowrank.NewMatrix(c.D, c.K, oracle.ToT[float32](c.W))
	const q = 2
	for _, p := range []lowrank.SketchPrecision{lowrank.SketchTF32, lowrank.SketchBF16} {
		opts := []lowrank.Option{lowrank.WithMethod(lowrank.Randomized), lowrank.WithPowerIters(q), lowrank.WithSketchPrecision(p)}
		fakecuda.ResetCalls()
		g, err := lowrank.Factorize(w, lowrank.Rank(8), append(opts, lowrank.WithBackend(b))...)
		if err != nil {
			t.Fatalf("%v on the fake: %v", p, err)
		}
		if g.Backend.Name() != "cuda" {
			t.Fatalf("%v ran on %s (%s)", p, g.Backend.Name(), g.Fallback)
		}
		if n := fakecuda.Calls("cublasGemmEx"); n != 2*q+1 {
			t.Errorf("%v: %d cublasGemmEx calls; want %d (the sketch and 2 per power iteration)", p, n, 2*q+1)
		}
		h, err := lowrank.Factorize(w, lowrank.Rank(8), append(opts, lowrank.WithBackend(cpu.New()))...)
		if err != nil {
			t.Fatalf("%v on the CPU: %v", p, err)
		}
		for i := range g.S {
			if d := math.Abs(g.S[i]-h.S[i]) / h.S[0]; d > 1e-5 {
				t.Errorf("%v: σ%d = %g on the fake, %g on the CPU", p, i, g.S[i], h.S[i])
			}
		}
		if d := math.Abs(g.RelError - h.RelError); d > 1e-5 {
			t.Errorf("%v: RelError %g on the fake, %g on the CPU", p, g.RelError, h.RelError)
		}
		g.Close()
		h.Close()
	}
}

// TestFakeGemmExMissing: a cuBLAS without cublasGemmEx still loads and
// runs the float32 sketch; the reduced one fails naming the symbol.
func TestFakeGemmExMissing(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{MissingSyms: []string{"cublasGemmEx"}})
	c := oracle.Gaussian("g", 300, 200, 32)
	w, _ := lowrank.NewMatrix(c.D, c.K, oracle.ToT[float32](c.W))
	f, err := lowrank.Factorize(w, lowrank.Rank(4), lowrank.WithMethod(lowrank.Randomized), lowrank.WithBackend(b))
	if err != nil {
		t.Fatalf("float32 sketch without cublasGemmEx: %v", err)
	}
	f.Close()
	_, err = lowrank.Factorize(w, lowrank.Rank(4), lowrank.WithMethod(lowrank.Randomized), lowrank.WithBackend(b),
		lowrank.WithSketchPrecision(lowrank.SketchTF32))
	if err == nil || !strings.Contains(err.Error(), "cublasGemmEx") || !strings.HasPrefix(err.Error(), "lowrank: ") {
		t.Fatalf("TF32 sketch without cublasGemmEx: %v; want a lowrank: error naming cublasGemmEx", err)
	}
}
