package cpu

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/lowrank-go/lowrank/internal/blas"
)

func BenchmarkQRVariants(b *testing.B) {
	l, lerr := blas.Load()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][2]int{{4096, 74}, {11008, 74}, {4096, 266}, {11008, 266}} {
		m, n := sh[0], sh[1]
		src := randMat[float32](rng, m, n)
		a := make([]float32, m*n)
		t := make([]float32, m*n)
		g := newGonum32(newGonum64())
		b.Run("gonum-Householder/"+itoa(m)+"x"+itoa(n), func(b *testing.B) {
			for b.Loop() {
				copy(a, src)
				if err := g.qr(runtime.GOMAXPROCS(0), m, n, a, n); err != nil {
					b.Fatal(err)
				}
			}
		})
		if lerr != nil {
			continue
		}
		b.Run("LQ/"+itoa(m)+"x"+itoa(n), func(b *testing.B) {
			for b.Loop() {
				copy(a, src)
				if err := blas.OrthLQ(l, n, m, a, n); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("TQR/"+itoa(m)+"x"+itoa(n), func(b *testing.B) {
			for b.Loop() {
				copy(a, src)
				for i := range m {
					for j := range n {
						t[j*m+i] = a[i*n+j]
					}
				}
				if err := blas.OrthQR(l, m, n, t, m); err != nil {
					b.Fatal(err)
				}
				for i := range m {
					for j := range n {
						a[i*n+j] = t[j*m+i]
					}
				}
			}
		})
	}
}

func itoa(i int) string {
	return string(rune('0'+i/10000%10)) + string(rune('0'+i/1000%10)) + string(rune('0'+i/100%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}
