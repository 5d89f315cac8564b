// Package gpu is lowrank's CUDA backend.
//
// This first version only reserves the name: the CUDA implementation
// (cuSOLVER, cuBLAS and NVRTC loaded at run time) lands separately, and
// until then Init reports why the backend cannot be used.
package gpu

import (
	"errors"

	"github.com/lowrank-go/lowrank/la"
)

// Backend is the CUDA backend.
type Backend struct{}

// New returns the CUDA backend. It loads nothing; Init does.
func New() *Backend { return &Backend{} }

// Name returns "cuda".
func (b *Backend) Name() string { return "cuda" }

// Init reports why the backend cannot run.
func (b *Backend) Init() error {
	return errors.New("this build has no CUDA implementation yet")
}

// Describe returns nothing until the backend can run.
func (b *Backend) Describe() []string { return nil }

// Float64 returns nil: the backend cannot run.
func (b *Backend) Float64() la.Engine[float64] { return nil }

// Float32 returns nil: the backend cannot run.
func (b *Backend) Float32() la.Engine[float32] { return nil }
