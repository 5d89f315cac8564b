//go:build cgo

package gpu_test

import (
	"math"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/internal/testkit/oracle"
	"github.com/lowrank-go/lowrank/internal/testkit/testla"
)

// TestGemmPrecisionDevice: on a real GPU, cublasGemmEx in the FAST_TF32
// and FAST_16BF compute types must compute the product of the inputs
// rounded to TF32 and bfloat16 — what the CPU emulation and the fake
// compute — and differ from the float32 product. It fails on a GPU
// without tensor cores for these types (compute capability below 8.0),
// where cuBLAS computes in float32.
func TestGemmPrecisionDevice(t *testing.T) {
	be := requireGPU(t)
	testla.PrecisionGemmTest(t, be.Float32(), true)
}

// TestSketchPrecisionDevice: a factorization with the TF32 and BF16
// sketch on the GPU agrees with the CPU backend's emulation, and its
// error stays within 0.1% of the float32 sketch's.
func TestSketchPrecisionDevice(t *testing.T) {
	be := requireGPU(t)
	c := oracle.Spectrum("decaying", 600, 400, oracle.Decaying(400, 1), 51)
	w, _ := lowrank.NewMatrix(c.D, c.K, oracle.ToT[float32](c.W))
	run := func(b lowrank.Backend, p lowrank.SketchPrecision) *lowrank.Factors[float32] {
		f, err := lowrank.Factorize(w, lowrank.Rank(16), lowrank.WithMethod(lowrank.Randomized),
			lowrank.WithSketchPrecision(p), lowrank.WithBackend(b))
		if err != nil {
			t.Fatalf("%s %v: %v", b.Name(), p, err)
		}
		return f
	}
	f32 := run(be, lowrank.SketchF32)
	for _, p := range []lowrank.SketchPrecision{lowrank.SketchTF32, lowrank.SketchBF16} {
		g, h := run(be, p), run(cpu.New(), p)
		if g.SketchPrecision != p {
			t.Errorf("%v: SketchPrecision %v on the GPU", p, g.SketchPrecision)
		}
		if d := math.Abs(g.RelError-h.RelError) / h.RelError; d > 1e-3 {
			t.Errorf("%v: RelError %.6g on the GPU, %.6g in the CPU emulation", p, g.RelError, h.RelError)
		}
		for i := range g.S {
			if d := math.Abs(g.S[i]-h.S[i]) / h.S[0]; d > 1e-4 {
				t.Errorf("%v: σ%d = %.6g on the GPU, %.6g in the CPU emulation", p, i, g.S[i], h.S[i])
			}
		}
		if g.RelError > f32.RelError*1.001 {
			t.Errorf("%v: RelError %.6g; float32 sketch %.6g", p, g.RelError, f32.RelError)
		}
	}
}
