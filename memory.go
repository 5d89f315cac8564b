package lowrank

import (
	"math"

	"github.com/lowrank-go/lowrank/internal/cpulapack"
	"gonum.org/v1/gonum/lapack"
	lapackgonum "gonum.org/v1/gonum/lapack/gonum"
)

// Estimate is EstimateMemory's answer.
type Estimate struct {
	// Bytes bounds the host memory Factorize holds at its peak, not
	// counting W itself (which the caller holds).
	Bytes int64
	// Method is the method whose memory that is: Exact or Randomized.
	Method Method
}

// EstimateMemory returns an upper bound on the host memory, in bytes, that
// Factorize holds at its peak to factorize a d×k matrix whose elements take
// elemSize bytes (4 for float32, 8 for float64) with policy p and the
// given options on the CPU backend, not counting W itself (which the
// caller holds), and the method whose memory that is (plus, with
// WithInputCovariance or WithInputScale, the whitened W·S, the float64
// k×k factor of C and its working copy, and A in float64 for the solve;
// of C only the dimensions are read, so a Matrix with Rows and Cols set
// and no Data will do):
//
//	Exact        T·d·k (a copy of W) + the SVD: U, S, Vᵀ and LAPACK's
//	             workspace (a system LAPACK's gesdd: about 4·p² more
//	             values; gonum's gesvd widens float32 to float64:
//	             + 8·d·k + 8·p·(d+k), p = min(d,k)) + B and A
//	Randomized   T·d·k + the sketch Q (d×l) and Qᵀ·W (l×k), kept with room
//	             to grow, + one block's products and QR, or the SVD of the
//	             l×k projection, whichever is larger, + B and A (+ with
//	             WithSketchPrecision TF32 or BF16, a rounded copy of a
//	             block, T·max(d,k)·l, a rounded block of W, at most
//	             T·2^20, and 1 MiB of the kernel's buffers)
//
// where l is the sketch size: r + oversampling for Rank and Ratio; for
// Energy and Tolerance the largest the adaptive sketch may grow to before
// the method falls back to the exact SVD (Auto) or to the full rank
// (Randomized). With Auto and an adaptive policy both may run, one after
// the other, and the larger of the two is returned.
//
// A GPU backend keeps these on the device and needs less host memory, so
// the estimate is an upper bound there too. It returns an error wrapping
// ErrEmpty, ErrShape, ErrRank, ErrPolicy or ErrOption as Factorize would
// for the same shape, policy and options, and ErrShape for an elemSize
// other than 4 or 8.
func EstimateMemory(d, k, elemSize int, p Policy, opts ...Option) (Estimate, error) {
	if elemSize != 4 && elemSize != 8 {
		return Estimate{}, errorf(ErrShape, "element size %d bytes; expected 4 (float32) or 8 (float64)", elemSize)
	}
	n, m, err := estimate(d, k, float64(elemSize), p, opts)
	if err == nil {
		n, err = addWhiteningBytes(n, d, k, float64(elemSize), p, opts) // whiten.go
	}
	return Estimate{Bytes: n, Method: m}, err
}

// MemoryEstimate returns EstimateMemory's bound for a d×k matrix of T, and
// the method whose memory that is.
//
// Deprecated: T cannot be inferred from the arguments and the three
// results read poorly; use EstimateMemory(d, k, elemSize, p, opts...),
// which returns an Estimate.
func MemoryEstimate[T Float](d, k int, p Policy, opts ...Option) (int64, Method, error) {
	size := 8
	if _, ok := any(T(0)).(float32); ok {
		size = 4
	}
	e, err := EstimateMemory(d, k, size, p, opts...)
	return e.Bytes, e.Method, err
}

func estimate(d, k int, es float64, p Policy, opts []Option) (int64, Method, error) {
	cfg := newConfig(opts)
	if cfg.err != nil {
		return 0, Auto, cfg.err
	}
	if d < 1 || k < 1 {
		return 0, Auto, errorf(ErrEmpty, "matrix is %d×%d; expected at least 1×1", d, k)
	}
	if d > math.MaxInt/k {
		return 0, Auto, errorf(ErrShape, "matrix %d×%d has more elements than an int can count", d, k)
	}
	if err := p.validate(d, k); err != nil {
		return 0, Auto, err
	}
	pl := planFor(&cfg, p, d, k)
	n := min(d, k)
	lk := lapackOf(&cfg)
	svdBytes := func(m, n int, es float64) float64 { return lk.svdBytes(m, n, es) }
	growBytes := func(d, k, l, c int, es float64) float64 { return lk.growBytes(d, k, l, c, es) }
	exact := func() float64 {
		r := n // an adaptive policy may keep every singular value
		if !p.adaptive() {
			r = pl.fixed
		}
		return es*float64(d)*float64(k) + svdBytes(d, k, es) + factorsBytes(d, k, r, es)
	}
	if pl.method == Exact {
		return clampBytes(exact()), Exact, nil
	}
	var l, capacity, block int
	switch {
	case p.adaptive() && cfg.maxSketch > 0:
		l, capacity, block = pl.limit, pl.limit, min(adaptiveMaxBlock, pl.limit)
	case p.adaptive():
		// The sketch grows by blocks up to limit columns, then by the
		// rounding and oversampling a rounded-up rank may need; its
		// storage at most doubles past what it needs.
		l = min(cfg.sketchWidth(pl.limit+max(cfg.roundTo, 1)), n)
		capacity = min(2*l, n)
		block = min(adaptiveMaxBlock, l)
	default:
		l = min(cfg.sketchWidth(pl.fixed), n, pl.limit)
		capacity, block = l, l
	}
	rnd := es*float64(d)*float64(k) + // W on the engine
		2*es*float64(d+k)*float64(capacity) + // Q and Qᵀ·W, old and new while growing
		max(growBytes(d, k, l, block, es), es*float64(l)*float64(k)+svdBytes(l, k, es)+es*float64(d)*float64(min(l, n))) +
		factorsBytes(d, k, min(l, n), es)
	if cfg.sketchPrec != SketchF32 {
		// A reduced-precision product rounds its small operand into a
		// copy, and W by blocks (the CPU's emulation: up to 2^20 elements
		// at a time; the BF16 kernel: a few hundred KiB per core).
		rnd += es*float64(max(d, k))*float64(block) + es*math.Min(float64(d)*float64(k), 1<<20) + 1<<20
	}
	if pl.fallback {
		// Auto falls back to the exact SVD when the sketch is not enough.
		if e := exact(); e > rnd {
			return clampBytes(e), Exact, nil
		}
	}
	return clampBytes(rnd), Randomized, nil
}

