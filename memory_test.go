package lowrank_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/gpu"
)

// decayingMatrix returns a d×k matrix whose singular values decay slowly
// (1/(1+i)), so that high energy targets need many of them.
func decayingMatrix[T lowrank.Float](d, k int, seed uint64) lowrank.Matrix[T] {
	rng := rand.New(rand.NewPCG(seed, 1))
	w, _ := lowrank.NewMatrix[T](d, k, nil)
	for i := range w.Data {
		w.Data[i] = T(rng.NormFloat64() / float64(1+i%k))
	}
	return w
}

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// The exact path allocates little besides what it holds at its peak (the
// copy of W, U, S, Vᵀ, the workspace, B and A), so the sum of everything
// it allocates bounds its peak from above; EstimateMemory must be at least
// that sum. The estimate models the pure-Go CPU backend, where it is also
// checked to be tight; with a system LAPACK (float32 kept in float32,
// workspaces in C) it only has to stay an upper bound.
func TestMemoryEstimateExact(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping SVDs of a few hundred rows")
	}
	backends := []struct {
		name  string
		b     lowrank.Backend
		tight bool
	}{{"gonum", cpu.NewGonum(), true}, {"cpu", cpu.New(), false}}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			check := func(t *testing.T, name string, est int64, m lowrank.Method, got uint64, want lowrank.Method) {
				t.Helper()
				if m != want {
					t.Errorf("%s: estimate is for %v; want %v", name, m, want)
				}
				if uint64(est) < got {
					t.Errorf("%s: estimate %d bytes < %d bytes allocated", name, est, got)
				}
				if be.tight && float64(est) > 1.5*float64(got)+2<<20 {
					t.Errorf("%s: estimate %d bytes is far above the %d bytes allocated", name, est, got)
				}
				t.Logf("%s: estimate %.2f MB, allocated %.2f MB", name, float64(est)/1e6, float64(got)/1e6)
			}
			opts := []lowrank.Option{lowrank.WithMethod(lowrank.Exact), lowrank.WithBackend(be.b)}
			for _, sh := range [][2]int{{600, 400}, {400, 600}, {900, 150}, {64, 64}} {
				d, k := sh[0], sh[1]
				for _, p := range []lowrank.Policy{lowrank.Rank(10), lowrank.Energy(0.9)} {
					w32 := decayingMatrix[float32](d, k, 1)
					est, m, err := estimateMemory(4, d, k, p, opts...)
					if err != nil {
						t.Fatal(err)
					}
					got := allocated(func() {
						if _, err := lowrank.Factorize(w32, p, opts...); err != nil {
							t.Fatal(err)
						}
					})
					check(t, "float32 "+p.String(), est, m, got, lowrank.Exact)
					w64 := decayingMatrix[float64](d, k, 1)
					est, m, err = estimateMemory(8, d, k, p, opts...)
					if err != nil {
						t.Fatal(err)
					}
					got = allocated(func() {
						if _, err := lowrank.Factorize(w64, p, opts...); err != nil {
							t.Fatal(err)
						}
					})
					check(t, "float64 "+p.String(), est, m, got, lowrank.Exact)
				}
			}
		})
	}
}

// The estimate follows the method Factorize would choose, and a fixed rank
// sketched randomly needs far less than the exact SVD.
func TestMemoryEstimateMethods(t *testing.T) {
	d, k := 4096, 4096
	exact, m, err := estimateMemory(4, d, k, lowrank.Rank(32), lowrank.WithMethod(lowrank.Exact))
	if err != nil || m != lowrank.Exact {
		t.Fatalf("exact: %v %v", m, err)
	}
	rnd, m, err := estimateMemory(4, d, k, lowrank.Rank(32))
	if err != nil || m != lowrank.Randomized {
		t.Fatalf("auto rank 32 of 4096²: %v %v; want Randomized", m, err)
	}
	// W is 64 MiB: the exact SVD holds several copies, the sketch about one.
	w := int64(4 * d * k)
	if exact < 5*w || rnd > 2*w || rnd < w {
		t.Errorf("4096² float32: exact %d, randomized %d bytes; want exact > 5·|W| and |W| < randomized < 2·|W| (|W| = %d)", exact, rnd, w)
	}
	// Energy with Auto may fall back to the exact SVD: its estimate covers
	// it; with a sketch cap it does not fall back and needs less.
	auto, m, _ := estimateMemory(4, d, k, lowrank.Energy(0.9))
	if m != lowrank.Exact || auto < exact {
		t.Errorf("auto energy: %d bytes for %v; want the exact SVD's %d at least", auto, m, exact)
	}
	capped, m, _ := estimateMemory(4, d, k, lowrank.Energy(0.9), lowrank.WithMethod(lowrank.Randomized), lowrank.WithMaxSketch(100))
	if m != lowrank.Randomized || capped > 2*w {
		t.Errorf("capped energy: %d bytes for %v; want Randomized under %d", capped, m, 2*w)
	}
	// Bad input is reported as Factorize reports it.
	for _, c := range []struct {
		d, k int
		p    lowrank.Policy
		want error
	}{{0, 5, lowrank.Rank(1), lowrank.ErrEmpty}, {5, 5, lowrank.Rank(6), lowrank.ErrRank}, {5, 5, lowrank.Energy(2), lowrank.ErrPolicy},
		{math.MaxInt / 2, 3, lowrank.Rank(1), lowrank.ErrShape}} {
		if _, _, err := estimateMemory(8, c.d, c.k, c.p); !errors.Is(err, c.want) {
			t.Errorf("%d×%d %v: %v; want %v", c.d, c.k, c.p, err, c.want)
		}
	}
	if _, _, err := estimateMemory(8, 5, 5, lowrank.Rank(1), lowrank.WithMaxSketch(-1)); !errors.Is(err, lowrank.ErrOption) {
		t.Errorf("WithMaxSketch(-1): %v; want ErrOption", err)
	}
	// Huge shapes saturate instead of overflowing.
	if n, _, err := estimateMemory(8, 1<<31, 1<<31, lowrank.Rank(1), lowrank.WithMethod(lowrank.Exact)); err != nil || n != math.MaxInt64 {
		t.Errorf("2³¹×2³¹: %d, %v; want MaxInt64", n, err)
	}
}

