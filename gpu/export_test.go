//go:build cgo

package gpu

import (
	"time"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/la"
)

// LiveAllocations returns the number of device allocations not yet freed,
// over the whole process (for leak tests).
func LiveAllocations() int64 { return cuda.LiveAllocations() }

// SetMemoryLimitForTest caps the free device memory the workspace plans
// see (0 removes the cap) and returns the previous cap.
func SetMemoryLimitForTest(bytes uint64) uint64 {
	old := memLimit
	memLimit = bytes
	return old
}

// FusedError returns why app (a float32 or float64 cuda Applier) could not
// use the fused kernel, or nil.
func FusedError(app any) error {
	switch a := app.(type) {
	case *applier[float32]:
		return a.fusedErr
	case *applier[float64]:
		return a.fusedErr
	}
	return nil
}

var _ la.Applier[float32] = (*applier[float32])(nil)

// NewWithLoader returns a backend with a device of its own, opened through
// l (a fake CUDA installation) instead of dlopen. CloseDevice closes it.
func NewWithLoader(l cuda.Loader) *Backend {
	return &Backend{open: func() (*cuda.Device, error) { return cuda.Open(cuda.Config{Loader: l}) }}
}

// CloseDevice closes the device of a backend made by NewWithLoader.
func (b *Backend) CloseDevice() {
	if b.open != nil && b.dev != nil {
		b.dev.Close()
	}
}

// SetSharedLoaderForTest makes the process's shared device (the one every
// New backend uses, and so lowrank's registry) open through l. It takes
// effect only before the shared device is first opened.
func SetSharedLoaderForTest(l cuda.Loader) { shared.loader = l }

// DeviceTime runs f and returns the time the device spent between the
// start and the end of f's work, measured with CUDA events on the stream
// (for benchmarks).
func (b *Backend) DeviceTime(f func() error) (time.Duration, error) {
	if err := b.Init(); err != nil {
		return 0, err
	}
	var start, end cuda.Event
	if err := b.dev.Do(func(c *cuda.Ctx) error {
		var err error
		if start, err = c.NewEvent(); err != nil {
			return err
		}
		if end, err = c.NewEvent(); err != nil {
			c.DestroyEvent(start)
			return err
		}
		return c.Record(start)
	}); err != nil {
		return 0, err
	}
	ferr := f()
	var ms float32
	err := b.dev.Do(func(c *cuda.Ctx) error {
		defer c.DestroyEvent(start)
		defer c.DestroyEvent(end)
		if err := c.Record(end); err != nil {
			return err
		}
		var err error
		ms, err = c.Elapsed(start, end)
		return err
	})
	if ferr != nil {
		return 0, ferr
	}
	return time.Duration(float64(ms) * float64(time.Millisecond)), err
}
