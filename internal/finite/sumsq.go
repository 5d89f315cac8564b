package finite

// SumSquares returns Σ v[i]² accumulated in float64, four partial sums at
// a time. For float32 elements it can neither overflow nor underflow
// (float32's range squared fits in float64's) and is NaN or +Inf exactly
// when v holds a NaN or ±Inf, so one pass both measures a matrix and
// checks it; float64 callers fall back to a scaled sum where the result
// leaves float64's comfortable range.
func SumSquares[T float32 | float64](v []T) float64 {
	var a0, a1, a2, a3 float64
	i := 0
	for ; i+4 <= len(v); i += 4 {
		x0, x1, x2, x3 := float64(v[i]), float64(v[i+1]), float64(v[i+2]), float64(v[i+3])
		a0 += x0 * x0
		a1 += x1 * x1
		a2 += x2 * x2
		a3 += x3 * x3
	}
	for ; i < len(v); i++ {
		x := float64(v[i])
		a0 += x * x
	}
	return (a0 + a1) + (a2 + a3)
}
