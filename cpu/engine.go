package cpu

import (
	"context"
	"fmt"
	"github.com/lowrank-go/lowrank/internal/finite"
	"sync"
	"unsafe"

	"github.com/lowrank-go/lowrank/internal/sched"
	"github.com/lowrank-go/lowrank/la"
)

// dense is the engine's Mat: a row-major matrix in host memory with a row
// stride, so that a View shares storage with its parent.
type dense[T float32 | float64] struct {
	rows, cols, stride int
	data               []T
}

func (m *dense[T]) Dims() (int, int) { return m.rows, m.cols }

// row returns row i of m.
func (m *dense[T]) row(i int) []T { return m.data[i*m.stride : i*m.stride+m.cols] }

// engine implements la.Engine[T] on host memory.
type engine[T float32 | float64] struct {
	k   kernels[T]
	ctx context.Context // WithContext's; nil for none
}

var (
	_ la.Engine[float64]    = engine[float64]{}
	_ la.Engine[float32]    = engine[float32]{}
	_ la.Borrower[float64]  = engine[float64]{}
	_ la.Borrower[float32]  = engine[float32]{}
	_ la.Contexter[float64] = engine[float64]{}
	_ la.Contexter[float32] = engine[float32]{}
)

// WithContext returns the engine bound to ctx (la.Contexter): its calls
// stop waiting for a core of the thread budget, and fail with an error
// wrapping ctx.Err(), once ctx ends. A call that is computing runs to its
// end.
func (e engine[T]) WithContext(ctx context.Context) la.Engine[T] { return e.withContext(ctx) }

func (e engine[T]) mat(m la.Mat) (*dense[T], error) {
	d, ok := m.(*dense[T])
	if !ok || d == nil {
		return nil, fmt.Errorf("%w: got %T, want a cpu matrix", la.ErrForeign, m)
	}
	return d, nil
}

func (e engine[T]) Upload(rows, cols int, data []T) (la.Mat, error) {
	if rows < 0 || cols < 0 || len(data) < rows*cols {
		return nil, fmt.Errorf("%w: upload of %d×%d from %d values", la.ErrShape, rows, cols, len(data))
	}
	return &dense[T]{rows: rows, cols: cols, stride: cols, data: append([]T(nil), data[:rows*cols]...)}, nil
}

// Borrow returns a rows×cols Mat over data without copying it (la.Borrower):
// the Mat shares data, so reads see data and writes change it.
func (e engine[T]) Borrow(rows, cols int, data []T) (la.Mat, error) {
	if rows < 0 || cols < 0 || len(data) < rows*cols {
		return nil, fmt.Errorf("%w: borrow of %d×%d from %d values", la.ErrShape, rows, cols, len(data))
	}
	return &dense[T]{rows: rows, cols: cols, stride: cols, data: data[: rows*cols : rows*cols]}, nil
}

func (e engine[T]) Zeros(rows, cols int) (la.Mat, error) {
	if rows < 0 || cols < 0 {
		return nil, fmt.Errorf("%w: %d×%d", la.ErrShape, rows, cols)
	}
	return &dense[T]{rows: rows, cols: cols, stride: cols, data: make([]T, rows*cols)}, nil
}

func (e engine[T]) Download(dst []T, m la.Mat) error {
	a, err := e.mat(m)
	if err != nil {
		return err
	}
	if len(dst) < a.rows*a.cols {
		return fmt.Errorf("%w: download of %d×%d into %d values", la.ErrShape, a.rows, a.cols, len(dst))
	}
	for i := range a.rows {
		copy(dst[i*a.cols:(i+1)*a.cols], a.row(i))
	}
	return nil
}

// Lend returns m's storage when its elements are contiguous
// (la.Lender).
func (e engine[T]) Lend(m la.Mat) ([]T, bool) {
	a, err := e.mat(m)
	if err != nil || (a.stride != a.cols && a.rows > 1) {
		return nil, false
	}
	return a.data[:a.rows*a.cols], true
}

// Free drops the reference; the garbage collector reclaims host memory.
func (e engine[T]) Free(la.Mat) {}

