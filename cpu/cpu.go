// Package cpu is lowrank's portable backend: dense linear algebra on the
// host through gonum (blas/gonum and lapack/gonum). It needs no cgo and is
// always available.
//
// gonum implements LAPACK in float64 only, so float32 QR and SVD are
// computed in float64 and rounded back; float32 products stay in float32.
package cpu

import "github.com/lowrank-go/lowrank/la"

// Backend is the CPU backend. The zero value is not usable; call New.
type Backend struct {
	f64 engine[float64]
	f32 engine[float32]
}

// New returns the CPU backend on gonum's pure-Go BLAS and LAPACK.
func New() *Backend {
	k64 := newGonum64()
	return &Backend{
		f64: engine[float64]{k: k64},
		f32: engine[float32]{k: newGonum32(k64)},
	}
}

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// Init reports whether the backend can run; the CPU backend always can.
func (b *Backend) Init() error { return nil }

// Describe returns what the backend runs on.
func (b *Backend) Describe() []string {
	return []string{"BLAS/LAPACK: gonum (pure Go)"}
}

// Float64 returns the float64 engine.
func (b *Backend) Float64() la.Engine[float64] { return b.f64 }

// Float32 returns the float32 engine.
func (b *Backend) Float32() la.Engine[float32] { return b.f32 }