// estimateMemory is EstimateMemory with its Estimate spread out.
func estimateMemory(size, d, k int, p lowrank.Policy, opts ...lowrank.Option) (int64, lowrank.Method, error) {
	e, err := lowrank.EstimateMemory(d, k, size, p, opts...)
	return e.Bytes, e.Method, err
}

// TestEstimateMemoryElemSize: only 4 and 8 are element sizes, and the
// deprecated MemoryEstimate[T] gives EstimateMemory's answer.
func TestEstimateMemoryElemSize(t *testing.T) {
	for _, size := range []int{0, 2, 16, -4} {
		if _, err := lowrank.EstimateMemory(100, 50, size, lowrank.Rank(4)); !errors.Is(err, lowrank.ErrShape) || !strings.Contains(err.Error(), "expected 4 (float32) or 8 (float64)") {
			t.Errorf("element size %d: %v; want ErrShape", size, err)
		}
	}
	for _, p := range []lowrank.Policy{lowrank.Rank(4), lowrank.Energy(0.9)} {
		e4, err4 := lowrank.EstimateMemory(700, 500, 4, p)
		n4, m4, old4 := lowrank.MemoryEstimate[float32](700, 500, p)
		e8, err8 := lowrank.EstimateMemory(700, 500, 8, p)
		n8, m8, old8 := lowrank.MemoryEstimate[float64](700, 500, p)
		if err4 != nil || err8 != nil || old4 != nil || old8 != nil || e4 != (lowrank.Estimate{Bytes: n4, Method: m4}) || e8 != (lowrank.Estimate{Bytes: n8, Method: m8}) || e4.Bytes <= 0 || e8.Bytes <= 0 {
			t.Errorf("%v: EstimateMemory %v / %v, MemoryEstimate %d %v / %d %v", p, e4, e8, n4, m4, n8, m8)
		}
	}
}

// TestEstimateMemoryLAPACK: the estimate models the LAPACK the CPU backend
// runs on (gonum widens float32 to float64, a system LAPACK does not); for
// any other backend it takes the larger of the two.
func TestEstimateMemoryLAPACK(t *testing.T) {
	est := func(b lowrank.Backend) int64 {
		e, err := lowrank.EstimateMemory(600, 400, 4, lowrank.Rank(10), lowrank.WithMethod(lowrank.Exact), lowrank.WithBackend(b))
		if err != nil {
			t.Fatal(err)
		}
		return e.Bytes
	}
	gonum, other := est(cpu.NewGonum()), est(gpu.New())
	if other < gonum {
		t.Errorf("a non-CPU backend's estimate %d < gonum's %d", other, gonum)
	}
	if !strings.Contains(strings.Join(cpu.New().Describe(), " "), "gonum") {
		if system := est(cpu.New()); system >= gonum || other < system {
			t.Errorf("float32 exact 600×400: system LAPACK %d, gonum %d, other %d; want system < gonum ≤ other", system, gonum, other)
		}
	}
}