// factorsBytes is B (d×r), A (r×k) and the singular values.
func factorsBytes(d, k, r int, es float64) float64 {
	return es*float64(r)*float64(d+k) + 8*float64(r) + 64*float64(min(d, k))
}

// lapackKind says which LAPACK the estimate models: the CPU backend runs
// on a system LAPACK (gesdd, float32 kept in float32) or on gonum's
// (gesvd, float32 widened to float64); for any other backend, whose host
// memory is smaller, the larger of the two bounds it.
type lapackKind int

const (
	lapackGonum lapackKind = 1 << iota
	lapackSystem
	lapackEither = lapackGonum | lapackSystem
)

func lapackOf(cfg *config) lapackKind {
	b := cfg.backend
	if b == nil {
		b, _ = DefaultBackend()
	}
	system, isCPU := cpulapack.System(b)
	switch {
	case !isCPU:
		return lapackEither
	case system:
		return lapackSystem
	}
	return lapackGonum
}

// growBytes bounds the temporaries of one block of c columns of the range
// finder on a sketch of l columns: Ω (k×c), Z (k×c), the projection
// coefficients (l×c) and the QR of a d×c or k×c block.
func (lk lapackKind) growBytes(d, k, l, c int, es float64) float64 {
	return es*float64(k)*float64(c)*2 + es*float64(l)*float64(c) + lk.qrBytes(max(d, k), c, es)
}

// qrBytes is the memory of the CPU backend's thin QR of an m×n matrix.
// System LAPACK: a column-major copy and a blocked workspace (n·64).
// gonum: its queried workspace, and a float64 copy for float32.
func (lk lapackKind) qrBytes(m, n int, es float64) float64 {
	b := 0.0
	if lk&lapackSystem != 0 {
		b = es*float64(m)*float64(n) + es*float64(n)*(64+1)
	}
	if lk&lapackGonum != 0 {
		b = max(b, gonumQRBytes(m, n, es))
	}
	return b
}

func gonumQRBytes(m, n int, es float64) float64 {
	if float64(m)*float64(n) > hugeElems {
		return math.Inf(1)
	}
	var impl lapackgonum.Implementation
	work := []float64{0}
	impl.Dgeqrf(m, n, nil, max(1, n), nil, work, -1)
	lw := work[0]
	impl.Dorgqr(m, n, n, nil, max(1, n), nil, work, -1)
	lw = max(lw, work[0])
	b := 8*float64(n) + 8*lw
	if es == 4 {
		b += 8 * float64(m) * float64(n)
	}
	return b
}

// svdBytes is the memory of the CPU backend's thin SVD of an m×n matrix
// (its input not included): U, S, Vᵀ and the workspace.
func (lk lapackKind) svdBytes(m, n int, es float64) float64 {
	b := 0.0
	if lk&lapackSystem != 0 {
		// gesdd (JOBZ='S'): LAPACK's documented minimum is 4p² + 7p; the
		// optimal size it asks for adds blocking, bounded here by 65p
		// (checked against OpenBLAS's LAPACK from 1×100000 to 4096²),
		// and 8p integers.
		p := float64(min(m, n))
		b = es*p*float64(m+n) + 8*p + es*(4*p*p+72*p) + 32*p
	}
	if lk&lapackGonum != 0 {
		b = max(b, gonumSVDBytes(m, n, es))
	}
	return b
}

// gonumSVDBytes: U, S, Vᵀ, gesvd's workspace, and for float32 the float64
// copies gonum's LAPACK works on.
func gonumSVDBytes(m, n int, es float64) float64 {
	p := min(m, n)
	if float64(m)*float64(n) > hugeElems {
		return math.Inf(1)
	}
	var impl lapackgonum.Implementation
	work := []float64{0}
	// The query only reads a few entries of a (past its first row).
	a := make([]float64, 2*max(m, n)+2)
	impl.Dgesvd(lapack.SVDStore, lapack.SVDStore, m, n, a, max(1, n), nil, nil, max(1, p), nil, max(1, n), work, -1)
	b := es*float64(p)*float64(m+n) + 8*float64(p) + 8*work[0]
	if es == 4 {
		b += 8*float64(m)*float64(n) + 8*float64(p)*float64(m+n)
	}
	return b
}

// hugeElems: matrices with more elements than this (8 PiB of float64)
// need more memory than any machine has; their estimate saturates.
const hugeElems = 1 << 50

// clampBytes adds a margin for what the model leaves out (the BLAS's
// per-call buffers, slice headers, rounding of allocation sizes) and
// converts to bytes.
func clampBytes(b float64) int64 {
	b += b/16 + 1<<20
	if b >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(math.Ceil(b))
}
