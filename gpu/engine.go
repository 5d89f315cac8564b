//go:build cgo

package gpu

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/la"
)

func newEngines(dev *cuda.Device, cfg *settings) (la.Engine[float32], la.Engine[float64]) {
	return &engine[float32]{dev: dev, cfg: cfg, dt: cuda.F32, size: 4},
		&engine[float64]{dev: dev, cfg: cfg, dt: cuda.F64, size: 8}
}

// engine implements la.Engine[T] on the device. Every method is one job on
// the device's worker thread.
type engine[T la.Float] struct {
	dev  *cuda.Device
	cfg  *settings
	dt   cuda.DType
	size int // bytes per element
}

// dmat is a row-major matrix in device memory: element (i, j) is at
// ptr + (i·ld + j)·size. A view shares its parent's allocation (base 0).
type dmat[T la.Float] struct {
	dev        *cuda.Device
	rows, cols int
	ld         int
	ptr        cuda.DevPtr
	base       cuda.DevPtr // the allocation to free; 0 for views and empty matrices
	view       bool
}

func (m *dmat[T]) Dims() (int, int) { return m.rows, m.cols }

// do runs f on the device's worker thread and maps its error with laError.
func (e *engine[T]) do(f func(*cuda.Ctx) error) error { return laError(e.dev.Do(f)) }

// cleanup runs f on the worker like do, even after the context was lost
// (see cuda.Device.Cleanup).
func (e *engine[T]) cleanup(f func(*cuda.Ctx) error) error { return laError(e.dev.Cleanup(f)) }

// contiguous reports whether the rows follow each other without gaps.
func (m *dmat[T]) contiguous() bool { return m.ld == m.cols || m.rows <= 1 }

func (e *engine[T]) mat(m la.Mat) (*dmat[T], error) {
	d, ok := m.(*dmat[T])
	if !ok || d == nil || d.dev != e.dev {
		return nil, fmt.Errorf("%w: got %T, want a cuda matrix", la.ErrForeign, m)
	}
	return d, nil
}

// bytesOf views a []T as bytes.
func bytesOf[T la.Float](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(z)))
}

// alloc allocates a contiguous rows×cols matrix on the worker.
func (e *engine[T]) alloc(c *cuda.Ctx, rows, cols int) (*dmat[T], error) {
	m := &dmat[T]{dev: e.dev, rows: rows, cols: cols, ld: cols}
	if rows*cols == 0 {
		return m, nil
	}
	p, err := c.Alloc(rows * cols * e.size)
	if err != nil {
		return nil, err
	}
	m.ptr, m.base = p, p
	return m, nil
}

func (e *engine[T]) freeOn(c *cuda.Ctx, m *dmat[T]) {
	if m != nil && !m.view && m.base != 0 {
		_ = c.Free(m.base)
		m.base, m.ptr = 0, 0
	}
}

