//go:build cgo

package cuda_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/internal/testkit/fakecuda"
)

// TestContextLost: once a driver call returns a status that loses the
// context (a kernel fault), Do fails at once with a *LostError naming that
// call, without running the job; Cleanup still runs its job; Close
// releases the context, and with it the memory left.
func TestContextLost(t *testing.T) {
	d, err := open(t, &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir)})
	if err != nil {
		t.Fatal(err)
	}
	base := cuda.LiveAllocations()
	var p cuda.DevPtr
	fakecuda.SetFaults(fakecuda.Fault{Call: "cuStreamSynchronize", Nth: 1, Status: fakecuda.CudaErrorLaunchFailed, Sticky: true})
	err = d.Do(func(c *cuda.Ctx) error {
		var err error
		if p, err = c.Alloc(64); err != nil {
			return err
		}
		return c.Sync()
	})
	var ce *cuda.Error
	if !errors.As(err, &ce) || ce.Call != "cuStreamSynchronize" || ce.Status != 719 ||
		!strings.Contains(err.Error(), "CUDA_ERROR_LAUNCH_FAILED") || !strings.Contains(err.Error(), "context is lost") {
		t.Fatalf("the faulting call: %v", err)
	}
	if d.Lost() == nil {
		t.Fatal("Lost() = nil after CUDA_ERROR_LAUNCH_FAILED")
	}
	ran := false
	err = d.Do(func(*cuda.Ctx) error { ran = true; return nil })
	var le *cuda.LostError
	if ran || !errors.As(err, &le) || !errors.As(err, &ce) || ce.Call != "cuStreamSynchronize" ||
		!strings.HasPrefix(err.Error(), "cuda: the GPU context was lost (cuStreamSynchronize: CUDA_ERROR_LAUNCH_FAILED") ||
		!strings.Contains(err.Error(), "restart") {
		t.Errorf("Do after the loss: ran %v, %v; want a *LostError without running", ran, err)
	}
	err = d.Cleanup(func(c *cuda.Ctx) error { ran = true; return c.Free(p) })
	if !ran || !errors.As(err, &ce) || ce.Status != 719 {
		t.Errorf("Cleanup after the loss: ran %v, %v; want it run, its free failing with 719", ran, err)
	}
	if got := cuda.LiveAllocations(); got != base {
		t.Errorf("LiveAllocations = %d after Cleanup; want %d", got, base)
	}
	d.Close()
	if fakecuda.LiveAllocations() != 0 || fakecuda.Reclaimed() != 1 || fakecuda.Handles() != 0 || fakecuda.Retained() != 0 {
		t.Errorf("after Close: %d allocations (%d reclaimed with the context), %d handles, %d references",
			fakecuda.LiveAllocations(), fakecuda.Reclaimed(), fakecuda.Handles(), fakecuda.Retained())
	}
}
