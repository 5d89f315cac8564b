package lowrank

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/lowrank-go/lowrank/la"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// Data-aware factorization. A layer y = W·x is judged by its outputs on
// the inputs it really sees, so the factors that matter minimise
//
//	Σᵢ ‖(W − B·A)·xᵢ‖² = n·tr((W − B·A)·C·(W − B·A)ᵀ),   C = (1/n)·Σᵢ xᵢ·xᵢᵀ
//
// rather than ‖W − B·A‖_F. With any S such that S·Sᵀ = C this is
// ‖(W − B·A)·S‖_F², so the best rank-r factors are those of the whitened
// matrix G = W·S, un-whitened (SVD-LLM):
//
//	G = W·S = U·Σ·Vᵀ,   B = U_r·Σ_r,   A = V_rᵀ·S⁻¹
//
// and their output error is known from G's singular values, as the weight
// error of plain factors is known from W's. The steps and where they run:
//
//  1. Host, float64: check C (size, finite, symmetric, no negative
//     eigenvalue beyond rounding) and scale it to mean eigenvalue 1.
//  2. The backend, float64: its Cholesky factor L (S = L), blocked
//     (cholesky.go: Gemm updates on the backend, 256-column blocks
//     factorized on the host), adding the smallest ridge ρ·I that makes
//     C/m + ρ·I safely positive definite when C is singular or
//     ill-conditioned (the condition number estimated on the host).
//  3. The backend, float64: G = W·L, in blocks of rows, rounded to W's type.
//  4. The backend, in W's type: Factorize's exact or randomized SVD of G,
//     with the rank policy read from G's spectrum, that is from the
//     output error.
//  5. The backend, float64: A ← A·L⁻¹ by a blocked triangular solve
//     (cholesky.go), never by forming L⁻¹.
//
// Why Cholesky and a ridge rather than an eigendecomposition: the Cholesky
// factor costs k³/3 flops against ≈ 9k³ for the eigenvectors, it is
// backward stable, and its triangle makes step 4 a solve. An
// eigendecomposition S = Q·Λ^½ would handle a singular C without a ridge,
// but S⁻¹ then needs Λ^-½ for eigenvalues at rounding level, which is the
// same regularization question in another place. The ridge has a plain
// meaning: the factors minimise the output error for C + ρ·m·I, that is
// ‖(W−B·A)·X‖² + n·ρ·m·‖W−B·A‖², so in the directions the calibration
// inputs never reach the factors stay close to W's own projection instead
// of being arbitrary, and the output error on C stays at most that of
// plain SVD (it is the optimum of a problem whose other term plain SVD
// minimises). It is reported (Factors.Ridge) and is 0 for a well-conditioned C.

// Weighting says which input statistics shaped a factorization.
type Weighting int

const (
	// WeightNone: plain SVD; the factors minimise ‖W − B·A‖_F.
	WeightNone Weighting = iota
	// WeightCovariance: WithInputCovariance; the factors minimise the
	// output error ‖(W − B·A)·X‖_F on the inputs whose second moment
	// is C.
	WeightCovariance
	// WeightScale: WithInputScale; the factors minimise
	// ‖(W − B·A)·diag(s)‖_F (ASVD).
	WeightScale
)

// String returns "none", "covariance" or "scale".
func (w Weighting) String() string {
	switch w {
	case WeightNone:
		return "none"
	case WeightCovariance:
		return "covariance"
	case WeightScale:
		return "scale"
	}
	return fmt.Sprintf("Weighting(%d)", int(w))
}

