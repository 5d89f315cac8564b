package lowrank

import (
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/lowrank-go/lowrank/la"
)

// First block of the adaptive range finder; each later block doubles, up
// to adaptiveMaxBlock columns.
const (
	adaptiveFirstBlock = 32
	adaptiveMaxBlock   = 512
)

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
	sk.energy = p.adaptive()
	capped := j.cfg.maxSketch > 0 // WithMaxSketch: never past limit
	if !p.adaptive() {
		if capped && fixed > limit {
			return nil, nil, nil, fixed, nil
		}
		if err = sk.grow(min(j.cfg.sketchWidth(fixed), n, limit)); err != nil {
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
		// A fixed rank that the sketch already covers cannot ask for more
		// columns: the SVD may then destroy B itself.
		var bs, ub, bvt la.Mat
		var s []float64
		src, verr := j.view(sk.b, 0, sk.l, 0, j.k)
		if verr != nil {
			return nil, nil, nil, 0, verr
		}
		final := !p.adaptive() && j.cfg.roundTo <= 1 && fixed <= sk.l
		if final {
			bs = src
		} else {
			if bs, err = j.scratch(sk.l, j.k); err != nil {
				return
			}
			if err = wrapBackend("copy", j.e.Copy(bs, src)); err != nil {
				return
			}
		}
		// The final rank's factors keep only the first fixed rows of
		// Vᵀ: an engine that can leaves out the others (la.TopSVD).
		top := 0
		if final {
			top = fixed
		}
		if ub, s, bvt, err = j.svdTop(bs, top); err != nil {
			return
		}
		if !final {
			j.free(bs)
		}
		sp = newSpectrum(s, j.norm, false)
		r, _ = sp.choose(p, j.d, j.k)
		r = roundRank(r, j.cfg.roundTo, p, n)
		if r > sk.l {
			if capped && r > limit {
				return nil, nil, nil, r, nil
			}
			grow := min(j.cfg.sketchWidth(r)-sk.l, n-sk.l)
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
		if err = j.gemm(false, false, 1, q, ubr, 0, u); err != nil {
			return
		}
		vt, err = j.view(bvt, 0, r, 0, j.k)
		return
	}
}

// sketchWidthStep is the multiple a fixed-rank sketch's width is rounded
// up to. OpenBLAS's kernels run a tall-skinny product or QR with a width
// that is not a multiple of 4 markedly slower: at 4096², rank 64, one
// thread, l = 74 took 403 ms and l = 80, 8% more arithmetic, 306 ms (l =
// 76: 318 ms, l = 78: 420 ms); see docs/performance.md. More columns only
// make the sketch more accurate.
const sketchWidthStep = 8

// sketchWidth returns the columns a fixed-rank sketch for rank r takes:
// l = r + p, rounded up to a multiple of sketchWidthStep when p > 0
// (WithOversampling(0) asks for exactly r).
func (c *config) sketchWidth(r int) int {
	l := r + c.oversample
	if c.oversample > 0 {
		l = (l + sketchWidthStep - 1) / sketchWidthStep * sketchWidthStep
	}
	return l
}

// sketch is the growing orthonormal basis Q (d×l) of the range finder and
// the projection B = Qᵀ·W (l×k), stored with spare capacity.
type sketch[T Float] struct {
	j        *job[T]
	w        la.Mat // W·alpha on the engine (alpha = 2^-shift)
	alpha    T      // 1 when w holds W·2^-shift, 2^-shift when w is W itself (borrowed)
	q, b     la.Mat // d×cap and cap×k
	l, cap   int
	draws    uint64  // gaussian calls so far
	captured float64 // ‖B‖_F² / ‖W‖_F², kept only when energy is set
	// energy: the policy grows the sketch until it captures enough of
	// ‖W‖_F² (Energy, Tolerance); a fixed rank needs no captured energy,
	// and skips the pass over B that measures it.
	energy bool
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
	return &sketch[T]{j: j, w: w, alpha: alpha}, nil
}

// sketchStream is the second PCG word: fixed, so that the seed alone
// determines the sketch.
const sketchStream = 0x6c6f7772616e6b // "lowrank"

// gaussian returns a rows×cols matrix of standard normal samples, drawn
// on the host so that every backend sketches with the same numbers. The
// row-major elements are drawn in chunks of gaussianChunk, each from a
// generator of its own seeded by (seed, draw, chunk), so the chunks can be
// drawn on all cores (a 11008×266 sketch is 2.9 M samples, ≈ 30 ms on one)
// and the matrix is the same whatever their number.
func (s *sketch[T]) gaussian(rows, cols int) []T {
	g := getHost[T](rows*cols, false) // every element is drawn
	draw := s.draws
	s.draws++
	n := (len(g) + gaussianChunk - 1) / gaussianChunk
	// A sample costs ≈ 10 ns, a chunk ≈ 0.2 ms: every core takes chunks
	// from two on (a 11008×80 Ω took 21 ms on one core of two).
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := w; c < n; c += workers {
				rng := rand.New(rand.NewPCG(s.j.cfg.seed, sketchStream^draw<<40^uint64(c)))
				for i := c * gaussianChunk; i < min(len(g), (c+1)*gaussianChunk); i++ {
					g[i] = T(rng.NormFloat64())
				}
			}
		}()
	}
	wg.Wait()
	return g
}

