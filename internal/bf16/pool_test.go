package bf16

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank-go/lowrank/internal/blas"
)

// TestThreadPool runs products on a pthreads OpenBLAS's worker threads
// (UseThreadPool) and requires that they did run there and gave the same
// bits as the goroutines: the sums' order does not depend on who computes
// a part.
func TestThreadPool(t *testing.T) {
	if !Available() {
		t.Skip("no AVX512_BF16 kernel")
	}
	lib, err := blas.Load()
	if err != nil {
		t.Skipf("no system BLAS: %v", err)
	}
	fn := lib.ThreadPool()
	if fn == nil {
		t.Skipf("%s %q has no pthreads pool of two threads or more", lib.Vendor, lib.Version)
	}
	defer UseThreadPool(nil, 0)
	workers := lib.Threads
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range []struct {
		m, n, k int
		tA, tB  bool
		beta    float32
	}{
		{512, 64, 256, false, false, 0},
		{517, 37, 301, false, true, 0.5},
		{700, 80, 257, true, false, 0},
		{600, 272, 129, true, true, -1},
	} {
		t.Run(fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v", s.m, s.n, s.k, s.tA, s.tB), func(t *testing.T) {
			lda, ldb, ldc := s.k+3, s.n+1, s.n+5
			ar, br := s.m, s.k
			if s.tA {
				ar, lda = s.k, s.m+3
			}
			if s.tB {
				br, ldb = s.n, s.k+1
			}
			a, b := randn(rng, ar*lda), randn(rng, br*ldb)
			c0 := randn(rng, s.m*ldc)
			want := append([]float32(nil), c0...)
			UseThreadPool(nil, 0)
			Gemm(workers, s.tA, s.tB, s.m, s.n, s.k, 1.5, a, lda, b, ldb, s.beta, want, ldc)

			got := append([]float32(nil), c0...)
			UseThreadPool(fn, lib.Threads)
			before := poolTasks()
			Gemm(workers, s.tA, s.tB, s.m, s.n, s.k, 1.5, a, lda, b, ldb, s.beta, got, ldc)
			if ran := poolTasks() - before; ran < 2 {
				t.Fatalf("%d parts ran on the pool; expected at least 2", ran)
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("element %d = %v on the pool; %v on goroutines", i, got[i], want[i])
				}
			}
		})
	}
}