// WithInputCovariance makes Factorize minimise the error of the layer's
// outputs instead of the error of its weights:
//
//	minimise Σᵢ ‖(W − B·A)·xᵢ‖²  over B (d×r), A (r×k)
//
// for the inputs x₁…xₙ (length k) whose second-moment matrix is C:
//
//	C = (1/n)·Σᵢ xᵢ·xᵢᵀ = XᵀX/n   (X holding the inputs as rows, n×k)
//
// C is k×k, symmetric positive semi-definite, in float64 whatever W's type
// (sums of squares of activations lose too much in float32). It is the
// uncentred second moment, not the covariance about the mean: a layer's
// outputs depend on the mean too. Only C's shape matters, not its scale:
// C and c·C give the same factors, and C = I gives exactly the plain
// factors.
//
// The factors are those of the whitened matrix W·L, L·Lᵀ = C (see the
// package's whiten.go for the steps): every rank policy then reads the
// output error, so Energy(e) keeps the fraction e of Σᵢ‖W·xᵢ‖² and
// Tolerance(t) bounds ‖(W − B·A)·X‖_F / ‖W·X‖_F by t; the randomized
// method sketches W·L. Factors.OutputRelError and OutputEnergy report the
// output error, RelError and Energy the weight error of the same factors,
// Ridge the multiple of the identity added to C (0 unless C is singular or
// ill-conditioned: C + Ridge·I is what the factors are optimal for, and
// Ridge stays below 1e-4 of C's largest diagonal entry). S holds the
// singular values of W·L with C scaled to mean eigenvalue 1.
//
// Everything with C is computed in float64, whatever W's type: the
// checks on the host, the blocked Cholesky factorization of C, the
// product W·L and the triangular solve for A on the backend (Gemm) with
// blocks of 256 columns factorized or solved on the host by gonum; only
// the SVD of W·L runs in W's type. The factorization of C is done on the
// first Factorize that uses the option and kept (k² float64 values) for
// the next ones, so one option serves several weights with the same inputs
// (a transformer's q, k and v projections); C must not change after that
// first call.
//
// Factorize returns an error wrapping ErrShape when C is not k×k for W's
// k columns, a *NonFiniteError naming C's element for a NaN or ±Inf, and
// an error wrapping ErrOption and ErrInputStats when C is not symmetric (beyond 1e-5 of
// sqrt(Cᵢᵢ·Cⱼⱼ)), has a negative eigenvalue beyond rounding (below −1e-4
// of its largest diagonal entry), or is zero. WithInputCovariance and
// WithInputScale together are an ErrOption error: the covariance already
// holds the per-channel scales, and whitening is the better use of them.
func WithInputCovariance(c Matrix[float64]) Option {
	in := &inputStats{kind: WeightCovariance, cov: c}
	return option{"WithInputCovariance", func(cf *config) { cf.setInput(in) }}
}

// WithInputMoments is WithInputCovariance for a layer with a bias, which
// absorbs the error of the mean output: given the inputs' second moment C
// and their mean μ (length k), the factors minimise
//
//	Σᵢ ‖(W − B·A)·xᵢ + δ‖²  over B, A and the bias change δ
//	δ = −(W − B·A)·μ,  that is  Σᵢ ‖(W − B·A)·(xᵢ − μ)‖²
//
// by whitening with the covariance about the mean, C − μμᵀ, instead of C.
// Factors.BiasShift = (W − B·A)·μ is then what to add to the layer's bias
// (y = B·(A·x) + b + BiasShift), and OutputRelError is relative to the
// outputs' spread about their mean, ‖(W − B·A)·(X − μ)‖_F / ‖W·(X − μ)‖_F.
// Without a bias to absorb it, use WithInputCovariance: the mean output
// then counts in the error. On a trained MLP whose inputs have a large
// mean (docs/calibration.md) it made the difference: 53.8% test accuracy
// at 7.4% of the parameters, against 31.8% with C alone and 30.4% with
// plain SVD.
//
// C and μ must come from the same inputs (C − μμᵀ positive semi-definite,
// checked as WithInputCovariance checks C); a length of μ other than k is
// an ErrShape error, a NaN or ±Inf a *NonFiniteError naming "mean".
func WithInputMoments(c Matrix[float64], mean []float64) Option {
	in := &inputStats{kind: WeightCovariance, cov: c, mean: mean}
	return option{"WithInputMoments", func(cf *config) { cf.setInput(in) }}
}

