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
// (default 10): it sketches l = r + p columns for rank r.
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
// a slowly decaying spectrum.
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
