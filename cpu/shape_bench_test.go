package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/lowrank-go/lowrank/internal/blas"
)

// BenchmarkSketchGemm times the products of the randomized method on a
// d×k W with l sketch columns, through the system BLAS.
func BenchmarkSketchGemm(b *testing.B) {
	l, err := blas.Load()
	if err != nil {
		b.Skip(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][3]int{{4096, 4096, 74}, {4096, 11008, 74}, {4096, 4096, 266}} {
		d, k, s := sh[0], sh[1], sh[2]
		w := randMat[float32](rng, d, k)
		om := randMat[float32](rng, k, s)
		y := randMat[float32](rng, d, s)
		z := make([]float32, k*s)
		bb := make([]float32, s*k)
		flops := float64(2 * d * k * s)
		run := func(name string, f func()) {
			b.Run(fmt.Sprintf("%s/%dx%dx%d", name, d, k, s), func(b *testing.B) {
				for b.Loop() {
					f()
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		run("W·Ω", func() { l.Sgemm(false, false, d, s, k, 1, w, k, om, s, 0, y, s) })
		run("Wᵀ·Y", func() { l.Sgemm(true, false, k, s, d, 1, w, k, y, s, 0, z, s) })
		run("Yᵀ·W", func() { l.Sgemm(true, false, s, k, d, 1, y, s, w, k, 0, bb, k) })
	}
}