// WithInputScale makes Factorize minimise the error of W scaled column by
// column, as ASVD (activation-aware SVD) does:
//
//	minimise ‖(W − B·A)·diag(s)‖_F
//	B·A = (truncated SVD of W·diag(s))·diag(s)⁻¹
//
// where s (length k, every entry positive) weighs each input channel.
// ASVD takes sⱼ = (mean |xⱼ|)^α over calibration inputs x, α ≈ 0.5; a
// diagonal C, sⱼ = sqrt(Cⱼⱼ), gives the error of outputs on inputs with
// uncorrelated channels. Only the ratios of the sⱼ matter. The rank
// policies then read ‖(W − B·A)·diag(s)‖_F / ‖W·diag(s)‖_F, which
// Factors.OutputRelError reports beside the weight error RelError.
//
// Factorize returns an error wrapping ErrShape when len(s) is not W's k,
// a *NonFiniteError for a NaN or ±Inf, an error wrapping ErrOption and
// ErrInputStats for an entry ≤ 0, and one wrapping ErrOption when
// WithInputCovariance is given as well.
func WithInputScale(s []float64) Option {
	in := &inputStats{kind: WeightScale, scale: s}
	return option{"WithInputScale", func(cf *config) { cf.setInput(in) }}
}

// statsError is an error about input statistics: it wraps ErrOption and
// ErrInputStats.
type statsError struct{ inputError }

func (e *statsError) Unwrap() []error { return []error{ErrOption, ErrInputStats} }

func statsErrorf(format string, args ...any) error {
	return &statsError{inputError{kind: ErrOption, msg: fmt.Sprintf(format, args...)}}
}

// setInput records input statistics; two different kinds conflict.
func (c *config) setInput(in *inputStats) {
	if c.input != nil && c.input.kind != in.kind {
		c.fail(errorf(ErrOption, "WithInputCovariance and WithInputScale given together; expected one of them (a covariance already holds the per-channel scales)"))
		return
	}
	c.input = in
}

// inputStats is the value of WithInputCovariance or WithInputScale, with
// its whitening computed on first use and kept, once per precision (the
// ridge rule depends on it). A failure of the backend is not kept: the
// next call (on the CPU after the device ran out of memory) tries again.
type inputStats struct {
	kind  Weighting
	cov   Matrix[float64]
	mean  []float64 // WithInputMoments
	scale []float64

	mu    sync.Mutex
	ready [2]*whitening // float32, float64
	bad   error         // the input error, once found
}

// whitening is S, prepared: W·S is what gets factorized and A·S⁻¹ what
// comes back.
type whitening struct {
	kind Weighting
	k    int
	// covariance: l is the lower triangular factor, row-major with zeros
	// above the diagonal, of C/m + ridge·I = L·Lᵀ, m = tr(C)/k.
	l     []float64
	m     float64
	ridge float64
	// scale: s/rms(s).
	s []float64
}

// Tolerances of the checks on C, relative to the scales named.
const (
	// covSymTol: |Cᵢⱼ − Cⱼᵢ| ≤ covSymTol·sqrt(Cᵢᵢ·Cⱼⱼ) (+ 1e-12·max Cᵢᵢ),
	// loose enough for a C accumulated in float32 by a GEMM.
	covSymTol = 1e-5
	// covNegTol: eigenvalues ≥ −covNegTol·max Cᵢᵢ are rounding (a float32
	// copy of a float64 C of size 16384 moves them by about 2e-5 of it);
	// the ridge covers them. Below that, C is not a second-moment matrix.
	covNegTol = 1e-4
)

