// Package bf16 is a bfloat16 matrix product for the CPU: the inputs are
// rounded to bfloat16 (8 significant bits, float32's exponent range) and
// multiplied with AVX-512 BF16's VDPBF16PS, which multiplies pairs of
// bfloat16 exactly and accumulates them in float32 — the arithmetic of
// cuBLAS's CUBLAS_COMPUTE_32F_FAST_16BF on tensor cores. lowrank uses it
// for the randomized range finder's products with W under
// WithSketchPrecision(SketchBF16), where it does in one instruction twice
// the multiply-adds of a float32 FMA.
//
// No library fits: Debian's OpenBLAS is built without its sbgemm, gonum
// has no bfloat16, and Go's assembler has no AVX512_BF16 instructions, so
// the kernels are C intrinsics compiled by cgo (GCC 10 or clang 9 and
// later know them). Available reports false without cgo, with an older C
// compiler, on other architectures and on CPUs without AVX512_BF16 (Intel
// Cooper Lake and Sapphire Rapids onwards, AMD Zen 4 onwards have it);
// callers keep their float32 emulation there.
//
// Rounding is VCVTNEPS2BF16's: to nearest, ties to even; a subnormal
// float32 becomes a signed zero and VDPBF16PS flushes subnormal results,
// both below 1.2e-38, far under any weight's scale. The products' sums are
// float32 in a fixed order (pairs along the inner dimension, then blocks
// of it), so the result does not depend on the number of workers or on
// the memory alignment.
//
// Matrices are row-major with a row stride, as in internal/gemm32.
package bf16

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// blockBytes caps a block of the packed right operand at 512 KiB (L2-sized):
// kcp pairs of the inner dimension × np columns × 4 bytes.
const blockBytes = 512 << 10

// tileWidth is the columns of cᵀ a transposed product computes at a time
// (LR_TW in the C code).
const tileWidth = 512

// Available reports whether the kernels run on this CPU and build.
func Available() bool { return hasKernel }

// Gemm computes c = alpha·op(a)·op(b) + beta·c with the elements of a
// and b rounded to bfloat16: op(a) is m×k (a is m×k with row stride lda,
// or k×m when tA), op(b) is k×n (b is k×n with row stride ldb, or n×k when
// tB), c is m×n with row stride ldc. With beta = 0, c is not read (as in
// BLAS). The smaller operand, op(b), is rounded into a packed copy; a is
// rounded block by block as the product reads it, so the only memory the
// call takes beyond a packed op(b) is a few hundred KiB per worker. The
// work is split over at most workers goroutines. It must only be called
// when Available reports true.
func Gemm(workers int, tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				if beta == 0 {
					row[j] = 0
				} else {
					row[j] *= beta
				}
			}
		}
		return
	}
	kp := (k + 1) / 2
	if !tA {
		// Rows of c from rows of a: op(b) packed into pairs along k.
		np := (n + 15) &^ 15
		sp := getScratch(kp * np * 2)
		defer scratch.Put(sp)
		xp := *sp
		pack(b, ldb, tB, k, n, xp, np)
		kcp := max(1, min(kp, blockBytes/(min(np, 80)*4)))
		ps := split(workers, m, m*n*k/(1<<21), 8)
		for i := range ps {
			ps[i].buf = make([]uint16, 8*2*kcp)
		}
		if !runPool(ps, false, a, lda, 0, k, xp, np, n, c, ldc, alpha, beta, kcp) {
			run(ps, func(r part) { gemmN(a, lda, r.i0, r.i1, k, xp, np, n, c, ldc, alpha, beta, kcp, r.buf) })
		}
		return
	}
	// op(a) = aᵀ, a is k×m: c = aᵀ·op(b) is computed as cᵀ = op(b)ᵀ·a,
	// with op(b)ᵀ (n×k) rounded whole and a in blocks of 80 columns, which
	// are rows of c.
	ldat := (k + 1) &^ 1
	sp := getScratch(n * ldat)
	defer scratch.Put(sp)
	at := *sp
	if tB {
		roundRows(b, ldb, 0, n, k, at, ldat) // b is n×k: op(b)ᵀ = b
	} else {
		roundCols(b, ldb, k, 0, n, at, ldat) // b is k×n
	}
	// A block of pairs of a's rows, tileWidth columns wide, takes
	// blockBytes/2: the tile of cᵀ (n×tileWidth float32) stays in L2 too.
	kcp := max(1, min(kp, blockBytes/4/(tileWidth*4)))
	ps := split(workers, m, m*n*k/(1<<21), 16)
	for i := range ps {
		ps[i].buf = make([]uint16, kcp*(tileWidth+16)*2)
		ps[i].tile = make([]float32, n*(tileWidth+16))
	}
	if !runPool(ps, true, a, lda, k, 0, at, ldat, n, c, ldc, alpha, beta, kcp) {
		run(ps, func(r part) { gemmT(a, lda, k, r.i0, r.i1, at, ldat, n, c, ldc, alpha, beta, kcp, r.buf, r.tile) })
	}
}

