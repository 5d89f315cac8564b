package cpu

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/lowrank-go/lowrank/internal/blas"
)

func BenchmarkSplitGemm(b *testing.B) {
	l, err := blas.Load()
	if err != nil {
		b.Skip(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	d, k, s := 4096, 4096, 74
	w := randMat[float32](rng, d, k)
	om := randMat[float32](rng, k, s)
	y := make([]float32, d*s)
	flops := float64(2 * d * k * s)
	b.Run(fmt.Sprintf("split2/W·Ω/%d", s), func(b *testing.B) {
		for b.Loop() {
			var wg sync.WaitGroup
			h := d / 2
			for p := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l.Sgemm(false, false, h, s, k, 1, w[p*h*k:], k, om, s, 0, y[p*h*s:], s)
				}()
			}
			wg.Wait()
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run(fmt.Sprintf("whole/W·Ω/%d", s), func(b *testing.B) {
		for b.Loop() {
			l.Sgemm(false, false, d, s, k, 1, w, k, om, s, 0, y, s)
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}
