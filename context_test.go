package lowrank_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/internal/sched"
	"github.com/lowrank-go/lowrank/la"
)

// countingBackend is the CPU backend with a hook in its engines: it
// counts the products, QRs and SVDs a computation asks for, and can run
// a function (cancelling a context) when one starts. The count, not a
// clock, shows how much work a cancelled call did.
type countingBackend struct {
	lowrank.Backend
	gemms, qrs, svds atomic.Int64
	onGemm           func(n int64) // called as product n starts
	onSVD            func()        // called as an SVD starts
}

func newCounting() *countingBackend { return &countingBackend{Backend: cpu.New()} }

func (b *countingBackend) Float32() la.Engine[float32] {
	return &countingEngine[float32]{Engine: b.Backend.Float32(), b: b}
}

func (b *countingBackend) Float64() la.Engine[float64] {
	return &countingEngine[float64]{Engine: b.Backend.Float64(), b: b}
}

type countingEngine[T la.Float] struct {
	la.Engine[T]
	b *countingBackend
}

func (e *countingEngine[T]) Gemm(tA, tB bool, alpha T, a, b la.Mat, beta T, c la.Mat) error {
	n := e.b.gemms.Add(1)
	if e.b.onGemm != nil {
		e.b.onGemm(n)
	}
	return e.Engine.Gemm(tA, tB, alpha, a, b, beta, c)
}

func (e *countingEngine[T]) Orthonormalize(a la.Mat) error {
	e.b.qrs.Add(1)
	return e.Engine.Orthonormalize(a)
}

func (e *countingEngine[T]) SVD(a la.Mat) (la.Mat, []float64, la.Mat, error) {
	e.b.svds.Add(1)
	if e.b.onSVD != nil {
		e.b.onSVD()
	}
	return e.Engine.SVD(a)
}

func gaussian32(rows, cols int, seed uint64) lowrank.Matrix[float32] {
	rng := rand.New(rand.NewPCG(seed, 7))
	m, _ := lowrank.NewMatrix[float32](rows, cols, nil)
	for i := range m.Data {
		m.Data[i] = float32(rng.NormFloat64())
	}
	return m
}

// checkStopped checks the error of a cancelled call: it wraps want, says
// lowrank, and comes with no result.
func checkStopped(t *testing.T, err error, want error, result any) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want an error wrapping %v", err, want)
	}
	if !strings.HasPrefix(err.Error(), "lowrank: ") {
		t.Errorf("error %q does not start with \"lowrank: \"", err)
	}
	switch r := result.(type) {
	case *lowrank.Factors[float32]:
		if r != nil {
			t.Error("a stopped factorization returned factors")
		}
	case *lowrank.SVDResult[float32]:
		if r != nil {
			t.Error("a stopped SVD returned a result")
		}
	}
}

// TestFactorizeContextStopsAtEveryBlock cancels a randomized factorization
// of a 2048×1024 matrix as its n-th matrix product starts, for every n a
// full run reaches, and checks that no product starts after that: the call
// returns at the next block boundary.
func TestFactorizeContextStopsAtEveryBlock(t *testing.T) {
	w := gaussian32(2048, 1024, 1)
	opts := func(b lowrank.Backend) []lowrank.Option {
		return []lowrank.Option{lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Randomized), lowrank.WithPowerIters(2)}
	}
	full := newCounting()
	if _, err := lowrank.FactorizeContext(context.Background(), w, lowrank.Rank(32), opts(full)...); err != nil {
		t.Fatal(err)
	}
	total := full.gemms.Load()
	t.Logf("a full run: %d products, %d QRs, %d SVDs", total, full.qrs.Load(), full.svds.Load())
	if total < 6 {
		t.Fatalf("a full run did only %d products", total)
	}
	for stop := int64(1); stop <= total; stop++ {
		b := newCounting()
		ctx, cancel := context.WithCancel(context.Background())
		b.onGemm = func(n int64) {
			if n == stop {
				cancel()
			}
		}
		f, err := lowrank.FactorizeContext(ctx, w, lowrank.Rank(32), opts(b)...)
		cancel()
		checkStopped(t, err, context.Canceled, f)
		if got := b.gemms.Load(); got != stop {
			t.Errorf("cancelled at product %d of %d: %d products ran", stop, total, got)
		}
	}
}

