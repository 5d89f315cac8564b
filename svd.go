package lowrank

import (
	"context"
	"fmt"
	"math"

	"github.com/lowrank-go/lowrank/la"
)

// SVDResult is a thin singular value decomposition W = U·diag(S)·Vt of a
// d×k matrix, p = min(d, k).
type SVDResult[T Float] struct {
	// U is d×p with orthonormal columns.
	U Matrix[T]
	// S holds the p singular values in decreasing order.
	S []T
	// Vt is p×k with orthonormal rows (Vᵀ; V = Vtᵀ).
	Vt Matrix[T]
}

// SVD computes the thin singular value decomposition of W:
//
//	W = U·diag(S)·Vᵀ,   U (d×p), S (p), Vᵀ (p×k),   p = min(d, k)
//
// This is the step torch.svd(W, some=True) and numpy.linalg.svd(W,
// full_matrices=False) perform. Each singular vector pair is signed so that
// the largest entry of the column of U is positive, which makes results
// reproducible across backends. WithBackend is the one option SVD takes:
// any other (WithMethod, WithSeed, …) is an error wrapping ErrOption that
// names it, rather than silently ignored. SVD returns an error wrapping
// ErrEmpty, ErrShape or ErrNonFinite for bad input. It is SVDContext with
// context.Background().
func SVD[T Float](w Matrix[T], opts ...Option) (*SVDResult[T], error) {
	return SVDContext(context.Background(), w, opts...)
}

// SVDContext is SVD with a context. The decomposition is one LAPACK (or
// cuSOLVER) call, which cannot be interrupted: SVDContext checks ctx
// before it starts (and while it waits for a core of the CPU's thread
// budget) and after the call returns, and when ctx has ended by then it
// returns an error wrapping ctx.Err() (errors.Is(err, context.Canceled)
// or context.DeadlineExceeded), whose text starts with "lowrank:", instead
// of the result. Everything it held is released either way. A nil ctx is
// an error wrapping ErrOption.
func SVDContext[T Float](ctx context.Context, w Matrix[T], opts ...Option) (*SVDResult[T], error) {
	if err := stopped(ctx, "SVD", w); err != nil {
		return nil, err
	}
	cfg := newConfig(opts)
	if cfg.err != nil {
		return nil, cfg.err
	}
	if err := cfg.only("SVD", "WithBackend"); err != nil {
		return nil, err
	}
	norm, err := w.norm("W")
	if err != nil {
		return nil, err
	}
	b, err := cfg.backendFor()
	if err != nil {
		return nil, err
	}
	res, _, _, err := onCPUIfOutOfMemory(b, "falling back to the CPU", fmt.Sprintf("%d×%d", w.Rows, w.Cols),
		func(b Backend) (*SVDResult[T], error) { return svd(ctx, engineOf[T](b), w, norm, &cfg) })
	if err != nil {
		return nil, stoppedOr(ctx, "SVD", w, err)
	}
	return res, nil
}

func svd[T Float](ctx context.Context, e la.Engine[T], w Matrix[T], norm float64, cfg *config) (*SVDResult[T], error) {
	j := newJob(ctx, e, cfg, w, norm)
	defer j.release()
	if math.IsInf(j.norm, 0) {
		return nil, errorf(ErrNonFinite, "‖W‖_F overflows float64; expected a matrix whose norm is finite")
	}
	a, err := j.uploadW()
	if err != nil {
		return nil, err
	}
	u, s, vt, err := j.svd(a)
	if err != nil {
		return nil, err
	}
	p := len(s)
	res := &SVDResult[T]{
		U:  Matrix[T]{Rows: w.Rows, Cols: p, Data: make([]T, w.Rows*p)},
		S:  make([]T, p),
		Vt: Matrix[T]{Rows: p, Cols: w.Cols, Data: make([]T, p*w.Cols)},
	}
	for i, v := range s {
		res.S[i] = T(math.Ldexp(v, j.shift))
	}
	if firstNonFinite(res.S) >= 0 {
		return nil, errorf(ErrNonFinite, "the singular values of this %d×%d matrix overflow %T; expected a matrix whose norm fits the float type", w.Rows, w.Cols, T(0))
	}
	if err := j.check(); err != nil {
		return nil, err
	}
	if err := wrapBackend("download", e.Download(res.U.Data, u)); err != nil {
		return nil, err
	}
	if err := wrapBackend("download", e.Download(res.Vt.Data, vt)); err != nil {
		return nil, err
	}
	fixSigns(res.U, res.Vt)
	return res, nil
}
