package lowrank

import (
	"math"
	"math/rand/v2"

	"github.com/lowrank-go/lowrank/la"
)

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

// First block of the adaptive range finder; each later block doubles, up
// to adaptiveMaxBlock columns.
const (
	adaptiveFirstBlock = 32
	adaptiveMaxBlock   = 512
)

// job is one factorization in progress: every Mat it allocates is freed by
// release, on success and failure alike.
type job[T Float] struct {
	e    la.Engine[T]
	cfg  *config
	w    Matrix[T]
	d, k int
	// W is computed on as W·2^-shift, a power of two (exact) that brings
	// ‖W‖_F near 1 when it is far from it (beyond 2^±100 in float64, 2^±30
	// in float32), so that neither the SVD nor the sums of squares
	// overflow or underflow for matrices near the limits of the float
	// type; norm is ‖W‖_F·2^-shift and results are scaled back at the end.
	shift int
	norm  float64
	mats  []la.Mat
}

func newJob[T Float](e la.Engine[T], cfg *config, w Matrix[T]) *job[T] {
	j := &job[T]{e: e, cfg: cfg, w: w, d: w.Rows, k: w.Cols, norm: frobenius(w.Data)}
	if j.norm > 0 && !math.IsInf(j.norm, 0) {
		// Norms well inside the float type's range need no scaling (the
		// scaling pass would only cost time): LAPACK and cuSOLVER rescale
		// what they must themselves.
		safe := 100
		if _, ok := any(T(0)).(float32); ok {
			safe = 30
		}
		if _, exp := math.Frexp(j.norm); exp > safe || exp < -safe {
			j.shift = exp &^ 1 // even, so that √(2^shift) is a power of two
			j.norm = math.Ldexp(j.norm, -j.shift)
		}
	}
	return j
}

// uploadW uploads W scaled by 2^-shift, in steps whose factor the float
// type can hold.
func (j *job[T]) uploadW() (la.Mat, error) {
	m, err := j.upload(j.d, j.k, j.w.Data)
	if err != nil {
		return nil, err
	}
	step := 1000
	if _, ok := any(T(0)).(float32); ok {
		step = 120
	}
	f := make([]T, j.d)
	for left := -j.shift; left != 0; {
		e := max(-step, min(step, left))
		left -= e
		for i := range f {
			f[i] = T(math.Ldexp(1, e))
		}
		if err := j.e.ScaleRows(m, f); err != nil {
			return nil, wrapBackend("scale", err)
		}
	}
	return m, nil
}

func (j *job[T]) keep(m la.Mat) la.Mat {
	j.mats = append(j.mats, m)
	return m
}

// free releases m now instead of at the end of the job.
func (j *job[T]) free(m la.Mat) {
	for i, x := range j.mats {
		if x == m {
			j.mats = append(j.mats[:i], j.mats[i+1:]...)
			break
		}
	}
	j.e.Free(m)
}

func (j *job[T]) release() {
	for _, m := range j.mats {
		j.e.Free(m)
	}
	j.mats = nil
}

func (j *job[T]) zeros(r, c int) (la.Mat, error) {
	m, err := j.e.Zeros(r, c)
	if err != nil {
		return nil, wrapBackend("allocate", err)
	}
	return j.keep(m), nil
}

func (j *job[T]) upload(r, c int, data []T) (la.Mat, error) {
	m, err := j.e.Upload(r, c, data)
	if err != nil {
		return nil, wrapBackend("upload", err)
	}
	return j.keep(m), nil
}

func (j *job[T]) view(m la.Mat, i0, i1, j0, j1 int) (la.Mat, error) {
	v, err := j.e.View(m, i0, i1, j0, j1)
	return v, wrapBackend("view", err)
}

func (j *job[T]) svd(a la.Mat) (la.Mat, []float64, la.Mat, error) {
	u, s, vt, err := j.e.SVD(a)
	if err != nil {
		return nil, nil, nil, wrapBackend("svd", err)
	}
	j.keep(u)
	j.keep(vt)
	return u, s, vt, nil
}

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

