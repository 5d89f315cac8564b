package lowrank_test

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/internal/sched"
)

// TestConcurrentMatchesSequential runs factorizations (randomized and
// exact) and applies (one vector and batches) from 24 goroutines at once
// and checks every result against the same call made alone; then that
// the thread budget was never exceeded and is whole again.
//
// On the pure-Go path the results are the same bit for bit: its products
// split over goroutines by rows or column panels, which does not change
// any sum. A multi-threaded BLAS rounds differently from the same BLAS on
// one thread (OpenBLAS 0.3.21 does, even for a product split by rows), and
// a call made alone gets every core while one among many gets one: with
// a system BLAS the results are the same bit for bit when every call runs
// on one thread (the budget capped at one thread per call), and agree to
// float32 rounding otherwise.
func TestConcurrentMatchesSequential(t *testing.T) {
	c, err := lowrank.LookupBackend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("gonum", func(t *testing.T) { testConcurrentMatchesSequential(t, cpu.NewGonum(), 0) })
	t.Run("default/one-thread", func(t *testing.T) {
		defer sched.Default.SetMax(sched.Default.SetMax(1))
		testConcurrentMatchesSequential(t, c, 0)
	})
	t.Run("default", func(t *testing.T) { testConcurrentMatchesSequential(t, c, 1e-4) })
}

// Factorizations running at once share the host pool (the randomized
// method's Ω, Q and B of at least 1 MiB are reused between calls): each
// gets buffers of its own, or their sketches would mix. Calls of two
// lengths, and Energy, which grows its sketch and gives buffers back
// mid-call, agree with lone calls to float32 rounding (not bit for bit:
// the BLAS threads differ, see TestConcurrentMatchesSequential).
func TestHostPoolConcurrent(t *testing.T) {
	wide := decaying32(400, 8192, 31)
	tall := decaying32(8192, 300, 32)
	calls := []func() (*lowrank.Factors[float32], error){
		func() (*lowrank.Factors[float32], error) {
			return lowrank.Factorize(wide, lowrank.Rank(40), lowrank.WithMethod(lowrank.Randomized))
		},
		func() (*lowrank.Factors[float32], error) {
			return lowrank.Factorize(tall, lowrank.Rank(24), lowrank.WithMethod(lowrank.Randomized))
		},
		func() (*lowrank.Factors[float32], error) {
			return lowrank.Factorize(wide, lowrank.Energy(0.6), lowrank.WithMethod(lowrank.Randomized))
		},
	}
	want := make([][]float32, len(calls))
	for i, c := range calls {
		f, err := c()
		if err != nil {
			t.Fatal(err)
		}
		want[i] = slices.Concat(f.B.Data, f.A.Data)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 2 * len(calls) {
				i := (g + n) % len(calls)
				f, err := calls[i]()
				if err != nil {
					errs <- err
					return
				}
				if got := slices.Concat(f.B.Data, f.A.Data); !same(got, want[i], 1e-4) {
					errs <- fmt.Errorf("call %d, made concurrently, differs from a lone one", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// decaying32 returns a rows×cols matrix with singular values ≈ 0.8^i
// (well separated, so that its leading singular vectors are stable to
// rounding) plus noise of 1e-3.
func decaying32(rows, cols int, seed uint64) lowrank.Matrix[float32] {
	const r = 48
	b, a := gaussian32(rows, r, seed), gaussian32(r, cols, seed+1000)
	s := 1.0
	for j := range r {
		for i := range rows {
			b.Data[i*r+j] *= float32(s / math.Sqrt(float64(rows*cols)))
		}
		s *= 0.8
	}
	f, _ := lowrank.NewFactors(b, a)
	w, _ := f.Reconstruct()
	noise := gaussian32(rows, cols, seed+2000)
	for i := range w.Data {
		w.Data[i] += 1e-3 / float32(math.Sqrt(float64(rows*cols))) * noise.Data[i]
	}
	return w
}

// same reports whether got equals want: bit for bit when tol is 0,
// within tol·max|want| otherwise.
func same(got, want []float32, tol float64) bool {
	if tol == 0 || len(got) != len(want) {
		return slices.Equal(got, want)
	}
	var scale, diff float64
	for i, w := range want {
		scale = max(scale, math.Abs(float64(w)))
		diff = max(diff, math.Abs(float64(got[i]-w)))
	}
	return diff <= tol*scale
}

type call struct {
	name string
	run  func() ([]float32, error)
}

func testConcurrentMatchesSequential(t *testing.T, b lowrank.Backend, tol float64) {
	size := 512
	if testing.Short() {
		size = 256
	}
	var calls []call
	for i := range 3 {
		w := decaying32(size, size*3/4, uint64(10+i))
		calls = append(calls,
			call{fmt.Sprintf("randomized %d", i), func() ([]float32, error) {
				f, err := lowrank.Factorize(w, lowrank.Rank(16), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Randomized), lowrank.WithSeed(uint64(i)))
				if err != nil {
					return nil, err
				}
				return slices.Concat(f.B.Data, f.A.Data), nil
			}},
			call{fmt.Sprintf("energy %d", i), func() ([]float32, error) {
				f, err := lowrank.Factorize(w, lowrank.Energy(0.5), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Randomized))
				if err != nil {
					return nil, err
				}
				return slices.Concat(f.B.Data, f.A.Data), nil
			}})
	}
	we := decaying32(160, 120, 20)
	calls = append(calls, call{"exact", func() ([]float32, error) {
		f, err := lowrank.Factorize(we, lowrank.Rank(12), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Exact))
		if err != nil {
			return nil, err
		}
		return slices.Concat(f.B.Data, f.A.Data), nil
	}})
	fb, fa := gaussian32(1024, 32, 30), gaussian32(32, 768, 31)
	shared, err := lowrank.NewFactors(fb, fa)
	if err != nil {
		t.Fatal(err)
	}
	shared.Backend = b
	defer shared.Close()
	bias := gaussian32(1, 1024, 32).Data
	for i := range 4 {
		x := gaussian32(1, 768, uint64(40+i)).Data
		calls = append(calls, call{fmt.Sprintf("apply %d", i), func() ([]float32, error) {
			y := make([]float32, 1024)
			return y, shared.ApplyTo(y, x, bias)
		}})
		xb := gaussian32(24, 768, uint64(50+i))
		calls = append(calls, call{fmt.Sprintf("batch %d", i), func() ([]float32, error) {
			y, err := shared.ApplyBatch(xb, bias)
			return y.Data, err
		}})
	}

	want := make([][]float32, len(calls))
	for i, c := range calls {
		if want[i], err = c.run(); err != nil {
			t.Fatalf("%s alone: %v", c.name, err)
		}
	}
	sched.Default.ResetPeaks()
	var wg sync.WaitGroup
	for g := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 3 {
				i := (g*7 + r*5) % len(calls)
				got, err := calls[i].run()
				if err != nil {
					t.Errorf("%s concurrently: %v", calls[i].name, err)
					return
				}
				if !same(got, want[i], tol) {
					t.Errorf("%s concurrently differs from the same call alone", calls[i].name)
				}
			}
		}()
	}
	wg.Wait()
	s := sched.Default.Stats()
	t.Logf("thread budget: %+v", s)
	if s.PeakThreads > s.Limit || s.PeakCores > s.Limit {
		t.Errorf("the budget of %d cores was exceeded: %+v", s.Limit, s)
	}
	if s.Held != 0 || s.Waiting != 0 || s.Jobs != 0 {
		t.Errorf("the budget is not whole after the run: %+v", s)
	}
}
