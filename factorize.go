package lowrank

import (
	"context"
	"fmt"
	"math"
	"runtime"

	"github.com/lowrank-go/lowrank/la"
)

// Factorize returns the rank-r factors B (d×r) and A (r×k) of the d×k
// matrix W, with r chosen by the policy:
//
//	W ≈ B·A,   B = U_r·S_r,   A = V_rᵀ      (SplitUS, the default)
//	           B = U_r·√S_r,  A = √S_r·V_rᵀ  (SplitSqrt)
//
// where W = U·S·Vᵀ is the singular value decomposition. By Eckart–Young
// this is the best rank-r approximation in the Frobenius norm, and its
// relative error is known from the singular values alone:
//
//	‖W − B·A‖_F / ‖W‖_F = sqrt(σ_{r+1}² + … + σ_n²) / ‖W‖_F
//
// Options select the method (WithMethod), the randomized sketch
// (WithOversampling, WithPowerIters, WithSeed, WithSketchPrecision), the split (WithSplit),
// rank rounding (WithRoundTo) and the backend (WithBackend).
//
// With WithInputCovariance(C) or WithInputScale(s) the factors minimise
// the error of the layer's outputs on calibration inputs instead,
// ‖(W − B·A)·X‖_F, by factorizing the whitened W·S (S·Sᵀ = C) and
// solving for A; the policies then read that output error, which
// Factors.OutputRelError reports (see WithInputCovariance).
//
// With Auto (the default), matrices with min(d,k) < 256 use the exact SVD.
// Larger ones use the randomized method when r + p ≤ min(d,k)/4; for the
// Energy and Tolerance policies the adaptive sketch is grown up to that
// size and the exact SVD is used when the target needs more.
//
// The randomized method never computes a full SVD: for Energy and
// Tolerance it grows its sketch block by block until the captured energy
// ‖Qᵀ·W‖_F² reaches the target fraction of ‖W‖_F², so the reported error
// is exact for the factors returned. Below a relative error of 1e-6
// (float64) or 1e-2 (float32), where ‖W‖² − Σσ̃² cancels to rounding,
// RelError is measured as ‖W − B·A‖_F/‖W‖_F instead, and an Energy or
// Tolerance target the measured error misses is computed again with the
// exact SVD (an ErrPolicy error under WithMaxSketch). When r + p ≥ min(d,k) it computes the
// exact SVD instead, which is then both cheaper and exact (likewise for
// Energy and Tolerance when min(d,k) ≤ 32); Factors.Method says which
// method ran.
//
// Factorize returns an error wrapping ErrEmpty, ErrShape, ErrNonFinite,
// ErrRank, ErrPolicy or ErrOption for bad input, ErrBackend when the
// requested backend cannot run, and the backend's error (wrapped) when a
// computation fails on the device. It is FactorizeContext with
// context.Background(); FactorizeContext can be cancelled.
//
// Factorize is safe for concurrent use; see the package documentation for
// how concurrent calls share the CPU's cores.
func Factorize[T Float](w Matrix[T], p Policy, opts ...Option) (*Factors[T], error) {
	return FactorizeContext(context.Background(), w, p, opts...)
}

// FactorizeContext is Factorize with a context: when ctx is cancelled or
// its deadline passes, the factorization stops at the next block boundary
// and returns an error wrapping ctx.Err() (errors.Is(err,
// context.Canceled) or context.DeadlineExceeded), whose text starts with
// "lowrank:". Everything it held is released (device memory, its share of
// the CPU's threads); no goroutine is left behind.
//
// The boundaries are the calls into the backend: every matrix product,
// every orthonormalization of a sketch block (the randomized method's
// power iterations are several of each) and the small SVD of the
// projection, so a randomized factorization stops within one product of
// W with a block of columns, a fraction of a second even for a large W.
// The exact SVD is one LAPACK (or cuSOLVER) call that cannot be
// interrupted: FactorizeContext checks ctx before and after it, so an
// Exact factorization stops only once that call returns (minutes for a
// large W on the CPU). A call waiting for a core of the CPU's thread
// budget stops waiting at once. A nil ctx is an error wrapping ErrOption.
func FactorizeContext[T Float](ctx context.Context, w Matrix[T], p Policy, opts ...Option) (*Factors[T], error) {
	if err := stopped(ctx, "factorization", w); err != nil {
		return nil, err
	}
	cfg := newConfig(opts)
	if cfg.err != nil {
		return nil, cfg.err
	}
	if _, single := any(T(0)).(float32); !single && cfg.sketchPrec != SketchF32 {
		return nil, errorf(ErrOption, "sketch precision %v applies to float32 matrices; expected SketchF32 for a float64 W (or a float32 copy of it)", cfg.sketchPrec)
	}
	norm, err := w.norm("W") // the one pass over W that checks it and measures it
	if err != nil {
		return nil, err
	}
	if err := p.validate(w.Rows, w.Cols); err != nil {
		return nil, err
	}
	if cfg.input != nil { // WithInputCovariance, WithInputScale (whiten.go)
		if err := cfg.input.checkSize(w.Cols); err != nil {
			return nil, err
		}
	}
	b, err := cfg.backendFor()
	if err != nil {
		return nil, err
	}
	f, b, fallback, err := onCPUIfOutOfMemory(b, "falling back to the CPU", fmt.Sprintf("%d×%d", w.Rows, w.Cols),
		func(b Backend) (*Factors[T], error) {
			if cfg.input != nil {
				return factorizeWhitened(ctx, b, w, norm, p, &cfg)
			}
			return factorize(ctx, engineOf[T](b), w, norm, p, &cfg)
		})
	if err != nil {
		return nil, stoppedOr(ctx, "factorization", w, err)
	}
	f.Backend = b
	f.Fallback = fallback
	return f, nil
}

