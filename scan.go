package lowrank

import (
	"math"
	"runtime"
	"sync"

	"github.com/lowrank-go/lowrank/internal/finite"
	"github.com/lowrank-go/lowrank/la"
)

// The scans of a whole matrix or vector on the host: the NaN/Inf check
// every input gets (W before a factorization, x before every Apply) and
// ‖W‖_F. They run before every factorization and would otherwise cost as
// much as a matrix product on the randomized path (a 4096×4096 float32 W:
// ≈ 40 ms through la.SumSq's division per element, ≈ 5 ms here).

// scanBlock is the number of elements checked per branch.
const scanBlock = 256

// parallelMin is the length from which the norm of W is computed on all
// cores: a pass over a 64 MB matrix is limited by one core's arithmetic,
// not by memory.
const parallelMin = 1 << 20

// chunks splits [0, n) into one contiguous range per core (one range for
// short slices) and runs f on each concurrently; f must only write its
// own result slot.
func chunks(n int, f func(part, lo, hi int)) int { return rowChunks(n, 1, f) }

// rowChunks is chunks for n rows of cols elements each: the rows are split
// whole, in as many ranges as the elements call for.
func rowChunks(n, cols int, f func(part, lo, hi int)) int {
	parts := 1
	if e := n * cols; e >= parallelMin {
		parts = min(runtime.GOMAXPROCS(0), e/(parallelMin/2), n)
	}
	if parts <= 1 {
		f(0, 0, n)
		return 1
	}
	var wg sync.WaitGroup
	for p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(p, p*n/parts, (p+1)*n/parts)
		}()
	}
	wg.Wait()
	return parts
}

// firstNonFinite returns the index of the first NaN or ±Inf in v, or
// -1. x·0 is 0 for finite x and NaN otherwise, so a block sum of x·0 tells
// whether a block holds a non-finite value without a branch per element.
// It runs on one goroutine and never allocates (Apply validates its input
// with it and promises not to allocate); internal/finite's AVX loop
// answers first whether there is anything to find, at ≈ 50 GB/s from
// cache against ≈ 8 for this loop.
func firstNonFinite[T Float](v []T) int {
	switch x := any(v).(type) {
	case []float32:
		if !finite.Has32(x) {
			return -1
		}
	case []float64:
		if !finite.Has64(x) {
			return -1
		}
	}
	return firstNonFiniteScan(v)
}

// firstNonFiniteScan finds the index, once a non-finite value is known to
// be there (or without AVX, where finite's loop is this one).
func firstNonFiniteScan[T Float](v []T) int {
	for start := 0; start < len(v); start += scanBlock {
		blk := v[start:min(start+scanBlock, len(v))]
		if finite.Portable(blk) {
			for j, x := range blk {
				if x-x != 0 {
					return start + j
				}
			}
		}
	}
	return -1
}

// frobenius returns ‖v‖₂ in float64. It sums the squares directly,
// which for float32 data can neither overflow nor underflow in float64
// (float32's range squared fits), and for float64 data is exact unless
// the sum leaves [2⁻⁹⁰⁰, 2⁹⁰⁰]; then it falls back to la.SumSq's scaled
// sum.
func frobenius[T Float](v []T) float64 {
	var s float64
	if len(v) < parallelMin {
		s = finite.SumSquares(v)
	} else {
		sums := make([]float64, runtime.GOMAXPROCS(0))
		parts := chunks(len(v), func(p, lo, hi int) { sums[p] = finite.SumSquares(v[lo:hi]) })
		for _, x := range sums[:parts] {
			s += x
		}
	}
	var z T
	if _, single := any(z).(float32); single || s == 0 && allZero(v) || s > 0x1p-900 && s < 0x1p900 {
		return math.Sqrt(s)
	}
	var ss la.SumSq
	for _, x := range v {
		ss.Add(float64(x))
	}
	return ss.Norm()
}

func allZero[T Float](v []T) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}
