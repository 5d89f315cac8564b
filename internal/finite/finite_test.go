package finite

import (
	"math"
	"testing"
)

func TestHas(t *testing.T) {
	for _, n := range []int{0, 1, 5, 15, 16, 31, 32, 33, 64, 100, 1000} {
		v32 := make([]float32, n)
		v64 := make([]float64, n)
		for i := range v32 {
			v32[i] = float32(i) - 7.5
			v64[i] = float64(i)*1e300 - 7.5
		}
		if Has32(v32) || Has64(v64) {
			t.Fatalf("n=%d: finite data reported non-finite", n)
		}
		for i := range n {
			for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
				o32, o64 := v32[i], v64[i]
				v32[i], v64[i] = float32(bad), bad
				if !Has32(v32) || !Has64(v64) {
					t.Fatalf("n=%d: %v at %d not found", n, bad, i)
				}
				v32[i], v64[i] = o32, o64
			}
		}
	}
	// Large finite values whose products with 0 are still 0.
	if Has32([]float32{math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32}) {
		t.Error("extreme finite float32 reported")
	}
}

func BenchmarkHas32(b *testing.B) {
	v := make([]float32, 64*4096)
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		if Has32(v) {
			b.Fatal("non-finite")
		}
	}
}

// SumSquares: the exact sum for small integers, float32 extremes without
// overflow or underflow, NaN or +Inf exactly when v holds one.
func TestSumSquares(t *testing.T) {
	v := []float32{1, 2, 3, 4, 5, 6, 7}
	if got := SumSquares(v); got != 140 {
		t.Errorf("SumSquares(1…7) = %v; expected 140", got)
	}
	big := []float32{math.MaxFloat32, math.MaxFloat32, -math.MaxFloat32}
	if got, want := SumSquares(big), 3*float64(math.MaxFloat32)*float64(math.MaxFloat32); got != want {
		t.Errorf("SumSquares of float32's largest = %v; expected %v", got, want)
	}
	tiny := []float32{math.SmallestNonzeroFloat32}
	if got := SumSquares(tiny); got == 0 {
		t.Error("SumSquares of float32's smallest underflowed to 0")
	}
	if got := SumSquares([]float32{1, float32(math.Inf(-1)), 2}); !math.IsInf(got, 1) {
		t.Errorf("SumSquares with −Inf = %v; expected +Inf", got)
	}
	if got := SumSquares([]float64{1, math.NaN(), 2, 3, 4}); !math.IsNaN(got) {
		t.Errorf("SumSquares with NaN = %v; expected NaN", got)
	}
}
