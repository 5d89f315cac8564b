package gpu

import (
	"errors"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/la"
)

// laError makes an error of internal/cuda match the la sentinel the root
// package acts on, keeping its text and its *cuda.Error:
// cuda.ErrOutOfMemory also matches la.ErrDeviceMemory (lowrank then reruns
// on the CPU) and cuda.ErrNoConvergence also matches la.ErrNoConvergence.
func laError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cuda.ErrOutOfMemory) && !errors.Is(err, la.ErrDeviceMemory):
		return &mapped{err: err, sentinel: la.ErrDeviceMemory}
	case errors.Is(err, cuda.ErrNoConvergence) && !errors.Is(err, la.ErrNoConvergence):
		return &mapped{err: err, sentinel: la.ErrNoConvergence}
	}
	return err
}

// mapped is err that also matches sentinel.
type mapped struct {
	err, sentinel error
}

func (m *mapped) Error() string   { return m.err.Error() }
func (m *mapped) Unwrap() []error { return []error{m.err, m.sentinel} }