// minRcond is the reciprocal condition number C/m + ridge·I must reach.
// The solve A = Vᵀ·L⁻¹ carries the SVD's rounding (of W's type) into A
// magnified by up to ‖L⁻¹‖ = 1/√λ_min: invisible on the calibration
// inputs (L⁻¹·X is white), but it is what the factors do to inputs in
// directions the calibration never reached. The ridge bounds it; it also
// moves the factors away from the optimum for C by about the ridge
// itself, so it is kept small: float64 stops at a conditioning of 1e12
// (noise ≤ 1e-16·1e6, the optimum met to 1e-10), float32 at 1e10 (noise
// ≤ 6e-8·1e5 ≈ 6e-3 of ‖W·L‖ in unseen directions).
func minRcond[T Float]() float64 {
	if _, ok := any(T(0)).(float32); ok {
		return 1e-10
	}
	return 1e-12
}

// whiteningFor returns the whitening of cfg's input statistics for W's
// type, prepared on b the first time.
func whiteningFor[T Float](b Backend, cfg *config) (*whitening, error) {
	in := cfg.input
	i := 1
	if _, ok := any(T(0)).(float32); ok {
		i = 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.bad != nil {
		return nil, in.bad
	}
	if w := in.ready[i]; w != nil {
		return w, nil
	}
	var w *whitening
	var err error
	if in.kind == WeightScale {
		w, err = prepareScale(in.scale)
	} else {
		w, err = prepareCovariance(b.Float64(), in.cov, in.mean, minRcond[T]())
	}
	if err != nil {
		var nf *NonFiniteError
		if errors.Is(err, ErrInputStats) || errors.As(err, &nf) {
			in.bad = err
		}
		return nil, err
	}
	in.ready[i] = w
	return w, nil
}

// checkSize checks the statistics against W's k columns.
func (in *inputStats) checkSize(k int) error {
	if in.kind == WeightScale {
		if len(in.scale) != k {
			return errorf(ErrShape, "input scale s has length %d; expected %d, one per column of W", len(in.scale), k)
		}
		return nil
	}
	if err := in.cov.checkShape("C"); err != nil {
		return err
	}
	if in.cov.Rows != k || in.cov.Cols != k {
		return errorf(ErrShape, "input covariance C is %d×%d; expected %d×%d for W with %d columns", in.cov.Rows, in.cov.Cols, k, k, k)
	}
	if in.mean != nil && len(in.mean) != k {
		return errorf(ErrShape, "input mean μ has length %d; expected %d, one per column of W", len(in.mean), k)
	}
	return nil
}

func prepareScale(s []float64) (*whitening, error) {
	if err := checkVector("s", s, len(s)); err != nil {
		return nil, err
	}
	var ss la.SumSq
	for i, v := range s {
		if !(v > 0) {
			return nil, statsErrorf("input scale s[%d] = %v; expected positive scales (ASVD: the mean |x| of each input channel, to a power α ≈ 0.5)", i, v)
		}
		ss.Add(v)
	}
	rms := ss.Norm() / math.Sqrt(float64(len(s)))
	t := make([]float64, len(s))
	for i, v := range s {
		t[i] = v / rms
	}
	return &whitening{kind: WeightScale, k: len(s), s: t}, nil
}

// prepareCovariance checks C and computes the Cholesky factor of C/m
// with the ridge the conditioning needs, on e.
func prepareCovariance(e la.Engine[float64], c Matrix[float64], mean []float64, minRcond float64) (*whitening, error) {
	k := c.Rows
	if i := firstNonFinite(c.Data); i >= 0 {
		return nil, c.nonFinite("C", i)
	}
	if err := checkVector("mean", mean, len(mean)); err != nil {
		return nil, err
	}
	cmax := 0.0
	for i := range k {
		cmax = max(cmax, c.At(i, i))
	}
	if !(cmax > 0) {
		for i := range k {
			if v := c.At(i, i); v < 0 {
				return nil, statsErrorf("input covariance C[%d,%d] = %g is negative (and no diagonal entry is positive); expected a positive semi-definite matrix XᵀX/n, whose diagonal is ≥ 0", i, i, v)
			}
		}
		return nil, statsErrorf("input covariance C has no positive diagonal entry (inputs that are all zero); expected the second moment XᵀX/n of inputs that are not all zero")
	}
	for i := range k {
		if v := c.At(i, i); v < -covNegTol*cmax {
			return nil, statsErrorf("input covariance C[%d,%d] = %g is negative; expected a positive semi-definite matrix XᵀX/n, whose diagonal is ≥ 0", i, i, v)
		}
	}
	// m = tr(C)/k, summed scaled by cmax so that it cannot overflow.
	tr := 0.0
	for i := range k {
		tr += max(0, c.At(i, i)) / cmax
	}
	m := tr / float64(k) * cmax
	a := make([]float64, k*k)
	for i := range k {
		di := math.Sqrt(max(0, c.At(i, i)))
		for j := range i {
			x, y := c.At(i, j), c.At(j, i)
			tol := covSymTol*di*math.Sqrt(max(0, c.At(j, j))) + 1e-12*cmax
			if !(math.Abs(x-y) <= tol) {
				return nil, statsErrorf("input covariance C is not symmetric: C[%d,%d] = %g but C[%d,%d] = %g; expected a symmetric matrix XᵀX/n (equal to within %.0e of sqrt(Cᵢᵢ·Cⱼⱼ))",
					i, j, x, j, i, y, covSymTol)
			}
			v := x/m/2 + y/m/2
			a[i*k+j], a[j*k+i] = v, v
		}
		a[i*k+i] = max(0, c.At(i, i)) / m
	}
	name := "input covariance C"
	if mean != nil {
		// The covariance about the mean, C − μμᵀ, scaled anew to mean
		// eigenvalue 1.
		name = "input covariance about the mean C − μμᵀ"
		tr := 0.0
		for i := range k {
			mi := mean[i] / math.Sqrt(m)
			for j := range k {
				a[i*k+j] -= mi * (mean[j] / math.Sqrt(m))
			}
			if v := a[i*k+i]; v < -covNegTol*cmax/m {
				return nil, statsErrorf("%s has a negative diagonal entry at [%d,%d] (C = %g, μ² = %g); expected the mean μ of the inputs whose second moment is C", name, i, i, c.At(i, i), mean[i]*mean[i])
			}
			tr += max(0, a[i*k+i])
		}
		t := tr / float64(k)
		if !(t > covNegTol*cmax/m) {
			return nil, statsErrorf("%s is zero (every input is its mean); expected inputs that vary", name)
		}
		for i := range a {
			a[i] /= t
		}
		m *= t
	}
	sym := func(d []float64) blas64.Symmetric {
		return blas64.Symmetric{Uplo: blas.Lower, N: k, Stride: k, Data: d}
	}
	work := make([]float64, 3*k)
	iwork := make([]int, k)
	anorm := lapack64.Lansy(lapack.MaxColumnSum, sym(a), work)
	if math.IsInf(anorm, 0) || math.IsNaN(anorm) {
		// Off-diagonal entries far beyond the diagonal's scale: C/m
		// overflows (and C cannot be positive semi-definite).
		return nil, statsErrorf("%s has off-diagonal entries beyond what its diagonal allows (C/m overflows float64); expected a positive semi-definite matrix XᵀX/n, whose |Cᵢⱼ| ≤ sqrt(Cᵢᵢ·Cⱼⱼ)", name)
	}
	negTol := covNegTol * cmax / m
	l := make([]float64, k*k)
	ridge := 0.0
	for {
		copy(l, a)
		for i := range k {
			l[i*k+i] += ridge
		}
		ok, err := cholesky(e, l, k)
		if err != nil {
			return nil, err
		}
		if ok && lapack64.Pocon(sym(l), anorm+ridge, work, iwork) >= minRcond {
			break
		}
		if !ok && ridge >= negTol {
			return nil, notPositive(name, a, k, m, cmax)
		}
		// A ridge of 1000·‖C/m‖₁ makes any symmetric matrix without a
		// large negative eigenvalue diagonally dominant: past it, only
		// values beyond the float range (NaN or ±Inf in the
		// factorization) are left.
		if !(ridge <= 1e3*anorm) {
			return nil, statsErrorf("%s cannot be factorized in float64 (its entries span too wide a range: ‖C/m‖₁ = %g); expected a second-moment matrix XᵀX/n of finite, moderately scaled inputs", name, anorm)
		}
		if ridge == 0 {
			ridge = minRcond * anorm
		} else {
			ridge *= 10
		}
	}
	for i := range k {
		clear(l[i*k+i+1 : (i+1)*k])
	}
	return &whitening{kind: WeightCovariance, k: k, l: l, m: m, ridge: ridge}, nil
}

// notPositive is the error for a C with a negative eigenvalue beyond
// rounding; a holds C/m.
func notPositive(name string, a []float64, k int, m, cmax float64) error {
	if lo, ok := smallestEigenvalue(a, k); ok {
		w := []float64{lo}
		return statsErrorf("%s has a negative eigenvalue %.3g (%.2g of C's largest diagonal entry); expected a positive semi-definite matrix, whose eigenvalues are ≥ 0 up to rounding (−%.0e of the largest diagonal entry)",
			name, w[0]*m, w[0]*m/cmax, covNegTol)
	}
	return statsErrorf("%s is not positive semi-definite (its Cholesky factorization fails even with a ridge of %.0e of C's largest diagonal entry); expected a matrix XᵀX/n", name, covNegTol)
}

// whiten returns G = W·S in T. The product with L runs on b in float64,
// in blocks of rows; the diagonal scaling on the host. Either way each
// element of G is rounded to T once, from float64.
func whiten[T Float](b Backend, wh *whitening, w Matrix[T]) (Matrix[T], error) {
	d, k := w.Rows, w.Cols
	g := Matrix[T]{Rows: d, Cols: k, Data: make([]T, d*k)}
	if wh.kind == WeightScale {
		for i := range d {
			row, out := w.Data[i*k:(i+1)*k], g.Data[i*k:(i+1)*k]
			for j, v := range row {
				out[j] = T(float64(v) * wh.s[j])
			}
		}
		return g, nil
	}
	e := b.Float64()
	j := &job[float64]{e: e}
	defer j.release()
	lm, err := j.borrow(k, k, wh.l)
	if err != nil {
		return g, err
	}
	rows := max(1, productBlock/k)
	in := make([]float64, min(rows, d)*k)  // W's block, widened (float32 W)
	out := make([]float64, min(rows, d)*k) // G's block
	borrower, _ := e.(la.Borrower[float64])
	for i0 := 0; i0 < d; i0 += rows {
		i1 := min(i0+rows, d)
		n := (i1 - i0) * k
		src := in[:n]
		if w64, ok := any(w.Data).([]float64); ok {
			src = w64[i0*k : i1*k]
		} else {
			for x, v := range w.Data[i0*k : i1*k] {
				src[x] = float64(v)
			}
		}
		wm, err := j.borrow(i1-i0, k, src)
		if err != nil {
			return g, err
		}
		dst := out[:n]
		if g64, ok := any(g.Data).([]float64); ok {
			dst = g64[i0*k : i1*k] // written in place when the engine borrows
		}
		var gm la.Mat
		if borrower != nil {
			gm, err = borrower.Borrow(i1-i0, k, dst)
			err = wrapBackend("upload", err)
		} else {
			gm, err = j.zeros(i1-i0, k)
		}
		if err != nil {
			return g, err
		}
		if err := wrapBackend("gemm", e.Gemm(false, false, 1, wm, lm, 0, gm)); err != nil {
			return g, err
		}
		if borrower == nil {
			if err := wrapBackend("download", e.Download(dst, gm)); err != nil {
				return g, err
			}
		}
		if _, ok := any(g.Data).([]float64); !ok {
			for x, v := range dst {
				g.Data[i0*k+x] = T(v)
			}
		}
		j.free(wm)
		j.free(gm)
	}
	return g, nil
}

// unwhiten computes A ← A·S⁻¹ in float64 and rounds it back to T: the
// triangular solve X·L = A for the covariance (blocked on the engine, see
// solveLower), a division by sⱼ for the scale.
func unwhiten[T Float](b Backend, wh *whitening, a Matrix[T]) error {
	r, k := a.Rows, a.Cols
	if wh.kind == WeightScale {
		for i := range r {
			row := a.Data[i*k : (i+1)*k]
			for j, v := range row {
				row[j] = T(float64(v) / wh.s[j])
			}
		}
		return nil
	}
	x, ok := any(a.Data).([]float64)
	if !ok {
		x = make([]float64, r*k)
		for i, v := range a.Data {
			x[i] = float64(v)
		}
	}
	if err := solveLower(b.Float64(), wh.l, x, r, k); err != nil {
		return err
	}
	if !ok {
		for i, v := range x {
			a.Data[i] = T(v)
		}
	}
	return nil
}

// factorizeWhitened is Factorize with input statistics: the factors of
// G = W·S, with A un-whitened, and both errors measured.
func factorizeWhitened[T Float](ctx context.Context, b Backend, w Matrix[T], norm float64, p Policy, cfg *config) (*Factors[T], error) {
	wh, err := whiteningFor[T](b, cfg)
	if err != nil {
		return nil, err
	}
	e := engineOf[T](b)
	g, err := whiten(b, wh, w)
	if err != nil {
		return nil, err
	}
	gnorm, err := g.norm("W·S")
	if err != nil || math.IsInf(gnorm, 0) {
		return nil, errorf(ErrNonFinite, "the whitened matrix W·S of this %d×%d W overflows %T (‖W‖_F = %.3g); expected W and the input statistics to fit the float type (try float64)",
			w.Rows, w.Cols, T(0), norm)
	}
	f, err := factorize(ctx, e, g, gnorm, p, cfg)
	if err != nil {
		return nil, err
	}
	g = Matrix[T]{} // let the GC have it before the products below
	outRel := f.RelError
	if err := unwhiten(b, wh, f.A); err != nil {
		return nil, err
	}
	if i := firstNonFinite(f.A.Data); i >= 0 {
		return nil, errorf(ErrNonFinite, "the factor A = Vᵀ·S⁻¹ of this %d×%d matrix overflows %T; expected input statistics whose smallest scales are not tiny against the largest (try float64)",
			w.Rows, w.Cols, T(0))
	}
	res, err := residual(e, w, f.B, f.A)
	if err != nil {
		return nil, err
	}
	rel := 0.0
	if norm > 0 {
		rel = res / norm
	}
	if wh.ridge > 0 && gnorm > 0 {
		// ‖G‖² = tr(W·C̃·Wᵀ) + ρ‖W‖² and ‖(W−B·A)·L‖² = ‖G − G_r‖² hold
		// the ridge's share; take it out (scaled by ‖G‖² against overflow).
		en, wn := res/gnorm, norm/gnorm
		num := outRel*outRel - wh.ridge*en*en
		den := 1 - wh.ridge*wn*wn
		outRel = 0
		if den > 0 {
			outRel = math.Sqrt(min(1, max(0, num/den)))
		}
	}
	if m := cfg.input.mean; m != nil {
		f.BiasShift = biasShift(w, f.B, f.A, m)
	}
	f.Weighting = wh.kind
	f.OutputRelError = outRel
	f.OutputEnergy = 1 - outRel*outRel
	f.RelError = rel
	f.Energy = 1 - rel*rel
	f.Norm = norm
	if wh.kind == WeightCovariance {
		f.Ridge = wh.ridge * wh.m
	}
	return f, nil
}

// addWhiteningBytes adds to the estimate n the memory the input statistics
// of opts need for a d×k W: G = W·S in W's type, for a covariance the
// factor L and the working copy of C (float64, k×k each), the float64
// blocks of the product and A in float64 for the solve.
func addWhiteningBytes(n int64, d, k int, es float64, p Policy, opts []Option) (int64, error) {
	cfg := newConfig(opts)
	in := cfg.input
	if in == nil {
		return n, nil
	}
	// Only the shape is read: a caller may estimate with a C that has
	// its dimensions but no data yet.
	if in.kind == WeightCovariance && (in.cov.Rows != k || in.cov.Cols != k) {
		return 0, errorf(ErrShape, "input covariance C is %d×%d; expected %d×%d for W with %d columns", in.cov.Rows, in.cov.Cols, k, k, k)
	}
	if in.kind == WeightCovariance && in.mean != nil && len(in.mean) != k {
		return 0, errorf(ErrShape, "input mean μ has length %d; expected %d, one per column of W", len(in.mean), k)
	}
	if in.kind == WeightScale && len(in.scale) != k {
		return 0, errorf(ErrShape, "input scale s has length %d; expected %d, one per column of W", len(in.scale), k)
	}
	extra := es * float64(d) * float64(k)
	if in.kind == WeightCovariance {
		r := min(d, k)
		if pl := planFor(&cfg, p, d, k); !p.adaptive() {
			r = pl.fixed
		}
		extra += 16*float64(k)*float64(k) + 16*float64(min(productBlock, d*k)) + 8*float64(r)*float64(k) + 8*4*float64(k)
	} else {
		extra += 8 * float64(k)
	}
	b := float64(n) + extra*17/16
	if b >= math.MaxInt64 {
		return math.MaxInt64, nil
	}
	return int64(b), nil
}

// biasShift returns (W − B·A)·μ in float64: W·μ − B·(A·μ).
func biasShift[T Float](w, b, a Matrix[T], mu []float64) []float64 {
	am := make([]float64, a.Rows)
	for i := range a.Rows {
		for j, v := range a.Row(i) {
			am[i] += float64(v) * mu[j]
		}
	}
	out := make([]float64, w.Rows)
	for i := range w.Rows {
		var s float64
		for j, v := range w.Row(i) {
			s += float64(v) * mu[j]
		}
		for t, v := range b.Row(i) {
			s -= float64(v) * am[t]
		}
		out[i] = s
	}
	return out
}

// smallestEigenvalue returns the smallest eigenvalue of the symmetric
// k×k a (lower triangle read; a is overwritten). The matrix is scaled to
// a largest entry of 1 first: gonum's eigenvalue-only path panics when
// it has to rescale a matrix near the float64 limits itself, and a
// recover keeps any other failure of it an error, not a panic.
func smallestEigenvalue(a []float64, k int) (lo float64, ok bool) {
	defer func() {
		if recover() != nil {
			lo, ok = 0, false
		}
	}()
	big := 0.0
	for _, v := range a {
		big = max(big, math.Abs(v))
	}
	if !(big > 0) || math.IsInf(big, 0) {
		return 0, false
	}
	for i := range a {
		a[i] /= big
	}
	w := make([]float64, k)
	work := []float64{0}
	s := blas64.Symmetric{Uplo: blas.Lower, N: k, Stride: k, Data: a}
	lapack64.Syev(lapack.EVNone, s, w, work, -1)
	work = make([]float64, int(work[0]))
	if !lapack64.Syev(lapack.EVNone, s, w, work, len(work)) {
		return 0, false
	}
	return w[0] * big, true
}