// WithMaxSketch: the sketch never grows past the cap; what the cap cannot
// reach is an ErrPolicy error, not a silent fallback to the exact SVD.
func TestMaxSketch(t *testing.T) {
	w := decayingMatrix[float64](300, 260, 7)
	rnd := lowrank.WithMethod(lowrank.Randomized)
	for _, c := range []struct {
		name string
		p    lowrank.Policy
		opts []lowrank.Option
		ok   bool
	}{
		{"energy within cap", lowrank.Energy(0.5), []lowrank.Option{rnd, lowrank.WithMaxSketch(200)}, true},
		{"energy beyond cap", lowrank.Energy(0.9999), []lowrank.Option{rnd, lowrank.WithMaxSketch(40)}, false},
		{"auto energy beyond cap", lowrank.Energy(0.9999), []lowrank.Option{lowrank.WithMaxSketch(40)}, false},
		{"rank within cap", lowrank.Rank(20), []lowrank.Option{rnd, lowrank.WithMaxSketch(25)}, true},
		{"rank beyond cap", lowrank.Rank(50), []lowrank.Option{rnd, lowrank.WithMaxSketch(40)}, false},
		{"rounded rank beyond cap", lowrank.Tolerance(0.9), []lowrank.Option{rnd, lowrank.WithMaxSketch(40), lowrank.WithRoundTo(64)}, false},
		{"exact ignores the cap", lowrank.Energy(0.9999), []lowrank.Option{lowrank.WithMethod(lowrank.Exact), lowrank.WithMaxSketch(5)}, true},
	} {
		f, err := lowrank.Factorize(w, c.p, c.opts...)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.ok && !errors.Is(err, lowrank.ErrPolicy):
			t.Errorf("%s: %v; want ErrPolicy", c.name, err)
		case !c.ok:
			t.Logf("%s: %v", c.name, err)
		case f.Method == lowrank.Randomized && f.Rank > 40 && c.name != "energy within cap":
			t.Errorf("%s: rank %d", c.name, f.Rank)
		}
	}
	// A cap that does not bind changes nothing: rank 8 sketches 8 + 10
	// columns rounded up to a multiple of 8.
	a, err := lowrank.Factorize(w, lowrank.Rank(8), rnd, lowrank.WithSeed(3))
	if err != nil {
		t.Fatal(err)
	}
	b, err := lowrank.Factorize(w, lowrank.Rank(8), rnd, lowrank.WithSeed(3), lowrank.WithMaxSketch(24))
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.B.Data {
		if a.B.Data[i] != b.B.Data[i] {
			t.Fatal("a cap of the sketch width changed the factors")
		}
	}
}

// TestSketchWidthRounding: a fixed-rank sketch takes r + p columns
// rounded up to a multiple of 8 (p = 0: exactly r), and the extra columns
// never cost accuracy: against the sketch of exactly r + p columns (a cap
// of WithMaxSketch(r + p)), error/optimal is no worse than 0.001.
func TestSketchWidthRounding(t *testing.T) {
	w := decayingMatrix[float32](600, 500, 11)
	var all []float64
	{
		w64 := make([]float64, len(w.Data))
		for i, v := range w.Data {
			w64[i] = float64(v)
		}
		m, _ := lowrank.NewMatrix(600, 500, w64)
		s, err := lowrank.SVD(m)
		if err != nil {
			t.Fatal(err)
		}
		all = s.S
	}
	for _, r := range []int{5, 20, 64} {
		var tail float64
		for _, v := range all[r:] {
			tail += v * v
		}
		opt := math.Sqrt(tail)
		norm := 0.0
		for _, v := range all {
			norm += v * v
		}
		norm = math.Sqrt(norm)
		rnd := []lowrank.Option{lowrank.WithMethod(lowrank.Randomized), lowrank.WithSeed(9)}
		wide, err := lowrank.Factorize(w, lowrank.Rank(r), rnd...)
		if err != nil {
			t.Fatal(err)
		}
		l := r + lowrank.DefaultOversampling
		exact, err := lowrank.Factorize(w, lowrank.Rank(r), append(rnd, lowrank.WithMaxSketch(l))...)
		if err != nil {
			t.Fatal(err)
		}
		ew, ee := wide.RelError*norm/opt, exact.RelError*norm/opt
		if ew > ee+0.001 {
			t.Errorf("rank %d: error/optimal %.5f with the rounded sketch, %.5f with %d columns", r, ew, ee, l)
		}
		if l%8 != 0 && sameFloats(wide.B.Data, exact.B.Data) {
			t.Errorf("rank %d: the sketch was not widened past %d columns", r, l)
		}
		t.Logf("rank %d: error/optimal %.5f (%d columns rounded up) against %.5f (%d)", r, ew, (l+7)/8*8, ee, l)
	}
	// p = 0 sketches exactly r columns: a cap of r changes nothing.
	a, err := lowrank.Factorize(w, lowrank.Rank(12), lowrank.WithMethod(lowrank.Randomized), lowrank.WithOversampling(0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := lowrank.Factorize(w, lowrank.Rank(12), lowrank.WithMethod(lowrank.Randomized), lowrank.WithOversampling(0), lowrank.WithMaxSketch(12))
	if err != nil {
		t.Fatal(err)
	}
	if !sameFloats(a.B.Data, b.B.Data) {
		t.Error("WithOversampling(0) did not sketch exactly r columns")
	}
}

func sameFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
