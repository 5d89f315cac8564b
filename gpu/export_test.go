//go:build cgo

package gpu

import "github.com/lowrank-go/lowrank/la"

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
