//go:build cgo

package cuda_test

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/internal/testkit/fakecuda"
)

// TestFreeWaitsForQueuedWork: cuMemFree is not stream-ordered, so Free
// waits for the stream when work was queued since the last
// synchronization, and only then. Before, Free called cuMemFree at once,
// and the fake (which poisons freed memory and records the free of memory
// that queued work uses) reported it.
func TestFreeWaitsForQueuedWork(t *testing.T) {
	d, err := open(t, &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var syncsQueued, syncsIdle int
	err = d.Do(func(c *cuda.Ctx) error {
		p, err := c.Alloc(256)
		if err != nil {
			return err
		}
		if err := c.Zero(p, 256); err != nil { // queued on the stream
			c.Free(p)
			return err
		}
		fakecuda.ResetCalls()
		if err := c.Free(p); err != nil {
			return err
		}
		syncsQueued = fakecuda.Calls("cuStreamSynchronize")

		q, err := c.Alloc(256)
		if err != nil {
			return err
		}
		fakecuda.ResetCalls()
		if err := c.Free(q); err != nil { // nothing queued since
			return err
		}
		syncsIdle = fakecuda.Calls("cuStreamSynchronize")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if syncsQueued != 1 || syncsIdle != 0 {
		t.Errorf("Free waited %d times after queued work and %d times with none; want 1 and 0", syncsQueued, syncsIdle)
	}
	if v := fakecuda.Violations(); len(v) > 0 {
		t.Errorf("the fake saw violations:\n%s", strings.Join(v, "\n"))
	}
}

// TestFreeWaitFailure: when the wait before a free fails, the job's error
// says so even if the job ignores Free's error (a deferred Free).
func TestFreeWaitFailure(t *testing.T) {
	d, err := open(t, &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.Do(func(c *cuda.Ctx) error {
		p, err := c.Alloc(256)
		if err != nil {
			return err
		}
		defer c.Free(p)
		fakecuda.SetFaults(fakecuda.Fault{Call: "cuStreamSynchronize", Nth: 1, Status: fakecuda.CudaErrorInvalidValue})
		return c.Zero(p, 256)
	})
	fakecuda.ClearFaults()
	if err == nil || !strings.Contains(err.Error(), "cuda: cuStreamSynchronize: CUDA_ERROR_INVALID_VALUE") {
		t.Errorf("job whose deferred Free could not wait: %v; want the wait's error", err)
	}
	if v := fakecuda.Violations(); len(v) > 0 {
		t.Errorf("the fake saw violations (the second wait should have succeeded):\n%s", strings.Join(v, "\n"))
	}
	if err := d.Do(func(*cuda.Ctx) error { return nil }); err != nil {
		t.Errorf("the next job: %v", err)
	}
}

// TestGesvdpErrorEstimate: cusolverDnXgesvdp's h_err_sigma is a host
// pointer cuSOLVER may write after the call returns. Gesvdp passes pinned
// memory and reads it after synchronizing. Before, it passed the address
// of a Go variable, which the fake (like the cgo rules) rejects, and read
// it at once.
func TestGesvdpErrorEstimate(t *testing.T) {
	d, err := open(t, &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.Info().HasGesvdp {
		t.Fatal("the fake has no cusolverDnXgesvdp")
	}
	const m, n = 6, 4
	var est float64
	err = d.Do(func(c *cuda.Ctx) error {
		dev, host, err := c.GesvdpBufferSize(cuda.F64, m, n, 0, m, 0, 0, m, 0, n)
		if err != nil {
			return err
		}
		base, err := c.Alloc((m*n + n + m*n + n*n) * 8)
		if err != nil {
			return err
		}
		defer c.Free(base)
		work, err := c.Alloc(dev)
		if err != nil {
			return err
		}
		defer c.Free(work)
		info, err := c.Alloc(4)
		if err != nil {
			return err
		}
		defer c.Free(info)
		a, s, u, v := base, base+m*n*8, base+(m*n+n)*8, base+(2*m*n+n)*8
		st, err := c.Stage()
		if err != nil {
			return err
		}
		for i := range m * n { // A = the first n columns of I_m, times 2
			var x float64
			if i%m == i/m {
				x = 2
			}
			*(*float64)(unsafe.Pointer(&st[i*8])) = x
		}
		if err := c.StageToDevice(a, 0, m*n*8); err != nil {
			return err
		}
		est, err = c.Gesvdp(cuda.F64, m, n, a, m, s, u, m, v, n, work, dev, host, info)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !(est > 0 && est < 1e-12) {
		t.Errorf("error estimate %v; want a small positive number (the fake's: 2.2e-16·σ₁)", est)
	}
	if v := fakecuda.Violations(); len(v) > 0 {
		t.Errorf("the fake saw violations:\n%s", strings.Join(v, "\n"))
	}
}