// scratch keeps the rounded copy of the smaller operand between calls:
// the range finder's five products round operands of two sizes, and one
// buffer of the larger serves them all instead of a fresh 2–6 MB each,
// whose pages cost a fault per 4 KiB on first touch. Every element of it
// is written before it is read (the padding included).
var scratch sync.Pool // *[]uint16

// getScratch returns n elements from the pool, or fresh ones when the
// pooled buffer is too short (it is dropped).
func getScratch(n int) *[]uint16 {
	if p, ok := scratch.Get().(*[]uint16); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]uint16, n)
	return &b
}

// part is one worker's share of a product: rows (or, transposed,
// columns) [i0, i1) of c, and its scratch.
type part struct {
	i0, i1 int
	buf    []uint16
	tile   []float32
}

// split cuts [0, n) into at most min(workers, parts) contiguous ranges
// whose bounds are multiples of step.
func split(workers, n, parts, step int) []part {
	workers = max(1, min(workers, parts, (n+step-1)/step))
	blocks := (n + step - 1) / step
	ps := make([]part, 0, workers)
	for w := range workers {
		i0, i1 := w*blocks/workers*step, min(n, (w+1)*blocks/workers*step)
		if i0 < i1 {
			ps = append(ps, part{i0: i0, i1: i1})
		}
	}
	return ps
}

// run calls f on every part, each but the last on a goroutine of its own,
// and returns when all are done.
func run(ps []part, f func(part)) {
	var wg sync.WaitGroup
	for _, p := range ps[:len(ps)-1] {
		wg.Add(1)
		go func() { defer wg.Done(); f(p) }()
	}
	f(ps[len(ps)-1])
	wg.Wait()
}

// pool is a thread pool outside the Go runtime that Gemm runs its parts
// on (see UseThreadPool).
type pool struct {
	fn      unsafe.Pointer
	threads int
}

var threadPool atomic.Pointer[pool]

// OnThreadPool reports whether a thread pool is set (UseThreadPool).
func OnThreadPool() bool { return threadPool.Load() != nil }

// UseThreadPool makes Gemm run the parts of a product on the threads of a
// pthreads OpenBLAS: fn is its gotoblas_pthread(int n, void (*f)(void *),
// void *args, int stride), which runs the first of n calls on the calling
// thread and the others on the library's worker threads, and threads is
// the size of its pool, the caller included (at most that many parts go
// to it; more run on goroutines). fn nil goes back to goroutines.
//
// Why: after each of its calls, OpenBLAS's idle workers spin on
// sched_yield for about 2²⁸ cycles before they sleep. A product on Go's
// own threads right after an LU or a QR then shares the cores with them
// (a third of the CPU samples of a bf16 factorization on two cores); on
// the workers themselves it does not. The caller must not run a product
// on the pool beside another multi-threaded call into the library (the
// workers would be busy, and the call would wait for them).
func UseThreadPool(fn unsafe.Pointer, threads int) {
	if fn == nil || threads < 2 {
		threadPool.Store(nil)
		return
	}
	threadPool.Store(&pool{fn: fn, threads: threads})
}