func (e engine[T]) View(m la.Mat, i0, i1, j0, j1 int) (la.Mat, error) {
	a, err := e.mat(m)
	if err != nil {
		return nil, err
	}
	if i0 < 0 || i1 < i0 || i1 > a.rows || j0 < 0 || j1 < j0 || j1 > a.cols {
		return nil, fmt.Errorf("%w: view [%d:%d, %d:%d] of %d×%d", la.ErrShape, i0, i1, j0, j1, a.rows, a.cols)
	}
	v := &dense[T]{rows: i1 - i0, cols: j1 - j0, stride: a.stride}
	if v.rows > 0 && v.cols > 0 {
		v.data = a.data[i0*a.stride+j0 : (i1-1)*a.stride+j1]
	}
	return v, nil
}

func (e engine[T]) Copy(dst, src la.Mat) error {
	d, err := e.mat(dst)
	if err != nil {
		return err
	}
	s, err := e.mat(src)
	if err != nil {
		return err
	}
	if d.rows != s.rows || d.cols != s.cols {
		return fmt.Errorf("%w: copy of %d×%d into %d×%d", la.ErrShape, s.rows, s.cols, d.rows, d.cols)
	}
	for i := range d.rows {
		copy(d.row(i), s.row(i))
	}
	return nil
}

// gemmOperands resolves the three matrices of a product and checks their
// shapes (la.GemmDims): C is m×n, the inner dimension ka.
func (e engine[T]) gemmOperands(tA, tB bool, am, bm, cm la.Mat) (a, b, c *dense[T], m, n, ka int, err error) {
	if a, err = e.mat(am); err != nil {
		return
	}
	if b, err = e.mat(bm); err != nil {
		return
	}
	if c, err = e.mat(cm); err != nil {
		return
	}
	m, n, ka, err = la.GemmDims(tA, tB, a, b, c)
	return
}

func (e engine[T]) Gemm(tA, tB bool, alpha T, am, bm la.Mat, beta T, cm la.Mat) error {
	a, b, c, m, n, ka, err := e.gemmOperands(tA, tB, am, bm, cm)
	if err != nil {
		return err
	}
	if m == 0 || n == 0 {
		return nil
	}
	if ka == 0 {
		// op(a)·op(b) is the zero matrix; BLAS would reject lda = 0.
		for i := range m {
			row := c.row(i)
			for j := range row {
				row[j] *= beta
			}
		}
		return nil
	}
	g, err := e.acquire(float64(m) * float64(n) * float64(ka))
	if err != nil {
		return err
	}
	defer sched.Default.Release(g)
	e.k.gemm(g.Threads(), tA, tB, m, n, ka, alpha, a.data, a.stride, b.data, b.stride, beta, c.data, c.stride)
	return nil
}

func (e engine[T]) Orthonormalize(m la.Mat) error {
	return e.tall(m, "orthonormalize", 2, e.k.qr)
}

// NormalizeRange (la.RangeNormalizer) replaces m's columns, on a system
// LAPACK, with m·R⁻¹ from one pass of CholeskyQR where m is well
// conditioned (blas.CholBasis, in place) and with P·L from their LU
// factorization otherwise (blas.LUBasis); it orthonormalizes them on the
// pure-Go kernels, which have neither.
func (e engine[T]) NormalizeRange(m la.Mat) error {
	lk, ok := e.k.(luKernels[T])
	if !ok {
		return e.Orthonormalize(m)
	}
	return e.tall(m, "normalize", 1, lk.luBasis)
}

// tall runs f, a factorization of a tall matrix in place, on m (rows ≥
// cols) under a thread grant for about work·rows·cols² flops.
func (e engine[T]) tall(m la.Mat, what string, work float64, f func(nt, m, n int, a []T, lda int) error) error {
	a, err := e.mat(m)
	if err != nil {
		return err
	}
	if a.rows < a.cols {
		return fmt.Errorf("%w: %s needs rows ≥ cols, got %d×%d", la.ErrShape, what, a.rows, a.cols)
	}
	if a.cols == 0 {
		return nil
	}
	g, err := e.acquire(work * float64(a.rows) * float64(a.cols) * float64(a.cols))
	if err != nil {
		return err
	}
	defer sched.Default.Release(g)
	return f(g.Threads(), a.rows, a.cols, a.data, a.stride)
}

