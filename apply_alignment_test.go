package lowrank_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank-go/lowrank"
)

// Issue 9, point 15: Apply gives bit-identical results for the same x
// whatever its memory alignment, on every backend this machine has
// (pure-Go Apply differed by up to 5.7e-6 between copies of x). The CPU
// backend runs on the system BLAS when one loads: CI also runs this test
// with LOWRANK_BLAS=gonum for the pure-Go kernels (cpu's
// TestApplyIndependentOfAlignment checks both in one process).
func TestApplyBitIdenticalWhateverTheAlignment(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	d, k := 70, 131
	w := lowrank.Matrix[float32]{Rows: d, Cols: k, Data: make([]float32, d*k)}
	for i := range w.Data {
		w.Data[i] = float32(rng.NormFloat64())
	}
	x := make([]float32, 3*k)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	ran := 0
	for _, info := range lowrank.Backends() {
		if !info.Available {
			continue
		}
		b, err := lowrank.LookupBackend(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := lowrank.Factorize(w, lowrank.Rank(13), lowrank.WithBackend(b))
		if err != nil {
			t.Fatal(err)
		}
		ran++
		var ref1, refN []float32
		for off := range 8 {
			buf := make([]float32, len(x)+off)
			xs := buf[off:]
			copy(xs, x)
			y1, err := f.Apply(xs[:k], nil)
			if err != nil {
				t.Fatal(err)
			}
			yn, err := f.ApplyBatch(lowrank.Matrix[float32]{Rows: 3, Cols: k, Data: xs}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if off == 0 {
				ref1, refN = y1, yn.Data
				continue
			}
			for i := range y1 {
				if math.Float32bits(y1[i]) != math.Float32bits(ref1[i]) {
					t.Fatalf("%s: Apply with x at +%d: y[%d] = %v, at +0 %v", info.Name, off, i, y1[i], ref1[i])
				}
			}
			for i := range yn.Data {
				if math.Float32bits(yn.Data[i]) != math.Float32bits(refN[i]) {
					t.Fatalf("%s: ApplyBatch with x at +%d: y[%d] = %v, at +0 %v", info.Name, off, i, yn.Data[i], refN[i])
				}
			}
		}
		f.Close()
	}
	if ran == 0 {
		t.Fatal("no backend available")
	}
}