// TestFactorizeContextAdaptive stops an Energy factorization, whose
// sketch grows block by block, after its first product.
func TestFactorizeContextAdaptive(t *testing.T) {
	w := gaussian32(1024, 1024, 2)
	b := newCounting()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.onGemm = func(int64) { cancel() }
	f, err := lowrank.FactorizeContext(ctx, w, lowrank.Energy(0.99), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Randomized))
	checkStopped(t, err, context.Canceled, f)
	if b.gemms.Load() != 1 || b.svds.Load() != 0 {
		t.Errorf("%d products and %d SVDs after a cancel in the first product", b.gemms.Load(), b.svds.Load())
	}
}

// TestFactorizeContextEnded: a context that has already ended stops the
// call before any work, with its own error (DeadlineExceeded here).
func TestFactorizeContextEnded(t *testing.T) {
	w := gaussian32(512, 512, 3)
	b := newCounting()
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	f, err := lowrank.FactorizeContext(ctx, w, lowrank.Rank(8), lowrank.WithBackend(b))
	checkStopped(t, err, context.DeadlineExceeded, f)
	res, err := lowrank.SVDContext(ctx, w, lowrank.WithBackend(b))
	checkStopped(t, err, context.DeadlineExceeded, res)
	if n := b.gemms.Load() + b.qrs.Load() + b.svds.Load(); n != 0 {
		t.Errorf("%d backend calls with an ended context", n)
	}
}

// TestExactStopsAfterTheSVD: the exact SVD cannot be interrupted; a
// cancel during it is seen as soon as it returns, and nothing follows.
func TestExactStopsAfterTheSVD(t *testing.T) {
	w := gaussian32(300, 200, 4)
	for _, name := range []string{"Factorize", "SVD"} {
		b := newCounting()
		ctx, cancel := context.WithCancel(context.Background())
		b.onSVD = cancel
		var err error
		var res any
		if name == "Factorize" {
			res, err = lowrank.FactorizeContext(ctx, w, lowrank.Rank(10), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Exact))
		} else {
			res, err = lowrank.SVDContext(ctx, w, lowrank.WithBackend(b))
		}
		cancel()
		checkStopped(t, err, context.Canceled, res)
		if b.svds.Load() != 1 || b.gemms.Load() != 0 {
			t.Errorf("%s: %d SVDs and %d products", name, b.svds.Load(), b.gemms.Load())
		}
	}
}

// TestContextStopsWaitingForACore: a factorization waiting for a core of
// the CPU's thread budget stops waiting when its context ends, and leaves
// the budget whole.
func TestContextStopsWaitingForACore(t *testing.T) {
	c, err := lowrank.LookupBackend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	w := gaussian32(600, 500, 5)
	g0 := runtime.NumGoroutine()
	hold, err := sched.Default.Acquire(context.Background(), 1<<20) // every core
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := lowrank.FactorizeContext(ctx, w, lowrank.Rank(8), lowrank.WithBackend(c), lowrank.WithMethod(lowrank.Randomized))
		errc <- err
	}()
	for i := 0; sched.Default.Stats().Waiting == 0; i++ {
		if i > 60000 {
			t.Fatal("the factorization never waited for a core")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	err = <-errc
	sched.Default.Release(hold)
	checkStopped(t, err, context.Canceled, nil)
	if s := sched.Default.Stats(); s.Held != 0 || s.Waiting != 0 || s.Jobs != 0 {
		t.Errorf("budget after the cancelled call: %+v", s)
	}
	if g := runtime.NumGoroutine(); g > g0 {
		t.Errorf("goroutines: %d before, %d after", g0, g)
	}
}

// TestContextNil: a nil context is a caller's mistake that gets an error
// wrapping ErrOption, never a panic (the standard library's http.NewRequestWithContext
// refuses one the same way).
func TestContextNil(t *testing.T) {
	w := gaussian32(40, 30, 1)
	var ctx context.Context // nil
	f, err := lowrank.FactorizeContext(ctx, w, lowrank.Rank(3))
	if f != nil || !errors.Is(err, lowrank.ErrOption) || !strings.HasPrefix(err.Error(), "lowrank:") || !strings.Contains(err.Error(), "context") {
		t.Errorf("FactorizeContext(nil): %v, %v; want an ErrOption error about the nil context", f, err)
	}
	s, err := lowrank.SVDContext(ctx, w)
	if s != nil || !errors.Is(err, lowrank.ErrOption) || !strings.HasPrefix(err.Error(), "lowrank:") || !strings.Contains(err.Error(), "context") {
		t.Errorf("SVDContext(nil): %v, %v; want an ErrOption error about the nil context", s, err)
	}
}
