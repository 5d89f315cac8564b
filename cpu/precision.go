package cpu

import (
	"fmt"

	"github.com/lowrank-go/lowrank/internal/bf16"
	"github.com/lowrank-go/lowrank/internal/sched"
	"github.com/lowrank-go/lowrank/la"
)

var _ la.PrecisionGemmer[float32] = engine[float32]{}

var _ la.TopSVD = engine[float32]{}

// precisionBlock is the number of elements of a that GemmPrecision rounds
// at a time (4 MiB of float32), so that the emulation needs little memory
// beyond a rounded copy of b.
const precisionBlock = 1 << 20

// GemmPrecision computes c = alpha·op(a)·op(b) + beta·c with the elements
// of a and b rounded to p first (la.PrecisionGemmer). Only float32
// engines accept TF32 and BF16.
//
// BF16 on a CPU with AVX512_BF16 runs internal/bf16's kernel, which
// multiplies pairs of bfloat16 in one instruction at twice float32's FMA
// rate, rounding a block by block as it reads it.
// Elsewhere, and for TF32 (no CPU computes it), this is an emulation of
// the tensor cores' arithmetic, not a faster path: the inputs are rounded
// into copies (b whole, a by blocks of rows) and multiplied by the float32
// GEMM, whose products of two rounded elements are exact, so the result is
// what cuBLAS's CUBLAS_COMPUTE_32F_FAST_TF32 or _16BF computes up to the
// order of the float32 sums. It costs one extra pass over a and b.
func (e engine[T]) GemmPrecision(p la.Precision, tA, tB bool, alpha T, am, bm la.Mat, beta T, cm la.Mat) error {
	if p != la.F32 && p != la.TF32 && p != la.BF16 {
		return fmt.Errorf("cpu: gemm precision %v; expected f32, tf32 or bf16", p)
	}
	if _, ok := any(T(0)).(float32); !ok && p != la.F32 {
		return fmt.Errorf("cpu: %v products need float32 matrices; expected f32 for float64", p)
	}
	if p == la.BF16 && bf16.Available() {
		return e.gemmBF16(tA, tB, alpha, am, bm, beta, cm)
	}
	if p == la.F32 {
		return e.Gemm(tA, tB, alpha, am, bm, beta, cm)
	}
	a, b, c, m, n, ka, err := e.gemmOperands(tA, tB, am, bm, cm)
	if err != nil {
		return err
	}
	if m == 0 || n == 0 || ka == 0 {
		return e.Gemm(tA, tB, alpha, am, bm, beta, cm) // no product to round
	}
	rb := rounded(p, b, 0, b.rows)
	blk := max(1, min(a.rows, precisionBlock/a.cols))
	for i0 := 0; i0 < a.rows; i0 += blk {
		i1 := min(a.rows, i0+blk)
		ra := rounded(p, a, i0, i1)
		if !tA {
			// Rows i0..i1 of op(a) give rows i0..i1 of c.
			cv, _ := e.View(c, i0, i1, 0, n)
			if err := e.Gemm(false, tB, alpha, ra, rb, beta, cv); err != nil {
				return err
			}
			continue
		}
		// Rows i0..i1 of a are columns of op(a): they meet rows i0..i1
		// of op(b), and their products add up in c.
		var bv la.Mat
		if tB {
			bv, _ = e.View(rb, 0, rb.rows, i0, i1)
		} else {
			bv, _ = e.View(rb, i0, i1, 0, rb.cols)
		}
		bt := beta
		if i0 > 0 {
			bt = 1
		}
		if err := e.Gemm(true, tB, alpha, ra, bv, bt, c); err != nil {
			return err
		}
	}
	return nil
}

// rounded returns rows i0..i1 of the float32 matrix x with every element
// rounded to p, as a new contiguous matrix.
func rounded[T float32 | float64](p la.Precision, x *dense[T], i0, i1 int) *dense[T] {
	out := &dense[T]{rows: i1 - i0, cols: x.cols, stride: x.cols, data: make([]T, (i1-i0)*x.cols)}
	dst := any(out.data).([]float32)
	for i := i0; i < i1; i++ {
		src := any(x.row(i)).([]float32)
		d := dst[(i-i0)*x.cols : (i-i0+1)*x.cols]
		for j, v := range src {
			d[j] = p.Round(v)
		}
	}
	return out
}

// gemmBF16 is GemmPrecision's BF16 product on internal/bf16's kernel.
func (e engine[T]) gemmBF16(tA, tB bool, alpha T, am, bm la.Mat, beta T, cm la.Mat) error {
	a, b, c, m, n, ka, err := e.gemmOperands(tA, tB, am, bm, cm)
	if err != nil {
		return err
	}
	if m == 0 || n == 0 {
		return nil
	}
	g, err := e.acquire(float64(m) * float64(n) * float64(max(ka, 1)))
	if err != nil {
		return err
	}
	defer sched.Default.Release(g)
	f32 := func(x *dense[T]) []float32 { return any(x.data).([]float32) }
	bf16.Gemm(g.Threads(), tA, tB, m, n, ka, float32(alpha), f32(a), a.stride, f32(b), b.stride, float32(beta), f32(c), c.stride)
	return nil
}
