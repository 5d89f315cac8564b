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
// the kernels are C intrinsics compiled by cgo (gcc or clang with
// -mavx512bf16). Available reports false without cgo, on other
// architectures and on CPUs without AVX512_BF16 (Intel Cooper Lake and
// Sapphire Rapids onwards, AMD Zen 4 onwards have it); callers keep their
// float32 emulation there.
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

import "sync"

// blockBytes caps a block of the packed right operand at 512 KiB (L2-sized):
// kcp pairs of the inner dimension × np columns × 4 bytes.
const blockBytes = 512 << 10

// Available reports whether the kernels run on this CPU and build.
func Available() bool { return hasKernel }

// Matrix is a rows×cols matrix rounded to bfloat16, row-major with an even
// row stride (an odd cols is padded with a zero column), the layout the
// kernel reads two elements of the inner dimension at a time from.
type Matrix struct {
	rows, cols, ld int
	data           []uint16
}

// Dims returns the matrix's rows and columns.
func (m *Matrix) Dims() (rows, cols int) { return m.rows, m.cols }

// Round returns op(src) rounded to bfloat16: src is rows×cols with row
// stride lds, and op(src) is src, or srcᵀ (cols×rows) when transpose is
// set. The rounding is split over at most workers goroutines. It must only
// be called when Available reports true.
func Round(workers int, rows, cols int, src []float32, lds int, transpose bool) *Matrix {
	r, c := rows, cols
	if transpose {
		r, c = cols, rows
	}
	m := &Matrix{rows: r, cols: c, ld: (c + 1) &^ 1}
	m.data = make([]uint16, r*m.ld)
	if r == 0 || c == 0 {
		return m
	}
	split(workers, r, r*c/(1<<18), 32, func(i0, i1 int) {
		if transpose {
			roundCols(src, lds, rows, i0, i1, m.data, m.ld)
		} else {
			roundRows(src, lds, i0, i1, cols, m.data, m.ld)
		}
	})
	return m
}

// Gemm computes c = alpha·a·op(b) + beta·c, where a is m×k, op(b) is k×n
// (b is k×n with row stride ldb, or n×k when tB) and c is m×n with row
// stride ldc. op(b) is rounded to bfloat16 into a packed copy; with beta =
// 0, c is not read (as in BLAS). The rows of c are split over at most
// workers goroutines. It must only be called when Available reports true.
func Gemm(workers int, a *Matrix, tB bool, n int, alpha float32, b []float32, ldb int, beta float32, c []float32, ldc int) {
	m, k := a.rows, a.cols
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
	np := (n + 15) &^ 15
	kp := (k + 1) / 2
	xp := make([]uint16, kp*np*2)
	pack(b, ldb, tB, k, n, xp, np)
	kcp := max(1, min(kp, blockBytes/(min(np, 80)*4)))
	split(workers, m, m*n*k/(1<<21), 8, func(i0, i1 int) {
		gemmRows(a.data, a.ld, i0, i1, kp, xp, np, n, c, ldc, alpha, beta, kcp)
	})
}

// split runs f over [0, n) in at most min(workers, parts) contiguous
// ranges whose bounds are multiples of step, the last on the calling
// goroutine.
func split(workers, n, parts, step int, f func(i0, i1 int)) {
	workers = max(1, min(workers, parts, (n+step-1)/step))
	if workers == 1 {
		f(0, n)
		return
	}
	blocks := (n + step - 1) / step
	var wg sync.WaitGroup
	for w := range workers {
		i0, i1 := w*blocks/workers*step, min(n, (w+1)*blocks/workers*step)
		if i0 >= i1 {
			continue
		}
		if w == workers-1 {
			f(i0, i1)
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); f(i0, i1) }()
	}
	wg.Wait()
}
