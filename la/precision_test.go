package la

import (
	"math"
	"testing"
)

func TestPrecisionRound(t *testing.T) {
	one := float32(1)
	cases := []struct {
		p    Precision
		x    float32
		want float32
	}{
		{F32, 1.0000001, 1.0000001},
		// TF32: the spacing above 1 is 2^-10.
		{TF32, one + 0x1p-11, 1},                       // a tie: to even (1)
		{TF32, one + 3*0x1p-11, one + 2*0x1p-10},       // a tie: to even (1 + 2^-9)
		{TF32, one + 0x1p-11 + 0x1p-20, one + 0x1p-10}, // above the tie: up
		{TF32, -(one + 0x1p-11 + 0x1p-20), -(one + 0x1p-10)},
		{TF32, one + 0x1p-12, 1},
		// BF16: the spacing above 1 is 2^-7.
		{BF16, one + 0x1p-8, 1},
		{BF16, one + 3*0x1p-8, one + 2*0x1p-7},
		{BF16, one + 0x1p-8 + 0x1p-20, one + 0x1p-7},
		{BF16, 3.14159265, 3.140625},
		{BF16, math.MaxFloat32, float32(math.Inf(1))},
		{BF16, float32(math.Inf(-1)), float32(math.Inf(-1))},
		{BF16, 0, 0},
		{TF32, 0x1p-130, 0x1p-130}, // a subnormal TF32 holds
		{TF32, 0x1p-140, 0},        // below TF32's smallest subnormal (2^-136)
	}
	for _, c := range cases {
		if got := c.p.Round(c.x); got != c.want {
			t.Errorf("%v.Round(%g) = %g; want %g", c.p, c.x, got, c.want)
		}
	}
	if got := BF16.Round(float32(math.NaN())); !math.IsNaN(float64(got)) {
		t.Errorf("BF16.Round(NaN) = %g; want NaN", got)
	}
	// The relative rounding error is at most half a unit in the last place.
	for _, p := range []Precision{TF32, BF16} {
		u := math.Ldexp(1, -p.MantissaBits()-1)
		for i := 1; i < 10000; i++ {
			x := float32(math.Sin(float64(i)) * math.Exp(float64(i%40-20)))
			r := p.Round(x)
			if e := math.Abs(float64(r-x)) / math.Abs(float64(x)); e > u {
				t.Fatalf("%v.Round(%g) = %g: relative error %g > %g", p, x, r, e, u)
			}
			if p.Round(r) != r {
				t.Fatalf("%v.Round is not idempotent at %g", p, x)
			}
		}
	}
}
