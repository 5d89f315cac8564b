package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank-go/lowrank/la"
)

// applyAt applies app to the values of x copied into a fresh buffer at
// element offset off (so at a different alignment for each off) and
// returns y.
func applyAt[T float32 | float64](t *testing.T, app la.Applier[T], x []T, n, d, off int, bias []T) []T {
	t.Helper()
	buf := make([]T, len(x)+off+16)
	xs := buf[off : off+len(x)]
	copy(xs, x)
	ybuf := make([]T, n*d+off+16)
	y := ybuf[off+1 : off+1+n*d]
	if err := app.Apply(y, xs, n, bias); err != nil {
		t.Fatal(err)
	}
	return append([]T(nil), y...)
}

func bitsEqual[T float32 | float64](a, b []T) int {
	for i := range a {
		switch x := any(a[i]).(type) {
		case float32:
			if math.Float32bits(x) != math.Float32bits(any(b[i]).(float32)) {
				return i
			}
		case float64:
			if math.Float64bits(x) != math.Float64bits(any(b[i]).(float64)) {
				return i
			}
		}
	}
	return -1
}

func checkAlignment[T float32 | float64](t *testing.T, e la.Engine[T], name string) {
	rng := rand.New(rand.NewPCG(15, 15))
	for _, sh := range []struct{ d, r, k, n int }{{67, 13, 101, 1}, {33, 5, 257, 1}, {64, 16, 64, 3}, {17, 3, 1000, 7}} {
		b := make([]T, sh.d*sh.r)
		a := make([]T, sh.r*sh.k)
		x := make([]T, sh.n*sh.k)
		bias := make([]T, sh.d)
		for _, v := range [][]T{b, a, x, bias} {
			for i := range v {
				v[i] = T(rng.NormFloat64())
			}
		}
		// The factors too at several alignments: two Factors with equal
		// values must agree.
		for _, bo := range []int{0, 1, 3} {
			bb := append(make([]T, bo), b...)[bo:]
			ab := append(make([]T, bo+1), a...)[bo+1:]
			app, err := e.NewApplier(sh.d, sh.r, sh.k, bb, ab)
			if err != nil {
				t.Fatal(err)
			}
			var ref []T
			for off := range 9 {
				for _, bi := range [][]T{nil, bias} {
					y := applyAt(t, app, x, sh.n, sh.d, off, bi)
					if bi == nil && ref == nil {
						ref = y
						continue
					}
					if bi != nil {
						continue
					}
					if i := bitsEqual(y, ref); i >= 0 {
						t.Fatalf("%s %T %+v: factors at +%d, x at +%d: y[%d] = %v, at +0: %v (not bit-identical)", name, y[0], sh, bo, off, i, y[i], ref[i])
					}
				}
			}
		}
	}
}

// Issue 9, point 15: the pure-Go Apply depended on the memory alignment of
// x (gonum's SIMD kernels peel elements until an operand is aligned, which
// changes the order of the sums): identical calls on the same values
// differed by up to 5.7e-6. Every host engine now gives bit-identical
// results whatever the alignment of x, y and the factors.
func TestApplyIndependentOfAlignment(t *testing.T) {
	engines := []struct {
		name string
		b    *Backend
	}{{"gonum", NewGonum()}, {"cpu (system BLAS when loadable)", New()}}
	for _, e := range engines {
		if err := e.b.Init(); err != nil {
			t.Fatal(err)
		}
		checkAlignment(t, e.b.Float32(), e.name)
		checkAlignment(t, e.b.Float64(), e.name)
	}
}
