package gemm32

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

func TestSgemm(t *testing.T) {
	if !Available() {
		t.Skip("no AVX2/FMA kernel on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {6, 16, 1}, {7, 17, 3}, {5, 15, 300}, {13, 33, 257}, {64, 74, 513}, {74, 300, 64}, {300, 70, 600}}
	for _, sh := range shapes {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			for _, ab := range [][2]float32{{1, 0}, {-0.5, 1}, {2, 0.25}} {
				tA, tB := tr[0], tr[1]
				ar, ac := m, k
				if tA {
					ar, ac = k, m
				}
				br, bc := k, n
				if tB {
					br, bc = n, k
				}
				lda, ldb, ldc := ac+3, bc+1, n+2
				a := randv(rng, ar*lda)
				b := randv(rng, br*ldb)
				c := randv(rng, m*ldc)
				want := append([]float32(nil), c...)
				gonum.Implementation{}.Sgemm(trans(tA), trans(tB), m, n, k, ab[0], a, lda, b, ldb, ab[1], want, ldc)
				c1 := append([]float32(nil), c...)
				Sgemm(1, tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], c1, ldc)
				Sgemm(3, tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
				for i := range c {
					if c1[i] != c[i] {
						t.Fatalf("%v %v: one worker and three differ at %d: %v, %v", sh, tr, i, c1[i], c[i])
					}
				}
				for i := range m {
					for j := range ldc {
						g, w := c[i*ldc+j], want[i*ldc+j]
						if math.Abs(float64(g-w)) > 1e-4*math.Sqrt(float64(k))*(1+math.Abs(float64(w))) {
							t.Fatalf("%v %v tA=%v tB=%v alpha,beta=%v: c[%d,%d] = %v, want %v", sh, tr, tA, tB, ab, i, j, g, w)
						}
					}
				}
			}
		}
	}
}

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

func randv(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// BenchmarkSgemm compares the kernel with gonum's Sgemm on the randomized
// method's products (W 4096×4096, 74 sketch columns) and a square one.
func BenchmarkSgemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	type cs struct {
		name     string
		tA, tB   bool
		m, n, k  int
		lda, ldb int
	}
	cases := []cs{
		{"W·Ω", false, false, 4096, 74, 4096, 4096, 74},
		{"Wᵀ·Y", true, false, 4096, 74, 4096, 4096, 74},
		{"Yᵀ·W", true, false, 74, 4096, 4096, 74, 4096},
		{"X·Aᵀ(apply64)", false, true, 64, 64, 4096, 4096, 4096},
		{"square1024", false, false, 1024, 1024, 1024, 1024, 1024},
	}
	for _, c := range cases {
		ar := c.m
		if c.tA {
			ar = c.k
		}
		br := c.k
		if c.tB {
			br = c.n
		}
		a := randv(rng, ar*c.lda)
		bb := randv(rng, br*c.ldb)
		out := make([]float32, c.m*c.n)
		flops := float64(2 * c.m * c.n * c.k)
		for _, impl := range []string{"gemm32", "gonum"} {
			b.Run(fmt.Sprintf("%s/%s", c.name, impl), func(b *testing.B) {
				if impl == "gemm32" && !Available() {
					b.Skip("no kernel")
				}
				cpu0 := cpuTime()
				for b.Loop() {
					if impl == "gemm32" {
						Sgemm(runtime.GOMAXPROCS(0), c.tA, c.tB, c.m, c.n, c.k, 1, a, c.lda, bb, c.ldb, 0, out, c.n)
					} else {
						gonum.Implementation{}.Sgemm(trans(c.tA), trans(c.tB), c.m, c.n, c.k, 1, a, c.lda, bb, c.ldb, 0, out, c.n)
					}
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				b.ReportMetric(flops*float64(b.N)/(cpuTime()-cpu0)/1e9, "GFLOP/cpu-s")
			})
		}
	}
}

// cpuTime returns the process's user+system CPU seconds, which contention
// from other processes inflates less than wall time.
func cpuTime() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
