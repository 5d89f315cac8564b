package lowrank

import (
	"math"
	"testing"
)

func TestFastScans(t *testing.T) {
	for _, n := range []int{0, 1, 3, 255, 256, 257, 1000, parallelMin + 3, 3*parallelMin + 1} {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i%7) - 3
		}
		var want float64
		for _, x := range v {
			want += float64(x) * float64(x)
		}
		if got := frobenius(v); math.Abs(got-math.Sqrt(want)) > 1e-9*math.Sqrt(want) {
			t.Errorf("n=%d: frobenius %v, want %v", n, got, math.Sqrt(want))
		}
		if i := firstNonFinite(v); i != -1 {
			t.Errorf("n=%d: firstNonFinite = %d on finite data", n, i)
		}
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			for _, at := range []int{0, n / 2, n - 1, n/3 + 1} {
				if at < 0 || at >= n {
					continue
				}
				old := v[at]
				v[at] = bad
				if old == v[at] {
					continue
				}
				v[min(at+5, n-1)] = bad // a later one must not win
				if i := firstNonFinite(v); i != at {
					t.Errorf("n=%d: %v at %d: firstNonFinite = %d", n, bad, at, i)
				}
				v[at] = old
				v[min(at+5, n-1)] = float32((min(at+5, n-1))%7) - 3
			}
		}
	}
	// float64 beyond the direct sum's range falls back to scaling.
	big := []float64{1e200, 1e200, -1e200}
	if got, want := frobenius(big), math.Sqrt(3)*1e200; math.Abs(got-want) > 1e-12*want {
		t.Errorf("huge: %v, want %v", got, want)
	}
	tiny := []float64{1e-200, 1e-200, 1e-200, 0}
	if got, want := frobenius(tiny), math.Sqrt(3)*1e-200; math.Abs(got-want) > 1e-12*want {
		t.Errorf("tiny: %v, want %v", got, want)
	}
	if got := frobenius([]float64{0, 0}); got != 0 {
		t.Errorf("zeros: %v", got)
	}
	f32max := []float32{math.MaxFloat32, math.MaxFloat32}
	if got, want := frobenius(f32max), math.Sqrt2*math.MaxFloat32; math.Abs(got-want) > 1e-12*want {
		t.Errorf("float32 max: %v, want %v", got, want)
	}
}
