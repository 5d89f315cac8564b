package cpu

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/lowrank-go/lowrank/internal/blas"
	"github.com/lowrank-go/lowrank/la"
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

// BenchmarkOrthonormalize is the engine's QR of a row-major sketch, the
// transposes and the scratch included, as the randomized method
// calls it (plus a copy of the input, 0.1–0.3 ms), and its cheaper
// NormalizeRange (an LU on a system LAPACK) used between power iterations.
func BenchmarkOrthonormalize(b *testing.B) {
	e := New().Float32()
	for _, sz := range [][2]int{{4096, 80}, {11008, 80}, {4096, 272}, {11008, 272}} {
		m, n := sz[0], sz[1]
		src := make([]float32, m*n)
		for i := range src {
			src[i] = float32(rand.NormFloat64())
		}
		a, _ := e.Upload(m, n, src)
		d := a.(*dense[float32])
		b.Run(itoa(m)+"x"+itoa(n), func(b *testing.B) {
			for b.Loop() {
				copy(d.data, src)
				if err := e.Orthonormalize(a); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("NormalizeRange/"+itoa(m)+"x"+itoa(n), func(b *testing.B) {
			for b.Loop() {
				copy(d.data, src)
				if err := e.(la.RangeNormalizer[float32]).NormalizeRange(a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
