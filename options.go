package lowrank

import (
	"fmt"
	"slices"
	"strings"
)

// Method is the algorithm that computes the singular values and vectors.
type Method int

const (
	// Auto chooses Exact or Randomized by size and rank; see Factorize.
	Auto Method = iota
	// Exact computes the thin SVD of W (LAPACK gesvd or gesdd, or
	// cuSOLVER on a GPU).
	Exact
	// Randomized computes a rank-l sketch of W with the
	// Halko–Martinsson–Tropp range finder and the SVD of its projection.
	Randomized
)

// String returns "auto", "exact" or "randomized".
func (m Method) String() string {
	switch m {
	case Auto:
		return "auto"
	case Exact:
		return "exact"
	case Randomized:
		return "randomized"
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

// ParseMethod parses "auto", "exact" or "randomized".
func ParseMethod(s string) (Method, error) {
	for _, m := range []Method{Auto, Exact, Randomized} {
		if strings.EqualFold(s, m.String()) {
			return m, nil
		}
	}
	return Auto, errorf(ErrOption, "method %q; expected auto, exact or randomized", s)
}

// Split says how the singular values are shared between B and A.
type Split int

const (
	// SplitUS puts them in B: B = U_r·S_r, A = V_rᵀ (the default).
	SplitUS Split = iota
	// SplitSqrt shares them: B = U_r·√S_r, A = √S_r·V_rᵀ, as PiSSA and
	// mergekit do, so that B and A have the same scale.
	SplitSqrt
)

// String returns "us" or "sqrt".
func (s Split) String() string {
	switch s {
	case SplitUS:
		return "us"
	case SplitSqrt:
		return "sqrt"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}

// ParseSplit parses "us" or "sqrt".
func ParseSplit(s string) (Split, error) {
	switch strings.ToLower(s) {
	case "us":
		return SplitUS, nil
	case "sqrt":
		return SplitSqrt, nil
	}
	return SplitUS, errorf(ErrOption, "split %q; expected us or sqrt", s)
}

// SketchPrecision is the arithmetic of the randomized range finder's
// products with W: the sketch Y = W·Ω and the power iterations'
// Wᵀ·Y and W·Z. Everything else — the orthonormalization of every block,
// the projection B = Qᵀ·W, the small SVD of B and the error reported —
// stays in the matrix's own precision, so the factors returned are exactly
// Q·(Qᵀ·W)'s and their error is measured, not estimated. A reduced sketch
// only tilts the subspace Q slightly; the error of the factors stays near
// the optimum (docs/sketch-precision.md has the measurements).
type SketchPrecision int

const (
	// SketchF32 computes the range finder in float32 (or float64) like
	// everything else: the default.
	SketchF32 SketchPrecision = iota
	// SketchTF32 rounds the inputs of the range finder's products to
	// TensorFloat-32 (10-bit mantissa) and accumulates in float32: cuBLAS's
	// CUBLAS_COMPUTE_32F_FAST_TF32, on the tensor cores of NVIDIA GPUs
	// from Ampere on.
	SketchTF32
	// SketchBF16 rounds them to bfloat16 (7-bit mantissa) and accumulates
	// in float32: CUBLAS_COMPUTE_32F_FAST_16BF.
	SketchBF16
)

// String returns "f32", "tf32" or "bf16".
func (p SketchPrecision) String() string {
	switch p {
	case SketchF32:
		return "f32"
	case SketchTF32:
		return "tf32"
	case SketchBF16:
		return "bf16"
	}
	return fmt.Sprintf("SketchPrecision(%d)", int(p))
}

// ParseSketchPrecision parses "f32", "tf32" or "bf16" (case-insensitive).
func ParseSketchPrecision(s string) (SketchPrecision, error) {
	for _, p := range []SketchPrecision{SketchF32, SketchTF32, SketchBF16} {
		if strings.EqualFold(strings.TrimSpace(s), p.String()) {
			return p, nil
		}
	}
	return SketchF32, errorf(ErrOption, "sketch precision %q; expected f32, tf32 or bf16", s)
}

// Defaults of the randomized method.
const (
	DefaultOversampling = 10
	DefaultPowerIters   = 2
)

// config collects the options of one call.
type config struct {
	method     Method
	oversample int
	powerIters int
	seed       uint64
	split      Split
	roundTo    int
	maxSketch  int // 0: no cap
	sketchPrec SketchPrecision
	backend    Backend
	input      *inputStats // WithInputCovariance or WithInputScale (whiten.go)
	err        error
	given      []string // the With… functions that built the options, in order
}

func newConfig(opts []Option) config {
	c := config{method: Auto, oversample: DefaultOversampling, powerIters: DefaultPowerIters}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

func (c *config) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// only returns an error wrapping ErrOption naming the first option given
// that is not one of the allowed ones, for a call that could not honour it.
func (c *config) only(call string, allowed ...string) error {
	for _, g := range c.given {
		if !slices.Contains(allowed, g) {
			return errorf(ErrOption, "%s has no effect on %s; expected only %s", g, call, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// Option configures Factorize, SVD and EstimateMemory. Options are made by
// the With… functions of this package; a nil Option is ignored.
type Option interface {
	apply(*config)
}

// option is an Option made by the With… function called name.
type option struct {
	name string
	set  func(*config)
}

func (o option) apply(c *config) {
	c.given = append(c.given, o.name)
	o.set(c)
}

// WithMethod selects the algorithm (default Auto).
func WithMethod(m Method) Option {
	return option{"WithMethod", func(c *config) {
		if m < Auto || m > Randomized {
			c.fail(errorf(ErrOption, "method %d; expected Auto, Exact or Randomized", int(m)))
			return
		}
		c.method = m
	}}
}

// WithOversampling sets the extra sketch columns p of the randomized method
// (default 10): it sketches l = r + p columns for rank r, rounded up to a
// multiple of 8 (the products and the QR run faster on such widths, and
// more columns only improve the sketch); p = 0 sketches exactly r.
func WithOversampling(p int) Option {
	return option{"WithOversampling", func(c *config) {
		if p < 0 {
			c.fail(errorf(ErrOption, "oversampling %d; expected ≥ 0", p))
			return
		}
		c.oversample = p
	}}
}

// WithPowerIters sets the number q of power (subspace) iterations of the
// randomized method (default 2). Each costs two passes over W and sharpens
// a slowly decaying spectrum. The sketch is normalized after every product:
// between the iterations with the engine's cheap basis where it has one
// (an LU on a system LAPACK), and with a QR for the basis kept.
func WithPowerIters(q int) Option {
	return option{"WithPowerIters", func(c *config) {
		if q < 0 {
			c.fail(errorf(ErrOption, "power iterations %d; expected ≥ 0", q))
			return
		}
		c.powerIters = q
	}}
}

// WithSeed seeds the Gaussian sketch of the randomized method (default 0).
// The same seed gives the same factors on every run and every backend, up
// to rounding.
func WithSeed(seed uint64) Option {
	return option{"WithSeed", func(c *config) { c.seed = seed }}
}

// WithSplit selects how singular values are shared between B and A
// (default SplitUS).
func WithSplit(s Split) Option {
	return option{"WithSplit", func(c *config) {
		if s != SplitUS && s != SplitSqrt {
			c.fail(errorf(ErrOption, "split %d; expected SplitUS or SplitSqrt", int(s)))
			return
		}
		c.split = s
	}}
}

// WithRoundTo rounds the chosen rank up to a multiple of m (kernels like
// multiples of 8), capped at min(d, k). With the Ratio policy, whose rank
// is a ceiling, it rounds down instead (but never below the policy's
// rank when that is less than m). m = 0 or 1 leaves the rank alone.
func WithRoundTo(m int) Option {
	return option{"WithRoundTo", func(c *config) {
		if m < 0 {
			c.fail(errorf(ErrOption, "round-to %d; expected ≥ 0", m))
			return
		}
		c.roundTo = m
	}}
}

// WithMaxSketch caps the randomized method's sketch at l columns, which
// bounds its memory (see EstimateMemory), and turns off the fallback to the
// exact SVD that Auto otherwise takes when an adaptive sketch falls short.
// With it, a rank (or an Energy or Tolerance target) that l columns cannot
// reach is an error wrapping ErrPolicy instead of a larger computation.
// It has no effect when the exact method runs. l = 0 (the default) sets
// no cap.
func WithMaxSketch(l int) Option {
	return option{"WithMaxSketch", func(c *config) {
		if l < 0 {
			c.fail(errorf(ErrOption, "max sketch %d; expected ≥ 0", l))
			return
		}
		c.maxSketch = l
	}}
}

// WithSketchPrecision sets the arithmetic of the randomized range finder's
// products with W (default SketchF32); see SketchPrecision. It applies to
// float32 matrices only: Factorize of a float64 matrix with SketchTF32 or
// SketchBF16 returns an error wrapping ErrOption. It has no effect when the
// exact method runs.
//
// Rounding the inputs perturbs W by about u·‖W‖_F (the unit roundoff u is
// 2^-11 for TF32, 2^-8 for BF16), and the factors' error grows by about
// 0.2·u·‖W‖_F in quadrature: nothing next to the error of a compression
// (error/optimal within 0.02% of the float32 sketch's at relative errors
// above 2u), but a large part of the error of factors more accurate than
// that. So when the factors' relative error comes out below 2u (9.8e-4 for
// TF32, 7.8e-3 for BF16), Factorize computes the sketch again in float32,
// and an Energy or Tolerance target that asks for such accuracy runs in
// float32 from the start; Factors.SketchPrecision says which ran.
// docs/sketch-precision.md has the measurements.
//
// On the cuda backend SketchTF32 and SketchBF16 run cublasGemmEx with
// CUBLAS_COMPUTE_32F_FAST_TF32 and CUBLAS_COMPUTE_32F_FAST_16BF, which use
// the tensor cores of GPUs of compute capability 8.0 and later (on older
// ones cuBLAS computes them in float32). On the cpu backend SketchBF16
// runs on a bfloat16 kernel (AVX-512 BF16's VDPBF16PS, two bfloat16
// multiply-adds per float32 lane and instruction) on CPUs that have
// AVX512_BF16 — Intel Cooper Lake, Sapphire Rapids and later, AMD Zen 4
// and later — in a cgo build: there the range finder's products take
// 0.4–0.8× the time of OpenBLAS's SGEMM, and whole factorizations 0.59–
// 0.98× the float32 sketch's on two cores, 0.67× on one (4096² and
// 4096×11008, docs/performance.md); `lowrank backends` says whether it
// runs. Elsewhere, and for SketchTF32 always (no CPU computes TF32),
// the cpu backend emulates the rounding — the inputs are rounded and
// multiplied in float32, exact as on the tensor cores — which is slower
// than SketchF32 and exists so that the accuracy of the tensor-core sketch
// can be checked, and reproduced, on any machine.
func WithSketchPrecision(p SketchPrecision) Option {
	return option{"WithSketchPrecision", func(c *config) {
		if p < SketchF32 || p > SketchBF16 {
			c.fail(errorf(ErrOption, "sketch precision %d; expected SketchF32, SketchTF32 or SketchBF16", int(p)))
			return
		}
		c.sketchPrec = p
	}}
}

// WithBackend runs the call on b instead of the default backend.
func WithBackend(b Backend) Option {
	return option{"WithBackend", func(c *config) {
		if b == nil {
			c.fail(errorf(ErrOption, "nil backend"))
			return
		}
		c.backend = b
	}}
}
