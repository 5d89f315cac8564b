package safetensors

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// Every 16-bit pattern widens and narrows back to itself (NaNs stay NaN).
func TestHalfRoundTripAllPatterns(t *testing.T) {
	for _, c := range []struct {
		name   string
		widen  func(uint16) float32
		narrow func(float32) uint16
		narr64 func(float64) uint16
	}{
		{"F16", F16ToFloat32, Float32ToF16, Float64ToF16},
		{"BF16", BF16ToFloat32, Float32ToBF16, Float64ToBF16},
	} {
		for h := range 1 << 16 {
			f := c.widen(uint16(h))
			if f != f {
				if g := c.widen(c.narrow(f)); g == g {
					t.Fatalf("%s %#04x: NaN became %v", c.name, h, g)
				}
				if g := c.widen(c.narr64(float64(f))); g == g {
					t.Fatalf("%s %#04x: NaN (float64) became %v", c.name, h, g)
				}
				continue
			}
			if got := c.narrow(f); got != uint16(h) {
				t.Fatalf("%s %#04x → %v → %#04x", c.name, h, f, got)
			}
			if got := c.narr64(float64(f)); got != uint16(h) {
				t.Fatalf("%s %#04x → %v (float64) → %#04x", c.name, h, f, got)
			}
		}
	}
}

// half is a sorted table of the finite values of a 16-bit format, used as
// a slow reference: the correctly rounded value of x is the nearest entry,
// ties going to the one with an even bit pattern.
type half struct {
	vals []float64
	bits []uint16
	max  float64 // largest finite value
	ulp  float64 // spacing just below max
}

func newHalf(widen func(uint16) float32) *half {
	type e struct {
		v float64
		b uint16
	}
	var es []e
	for h := range 1 << 16 {
		v := float64(widen(uint16(h)))
		if math.IsNaN(v) || math.IsInf(v, 0) || (v == 0 && h != 0) {
			continue // keep +0 only
		}
		es = append(es, e{v, uint16(h)})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].v < es[j].v })
	h := &half{}
	for _, x := range es {
		h.vals = append(h.vals, x.v)
		h.bits = append(h.bits, x.b)
	}
	n := len(h.vals)
	h.max, h.ulp = h.vals[n-1], h.vals[n-1]-h.vals[n-2]
	return h
}

// round returns the correctly rounded value of x as a float64 (±Inf on
// overflow).
func (h *half) round(x float64) float64 {
	if x >= h.max+h.ulp/2 {
		return math.Inf(1)
	}
	if x <= -h.max-h.ulp/2 {
		return math.Inf(-1)
	}
	i := sort.SearchFloat64s(h.vals, x)
	if i < len(h.vals) && h.vals[i] == x {
		return x
	}
	lo, hi := h.vals[max(i-1, 0)], h.vals[min(i, len(h.vals)-1)]
	switch dl, dh := x-lo, hi-x; {
	case dl < dh:
		return lo
	case dh < dl:
		return hi
	}
	if h.bits[i-1]&1 == 0 {
		return lo
	}
	return hi
}

// Narrowing agrees with the slow reference on random values of every
// magnitude, on exact midpoints (ties to even) and on values just off a
// midpoint that float32 cannot tell apart from it (the double-rounding
// trap for float64 inputs).
func TestHalfRoundingMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name   string
		widen  func(uint16) float32
		narrow func(float32) uint16
		narr64 func(float64) uint16
	}{
		{"F16", F16ToFloat32, Float32ToF16, Float64ToF16},
		{"BF16", BF16ToFloat32, Float32ToBF16, Float64ToBF16},
	} {
		ref := newHalf(c.widen)
		check := func(x float64, via32 bool) {
			want := ref.round(x)
			got := float64(c.widen(c.narr64(x)))
			if got != want && !(got == 0 && want == 0) {
				t.Fatalf("%s: Float64To%s(%v) = %v; want %v", c.name, c.name, x, got, want)
			}
			if via32 {
				got = float64(c.widen(c.narrow(float32(x))))
				if got != want && !(got == 0 && want == 0) {
					t.Fatalf("%s: Float32To%s(%v) = %v; want %v", c.name, c.name, x, got, want)
				}
			}
		}
		for range 50000 {
			// Random sign, exponent across the whole range (incl.
			// subnormals and overflow), random significand.
			e := rng.IntN(300) - 150
			x := math.Ldexp(1+rng.Float64(), e)
			if rng.IntN(2) == 0 {
				x = -x
			}
			check(float64(float32(x)), true)
			check(x, false)
		}
		for i := 1; i < len(ref.vals); i += 7 {
			lo, hi := ref.vals[i-1], ref.vals[i]
			mid := (lo + hi) / 2
			check(mid, true) // exact tie, representable in float32
			// Just above and below the tie, closer than float32 resolves.
			d := math.Max(math.Abs(mid), 1e-300) * 1e-12
			check(mid+d, false)
			check(mid-d, false)
		}
		// Largest value and overflow boundary.
		check(ref.max, true)
		check(ref.max+ref.ulp/2, true)
		check(ref.max+ref.ulp/2*(1-1e-12), false)
		check(math.MaxFloat64, false)
		check(-math.MaxFloat64, false)
		check(math.SmallestNonzeroFloat64, false)
	}
}

func TestHalfSpecialValues(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	cases := []struct {
		x    float64
		f16  uint16
		bf16 uint16
	}{
		{0, 0x0000, 0x0000},
		{math.Copysign(0, -1), 0x8000, 0x8000},
		{1, 0x3c00, 0x3f80},
		{-2, 0xc000, 0xc000},
		{65504, 0x7bff, 0x4780},               // F16 max; BF16 rounds up to 65536
		{inf, 0x7c00, 0x7f80},                 // +Inf
		{-inf, 0xfc00, 0xff80},                // -Inf
		{math.Ldexp(1, -24), 0x0001, 0x3380},  // smallest F16 subnormal
		{math.Ldexp(1, -25), 0x0000, 0x3300},  // tie to even → 0 in F16
		{math.Ldexp(1, -133), 0x0000, 0x0001}, // smallest BF16 subnormal
	}
	for _, c := range cases {
		if got := Float64ToF16(c.x); got != c.f16 {
			t.Errorf("Float64ToF16(%v) = %#04x; want %#04x", c.x, got, c.f16)
		}
		if got := Float64ToBF16(c.x); got != c.bf16 {
			t.Errorf("Float64ToBF16(%v) = %#04x; want %#04x", c.x, got, c.bf16)
		}
		if x32 := float32(c.x); float64(x32) == c.x {
			if got := Float32ToF16(x32); got != c.f16 {
				t.Errorf("Float32ToF16(%v) = %#04x; want %#04x", c.x, got, c.f16)
			}
			if got := Float32ToBF16(x32); got != c.bf16 {
				t.Errorf("Float32ToBF16(%v) = %#04x; want %#04x", c.x, got, c.bf16)
			}
		}
	}
	if v := F16ToFloat32(Float64ToF16(nan)); v == v {
		t.Errorf("F16 NaN became %v", v)
	}
	if v := BF16ToFloat32(Float64ToBF16(nan)); v == v {
		t.Errorf("BF16 NaN became %v", v)
	}
	// A NaN whose payload sits only in the low 16 bits must not become Inf.
	if v := BF16ToFloat32(Float32ToBF16(math.Float32frombits(0x7f800001))); v == v {
		t.Errorf("BF16 low-payload NaN became %v", v)
	}
}
