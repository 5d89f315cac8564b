package lowrank

import (
	"math"
	"runtime"
	"testing"
)

// TestGaussianDraw checks the sketch's test matrix: the same numbers on
// one core and on several (its chunks are drawn in parallel from
// generators of their own), a new matrix for every draw and every seed,
// and standard normal moments.
func TestGaussianDraw(t *testing.T) {
	draw := func(procs int, seed uint64, draws int) [][]float32 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		s := &sketch[float32]{j: &job[float32]{cfg: &config{seed: seed}}}
		var out [][]float32
		for range draws {
			out = append(out, s.gaussian(3001, 700)) // 2.1 M samples: parallel
		}
		return out
	}
	one, four := draw(1, 7, 2), draw(4, 7, 2)
	for d := range one {
		for i := range one[d] {
			if math.Float32bits(one[d][i]) != math.Float32bits(four[d][i]) {
				t.Fatalf("draw %d, sample %d: %v on one core, %v on four", d, i, one[d][i], four[d][i])
			}
		}
	}
	other := draw(2, 8, 1)[0]
	for _, pair := range []struct {
		name string
		a, b []float32
	}{{"two draws", one[0], one[1]}, {"two seeds", one[0], other}} {
		same := 0
		for i := range pair.a {
			if pair.a[i] == pair.b[i] {
				same++
			}
		}
		if same > len(pair.a)/1000 {
			t.Errorf("%s: %d of %d samples equal; expected independent matrices", pair.name, same, len(pair.a))
		}
	}
	for _, g := range append(one, other) {
		var sum, sq float64
		for _, v := range g {
			sum += float64(v)
			sq += float64(v) * float64(v)
		}
		n := float64(len(g))
		mean, variance := sum/n, sq/n-(sum/n)*(sum/n)
		if math.Abs(mean) > 5/math.Sqrt(n) || math.Abs(variance-1) > 0.01 {
			t.Errorf("mean %.5f, variance %.5f of %d samples; expected 0 and 1", mean, variance, len(g))
		}
	}
	// Chunks must not repeat one another (a seed mix-up would).
	g := one[0]
	for c := 1; c*gaussianChunk+8 <= len(g); c++ {
		if g[c*gaussianChunk] == g[0] && g[c*gaussianChunk+1] == g[1] {
			t.Fatalf("chunk %d starts as chunk 0", c)
		}
	}
}
