package lowrank

import (
	"math"
)

// Factors is a rank-r factorization W ≈ B·A of a d×k matrix, as returned by
// Factorize or built by NewFactors. It applies the factorized linear layer
//
//	y = W·x + bias ≈ B·(A·x) + bias
//
// in (d+k)·r multiply-adds instead of d·k.
//
// The methods of a Factors are safe for concurrent use by many goroutines,
// except Close. B and A must not be modified after the first Apply: a
// backend may keep its own copy (on a GPU, the factors are uploaded once
// and stay resident until Close).
type Factors[T Float] struct {
	// B is d×r and A is r×k.
	B, A Matrix[T]
	// S holds the r kept singular values, largest first, in float64 for
	// every T (the singular values of a float32 matrix can exceed the
	// float32 range even when balanced factors do not).
	S []float64
	// Rank is r.
	Rank int
	// RelError is ‖W − B·A‖_F / ‖W‖_F, computed from the singular values
	// (Eckart–Young; with input statistics, measured from B·A on the
	// backend); 0 for W = 0. NaN for factors built by NewFactors.
	RelError float64
	// Energy is the fraction of ‖W‖_F² the factors keep, Σ_{i≤r}σᵢ²/‖W‖_F²
	// (with input statistics, 1 − RelError², RelError measured from B·A).
	// NaN for factors built by NewFactors.
	Energy float64
	// Weighting says what the factors minimise: the weight error
	// (WeightNone, plain SVD) or the output error on the inputs given by
	// WithInputCovariance (WeightCovariance) or WithInputScale
	// (WeightScale). RelError and Energy are the weight error either way.
	Weighting Weighting
	// OutputRelError is the relative error of the layer's outputs on the
	// calibration inputs, ‖(W − B·A)·X‖_F / ‖W·X‖_F (for WithInputScale,
	// ‖(W − B·A)·diag(s)‖_F / ‖W·diag(s)‖_F): the error the rank policy
	// read. Without input statistics the inputs are taken as isotropic
	// (C = I) and it equals RelError. 0 when W·X = 0; NaN for factors
	// built by NewFactors.
	OutputRelError float64
	// OutputEnergy is the fraction of ‖W·X‖_F² the factors keep,
	// 1 − OutputRelError². NaN for factors built by NewFactors.
	OutputEnergy float64
	// BiasShift is (W − B·A)·μ for WithInputMoments: add it to the
	// layer's bias (length d). nil otherwise.
	BiasShift []float64
	// Ridge is the multiple of the identity added to the input
	// covariance C before its Cholesky factorization, in C's units: the
	// factors minimise the output error for C + Ridge·I. It is 0 unless C
	// is singular or ill-conditioned (see WithInputCovariance).
	Ridge float64
	// Norm is ‖W‖_F, the Frobenius norm of the matrix the factors
	// approximate, so that Residual(W)/Norm is the relative error of
	// factors changed since (rounded to a narrower type, say). NaN for
	// factors built by NewFactors.
	Norm float64
	// Method is the algorithm that ran (never Auto).
	Method Method
	// SketchPrecision is the precision the randomized range finder's
	// products ran in: the one WithSketchPrecision asked for, or SketchF32
	// when the factors turned out too accurate for it (see
	// WithSketchPrecision). SketchF32 for the exact method.
	SketchPrecision SketchPrecision
	// Policy is the rank policy that chose Rank.
	Policy Policy
	// Split says how S was shared between B and A.
	Split Split
	// Backend is the backend that computed the factors, and the one Apply
	// runs on (Backend.Name() is "cpu" or "cuda"). It is nil for factors
	// made by NewFactors: Apply then runs on DefaultBackend. It may be set
	// before the first Apply, not after.
	Backend Backend
	// Fallback says why the factors were computed on the CPU instead of
	// the backend asked for (the device ran out of memory); "" otherwise.
	Fallback string

	apply applyState[T] // Apply's applier
}

// NewFactors wraps existing factors B (d×r) and A (r×k), for instance ones
// read from a file, so that they can be applied. The data is used, not
// copied. It returns an error wrapping ErrEmpty, ErrShape or ErrNonFinite
// when the shapes do not fit or a value is not finite.
func NewFactors[T Float](b, a Matrix[T]) (*Factors[T], error) {
	if err := a.validate("A"); err != nil {
		return nil, err
	}
	if err := b.validate("B"); err != nil {
		return nil, err
	}
	if b.Cols != a.Rows {
		return nil, errorf(ErrShape, "B is %d×%d and A is %d×%d; expected B.Cols = A.Rows (the rank)", b.Rows, b.Cols, a.Rows, a.Cols)
	}
	return &Factors[T]{B: b, A: a, Rank: b.Cols, RelError: math.NaN(), Energy: math.NaN(),
		OutputRelError: math.NaN(), OutputEnergy: math.NaN(), Norm: math.NaN(), Method: Auto}, nil
}

// Dims returns the shape d×k of the matrix the factors approximate.
func (f *Factors[T]) Dims() (d, k int) { return f.B.Rows, f.A.Cols }

// Params returns the parameter count of the factors, r·(d+k).
func (f *Factors[T]) Params() int { return f.Rank * (f.B.Rows + f.A.Cols) }

// DenseParams returns the parameter count of the dense matrix, d·k.
func (f *Factors[T]) DenseParams() int { return f.B.Rows * f.A.Cols }

// Saves reports whether the factors hold fewer parameters than the dense
// matrix, r·(d+k) < d·k. When they do not, callers that compress should
// keep W dense.
func (f *Factors[T]) Saves() bool { return f.Params() < f.DenseParams() }

// BreakEven reports that the factors save nothing: r·(d+k) ≥ d·k.
//
// Deprecated: the name reads as "the factors break even", but it is true
// whenever they save nothing, past the break-even point too. Use !Saves().
func (f *Factors[T]) BreakEven() bool { return !f.Saves() }