func factorize[T Float](e la.Engine[T], w Matrix[T], p Policy, cfg *config) (*Factors[T], error) {
	d, k := w.Rows, w.Cols
	j := newJob(e, cfg, w)
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
	if method == Randomized {
		u, vt, sp, r, err = j.randomized(p, pl.fixed, pl.limit)
		if err != nil {
			return nil, err
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
	f.Method = method
	f.Policy = p
	f.Split = cfg.split
	return f, nil
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

// randomized runs the range finder: for a fixed rank one block of
// l = r + p columns, for Energy and Tolerance blocks of growing size until
// the captured energy reaches the target or the sketch reaches limit
// columns, in which case it returns u == nil.
func (j *job[T]) randomized(p Policy, fixed, limit int) (u, vt la.Mat, sp *spectrum, r int, err error) {
	n := min(j.d, j.k)
	sk, err := j.newSketch()
	if err != nil {
		return
	}
	capped := j.cfg.maxSketch > 0 // WithMaxSketch: never past limit
	if !p.adaptive() {
		if capped && fixed > limit {
			return nil, nil, nil, fixed, nil
		}
		if err = sk.grow(min(fixed+j.cfg.oversample, n, limit)); err != nil {
			return
		}
	} else {
		target := p.energyTarget()
		block := adaptiveFirstBlock
		for sk.l == 0 || sk.captured < target-energySlack && sk.l < limit {
			if err = sk.grow(min(block, limit-sk.l)); err != nil {
				return
			}
			block = min(2*block, adaptiveMaxBlock)
		}
		if sk.captured < target-energySlack && limit < n {
			return nil, nil, nil, 0, nil
		}
	}
	for {
		// SVD of the l×k projection Qᵀ·W (a copy: a rounded-up rank may
		// still need more sketch columns, and the SVD destroys its input).
		var bs, ub, bvt la.Mat
		var s []float64
		if bs, err = j.zeros(sk.l, j.k); err != nil {
			return
		}
		src, verr := j.view(sk.b, 0, sk.l, 0, j.k)
		if verr != nil {
			return nil, nil, nil, 0, verr
		}
		if err = wrapBackend("copy", j.e.Copy(bs, src)); err != nil {
			return
		}
		if ub, s, bvt, err = j.svd(bs); err != nil {
			return
		}
		j.free(bs)
		sp = newSpectrum(s, j.norm, false)
		r, _ = sp.choose(p, j.d, j.k)
		r = roundRank(r, j.cfg.roundTo, p, n)
		if r > sk.l {
			if capped && r > limit {
				return nil, nil, nil, r, nil
			}
			grow := min(r-sk.l+j.cfg.oversample, n-sk.l)
			if capped {
				grow = min(grow, limit-sk.l)
			}
			if err = sk.grow(grow); err != nil {
				return
			}
			continue
		}
		// U_r = Q·Ub[:, :r].
		q, verr := j.view(sk.q, 0, j.d, 0, sk.l)
		if verr != nil {
			return nil, nil, nil, 0, verr
		}
		ubr, verr := j.view(ub, 0, sk.l, 0, r)
		if verr != nil {
			return nil, nil, nil, 0, verr
		}
		if u, err = j.zeros(j.d, r); err != nil {
			return
		}
		if err = wrapBackend("gemm", j.e.Gemm(false, false, 1, q, ubr, 0, u)); err != nil {
			return
		}
		vt, err = j.view(bvt, 0, r, 0, j.k)
		return
	}
}

// sketch is the growing orthonormal basis Q (d×l) of the range finder and
// the projection B = Qᵀ·W (l×k), stored with spare capacity.
type sketch[T Float] struct {
	j        *job[T]
	w        la.Mat // W·alpha on the engine (alpha = 2^-shift)
	alpha    T      // 1 when w holds W·2^-shift, 2^-shift when w is W itself (borrowed)
	q, b     la.Mat // d×cap and cap×k
	l, cap   int
	rng      *rand.Rand
	captured float64 // ‖B‖_F² / ‖W‖_F²
}

func (j *job[T]) newSketch() (*sketch[T], error) {
	w, alpha, err := j.borrowW()
	if err != nil {
		return nil, err
	}
	if w == nil {
		if w, err = j.uploadW(); err != nil {
			return nil, err
		}
		alpha = 1
	}
	return &sketch[T]{j: j, w: w, alpha: alpha, rng: rand.New(rand.NewPCG(j.cfg.seed, sketchStream))}, nil
}

// sketchStream is the second PCG word: fixed, so that the seed alone
// determines the sketch.
const sketchStream = 0x6c6f7772616e6b // "lowrank"

// gaussian returns a rows×cols matrix of standard normal samples, drawn in
// row-major order from the sketch's generator on the host, so that every
// backend sketches with the same numbers.
func (s *sketch[T]) gaussian(rows, cols int) []T {
	g := make([]T, rows*cols)
	for i := range g {
		g[i] = T(s.rng.NormFloat64())
	}
	return g
}

// reserve makes room for at least want columns.
func (s *sketch[T]) reserve(want int) error {
	if want <= s.cap {
		return nil
	}
	j := s.j
	c := min(max(want, 2*s.cap), min(j.d, j.k))
	if j.cfg.maxSketch > 0 {
		c = min(c, max(want, j.cfg.maxSketch))
	}
	q, err := j.zeros(j.d, c)
	if err != nil {
		return err
	}
	b, err := j.zeros(c, j.k)
	if err != nil {
		return err
	}
	if s.l > 0 {
		if err := s.copyInto(q, s.q, j.d, s.l); err != nil {
			return err
		}
		if err := s.copyInto(b, s.b, s.l, j.k); err != nil {
			return err
		}
	}
	if s.q != nil {
		j.free(s.q)
		j.free(s.b)
	}
	s.q, s.b, s.cap = q, b, c
	return nil
}

// copyInto copies the leading rows×cols block of src into dst.
func (s *sketch[T]) copyInto(dst, src la.Mat, rows, cols int) error {
	dv, err := s.j.view(dst, 0, rows, 0, cols)
	if err != nil {
		return err
	}
	sv, err := s.j.view(src, 0, rows, 0, cols)
	if err != nil {
		return err
	}
	return wrapBackend("copy", s.j.e.Copy(dv, sv))
}

// grow adds c orthonormal columns to Q:
//
//	Y = (I − QQᵀ)·W·Ω, then q times Y ← (I − QQᵀ)·W·orth(Wᵀ·orth(Y)),
//
// re-orthonormalizing after every product (Halko–Martinsson–Tropp,
// Algorithm 4.4) and projecting out the existing basis twice ("twice is
// enough") so that the blocks stay mutually orthogonal.
func (s *sketch[T]) grow(c int) error {
	if c <= 0 {
		return nil
	}
	j, e := s.j, s.j.e
	if err := s.reserve(s.l + c); err != nil {
		return err
	}
	omega, err := j.borrow(j.k, c, s.gaussian(j.k, c))
	if err != nil {
		return err
	}
	y, err := j.view(s.q, 0, j.d, s.l, s.l+c)
	if err != nil {
		return err
	}
	z, err := j.zeros(j.k, c)
	if err != nil {
		return err
	}
	if err := wrapBackend("gemm", e.Gemm(false, false, s.alpha, s.w, omega, 0, y)); err != nil {
		return err
	}
	j.free(omega)
	if err := s.orth(y); err != nil {
		return err
	}
	for range j.cfg.powerIters {
		if err := wrapBackend("gemm", e.Gemm(true, false, s.alpha, s.w, y, 0, z)); err != nil {
			return err
		}
		if err := wrapBackend("qr", e.Orthonormalize(z)); err != nil {
			return err
		}
		if err := wrapBackend("gemm", e.Gemm(false, false, s.alpha, s.w, z, 0, y)); err != nil {
			return err
		}
		if err := s.orth(y); err != nil {
			return err
		}
	}
	if s.l > 0 {
		if err := s.orth(y); err != nil { // second projection pass
			return err
		}
	}
	// B[l:l+c, :] = Yᵀ·W.
	bj, err := j.view(s.b, s.l, s.l+c, 0, j.k)
	if err != nil {
		return err
	}
	if err := wrapBackend("gemm", e.Gemm(true, false, s.alpha, y, s.w, 0, bj)); err != nil {
		return err
	}
	ss, err := e.SumSquares(bj)
	if err != nil {
		return wrapBackend("norm", err)
	}
	if j.norm > 0 {
		// Scale before dividing so that tiny norms do not underflow.
		s.captured += ss / j.norm / j.norm
	} else {
		s.captured = 1
	}
	s.l += c
	return nil
}

// orth projects the current basis out of y and orthonormalizes it.
func (s *sketch[T]) orth(y la.Mat) error {
	j, e := s.j, s.j.e
	if s.l > 0 {
		q, err := j.view(s.q, 0, j.d, 0, s.l)
		if err != nil {
			return err
		}
		_, c := y.Dims()
		t, err := j.zeros(s.l, c)
		if err != nil {
			return err
		}
		if err := wrapBackend("gemm", e.Gemm(true, false, 1, q, y, 0, t)); err != nil {
			return err
		}
		if err := wrapBackend("gemm", e.Gemm(false, false, -1, q, t, 1, y)); err != nil {
			return err
		}
		j.free(t)
	}
	return wrapBackend("qr", e.Orthonormalize(y))
}

// finish scales U_r and V_rᵀ by the split, brings them to the host and
// fixes the signs of the singular vectors.
func (j *job[T]) finish(u, vt la.Mat, sp *spectrum, r int) (*Factors[T], error) {
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
	f := &Factors[T]{
		B:        Matrix[T]{Rows: j.d, Cols: r, Data: make([]T, j.d*r)},
		A:        Matrix[T]{Rows: r, Cols: j.k, Data: make([]T, r*j.k)},
		S:        s,
		Rank:     r,
		RelError: sp.relError(r),
		Energy:   sp.energyKept(r),
	}
	if err := wrapBackend("download", j.e.Download(f.B.Data, u)); err != nil {
		return nil, err
	}
	if err := wrapBackend("download", j.e.Download(f.A.Data, vt)); err != nil {
		return nil, err
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

// fixSigns makes the entry of largest magnitude in each column of B
// positive, flipping the matching row of A, so that B·A is unchanged and
// every backend and method returns the same factors up to rounding (an SVD
// determines each singular vector pair only up to sign).
func fixSigns[T Float](b, a Matrix[T]) {
	// Row by row (B is row-major): a column-by-column walk strides through
	// all of B once per column, which costs more than the SVD's own
	// copies for a large B.
	big := make([]T, b.Cols)
	for i := range b.Rows {
		for c, v := range b.Data[i*b.Cols : (i+1)*b.Cols] {
			if abs(v) > abs(big[c]) {
				big[c] = v
			}
		}
	}
	flip := false
	for _, v := range big {
		flip = flip || v < 0
	}
	if !flip {
		return
	}
	for i := range b.Rows {
		row := b.Data[i*b.Cols : (i+1)*b.Cols]
		for c := range row {
			if big[c] < 0 {
				row[c] = -row[c]
			}
		}
	}
	for c, v := range big {
		if v < 0 {
			row := a.Data[c*a.Cols : (c+1)*a.Cols]
			for i := range row {
				row[i] = -row[i]
			}
		}
	}
}

func abs[T Float](v T) T {
	if v < 0 {
		return -v
	}
	return v
}