// gaussianChunk is the samples drawn from one generator.
const gaussianChunk = 1 << 14

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
	q, err := j.scratch(j.d, c)
	if err != nil {
		return err
	}
	b, err := j.scratch(c, j.k)
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
// normalizing after every product (Halko–Martinsson–Tropp, Algorithm 4.4)
// and projecting out the existing basis twice ("twice is enough") so that
// the blocks stay mutually orthogonal. Between the power iterations only
// the span matters: there the engine's cheap normalization runs
// (la.RangeNormalizer: on a system LAPACK one pass of CholeskyQR in place
// where the sketch is well conditioned, else P·L of an LU factorization
// as in scikit-learn's randomized_svd and fbpca), and the last basis is
// orthonormalized (QR). The three products
// with W that build Y run in the sketch precision (WithSketchPrecision);
// the projections, the orthonormalizations and B = Yᵀ·W in full precision.
func (s *sketch[T]) grow(c int) error {
	if c <= 0 {
		return nil
	}
	j, e := s.j, s.j.e
	if err := s.reserve(s.l + c); err != nil {
		return err
	}
	g := s.gaussian(j.k, c)
	omega, err := j.borrow(j.k, c, g)
	if err != nil {
		return err
	}
	y, err := j.view(s.q, 0, j.d, s.l, s.l+c)
	if err != nil {
		return err
	}
	if err := j.sketchGemm(false, false, s.alpha, s.w, omega, 0, y); err != nil {
		return err
	}
	j.free(omega)
	// Z = Wᵀ·Y has Ω's shape: where the engine borrows host memory it
	// takes Ω's (the products write Z with β = 0 and never read it).
	var z la.Mat
	if b, ok := e.(la.Borrower[T]); ok {
		z, err = b.Borrow(j.k, c, g)
		err = wrapBackend("upload", err)
	} else {
		z, err = j.zeros(j.k, c)
	}
	if err != nil {
		return err
	}
	q := j.cfg.powerIters
	// The last normalization of y orthonormalizes: the second projection
	// pass when there is one, else the last power iteration's.
	if err := s.orth(y, q == 0 && s.l == 0); err != nil {
		return err
	}
	for i := range q {
		if err := j.sketchGemm(true, false, s.alpha, s.w, y, 0, z); err != nil {
			return err
		}
		if err := j.normalize(z); err != nil {
			return err
		}
		if err := j.sketchGemm(false, false, s.alpha, s.w, z, 0, y); err != nil {
			return err
		}
		if err := s.orth(y, i == q-1 && s.l == 0); err != nil {
			return err
		}
	}
	if s.l > 0 {
		if err := s.orth(y, true); err != nil { // second projection pass
			return err
		}
	}
	j.free(z)
	putHost(g) // Ω and Z are done with
	// B[l:l+c, :] = Yᵀ·W.
	bj, err := j.view(s.b, s.l, s.l+c, 0, j.k)
	if err != nil {
		return err
	}
	if err := j.gemm(true, false, s.alpha, y, s.w, 0, bj); err != nil {
		return err
	}
	s.l += c
	if !s.energy {
		return nil
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
	return nil
}

// orth projects the current basis out of y and orthonormalizes it (final)
// or normalizes it (j.normalize).
func (s *sketch[T]) orth(y la.Mat, final bool) error {
	j := s.j
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
		if err := j.gemm(true, false, 1, q, y, 0, t); err != nil {
			return err
		}
		if err := j.gemm(false, false, -1, q, t, 1, y); err != nil {
			return err
		}
		j.free(t)
	}
	if !final {
		return j.normalize(y)
	}
	return j.orthonormalize(y)
}

// sketchGemm is gemm for the range finder's products with W (the sketch
// and the power iterations), in the sketch precision: an engine computes
// SketchTF32 and SketchBF16 through la.PrecisionGemmer.
func (j *job[T]) sketchGemm(tA, tB bool, alpha T, a, b la.Mat, beta T, c la.Mat) error {
	p := j.cfg.sketchPrec
	if p == SketchF32 {
		return j.gemm(tA, tB, alpha, a, b, beta, c)
	}
	if err := j.check(); err != nil {
		return err
	}
	pg, ok := j.e.(la.PrecisionGemmer[T])
	if !ok {
		return errorf(ErrBackend, "this backend's engine (%T) has no reduced-precision products for sketch precision %v; expected WithSketchPrecision(SketchF32)", j.e, p)
	}
	return wrapBackend("gemm", pg.GemmPrecision(p.la(), tA, tB, alpha, a, b, beta, c))
}

// floor returns the relative error below which factors from a sketch in
// precision p are computed again in float32: 2u, twice the unit roundoff
// of p's inputs (0 for SketchF32).
func (p SketchPrecision) floor() float64 {
	switch p {
	case SketchTF32:
		return 0x1p-10
	case SketchBF16:
		return 0x1p-7
	}
	return 0
}

// la returns p as the engines' precision.
func (p SketchPrecision) la() la.Precision {
	switch p {
	case SketchTF32:
		return la.TF32
	case SketchBF16:
		return la.BF16
	}
	return la.F32
}
