package safetensors

import "fmt"

// DType is a safetensors element type, spelled as in the header ("F32").
type DType string

// The element types of the safetensors format. Every one can be read and
// copied; F16, BF16, F32 and F64 can also be converted to and from
// float32 and float64.
const (
	BOOL        DType = "BOOL"
	F4          DType = "F4"
	F6E2M3      DType = "F6_E2M3"
	F6E3M2      DType = "F6_E3M2"
	U8          DType = "U8"
	I8          DType = "I8"
	F8E5M2      DType = "F8_E5M2"
	F8E4M3      DType = "F8_E4M3"
	F8E8M0      DType = "F8_E8M0"
	F8E4M3FNUZ  DType = "F8_E4M3FNUZ"
	F8E5M2FNUZ  DType = "F8_E5M2FNUZ"
	I16         DType = "I16"
	U16         DType = "U16"
	F16         DType = "F16"
	BF16        DType = "BF16"
	I32         DType = "I32"
	U32         DType = "U32"
	F32         DType = "F32"
	C64         DType = "C64"
	F64         DType = "F64"
	I64         DType = "I64"
	U64         DType = "U64"
	unknownBits       = 0
)

var dtypeBits = map[DType]int{
	BOOL: 8, F4: 4, F6E2M3: 6, F6E3M2: 6, U8: 8, I8: 8,
	F8E5M2: 8, F8E4M3: 8, F8E8M0: 8, F8E4M3FNUZ: 8, F8E5M2FNUZ: 8,
	I16: 16, U16: 16, F16: 16, BF16: 16,
	I32: 32, U32: 32, F32: 32,
	C64: 64, F64: 64, I64: 64, U64: 64,
}

// Bits returns the size of one element in bits, or 0 for a type the format
// does not define.
func (d DType) Bits() int { return dtypeBits[d] }

// Known reports whether d is an element type of the format.
func (d DType) Known() bool { return d.Bits() != unknownBits }

// IsFloat reports whether d is one of the floating-point types this
// package converts: F16, BF16, F32 or F64.
func (d DType) IsFloat() bool { return d == F16 || d == BF16 || d == F32 || d == F64 }

// Size returns the size of one element in bytes, rounded up (1 for the
// sub-byte types F4 and F6_*).
func (d DType) Size() int { return (d.Bits() + 7) / 8 }

// ParseDType returns the DType spelled s ("F32", "BF16", …), or an error
// wrapping ErrDType.
func ParseDType(s string) (DType, error) {
	d := DType(s)
	if !d.Known() {
		return "", fmt.Errorf("%w: dtype %q; expected one of BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, C64, F8_E4M3, F8_E5M2, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, F4, F6_E2M3, F6_E3M2", ErrDType, s)
	}
	return d, nil
}
