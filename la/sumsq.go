package la

import "math"

// SumSq accumulates a sum of squares without overflow or underflow, the way
// LAPACK's dlassq does: the sum is kept as scale²·ssq.
type SumSq struct {
	scale, ssq float64
}

// Add adds v² to the sum.
func (s *SumSq) Add(v float64) {
	if v == 0 {
		return
	}
	a := math.Abs(v)
	if a > s.scale {
		r := s.scale / a
		s.ssq = 1 + s.ssq*r*r
		s.scale = a
		return
	}
	r := a / s.scale
	s.ssq += r * r
}

// Value returns the sum of squares; it is +Inf when that exceeds the
// float64 range even though every term was finite.
func (s *SumSq) Value() float64 { return s.scale * s.scale * s.ssq }

// Norm returns the square root of the sum, which never overflows for
// finite terms.
func (s *SumSq) Norm() float64 { return s.scale * math.Sqrt(s.ssq) }