func (e engine[T]) SVD(m la.Mat) (la.Mat, []float64, la.Mat, error) {
	a, err := e.mat(m)
	if err != nil {
		return nil, nil, nil, err
	}
	p := min(a.rows, a.cols)
	u := &dense[T]{rows: a.rows, cols: p, stride: p, data: make([]T, a.rows*p)}
	vt := &dense[T]{rows: p, cols: a.cols, stride: a.cols, data: make([]T, p*a.cols)}
	s := make([]float64, p)
	if p == 0 {
		return u, s, vt, nil
	}
	g, err := e.acquire(8 * float64(max(a.rows, a.cols)) * float64(p) * float64(p))
	if err != nil {
		return nil, nil, nil, err
	}
	defer sched.Default.Release(g)
	if err := e.k.svd(g.Threads(), a.rows, a.cols, a.data, a.stride, s, u.data, u.stride, vt.data, vt.stride); err != nil {
		return nil, nil, nil, err
	}
	return u, s, vt, nil
}

// topKernels are kernels that can form only the leading rows of Vᵀ
// (system.svdTop).
type topKernels[T float32 | float64] interface {
	svdTop(nt, m, n int, a []T, lda int, s []float64, u []T, ldu int, vt []T, ldvt, rows int) (bool, error)
}