func (e *engine[T]) Upload(rows, cols int, data []T) (la.Mat, error) {
	if rows < 0 || cols < 0 || len(data) < rows*cols {
		return nil, fmt.Errorf("%w: upload of %d×%d from %d values", la.ErrShape, rows, cols, len(data))
	}
	var m *dmat[T]
	err := e.do(func(c *cuda.Ctx) error {
		var err error
		if m, err = e.alloc(c, rows, cols); err != nil {
			return err
		}
		if err := c.CopyHtoD(m.ptr, bytesOf(data[:rows*cols])); err != nil {
			e.freeOn(c, m)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (e *engine[T]) Zeros(rows, cols int) (la.Mat, error) {
	if rows < 0 || cols < 0 {
		return nil, fmt.Errorf("%w: %d×%d", la.ErrShape, rows, cols)
	}
	var m *dmat[T]
	err := e.do(func(c *cuda.Ctx) error {
		var err error
		if m, err = e.alloc(c, rows, cols); err != nil {
			return err
		}
		if err := c.Zero(m.ptr, rows*cols*e.size); err != nil {
			e.freeOn(c, m)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (e *engine[T]) Download(dst []T, m la.Mat) error {
	a, err := e.mat(m)
	if err != nil {
		return err
	}
	n := a.rows * a.cols
	if len(dst) < n {
		return fmt.Errorf("%w: download of %d×%d into %d values", la.ErrShape, a.rows, a.cols, len(dst))
	}
	if n == 0 {
		return nil
	}
	return e.do(func(c *cuda.Ctx) error {
		if a.contiguous() {
			return c.CopyDtoH(bytesOf(dst[:n]), a.ptr)
		}
		// Pack the rows on the device first, then copy once.
		tmp, err := e.alloc(c, a.rows, a.cols)
		if err != nil {
			return err
		}
		defer e.freeOn(c, tmp)
		if err := e.copyOn(c, tmp, a); err != nil {
			return err
		}
		return c.CopyDtoH(bytesOf(dst[:n]), tmp.ptr)
	})
}

// Free releases m's device memory. Views and nil are ignored.
func (e *engine[T]) Free(m la.Mat) {
	a, ok := m.(*dmat[T])
	if !ok || a == nil || a.view || a.base == 0 || a.dev != e.dev {
		return
	}
	// Cleanup runs even when the context is lost, so that the memory is
	// accounted for (the driver frees it with the context).
	_ = e.cleanup(func(c *cuda.Ctx) error {
		e.freeOn(c, a)
		return nil
	})
}

func (e *engine[T]) View(m la.Mat, i0, i1, j0, j1 int) (la.Mat, error) {
	a, err := e.mat(m)
	if err != nil {
		return nil, err
	}
	if i0 < 0 || i1 < i0 || i1 > a.rows || j0 < 0 || j1 < j0 || j1 > a.cols {
		return nil, fmt.Errorf("%w: view [%d:%d, %d:%d] of %d×%d", la.ErrShape, i0, i1, j0, j1, a.rows, a.cols)
	}
	v := &dmat[T]{dev: e.dev, rows: i1 - i0, cols: j1 - j0, ld: a.ld, view: true}
	if v.rows > 0 && v.cols > 0 {
		v.ptr = a.ptr + cuda.DevPtr((i0*a.ld+j0)*e.size)
	}
	return v, nil
}

// copyOn copies src into dst (same shape) with cublas?geam, which honours
// both leading dimensions: column-major, each is a cols×rows matrix.
func (e *engine[T]) copyOn(c *cuda.Ctx, dst, src *dmat[T]) error {
	if dst.rows == 0 || dst.cols == 0 {
		return nil
	}
	if dst.contiguous() && src.contiguous() {
		return c.CopyDtoD(dst.ptr, src.ptr, dst.rows*dst.cols*e.size)
	}
	// B = A: cuBLAS may read B even when beta = 0, and dst may hold
	// anything (NaN: 0·NaN is NaN).
	return c.Geam(e.dt, false, false, dst.cols, dst.rows, 1, src.ptr, src.ld, 0, src.ptr, src.ld, dst.ptr, dst.ld)
}

// zeroOn sets every element of m to zero: one memset when its rows are
// contiguous, one per row otherwise.
func (e *engine[T]) zeroOn(c *cuda.Ctx, m *dmat[T]) error {
	if m.rows == 0 || m.cols == 0 {
		return nil
	}
	if m.contiguous() {
		return c.Zero(m.ptr, m.rows*m.cols*e.size)
	}
	for i := 0; i < m.rows; i++ {
		if err := c.Zero(m.ptr+cuda.DevPtr(i*m.ld*e.size), m.cols*e.size); err != nil {
			return err
		}
	}
	return nil
}

func (e *engine[T]) Copy(dstm, srcm la.Mat) error {
	d, err := e.mat(dstm)
	if err != nil {
		return err
	}
	s, err := e.mat(srcm)
	if err != nil {
		return err
	}
	if d.rows != s.rows || d.cols != s.cols {
		return fmt.Errorf("%w: copy of %d×%d into %d×%d", la.ErrShape, s.rows, s.cols, d.rows, d.cols)
	}
	if d.rows == 0 || d.cols == 0 {
		return nil
	}
	return e.do(func(c *cuda.Ctx) error { return e.copyOn(c, d, s) })
}

// gemmOperands resolves the three matrices of a product and checks their
// shapes (la.GemmDims): C is m×n, the inner dimension ka.
func (e *engine[T]) gemmOperands(tA, tB bool, am, bm, cm la.Mat) (a, b, c *dmat[T], m, n, ka int, err error) {
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

func (e *engine[T]) Gemm(tA, tB bool, alpha T, am, bm la.Mat, beta T, cm la.Mat) error {
	a, b, cc, m, n, ka, err := e.gemmOperands(tA, tB, am, bm, cm)
	if err != nil {
		return err
	}
	if m == 0 || n == 0 {
		return nil
	}
	return e.do(func(c *cuda.Ctx) error {
		if ka == 0 {
			// op(a)·op(b) is the zero matrix: c = beta·c. With beta = 0
			// c is not read (as in gemm): it may hold anything.
			if beta == 0 {
				return e.zeroOn(c, cc)
			}
			return c.Geam(e.dt, false, false, n, m, float64(beta), cc.ptr, cc.ld, 0, cc.ptr, cc.ld, cc.ptr, cc.ld)
		}
		// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ,
		// and each row-major matrix is its transpose in column-major.
		return c.Gemm(e.dt, tB, tA, n, m, ka, float64(alpha), b.ptr, b.ld, a.ptr, a.ld, float64(beta), cc.ptr, cc.ld)
	})
}

// arena lays out several device buffers in one allocation, each aligned to
// 256 bytes.
type arena struct{ total int }

func (a *arena) add(bytes int) int {
	off := a.total
	a.total += (max(bytes, 1) + 255) &^ 255
	return off
}

// memLimit, when set by a test, caps the free memory fits sees, so that
// the out-of-memory paths can run on a large GPU.
var memLimit uint64

// fits checks that bytes more of device memory are free, keeping a margin
// for the libraries' own allocations; the error matches la.ErrDeviceMemory.
func fits(c *cuda.Ctx, what string, bytes int) error {
	free, _, err := c.MemInfo()
	if err != nil {
		return err
	}
	const margin = 64 << 20
	if memLimit > 0 {
		free = min(free, memLimit)
	}
	if uint64(bytes)+margin > free {
		return fmt.Errorf("%w: %s needs %.1f MiB of device memory, %.1f MiB free", la.ErrDeviceMemory, what,
			float64(bytes)/(1<<20), float64(free)/(1<<20))
	}
	return nil
}

func (e *engine[T]) Orthonormalize(am la.Mat) error {
	a, err := e.mat(am)
	if err != nil {
		return err
	}
	m, n := a.rows, a.cols
	if m < n {
		return fmt.Errorf("%w: orthonormalize needs rows ≥ cols, got %d×%d", la.ErrShape, m, n)
	}
	if n == 0 {
		return nil
	}
	return e.do(func(c *cuda.Ctx) error {
		// geqrf/orgqr work on column-major m×n: transpose a into a work
		// buffer, factor, and transpose Q back into a. Each routine gets
		// its own devInfo, read after both ran.
		var ar arena
		offQ := ar.add(m * n * e.size)
		offTau := ar.add(n * e.size)
		offInfo := ar.add(8)
		// The bufferSize queries take the buffers' addresses, so the
		// buffers are planned, checked and allocated first; the
		// workspace check that follows sees them as used.
		if err := fits(c, "cusolverDn"+prefix(e.dt)+"geqrf/orgqr's buffers", ar.total); err != nil {
			return err
		}
		base, err := c.Alloc(ar.total)
		if err != nil {
			return err
		}
		defer c.Free(base)
		q, tau := base+cuda.DevPtr(offQ), base+cuda.DevPtr(offTau)
		infoQR, infoQ := base+cuda.DevPtr(offInfo), base+cuda.DevPtr(offInfo+4)
		lw1, err := c.GeqrfBufferSize(e.dt, m, n, q, m)
		if err != nil {
			return err
		}
		lw2, err := c.OrgqrBufferSize(e.dt, m, n, n, q, m, tau)
		if err != nil {
			return err
		}
		lwork := max(lw1, lw2, 1)
		if err := fits(c, "cusolverDn"+prefix(e.dt)+"geqrf/orgqr's workspace", lwork*e.size); err != nil {
			return err
		}
		work, err := c.Alloc(lwork * e.size)
		if err != nil {
			return err
		}
		defer c.Free(work)
		// B = A: geam may read B even when beta = 0.
		if err := c.Geam(e.dt, true, true, m, n, 1, a.ptr, a.ld, 0, a.ptr, a.ld, q, m); err != nil {
			return err
		}
		if err := c.Geqrf(e.dt, m, n, q, m, tau, work, lwork, infoQR); err != nil {
			return err
		}
		if err := c.Orgqr(e.dt, m, n, n, q, m, tau, work, lwork, infoQ); err != nil {
			return err
		}
		if err := c.Geam(e.dt, true, true, n, m, 1, q, m, 0, q, m, a.ptr, a.ld); err != nil {
			return err
		}
		var infos [2]int32
		if err := c.CopyDtoH(unsafe.Slice((*byte)(unsafe.Pointer(&infos[0])), 8), infoQR); err != nil {
			return err
		}
		if infos[0] != 0 {
			return cuda.DevInfoError("cusolverDn"+prefix(e.dt)+"geqrf", int(infos[0]), fmt.Sprintf("%d×%d", m, n))
		}
		if infos[1] != 0 {
			return cuda.DevInfoError("cusolverDn"+prefix(e.dt)+"orgqr", int(infos[1]), fmt.Sprintf("%d×%d", m, n))
		}
		return nil
	})
}

func prefix(t cuda.DType) string {
	if t == cuda.F32 {
		return "S"
	}
	return "D"
}

// uploadVec puts the host vector v on the device at p through the pinned
// staging buffer and waits for the copy.
func (e *engine[T]) uploadVec(c *cuda.Ctx, p cuda.DevPtr, v []T) error {
	return c.CopyHtoD(p, bytesOf(v))
}

// scale multiplies a (row-major) by diag(d) on the right (columns) or the
// left (rows) with cublas?dgmm. In column-major terms a is cols×rows, so
// scaling columns of a scales the rows of the column-major matrix.
func (e *engine[T]) scale(am la.Mat, d []T, columns bool) error {
	a, err := e.mat(am)
	if err != nil {
		return err
	}
	want, what := a.rows, "row"
	if columns {
		want, what = a.cols, "column"
	}
	if len(d) != want {
		return fmt.Errorf("%w: %d %s scales for %d %ss", la.ErrShape, len(d), what, want, what)
	}
	if a.rows == 0 || a.cols == 0 {
		return nil
	}
	return e.do(func(c *cuda.Ctx) error {
		x, err := c.Alloc(len(d) * e.size)
		if err != nil {
			return err
		}
		defer c.Free(x)
		if err := e.uploadVec(c, x, d); err != nil {
			return err
		}
		// Out of place into a packed buffer, then back: the cuBLAS docs
		// this project could read do not promise that dgmm works in place.
		tmp, err := e.alloc(c, a.rows, a.cols)
		if err != nil {
			return err
		}
		defer e.freeOn(c, tmp)
		if err := c.Dgmm(e.dt, !columns, a.cols, a.rows, a.ptr, a.ld, x, 1, tmp.ptr, tmp.ld); err != nil {
			return err
		}
		return e.copyOn(c, a, tmp)
	})
}

func (e *engine[T]) ScaleColumns(a la.Mat, d []T) error { return e.scale(a, d, true) }
func (e *engine[T]) ScaleRows(a la.Mat, d []T) error    { return e.scale(a, d, false) }

// nrm2Chunk bounds the length of one nrm2 call (its n is an int).
const nrm2Chunk = 1 << 30

// SumSquares computes the Euclidean norm of each row (or column, or chunk
// of a contiguous matrix) with cublas?nrm2, which scales to avoid overflow
// and underflow, and sums their squares on the host with la.SumSq. A
// float32 norm that overflows float32 (the sum of squares may still fit in
// float64) is recomputed on the host from the downloaded matrix.
func (e *engine[T]) SumSquares(am la.Mat) (float64, error) {
	a, err := e.mat(am)
	if err != nil {
		return 0, err
	}
	total := a.rows * a.cols
	if total == 0 {
		return 0, nil
	}
	type piece struct {
		off, n, count, stride, inc int
	}
	var pieces []piece
	switch {
	case a.contiguous():
		for off := 0; off < total; off += nrm2Chunk {
			pieces = append(pieces, piece{off: off, n: min(nrm2Chunk, total-off), count: 1, inc: 1})
		}
	case a.rows <= a.cols:
		pieces = []piece{{n: a.cols, count: a.rows, stride: a.ld, inc: 1}}
	default:
		pieces = []piece{{n: a.rows, count: a.cols, stride: 1, inc: a.ld}}
	}
	count := 0
	for _, p := range pieces {
		count += p.count
	}
	norms := make([]T, count)
	err = e.do(func(c *cuda.Ctx) error {
		res, err := c.Alloc(count * e.size)
		if err != nil {
			return err
		}
		defer c.Free(res)
		at := 0
		for _, p := range pieces {
			x := a.ptr + cuda.DevPtr(p.off*e.size)
			if err := c.Nrm2s(e.dt, p.count, p.n, x, p.stride, p.inc, res+cuda.DevPtr(at*e.size)); err != nil {
				return err
			}
			at += p.count
		}
		return c.CopyDtoH(bytesOf(norms), res)
	})
	if err != nil {
		return 0, err
	}
	var ss la.SumSq
	for _, v := range norms {
		if math.IsInf(float64(v), 0) {
			return e.sumSquaresHost(a)
		}
		ss.Add(float64(v))
	}
	return ss.Value(), nil
}

func (e *engine[T]) sumSquaresHost(a *dmat[T]) (float64, error) {
	h := make([]T, a.rows*a.cols)
	if err := e.Download(h, a); err != nil {
		return 0, err
	}
	var ss la.SumSq
	for _, v := range h {
		ss.Add(float64(v))
	}
	return ss.Value(), nil
}
