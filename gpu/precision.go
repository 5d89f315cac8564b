//go:build cgo

package gpu

import (
	"fmt"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/la"
)

var _ la.PrecisionGemmer[float32] = (*engine[float32])(nil)

// GemmPrecision computes c = alpha·op(a)·op(b) + beta·c with cublasGemmEx
// in the compute type of p (la.PrecisionGemmer): CUBLAS_COMPUTE_32F_FAST_TF32
// for TF32 and CUBLAS_COMPUTE_32F_FAST_16BF for BF16, which round the
// float32 inputs to the narrower format on the tensor cores (compute
// capability 8.0 and later; cuBLAS computes in float32 on older devices)
// and accumulate in float32. F32 is Gemm. Only the float32 engine accepts
// TF32 and BF16.
func (e *engine[T]) GemmPrecision(p la.Precision, tA, tB bool, alpha T, am, bm la.Mat, beta T, cm la.Mat) error {
	var ct cuda.ComputeType
	switch p {
	case la.F32:
		return e.Gemm(tA, tB, alpha, am, bm, beta, cm)
	case la.TF32:
		ct = cuda.Compute32FFastTF32
	case la.BF16:
		ct = cuda.Compute32FFast16BF
	default:
		return fmt.Errorf("cuda: gemm precision %v; expected f32, tf32 or bf16", p)
	}
	if e.dt != cuda.F32 {
		return fmt.Errorf("cuda: %v products need float32 matrices; expected f32 for float64", p)
	}
	a, b, cc, m, n, ka, err := e.gemmOperands(tA, tB, am, bm, cm)
	if err != nil {
		return err
	}
	if m == 0 || n == 0 || ka == 0 {
		return e.Gemm(tA, tB, alpha, am, bm, beta, cm) // no product to round
	}
	return e.do(func(c *cuda.Ctx) error {
		// The row-major/column-major mapping of Gemm.
		return c.GemmEx(ct, tB, tA, n, m, ka, float32(alpha), b.ptr, b.ld, a.ptr, a.ld, float32(beta), cc.ptr, cc.ld)
	})
}
