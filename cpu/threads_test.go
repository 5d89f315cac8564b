package cpu

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/lowrank-go/lowrank/internal/blas"
	"github.com/lowrank-go/lowrank/internal/sched"
	"github.com/lowrank-go/lowrank/la"
)

func TestThreadsFor(t *testing.T) {
	for _, c := range []struct {
		flops float64
		want  int
	}{{0, 1}, {1 << 20, 1}, {1<<22 - 1, 1}, {1 << 22, 2}, {1 << 25, 16}, {1e30, 1 << 20}} {
		if got := threadsFor(c.flops); got != c.want {
			t.Errorf("threadsFor(%g) = %d, want %d", c.flops, got, c.want)
		}
	}
}

// checked wraps an engine's kernels and checks, inside every call, the
// promise of the thread budget: the threads of the calls running at once
// never exceed GOMAXPROCS, and the system library is set to exactly the
// threads the call was granted.
type checked[T float32 | float64] struct {
	kernels[T]
	t       *testing.T
	lib     *blas.Lib // nil on gonum
	limit   int
	mu      sync.Mutex
	threads int
	peak    int
	most    int // the most threads one call got
}

func (c *checked[T]) enter(nt int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.threads += nt
	c.peak = max(c.peak, c.threads)
	c.most = max(c.most, nt)
	if c.threads > c.limit {
		c.t.Errorf("%d threads computing at once, budget %d", c.threads, c.limit)
	}
	if c.lib != nil && c.lib.ThreadControl != "" {
		if got := c.lib.CurrentThreads(); got != nt {
			c.t.Errorf("a call granted %d threads runs with the library set to %d", nt, got)
		}
	}
}

func (c *checked[T]) leave(nt int) {
	c.mu.Lock()
	c.threads -= nt
	c.mu.Unlock()
}

func (c *checked[T]) gemm(nt int, tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, cc []T, ldc int) {
	c.enter(nt)
	defer c.leave(nt)
	c.kernels.gemm(nt, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
}

func (c *checked[T]) gemv(tA bool, m, n int, alpha T, a []T, lda int, x []T, beta T, y []T) {
	c.enter(1)
	defer c.leave(1)
	c.kernels.gemv(tA, m, n, alpha, a, lda, x, beta, y)
}

func (c *checked[T]) qr(nt, m, n int, a []T, lda int) error {
	c.enter(nt)
	defer c.leave(nt)
	return c.kernels.qr(nt, m, n, a, lda)
}

func (c *checked[T]) svd(nt, m, n int, a []T, lda int, s []float64, u []T, ldu int, vt []T, ldvt int) error {
	c.enter(nt)
	defer c.leave(nt)
	return c.kernels.svd(nt, m, n, a, lda, s, u, ldu, vt, ldvt)
}

// TestThreadBudget runs products, QRs, SVDs and applies from 16
// goroutines on the real kernels (the system library and gonum) and
// checks the budget's promise inside each call; a lone large product first
// gets every core.
func TestThreadBudget(t *testing.T) {
	for name, b := range testBackends(t) {
		t.Run(name, func(t *testing.T) {
			b.Init()
			c := &checked[float32]{kernels: b.f32.k, t: t, lib: b.lib, limit: sched.Default.Limit()}
			testThreadBudget(t, engine[float32]{k: c}, c)
		})
	}
}

func testThreadBudget(t *testing.T, e engine[float32], c *checked[float32]) {
	rng := rand.New(rand.NewPCG(1, 2))
	mat := func(r, cols int) la.Mat {
		m, err := e.Upload(r, cols, randMat[float32](rng, r, cols))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	w, om, y := mat(1024, 768), mat(768, 64), mat(1024, 64)
	if err := e.Gemm(false, false, 1, w, om, 0, y); err != nil { // alone
		t.Fatal(err)
	}
	if want := min(c.limit, grantCap(c.lib, c.limit)); c.most != want {
		t.Errorf("a lone 1024×768×64 product got %d threads, want %d", c.most, want)
	}
	app, err := e.NewApplier(1024, 32, 768, randMat[float32](rng, 1024, 32), randMat[float32](rng, 32, 768))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 6 {
				var err error
				switch (g + i) % 4 {
				case 0:
					yy, _ := e.Zeros(1024, 64)
					err = e.Gemm(false, false, 1, w, om, 0, yy)
				case 1:
					q, _ := e.Zeros(1024, 64)
					if err = e.Copy(q, y); err == nil {
						err = e.Orthonormalize(q)
					}
				case 2:
					s, _ := e.Zeros(64, 200)
					if v, _ := e.View(w, 0, 64, 0, 200); v != nil {
						_ = e.Copy(s, v)
					}
					_, _, _, err = e.SVD(s)
				case 3:
					x := randMat[float32](rand.New(rand.NewPCG(uint64(g), 3)), 4, 768)
					out := make([]float32, 4*1024)
					if err = app.Apply(out[:1024], x[:768], 1, nil); err == nil {
						err = app.Apply(out, x, 4, nil)
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("peak %d threads at once, budget %d; stats %+v", c.peak, c.limit, sched.Default.Stats())
	if s := sched.Default.Stats(); s.Held != 0 || s.Waiting != 0 {
		t.Errorf("budget not whole: %+v", s)
	}
}

// grantCap returns the most threads one grant may get: the library's
// pool size, 1 for a library without a thread control, def on gonum.
func grantCap(l *blas.Lib, def int) int {
	switch {
	case l == nil || l.ThreadControl != "" && l.Threads == 0:
		return def
	case l.ThreadControl == "":
		return 1
	}
	return l.Threads
}
