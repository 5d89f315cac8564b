package lowrank

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// fixSignsOne is fixSigns as one plain pass: the reference.
func fixSignsOne[T Float](b, a Matrix[T]) {
	big := make([]T, b.Cols)
	for i := range b.Rows {
		for c, v := range b.Data[i*b.Cols : (i+1)*b.Cols] {
			if max(v, -v) > max(big[c], -big[c]) {
				big[c] = v
			}
		}
	}
	for c, v := range big {
		if v < 0 {
			for i := range b.Rows {
				b.Data[i*b.Cols+c] = -b.Data[i*b.Cols+c]
			}
			for i := range a.Cols {
				a.Data[c*a.Cols+i] = -a.Data[c*a.Cols+i]
			}
		}
	}
}

// fixSigns splits B's rows between the cores: the same factors as one
// pass, also where equal magnitudes of both signs meet in a column (the
// first in row order decides) and across the split between the rows.
func TestFixSignsSplit(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, sh := range [][3]int{{3, 2, 5}, {4096, 300, 64}, {parallelMin / 16, 16, 33}, {2 * parallelMin, 1, 3}} {
		d, r, k := sh[0], sh[1], sh[2]
		b := Matrix[float32]{Rows: d, Cols: r, Data: make([]float32, d*r)}
		a := Matrix[float32]{Rows: r, Cols: k, Data: make([]float32, r*k)}
		for i := range b.Data {
			b.Data[i] = float32(rng.IntN(9) - 4) // many ties of both signs
		}
		for i := range a.Data {
			a.Data[i] = float32(rng.NormFloat64())
		}
		wb, wa := slices.Clone(b.Data), slices.Clone(a.Data)
		fixSignsOne(Matrix[float32]{Rows: d, Cols: r, Data: wb}, Matrix[float32]{Rows: r, Cols: k, Data: wa})
		fixSigns(b, a)
		if !slices.Equal(b.Data, wb) || !slices.Equal(a.Data, wa) {
			t.Errorf("%d×%d·%d×%d: fixSigns differs from one pass", d, r, r, k)
		}
	}
}
