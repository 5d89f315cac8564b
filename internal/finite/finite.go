// Package finite tells whether a slice holds a NaN or an infinity (and
// sums its squares, SumSquares, which does both for float32), at
// memory speed: lowrank checks every input (x and X before every Apply,
// the factors and W of the products; W before a factorization is checked
// by the pass that measures its norm), and a scalar loop over a batch of
// activations costs a noticeable share of the product that follows.
package finite

// Has32 reports whether v holds a NaN or ±Inf.
func Has32(v []float32) bool {
	n := 0
	if hasAVX {
		n = len(v) &^ 31
		if n > 0 && has32(v[:n]) {
			return true
		}
	}
	return Portable(v[n:])
}

// Has64 reports whether v holds a NaN or ±Inf.
func Has64(v []float64) bool {
	n := 0
	if hasAVX {
		n = len(v) &^ 15
		if n > 0 && has64(v[:n]) {
			return true
		}
	}
	return Portable(v[n:])
}

// Portable reports whether v holds a NaN or ±Inf, without assembly: it
// uses x·0, which is 0 for finite x and NaN otherwise.
func Portable[T float32 | float64](v []T) bool {
	var a0, a1, a2, a3 T
	i := 0
	for ; i+4 <= len(v); i += 4 {
		a0 += v[i] * 0
		a1 += v[i+1] * 0
		a2 += v[i+2] * 0
		a3 += v[i+3] * 0
	}
	for ; i < len(v); i++ {
		a0 += v[i] * 0
	}
	return a0+a1+a2+a3 != 0
}
