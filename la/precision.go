package la

import (
	"fmt"
	"math"
)

// Precision is the arithmetic of a matrix product whose inputs may be
// rounded to fewer mantissa bits than float32's 23, the way NVIDIA's tensor
// cores compute cuBLAS's CUBLAS_COMPUTE_32F_FAST_TF32 and
// CUBLAS_COMPUTE_32F_FAST_16BF products: every element of both inputs is
// rounded to the narrower format, the products of two rounded elements are
// exact in float32, and they are accumulated in float32.
type Precision int

const (
	// F32 is plain float32 arithmetic (cublasSgemm, sgemm).
	F32 Precision = iota
	// TF32 rounds the inputs to TensorFloat-32: float32's 8-bit exponent
	// and a 10-bit mantissa (11 significant bits).
	TF32
	// BF16 rounds the inputs to bfloat16: float32's 8-bit exponent and a
	// 7-bit mantissa (8 significant bits).
	BF16
)

// String returns "f32", "tf32" or "bf16".
func (p Precision) String() string {
	switch p {
	case F32:
		return "f32"
	case TF32:
		return "tf32"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("Precision(%d)", int(p))
}

// MantissaBits returns the explicit mantissa bits of p's inputs: 23, 10
// or 7.
func (p Precision) MantissaBits() int {
	switch p {
	case TF32:
		return 10
	case BF16:
		return 7
	}
	return 23
}

// Round returns x rounded to p's input format, to the nearest value and
// ties to even (the rounding of CUDA's __float2bfloat16_rn; the tensor
// cores' float32 → TF32 conversion rounds ties away from zero, which
// differs from this only on exact ties). Infinities and NaNs are returned
// unchanged; a finite x that rounds past the largest finite value of the
// format becomes an infinity, as the conversion does.
func (p Precision) Round(x float32) float32 {
	drop := uint(23 - p.MantissaBits())
	if drop == 0 {
		return x
	}
	b := math.Float32bits(x)
	if b&0x7f800000 == 0x7f800000 {
		return x
	}
	lsb := (b >> drop) & 1
	b += (uint32(1)<<(drop-1) - 1) + lsb
	b &^= uint32(1)<<drop - 1
	return math.Float32frombits(b)
}

// PrecisionGemmer is an optional capability of a float32 Engine:
// GemmPrecision computes Gemm's c = alpha·op(a)·op(b) + beta·c with the
// elements of a and b rounded to p first (products accumulated in
// float32), as tensor cores do. With F32 it is Gemm. An engine may refuse
// a precision it cannot compute, or a float64 engine any precision but
// F32, with an error.
//
// lowrank uses it for the randomized range finder's products with W when
// a caller asks for a reduced sketch precision (WithSketchPrecision).
type PrecisionGemmer[T Float] interface {
	GemmPrecision(p Precision, transA, transB bool, alpha T, a, b Mat, beta T, c Mat) error
}
