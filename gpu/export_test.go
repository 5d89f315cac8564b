//go:build cgo

package gpu

import (
	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/la"
)

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
