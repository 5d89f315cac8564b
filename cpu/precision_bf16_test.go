package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank-go/lowrank/internal/bf16"
	"github.com/lowrank-go/lowrank/la"
)

// TestGemmPrecisionUsesBF16Kernel checks that a BF16 product on a CPU
// with AVX512_BF16 runs internal/bf16's kernel, bit for bit, for both
// orientations of a and with views, and that TF32 stays the emulation.
func TestGemmPrecisionUsesBF16Kernel(t *testing.T) {
	if !bf16.Available() {
		t.Skip("no AVX512_BF16 kernel on this CPU or in this build")
	}
	rng := rand.New(rand.NewPCG(1, 1))
	e := New().Float32()
	pg := e.(la.PrecisionGemmer[float32])
	fill := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	const m, n, k = 300, 40, 257
	for _, tA := range []bool{false, true} {
		ar, ac := m, k
		if tA {
			ar, ac = k, m
		}
		ad, bd := fill(ar*(ac+2)), fill(k*n)
		full, _ := e.Upload(ar, ac+2, ad)
		a, _ := e.View(full, 0, ar, 1, ac+1) // a view with a stride
		b, _ := e.Upload(k, n, bd)
		c, _ := e.Zeros(m, n)
		if err := pg.GemmPrecision(la.BF16, tA, false, 0.5, a, b, 0, c); err != nil {
			t.Fatal(err)
		}
		want := make([]float32, m*n)
		bf16.Gemm(1, tA, false, m, n, k, 0.5, ad[1:], ac+2, bd, n, 0, want, n)
		got := c.(*dense[float32]).data
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("tA=%v: c[%d] = %g; the bf16 kernel gives %g", tA, i, got[i], want[i])
			}
		}
		// TF32 is emulated: its result is not the bf16 kernel's.
		if err := pg.GemmPrecision(la.TF32, tA, false, 0.5, a, b, 0, c); err != nil {
			t.Fatal(err)
		}
		same := 0
		for i := range want {
			if got[i] == want[i] {
				same++
			}
		}
		if same > len(want)/10 {
			t.Fatalf("tA=%v: TF32 gave the bf16 kernel's value for %d of %d elements", tA, same, len(want))
		}
	}
}
