package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Conversions between the floating-point element types and Go's float32 and
// float64. Widening (F16, BF16 → float32 → float64) is exact. Narrowing
// rounds to nearest, ties to even, as IEEE 754 and PyTorch's .to() do:
// values beyond the largest finite one become ±Inf, tiny ones become
// subnormals or ±0, NaN stays NaN and ±Inf stays ±Inf.
//
// F16 uses github.com/x448/float16, whose float32 → float16 conversion is
// tested against all 2³² float32 values. BF16 is the upper half of a
// float32 and needs no library. float64 is narrowed to F16 or BF16 in two
// steps without double rounding: first to float32 rounding to odd, then to
// the 16-bit type rounding to nearest even; with float32's 24-bit
// significand at least two bits wider than F16's 11 and BF16's 8, the
// result equals a direct correctly rounded conversion (Boldo and
// Melquiond, "When double rounding is odd", 2005).

// F16ToFloat32 widens the IEEE 754 half-precision value with bits h.
func F16ToFloat32(h uint16) float32 { return float16.Frombits(h).Float32() }

// Float32ToF16 rounds f to the nearest half-precision value (ties to even)
// and returns its bits.
func Float32ToF16(f float32) uint16 { return float16.Fromfloat32(f).Bits() }

// BF16ToFloat32 widens the bfloat16 value with bits h.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 rounds f to the nearest bfloat16 value (ties to even) and
// returns its bits. NaN stays NaN (made quiet, sign kept).
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: truncating could make it Inf
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// float64ToOddFloat32 rounds x to float32 rounding to odd: exact values
// stay, others take the neighbour whose last significand bit is 1.
func float64ToOddFloat32(x float64) float32 {
	f := float32(x)
	if float64(f) == x || x != x {
		return f
	}
	if math.IsInf(float64(f), 0) { // finite x beyond float32's range
		if x > 0 {
			return math.MaxFloat32
		}
		return -math.MaxFloat32
	}
	b := math.Float32bits(f)
	if b&1 == 1 {
		return f
	}
	if math.Abs(float64(f)) > math.Abs(x) {
		b-- // toward zero; b's magnitude is > 0 here
	} else {
		b++
	}
	return math.Float32frombits(b)
}

// Float64ToF16 rounds x to the nearest half-precision value (ties to even).
func Float64ToF16(x float64) uint16 { return Float32ToF16(float64ToOddFloat32(x)) }

// Float64ToBF16 rounds x to the nearest bfloat16 value (ties to even).
func Float64ToBF16(x float64) uint16 { return Float32ToBF16(float64ToOddFloat32(x)) }

// decodeFloat32 converts the little-endian elements of type dt in src into
// dst (len(src) = len(dst)·size).
func decodeFloat32(dst []float32, src []byte, dt DType) error {
	le := binary.LittleEndian
	switch dt {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToFloat32(le.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToFloat32(le.Uint16(src[2*i:]))
		}
	default:
		return fmt.Errorf("%w: cannot convert %s to float32; expected F16, BF16, F32 or F64", ErrDType, dt)
	}
	return nil
}

func decodeFloat64(dst []float64, src []byte, dt DType) error {
	le := binary.LittleEndian
	switch dt {
	case F32:
		for i := range dst {
			dst[i] = float64(math.Float32frombits(le.Uint32(src[4*i:])))
		}
	case F64:
		for i := range dst {
			dst[i] = math.Float64frombits(le.Uint64(src[8*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = float64(F16ToFloat32(le.Uint16(src[2*i:])))
		}
	case BF16:
		for i := range dst {
			dst[i] = float64(BF16ToFloat32(le.Uint16(src[2*i:])))
		}
	default:
		return fmt.Errorf("%w: cannot convert %s to float64; expected F16, BF16, F32 or F64", ErrDType, dt)
	}
	return nil
}

// encodeFloat32 writes src as little-endian elements of type dt into dst.
func encodeFloat32(dst []byte, src []float32, dt DType) error {
	le := binary.LittleEndian
	switch dt {
	case F32:
		for i, v := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F64:
		for i, v := range src {
			le.PutUint64(dst[8*i:], math.Float64bits(float64(v)))
		}
	case F16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float32ToF16(v))
		}
	case BF16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float32ToBF16(v))
		}
	default:
		return fmt.Errorf("%w: cannot write float32 values as %s; expected F16, BF16, F32 or F64", ErrDType, dt)
	}
	return nil
}

func encodeFloat64(dst []byte, src []float64, dt DType) error {
	le := binary.LittleEndian
	switch dt {
	case F32:
		for i, v := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(float32(v)))
		}
	case F64:
		for i, v := range src {
			le.PutUint64(dst[8*i:], math.Float64bits(v))
		}
	case F16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float64ToF16(v))
		}
	case BF16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float64ToBF16(v))
		}
	default:
		return fmt.Errorf("%w: cannot write float64 values as %s; expected F16, BF16, F32 or F64", ErrDType, dt)
	}
	return nil
}