// The rule Auto follows. Below autoMinDim the exact SVD is fast and exact,
// so it is always used. Above it, the randomized method is chosen when the
// sketch l = r + p is at most min(d,k)/autoSketchDivisor: its cost,
// about (2q+2)·2·d·k·l flops in matrix products, is then a small fraction
// of the exact SVD's ≈ 20·d·k·min(d,k). For Energy and Tolerance, whose rank
// is not known in advance, the adaptive sketch is grown up to that same
// bound, and the exact SVD is computed if the target is not met by then.
const (
	autoMinDim        = 256
	autoSketchDivisor = 4
)

// plan is what factorize decides from the shape, policy and options alone.
type plan struct {
	method Method // Exact or Randomized: what runs first
	fixed  int    // the rank a non-adaptive policy asks for, rounded
	limit  int    // Randomized: the most columns an adaptive sketch may reach
	// fallback: an adaptive sketch that reaches limit without meeting the
	// target is abandoned for the exact SVD.
	fallback bool
}

func planFor(cfg *config, p Policy, d, k int) plan {
	n := min(d, k)
	pl := plan{method: cfg.method, limit: n}
	switch p.kind {
	case policyRank:
		pl.fixed = roundRank(p.rank, cfg.roundTo, p, n)
	case policyRatio:
		pl.fixed = roundRank(ratioRank(p.value, d, k), cfg.roundTo, p, n)
	}
	if pl.method == Auto {
		pl.method = Exact
		if n >= autoMinDim && (p.adaptive() || pl.fixed+cfg.oversample <= n/autoSketchDivisor) {
			pl.method = Randomized
			pl.limit = n / autoSketchDivisor
		}
	}
	// A sketch that would span all of W's columns is slower than the
	// exact SVD and no more accurate.
	if pl.method == Randomized && (!p.adaptive() && pl.fixed+cfg.oversample >= n || p.adaptive() && n <= adaptiveFirstBlock) {
		pl.method = Exact
	}
	pl.fallback = pl.method == Randomized && p.adaptive() && pl.limit < n
	if pl.method == Randomized && cfg.maxSketch > 0 {
		pl.limit = min(pl.limit, cfg.maxSketch)
		pl.fallback = false
	}
	return pl
}

