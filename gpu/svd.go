//go:build cgo

package gpu

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/la"
)

// SVD computes the thin SVD of a with cuSOLVER; see the package
// documentation for the layout and the choice of solver. a itself is not
// modified (the solver works on a copy), which the la contract allows.
func (e *engine[T]) SVD(am la.Mat) (la.Mat, []float64, la.Mat, error) {
	a, err := e.mat(am)
	if err != nil {
		return nil, nil, nil, err
	}
	m, n := a.rows, a.cols
	p := min(m, n)
	s := make([]float64, p)
	var u, vt *dmat[T]
	err = e.do(func(c *cuda.Ctx) error {
		if err := fits(c, "the SVD's U and Vᵀ", (m*p+p*n)*e.size); err != nil {
			return err
		}
		var err error
		if u, err = e.alloc(c, m, p); err != nil {
			return err
		}
		if vt, err = e.alloc(c, p, n); err != nil {
			e.freeOn(c, u)
			return err
		}
		if p == 0 {
			return nil
		}
		req := Solver(e.cfg.solver.Load())
		solver := ChooseSolver(req, m, n, c.HasGesvdp())
		err = e.svdOn(c, a, solver, u, s, vt)
		if m := laError(err); solver != SolverGesvd && (errors.Is(m, la.ErrNoConvergence) || errors.Is(m, la.ErrDeviceMemory)) {
			// gesvd needs the least workspace and always converges in
			// practice; a is intact, so start again.
			err2 := e.svdOn(c, a, SolverGesvd, u, s, vt)
			if err2 == nil {
				return nil
			}
			err = fmt.Errorf("%v; then gesvd: %w", err, err2)
		}
		if err != nil {
			e.freeOn(c, u)
			e.freeOn(c, vt)
		}
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return u, s, vt, nil
}

// svdOn runs one solver. The row-major m×n matrix a is, to cuSOLVER, the
// column-major n×m matrix aᵀ. The solver gets a column-major R×C copy X
// with R ≥ C (gesvd requires it):
//
//	m ≤ n (wide):  X = aᵀ (n×m), a copy.       aᵀ = Ux·S·Vxᵀ  ⇒  U = Vx, Vᵀ = Uxᵀ
//	m > n (tall):  X = a  (m×n), a transpose.  a  = Ux·S·Vxᵀ  ⇒  U = Ux, Vᵀ = Vxᵀ
//
// A row-major p×n result is the column-major n×p matrix of its transpose,
// so in the wide case Ux (n×p) is already the row-major Vᵀ and gesvd's Vxᵀ
// (p×m) the row-major U; the other outputs are transposed with geam.
func (e *engine[T]) svdOn(c *cuda.Ctx, a *dmat[T], solver Solver, u *dmat[T], s []float64, vt *dmat[T]) error {
	dt, sz := e.dt, e.size
	m, n := a.rows, a.cols
	p := min(m, n)
	wide := m <= n
	R, C := m, n
	if wide {
		R, C = n, m
	}
	// Buffers besides the outputs: X, the singular values followed by
	// devInfo, and one temporary for a transposed output.
	var ar arena
	offX := ar.add(R * C * sz)
	offS := ar.add(p*sz + 8)
	tmpElems := 0
	switch {
	case wide && solver != SolverGesvd:
		tmpElems = m * p // V (m×p), transposed into U
	case !wide && solver == SolverGesvd:
		tmpElems = m*p + p*n // Ux (m×p) and Vxᵀ (p×n)
	case !wide:
		tmpElems = m * p // Ux (m×p)
	}
	offT := ar.add(tmpElems * sz)
	if err := fits(c, "the SVD's work buffers", ar.total); err != nil {
		return err
	}
	base, err := c.Alloc(ar.total)
	if err != nil {
		return err
	}
	defer c.Free(base)
	x := base + cuda.DevPtr(offX)
	sv := base + cuda.DevPtr(offS)
	info := sv + cuda.DevPtr(p*sz)
	tmp := base + cuda.DevPtr(offT)

	// Where each solver output goes (column-major, with its leading
	// dimension), and the transposes that follow.
	var uOut cuda.DevPtr // Ux, R×p, ld R
	if wide {
		uOut = vt.ptr
	} else {
		uOut = tmp
	}
	var vOut cuda.DevPtr // gesvd: Vxᵀ, p×C, ld p; others: Vx, C×p, ld C
	switch {
	case solver == SolverGesvd && wide:
		vOut = u.ptr
	case solver == SolverGesvd:
		vOut = tmp + cuda.DevPtr(m*p*sz)
	case wide:
		vOut = tmp
	default:
		vOut = vt.ptr
	}

	// Workspace.
	var lwork, devBytes, hostBytes int
	name := "cusolverDn" + prefix(dt) + solver.String()
	switch solver {
	case SolverGesvd:
		lwork, err = c.GesvdBufferSize(dt, R, C)
		devBytes = lwork * sz
	case SolverGesvdj:
		lwork, err = c.GesvdjBufferSize(dt, R, C, x, R, sv, uOut, R, vOut, C)
		devBytes = lwork * sz
	case SolverGesvdp:
		name = "cusolverDnXgesvdp"
		devBytes, hostBytes, err = c.GesvdpBufferSize(dt, R, C, x, R, sv, uOut, R, vOut, C)
	}
	if err != nil {
		return err
	}
	if err := fits(c, name+"'s workspace", devBytes); err != nil {
		return err
	}
	work, err := c.Alloc(devBytes)
	if err != nil {
		return err
	}
	defer c.Free(work)

	// X. Every geam passes its A as B too (beta = 0): cuBLAS may read B
	// even then, and the destinations hold nothing yet.
	if wide {
		err = c.Geam(dt, false, false, R, C, 1, a.ptr, a.ld, 0, a.ptr, a.ld, x, R)
	} else {
		err = c.Geam(dt, true, true, R, C, 1, a.ptr, a.ld, 0, a.ptr, a.ld, x, R)
	}
	if err != nil {
		return err
	}

	switch solver {
	case SolverGesvd:
		err = c.Gesvd(dt, 'S', 'S', R, C, x, R, sv, uOut, R, vOut, p, work, lwork, info)
	case SolverGesvdj:
		err = c.Gesvdj(dt, R, C, x, R, sv, uOut, R, vOut, C, work, lwork, info)
	case SolverGesvdp:
		_, err = c.Gesvdp(dt, R, C, x, R, sv, uOut, R, vOut, C, work, devBytes, hostBytes, info)
	}
	if err != nil {
		return err
	}

	// Transposes into the row-major outputs.
	switch {
	case wide && solver != SolverGesvd:
		// U (row-major m×p) = column-major p×m = Vxᵀ.
		err = c.Geam(dt, true, true, p, m, 1, vOut, m, 0, vOut, m, u.ptr, p)
	case !wide:
		// U = Ux: column-major p×m = Uxᵀ.
		err = c.Geam(dt, true, true, p, m, 1, uOut, m, 0, uOut, m, u.ptr, p)
		if err == nil && solver == SolverGesvd {
			// Vᵀ (row-major p×n) = column-major n×p = (Vxᵀ)ᵀ.
			err = c.Geam(dt, true, true, n, p, 1, vOut, p, 0, vOut, p, vt.ptr, n)
		}
	}
	if err != nil {
		return err
	}

	// Singular values and devInfo in one copy.
	host := make([]byte, p*sz+4)
	if err := c.CopyDtoH(host, sv); err != nil {
		return err
	}
	devInfo := *(*int32)(unsafe.Pointer(&host[p*sz]))
	if devInfo != 0 {
		return cuda.DevInfoError(name, int(devInfo), fmt.Sprintf("%d×%d", m, n))
	}
	if dt == cuda.F32 {
		for i := range s {
			s[i] = float64(*(*float32)(unsafe.Pointer(&host[i*4])))
		}
	} else {
		for i := range s {
			s[i] = *(*float64)(unsafe.Pointer(&host[i*8]))
		}
	}
	return nil
}
