//go:build cgo

package gpu

import (
	"errors"
	"fmt"
	"sync"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/kernels"
	"github.com/lowrank-go/lowrank/la"
)

// applier evaluates y = B·(A·x) + bias with B (d×r) and A (r×k) resident on
// the device. Its scratch buffers are only touched on the device's worker
// thread, so Apply is safe for concurrent use.
type applier[T la.Float] struct {
	e       *engine[T]
	d, r, k int
	factors cuda.DevPtr // B (d·r) then A (r·k), row-major
	b, a    cuda.DevPtr

	// Scratch for n vectors: X (n·k), bias (d), T (n·r), Y (n·d), ones (n).
	scratch  cuda.DevPtr
	scratchN int
	onesN    int // how many leading ones are initialized

	fusedErr error          // why the fused kernel could not be used, once tried
	fusedFn  *cuda.Function // the compiled kernel, once fetched

	// One Apply at a time prepares its arguments in call and runs the
	// prepared job, so that Apply allocates nothing.
	mu     sync.Mutex
	closed bool
	job    *cuda.Job
	call   struct {
		y, x, bias []T
		n          int
		fused      bool
	}
}

func (e *engine[T]) NewApplier(d, r, k int, b, a []T) (la.Applier[T], error) {
	if d < 1 || r < 1 || k < 1 || len(b) != d*r || len(a) != r*k {
		return nil, fmt.Errorf("%w: factors B %d values for %d×%d, A %d values for %d×%d", la.ErrShape, len(b), d, r, len(a), r, k)
	}
	p := &applier[T]{e: e, d: d, r: r, k: k}
	err := e.do(func(c *cuda.Ctx) error {
		base, err := c.Alloc((d*r + r*k) * e.size)
		if err != nil {
			return err
		}
		p.factors, p.b, p.a = base, base, base+cuda.DevPtr(d*r*e.size)
		if err := c.CopyHtoD(p.b, bytesOf(b)); err != nil {
			c.Free(base)
			return err
		}
		if err := c.CopyHtoD(p.a, bytesOf(a)); err != nil {
			c.Free(base)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.job = cuda.NewJob(p.run)
	return p, nil
}

// run is the prepared job of Apply.
func (p *applier[T]) run(c *cuda.Ctx) error {
	if p.factors == 0 {
		return errClosedApplier
	}
	a := &p.call
	err := p.apply(c, a.y, a.x, a.n, a.bias, a.fused)
	if err != nil {
		// Copies from and to the pinned staging buffer may still be in
		// flight: let them finish before the next Apply fills it.
		_ = c.Sync()
	}
	return err
}

var errClosedApplier = errors.New("lowrank: apply on a closed Applier")

// layout returns the offsets in elements of the scratch regions for n
// vectors, and the total.
func (p *applier[T]) layout(n int) (x, bias, t, y, ones, total int) {
	x = 0
	bias = x + n*p.k
	t = bias + p.d
	y = t + n*p.r
	ones = y + n*p.d
	total = ones + n
	return
}

func (p *applier[T]) ensureScratch(c *cuda.Ctx, n int) error {
	if n <= p.scratchN {
		return nil
	}
	want := max(n, 2*p.scratchN)
	_, _, _, _, _, total := p.layout(want)
	s, err := c.Alloc(total * p.e.size)
	if err != nil {
		return err
	}
	if p.scratch != 0 {
		c.Free(p.scratch)
	}
	p.scratch, p.scratchN, p.onesN = s, want, 0
	return nil
}

func (p *applier[T]) Apply(y, x []T, n int, bias []T) error {
	if n < 0 || len(x) != n*p.k || len(y) != n*p.d || (bias != nil && len(bias) != p.d) {
		return fmt.Errorf("%w: apply to %d inputs", la.ErrShape, n)
	}
	if n == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errClosedApplier
	}
	p.call.y, p.call.x, p.call.n, p.call.bias = y, x, n, bias
	p.call.fused = p.e.cfg.fused.Load()
	err := laError(p.e.dev.Run(p.job))
	p.call.y, p.call.x, p.call.bias = nil, nil, nil
	return err
}

func (p *applier[T]) apply(c *cuda.Ctx, y, x []T, n int, bias []T, fused bool) error {
	e := p.e
	sz := e.size
	if err := p.ensureScratch(c, n); err != nil {
		return err
	}
	ox, ob, ot, oy, oones, _ := p.layout(p.scratchN)
	at := func(off int) cuda.DevPtr { return p.scratch + cuda.DevPtr(off*sz) }
	dx, dbias, dt, dy, dones := at(ox), at(ob), at(ot), at(oy), at(oones)
	if bias != nil && n > 1 {
		// Before the inputs are staged: the ones travel through the same
		// pinned buffer.
		if err := p.ensureOnes(c, dones); err != nil {
			return err
		}
	}

	// Inputs: x and the bias in one pinned copy when they fit.
	inBytes := (n*p.k + p.d) * sz
	outBytes := n * p.d * sz
	staged := inBytes+outBytes <= cuda.StageBytes
	if staged {
		st, err := c.Stage()
		if err != nil {
			return err
		}
		copy(st, bytesOf(x))
		if bias != nil {
			copy(st[n*p.k*sz:], bytesOf(bias))
		}
		if err := c.StageToDevice(dx, 0, n*p.k*sz); err != nil {
			return err
		}
		if bias != nil {
			if err := c.StageToDevice(dbias, n*p.k*sz, p.d*sz); err != nil {
				return err
			}
		}
	} else {
		if err := c.CopyHtoD(dx, bytesOf(x)); err != nil {
			return err
		}
		if bias != nil {
			if err := c.CopyHtoD(dbias, bytesOf(bias)); err != nil {
				return err
			}
		}
	}

	done := false
	if fused && n <= FusedMaxBatch {
		ok, err := p.fused(c, dx, bias != nil, dbias, dy, n)
		if err != nil {
			return err
		}
		done = ok
	}
	if !done {
		if err := p.cublas(c, dx, bias != nil, dbias, dt, dy, dones, n); err != nil {
			return err
		}
	}

	// Output.
	if staged {
		off := (inBytes + 255) &^ 255
		if off+outBytes > cuda.StageBytes {
			off = inBytes
		}
		if err := c.DeviceToStage(off, dy, outBytes); err != nil {
			_ = c.Sync()
			return err
		}
		if err := c.Sync(); err != nil {
			return err
		}
		st, _ := c.Stage()
		copy(bytesOf(y), st[off:off+outBytes])
		return nil
	}
	return c.CopyDtoH(bytesOf(y), dy)
}

// cublas computes Y with two cuBLAS products: in column-major terms A is
// k×r (Aᵀ) and B is r×d (Bᵀ), X is k×n and Y is d×n:
//
//	T = Aᵀᵀ·X = A·X (r×n),  Y = B·T (d×n),  Y += bias·1ᵀ
func (p *applier[T]) cublas(c *cuda.Ctx, dx cuda.DevPtr, hasBias bool, dbias, dt, dy, dones cuda.DevPtr, n int) error {
	e := p.e
	beta := 0.0
	if n == 1 {
		if err := c.Gemv(e.dt, true, p.k, p.r, 1, p.a, p.k, dx, 1, 0, dt, 1); err != nil {
			return err
		}
		if hasBias {
			if err := c.CopyDtoD(dy, dbias, p.d*e.size); err != nil {
				return err
			}
			beta = 1
		}
		return c.Gemv(e.dt, true, p.r, p.d, 1, p.b, p.r, dt, 1, beta, dy, 1)
	}
	if err := c.Gemm(e.dt, true, false, p.r, n, p.k, 1, p.a, p.k, dx, p.k, 0, dt, p.r); err != nil {
		return err
	}
	if err := c.Gemm(e.dt, true, false, p.d, n, p.r, 1, p.b, p.r, dt, p.r, 0, dy, p.d); err != nil {
		return err
	}
	if !hasBias {
		return nil
	}
	// Y (d×n) += bias (d×1) · ones (1×n).
	return c.Gemm(e.dt, false, false, p.d, n, 1, 1, dbias, p.d, dones, 1, 1, dy, p.d)
}

// ensureOnes fills the ones region of the scratch, which adds the bias to
// a batch, once per scratch allocation. It copies through the pinned
// staging buffers and waits, so it must not run while Apply's inputs wait
// there to be copied (an earlier version did, and could send ones instead
// of x to the device).
func (p *applier[T]) ensureOnes(c *cuda.Ctx, dones cuda.DevPtr) error {
	if p.onesN >= p.scratchN {
		return nil
	}
	ones := make([]T, p.scratchN)
	for i := range ones {
		ones[i] = 1
	}
	if err := c.CopyHtoD(dones, bytesOf(ones)); err != nil {
		return err
	}
	p.onesN = p.scratchN
	return nil
}

// fusedBlock is the fused kernel's block size (8 warps).
const fusedBlock = 256

// fusedSharedMax is the dynamic shared memory the fused kernel may use
// without opting in to more (48 KiB on every architecture).
const fusedSharedMax = 48 << 10

// fused computes Y with kernels/fused_apply.cu in one launch. It returns
// false (and no error) when the kernel cannot take this shape or could not
// be compiled; the reason is kept in fusedErr.
func (p *applier[T]) fused(c *cuda.Ctx, dx cuda.DevPtr, hasBias bool, dbias, dy cuda.DevPtr, n int) (bool, error) {
	e := p.e
	shmem := n * p.r * e.size
	if shmem > fusedSharedMax || p.fusedErr != nil {
		return false, nil
	}
	if p.fusedFn == nil {
		f, err := fusedKernel(c, e.dt)
		if err != nil {
			p.fusedErr = err
			return false, nil
		}
		p.fusedFn = f
	}
	f := p.fusedFn
	// One block per 64 rows of Y, at most one per SM: each block
	// recomputes A·X, so more blocks cost more than they save.
	grid := min((p.d+63)/64, max(c.Info().SMs, 1))
	bias := cuda.DevPtr(0)
	if hasBias {
		bias = dbias
	}
	err := c.Launch(f, [3]uint32{uint32(grid), 1, 1}, [3]uint32{fusedBlock, 1, 1}, uint32(shmem),
		p.a, p.b, dx, bias, dy, int32(p.d), int32(p.r), int32(p.k), int32(n))
	return err == nil, err
}

// fusedKernel compiles (once per device and type) and returns the fused
// apply kernel.
func fusedKernel(c *cuda.Ctx, dt cuda.DType) (*cuda.Function, error) {
	src, err := kernels.Source("fused_apply")
	if err != nil {
		return nil, err
	}
	real := "float"
	if dt == cuda.F64 {
		real = "double"
	}
	return c.Kernel("fused_apply/"+real, src, "fused_apply", kernels.Defines(real))
}

func (p *applier[T]) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	return p.e.cleanup(func(c *cuda.Ctx) error {
		var err error
		if p.scratch != 0 {
			err = c.Free(p.scratch)
			p.scratch, p.scratchN = 0, 0
		}
		if p.factors != 0 {
			if e2 := c.Free(p.factors); err == nil {
				err = e2
			}
			p.factors = 0
		}
		if p.e.dev.Lost() != nil {
			// The frees fail, but the memory went with the context.
			return nil
		}
		return err
	})
}