func factorize[T Float](ctx context.Context, e la.Engine[T], w Matrix[T], norm float64, p Policy, cfg *config) (*Factors[T], error) {
	d, k := w.Rows, w.Cols
	j := newJob(ctx, e, cfg, w, norm)
	defer j.release()
	if math.IsInf(j.norm, 0) {
		return nil, errorf(ErrNonFinite, "‖W‖_F overflows float64; expected a matrix whose norm is finite")
	}

	pl := planFor(cfg, p, d, k)
	method := pl.method

	var (
		u, vt la.Mat // U_r (d×r) and V_rᵀ (r×k)
		sp    *spectrum
		r     int
		err   error
	)
	if method == Randomized && cfg.sketchPrec != SketchF32 && p.adaptive() && math.Sqrt(max(0, 1-p.energyTarget())) < cfg.sketchPrec.floor() {
		j.cfg = fullSketch(cfg) // a target below the reduced sketch's floor
	}
	if method == Randomized {
		u, vt, sp, r, err = j.randomized(p, pl.fixed, pl.limit)
		if err != nil {
			return nil, err
		}
		if u != nil && j.cfg.sketchPrec != SketchF32 && sp.relError(r) < j.cfg.sketchPrec.floor() {
			// Factors this accurate would show the rounding of W in the
			// reduced sketch: compute it again in full precision.
			j.release()
			j.cfg = fullSketch(cfg)
			if u, vt, sp, r, err = j.randomized(p, pl.fixed, pl.limit); err != nil {
				return nil, err
			}
		}
		if u == nil && !pl.fallback {
			if r > 0 {
				return nil, errorf(ErrPolicy, "%v: rank %d of this %d×%d matrix needs more than the %d sketch columns allowed (WithMaxSketch); expected a smaller rank or a larger cap",
					p, r, d, k, pl.limit)
			}
			return nil, errorf(ErrPolicy, "%v is not reached by the %d sketch columns allowed (WithMaxSketch) for this %d×%d matrix; expected a looser target, a fixed rank or a larger cap",
				p, pl.limit, d, k)
		}
		if u == nil { // the adaptive sketch hit its limit: go exact
			method = Exact
			j.release() // the sketch is no longer needed
		}
	}
	if method == Exact {
		u, vt, sp, r, err = j.exact(p)
		if err != nil {
			return nil, err
		}
	}
	f, err := j.finish(u, vt, sp, r)
	if err != nil {
		return nil, err
	}
	if method == Randomized && f.RelError < measureBelow[T]() {
		// ‖W‖² − Σσ̃² has cancelled to rounding: measure the error.
		if err := j.check(); err != nil {
			return nil, err
		}
		res, err := residual(e, w, f.B, f.A)
		if err != nil {
			return nil, wrapBackend("residual", err)
		}
		if f.Norm > 0 && !math.IsNaN(res) && !math.IsInf(res, 0) {
			f.RelError = min(1, res/f.Norm)
			f.Energy = 1 - f.RelError*f.RelError
		}
		if p.adaptive() && f.RelError > math.Sqrt(max(0, 1-p.energyTarget()))*(1+1e-6) {
			// The sketch's estimate met a target the factors miss.
			if !pl.fallback && cfg.maxSketch > 0 {
				return nil, errorf(ErrPolicy, "%v is not reached by the %d sketch columns allowed (WithMaxSketch) for this %d×%d matrix (measured error %.3g); expected a looser target, a fixed rank or a larger cap",
					p, pl.limit, d, k, f.RelError)
			}
			j.release()
			method = Exact
			if u, vt, sp, r, err = j.exact(p); err != nil {
				return nil, err
			}
			if f, err = j.finish(u, vt, sp, r); err != nil {
				return nil, err
			}
		}
	}
	f.Method = method
	f.Policy = p
	if method == Randomized {
		f.SketchPrecision = j.cfg.sketchPrec
	}
	f.Split = cfg.split
	f.OutputRelError, f.OutputEnergy = f.RelError, f.Energy
	return f, nil
}

// measureBelow is the relative error below which the randomized method's
// error, sqrt(‖W‖² − Σσ̃²)/‖W‖, is mostly the rounding of that difference
// in T (about 3e-4 in float32, 1e-8 in float64): below it, Factorize
// measures ‖W − B·A‖_F instead, one product of B·A against W.
func measureBelow[T Float]() float64 {
	var z T
	if _, ok := any(z).(float32); ok {
		return 1e-2
	}
	return 1e-6
}

// fullSketch returns cfg with the float32 sketch.
func fullSketch(cfg *config) *config {
	c := *cfg
	c.sketchPrec = SketchF32
	return &c
}

// exact computes the thin SVD of W and truncates it by the policy.
func (j *job[T]) exact(p Policy) (u, vt la.Mat, sp *spectrum, r int, err error) {
	a, err := j.uploadW()
	if err != nil {
		return
	}
	U, s, Vt, err := j.svd(a)
	if err != nil {
		return
	}
	sp = newSpectrum(s, j.norm, true)
	r, _ = sp.choose(p, j.d, j.k)
	r = roundRank(r, j.cfg.roundTo, p, len(s))
	if u, err = j.view(U, 0, j.d, 0, r); err != nil {
		return
	}
	vt, err = j.view(Vt, 0, r, 0, j.k)
	return
}

