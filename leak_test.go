package lowrank_test

import (
	"runtime"
	"testing"

	"github.com/lowrank-go/lowrank"
)

// TestNoLeak runs 10 000 factorizations and applies and checks that neither
// goroutines nor live heap grow with the number of calls.
func TestNoLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 10 000-call leak check")
	}
	w, x, bias := notebook[float32](40, 30, 4, 9)
	round := func(n int) {
		for i := range n {
			f, err := lowrank.Factorize(w, lowrank.Energy(0.999), lowrank.WithSeed(uint64(i)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Apply(x, bias); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	live := func() (uint64, int) {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc, runtime.NumGoroutine()
	}
	round(500) // warm up pools and caches
	heap0, g0 := live()
	round(10000)
	heap1, g1 := live()
	t.Logf("10 000 calls: live heap %d → %d bytes, goroutines %d → %d", heap0, heap1, g0, g1)
	if g1 > g0 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	// One factorization holds a few KiB; a leak of even one per call
	// would grow the heap by tens of MiB.
	if heap1 > heap0+1<<20 {
		t.Errorf("live heap grew by %d bytes over 10 000 calls", heap1-heap0)
	}
}