// SVDTop implements la.TopSVD: with the system LAPACK, for a matrix
// several times wider than tall (the randomized method's l×k projection),
// Vᵀ has only its first rows rows; otherwise it is SVD.
func (e engine[T]) SVDTop(m la.Mat, rows int) (la.Mat, []float64, la.Mat, error) {
	a, err := e.mat(m)
	if err != nil {
		return nil, nil, nil, err
	}
	p := min(a.rows, a.cols)
	if rows < 1 || rows > p {
		return nil, nil, nil, fmt.Errorf("%w: the first %d rows of Vᵀ of a %d×%d matrix; expected 1 to %d", la.ErrShape, rows, a.rows, a.cols, p)
	}
	tk, ok := e.k.(topKernels[T])
	if !ok || rows == p {
		return e.SVD(m)
	}
	u := &dense[T]{rows: a.rows, cols: p, stride: p, data: make([]T, a.rows*p)}
	vt := &dense[T]{rows: rows, cols: a.cols, stride: a.cols, data: make([]T, rows*a.cols)}
	s := make([]float64, p)
	g, err := e.acquire(8 * float64(max(a.rows, a.cols)) * float64(p) * float64(p))
	if err != nil {
		return nil, nil, nil, err
	}
	done, err := tk.svdTop(g.Threads(), a.rows, a.cols, a.data, a.stride, s, u.data, u.stride, vt.data, vt.stride, rows)
	sched.Default.Release(g)
	if !done {
		return e.SVD(m)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return u, s, vt, nil
}

func (e engine[T]) ScaleColumns(m la.Mat, d []T) error {
	a, err := e.mat(m)
	if err != nil {
		return err
	}
	if len(d) != a.cols {
		return fmt.Errorf("%w: %d column scales for %d columns", la.ErrShape, len(d), a.cols)
	}
	for i := range a.rows {
		row := a.row(i)
		for j := range row {
			row[j] *= d[j]
		}
	}
	return nil
}

func (e engine[T]) ScaleRows(m la.Mat, d []T) error {
	a, err := e.mat(m)
	if err != nil {
		return err
	}
	if len(d) != a.rows {
		return fmt.Errorf("%w: %d row scales for %d rows", la.ErrShape, len(d), a.rows)
	}
	for i := range a.rows {
		row := a.row(i)
		for j := range row {
			row[j] *= d[i]
		}
	}
	return nil
}

// SumSquares sums the squares directly in float64, four at a time: for
// float32 elements that can neither overflow nor underflow (float32's
// range squared fits in float64's), and for float64 elements it is exact
// unless the sum leaves [2⁻⁹⁰⁰, 2⁹⁰⁰], where la.SumSq's scaled sum (a
// division per element, ≈ 8× slower) takes over.
func (e engine[T]) SumSquares(m la.Mat) (float64, error) {
	a, err := e.mat(m)
	if err != nil {
		return 0, err
	}
	var s float64
	zero := true
	for i := range a.rows {
		row := a.row(i)
		rs := finite.SumSquares(row)
		if rs == 0 && zero {
			for _, v := range row {
				zero = zero && v == 0
			}
		}
		s += rs
	}
	if _, single := any(T(0)).(float32); single || s == 0 && zero || s > 0x1p-900 && s < 0x1p900 {
		return s, nil
	}
	var ss la.SumSq
	for i := range a.rows {
		for _, v := range a.row(i) {
			ss.Add(float64(v))
		}
	}
	return ss.Value(), nil
}

// applier evaluates y = B·(A·x) + bias on the host. One vector is two
// matrix-vector products on one core (memory-bound: threads would not make
// it faster); a batch asks the thread budget for threads by its size.
//
// The SIMD kernels under it (gonum's, OpenBLAS's) handle the first few
// elements of a dot product one by one until an operand is aligned, so the
// order of the sums, and the rounding, depends on where x, y and the
// factors sit in memory: the same call on the same values could differ in
// the last bits (up to 5.7e-6 in float32). Apply therefore works on copies
// at a fixed alignment (64 bytes): x and y go through aligned scratch, and
// B and A are used where they are when they are 64-byte aligned (large
// slices are) and copied once otherwise. The result then depends on the
// values only.
type applier[T float32 | float64] struct {
	k        kernels[T]
	d, r, k_ int
	b, a     []T
	scratch  sync.Pool // *[]T, 64-byte aligned, for T, X and Y
}

// alignment is the byte alignment Apply gives every operand.
const alignment = 64

// alignedCopy returns v itself when its first element is 64-byte aligned,
// else a 64-byte aligned copy.
func alignedCopy[T float32 | float64](v []T) []T {
	if len(v) == 0 || uintptr(unsafe.Pointer(&v[0]))%alignment == 0 {
		return v
	}
	c := alignedSlice[T](len(v))
	copy(c, v)
	return c
}

// alignedSlice returns n values whose first one is 64-byte aligned (the Go
// heap does not move objects).
func alignedSlice[T float32 | float64](n int) []T {
	var z T
	es := int(unsafe.Sizeof(z))
	buf := make([]T, n+alignment/es)
	off := 0
	if len(buf) > 0 {
		off = (alignment - int(uintptr(unsafe.Pointer(&buf[0]))%alignment)) % alignment / es
	}
	return buf[off : off+n : off+n]
}

func (e engine[T]) NewApplier(d, r, k int, b, a []T) (la.Applier[T], error) {
	if d < 1 || r < 1 || k < 1 || len(b) != d*r || len(a) != r*k {
		return nil, fmt.Errorf("%w: factors B %d values for %d×%d, A %d values for %d×%d", la.ErrShape, len(b), d, r, len(a), r, k)
	}
	return &applier[T]{k: e.k, d: d, r: r, k_: k, b: alignedCopy(b), a: alignedCopy(a)}, nil
}

func (p *applier[T]) Apply(y, x []T, n int, bias []T) error {
	if n < 0 || len(x) != n*p.k_ || len(y) != n*p.d || (bias != nil && len(bias) != p.d) {
		return fmt.Errorf("%w: apply to %d inputs", la.ErrShape, n)
	}
	if n == 0 {
		return nil
	}
	// Scratch for T, X and Y, each starting 64-byte aligned (the parts
	// before it padded to a multiple of 16 values).
	nt, nx, ny := n*p.r, n*p.k_, n*p.d
	round := func(m int) int { return (m + 15) &^ 15 }
	need := round(nt) + round(nx) + ny
	sp, _ := p.scratch.Get().(*[]T)
	if sp == nil || cap(*sp) < need {
		s := alignedSlice[T](need)
		sp = &s
	}
	s := (*sp)[:need]
	t := s[:nt]
	xs := s[round(nt) : round(nt)+nx]
	ys := s[round(nt)+round(nx) : round(nt)+round(nx)+ny]
	copy(xs, x)
	var beta T
	if bias != nil {
		beta = 1
		for i := range n {
			copy(ys[i*p.d:(i+1)*p.d], bias)
		}
	}
	g, err := sched.Default.Acquire(context.Background(), threadsFor(float64(n)*float64(p.r)*float64(p.d+p.k_)))
	if err != nil { // not reached: Background never ends
		return err
	}
	if n == 1 {
		p.k.gemv(false, p.r, p.k_, 1, p.a, p.k_, xs, 0, t)
		p.k.gemv(false, p.d, p.r, 1, p.b, p.r, t, beta, ys)
	} else {
		// T = X·Aᵀ (n×r), then Y = T·Bᵀ + Y.
		p.k.gemm(g.Threads(), false, true, n, p.r, p.k_, 1, xs, p.k_, p.a, p.k_, 0, t, p.r)
		p.k.gemm(g.Threads(), false, true, n, p.d, p.r, 1, t, p.r, p.b, p.r, beta, ys, p.d)
	}
	sched.Default.Release(g)
	copy(y, ys)
	p.scratch.Put(sp)
	return nil
}

func (p *applier[T]) Close() error { return nil }