// finish scales U_r and V_rᵀ by the split, brings them to the host and
// fixes the signs of the singular vectors.
func (j *job[T]) finish(u, vt la.Mat, sp *spectrum, r int) (*Factors[T], error) {
	if err := j.check(); err != nil {
		return nil, err
	}
	s := make([]float64, r)
	for i, v := range sp.s[:r] {
		s[i] = math.Ldexp(v, j.shift) // the singular values of W itself
	}
	left := make([]T, r)
	right := make([]T, r)
	for i, v := range sp.s[:r] {
		switch j.cfg.split {
		case SplitSqrt:
			left[i] = T(math.Ldexp(math.Sqrt(v), j.shift/2))
			right[i] = left[i]
		default:
			left[i] = T(s[i])
			right[i] = 1
		}
	}
	if err := wrapBackend("scale", j.e.ScaleColumns(u, left)); err != nil {
		return nil, err
	}
	if j.cfg.split == SplitSqrt {
		if err := wrapBackend("scale", j.e.ScaleRows(vt, right)); err != nil {
			return nil, err
		}
	}
	bData, err := j.result(u, j.d, r)
	if err != nil {
		return nil, err
	}
	aData, err := j.result(vt, r, j.k)
	if err != nil {
		return nil, err
	}
	f := &Factors[T]{
		B:        Matrix[T]{Rows: j.d, Cols: r, Data: bData},
		A:        Matrix[T]{Rows: r, Cols: j.k, Data: aData},
		S:        s,
		Rank:     r,
		RelError: sp.relError(r),
		Energy:   sp.energyKept(r),
		Norm:     math.Ldexp(j.norm, j.shift),
	}
	for _, m := range []Matrix[T]{f.B, f.A} {
		if firstNonFinite(m.Data) >= 0 {
			return nil, errorf(ErrNonFinite, "the factors of this %d×%d matrix (‖W‖_F = %.3g) overflow %T; expected a matrix whose singular values fit the float type (try SplitSqrt or float64)",
				j.d, j.k, math.Ldexp(j.norm, j.shift), T(0))
		}
	}
	fixSigns(f.B, f.A)
	return f, nil
}

// result returns the rows×cols matrix m as host memory the Factors keep:
// the engine's own storage where it lends it (la.Lender) and at most an
// eighth more than the matrix lies beneath it (the first r rows of the
// l×k SVD output, l = r + oversampling, for r ≥ 8·(l − r)), otherwise a
// copy. A large fresh buffer costs its page faults (≈ 15 µs per 4 KiB on
// the virtual machines we measured); a lent one is already mapped.
func (j *job[T]) result(m la.Mat, rows, cols int) ([]T, error) {
	if l, ok := j.e.(la.Lender[T]); ok {
		if data, ok := l.Lend(m); ok && len(data) == rows*cols && cap(data)-len(data) <= len(data)/8 {
			return data[:len(data):len(data)], nil
		}
	}
	data := make([]T, rows*cols)
	return data, wrapBackend("download", j.e.Download(data, m))
}

// fixSigns makes the entry of largest magnitude in each column of B
// positive, flipping the matching row of A, so that B·A is unchanged and
// every backend and method returns the same factors up to rounding (an SVD
// determines each singular vector pair only up to sign).
func fixSigns[T Float](b, a Matrix[T]) {
	// Row by row (B is row-major): a column-by-column walk strides through
	// all of B once per column. The rows are split between the cores, each
	// range keeping its own largest entries, merged in row order so that
	// the first of equal magnitudes wins as in one pass; magnitudes are
	// compared without a branch on the sign (half the branches would be
	// mispredicted on random signs).
	cols := b.Cols
	mags := make([][]float64, runtime.GOMAXPROCS(0))
	vals := make([][]T, len(mags))
	parts := rowChunks(b.Rows, cols, func(p, lo, hi int) {
		mag, val := make([]float64, cols), make([]T, cols)
		for i := lo; i < hi; i++ {
			for c, v := range b.Data[i*cols : (i+1)*cols] {
				if m := math.Abs(float64(v)); m > mag[c] {
					mag[c], val[c] = m, v
				}
			}
		}
		mags[p], vals[p] = mag, val
	})
	big, mag := vals[0], mags[0]
	for p := 1; p < parts; p++ {
		for c, m := range mags[p] {
			if m > mag[c] {
				mag[c], big[c] = m, vals[p][c]
			}
		}
	}
	sign := make([]T, cols)
	flip := false
	for c, v := range big {
		sign[c] = 1
		if v < 0 {
			sign[c], flip = -1, true
		}
	}
	if !flip {
		return
	}
	rowChunks(b.Rows, cols, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			row := b.Data[i*cols : (i+1)*cols]
			for c := range row {
				row[c] *= sign[c]
			}
		}
	})
	for c, v := range big {
		if v < 0 {
			row := a.Data[c*a.Cols : (c+1)*a.Cols]
			for i := range row {
				row[i] = -row[i]
			}
		}
	}
}
