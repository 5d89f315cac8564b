// Package cpu is lowrank's host backend. On first use it loads a system
// BLAS/LAPACK when one is installed (OpenBLAS, MKL, or Debian's
// libblas.so.3 with liblapack.so.3; see internal/blas and LOWRANK_BLAS)
// and computes with it, float32 in float32 (sgemm, sgeqrf family,
// sgesdd). Without one, or with LOWRANK_BLAS=gonum, or in a binary built
// with CGO_ENABLED=0, it runs on gonum's pure-Go BLAS and LAPACK, which
// implements LAPACK in float64 only: float32 QR and SVD are then computed
// in float64 and rounded back, while float32 products stay in float32.
// Either way the backend is always available.
package cpu

import (
	"errors"
	"fmt"
	"github.com/lowrank-go/lowrank/internal/bf16"
	"strings"
	"sync"

	"github.com/lowrank-go/lowrank/internal/blas"
	"github.com/lowrank-go/lowrank/internal/cpulapack"
	"github.com/lowrank-go/lowrank/la"
)

// Backend is the CPU backend. Create it with New or NewGonum.
type Backend struct {
	once  sync.Once
	gonum bool // never load a system library
	f64   engine[float64]
	f32   engine[float32]
	lib   *blas.Lib
	why   string // why gonum is used
}

// New returns the CPU backend. The BLAS it runs on is chosen on first use
// (Init, Describe, Float32, Float64): a system BLAS/LAPACK when one loads,
// gonum otherwise.
func New() *Backend { return &Backend{} }

// NewGonum returns a CPU backend that always runs on gonum's pure-Go BLAS
// and LAPACK, whatever is installed (for comparisons and tests).
func NewGonum() *Backend { return &Backend{gonum: true} }

func (b *Backend) load() {
	b.once.Do(func() {
		if !b.gonum {
			lib, err := blas.Load()
			if err == nil {
				b.lib = lib
				useLibrary(lib)
				b.f64 = engine[float64]{k: system[float64]{l: lib}}
				b.f32 = engine[float32]{k: system[float32]{l: lib}}
				return
			}
			b.why = err.Error()
			if errors.Is(err, blas.ErrDisabled) {
				b.why = blas.Env + "=gonum"
			}
		} else {
			b.why = "requested (cpu.NewGonum)"
		}
		k64 := newGonum64()
		b.f64 = engine[float64]{k: k64}
		b.f32 = engine[float32]{k: newGonum32(k64)}
	})
}

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// Init reports whether the backend can run; the CPU backend always can.
// It chooses the BLAS the backend runs on.
func (b *Backend) Init() error {
	b.load()
	return nil
}

// system reports whether the backend runs on a system BLAS/LAPACK. The
// lowrank package asks it through internal/cpulapack.
func (b *Backend) system() bool {
	b.load()
	return b.lib != nil
}

// init only hands internal/cpulapack a function; it loads nothing.
func init() {
	cpulapack.System = func(b any) (bool, bool) {
		c, ok := b.(*Backend)
		if !ok {
			return false, false
		}
		return c.system(), true
	}
}

// Describe returns what the backend runs on: the BLAS/LAPACK library, its
// version, path and threads, or why the pure-Go gonum is used.
func (b *Backend) Describe() []string {
	b.load()
	l := b.lib
	if l == nil {
		return []string{"BLAS/LAPACK: gonum (pure Go; float32 QR and SVD in float64): " + b.why, bf16Line()}
	}
	name := l.Vendor
	if l.Version != "" {
		name = l.Version
	} else if l.Vendor == "BLAS/LAPACK" {
		name = "system library of unknown vendor (no version query; netlib's reference?)"
	}
	var extra []string
	if l.Core != "" && !strings.Contains(name, l.Core) {
		extra = append(extra, l.Core+" kernels")
	}
	if l.Threads > 0 {
		extra = append(extra, fmt.Sprintf("%d threads", l.Threads))
	}
	lines := []string{"BLAS/LAPACK: " + name}
	if len(extra) > 0 {
		lines[0] += " (" + strings.Join(extra, ", ") + ")"
	}
	lines = append(lines, "library: "+strings.Join(l.Paths, ", "))
	if l.CoreSet != "" {
		lines = append(lines, fmt.Sprintf("%s=%s set by lowrank from the CPU flags (set it to override)", blas.CoreTypeEnv, l.CoreSet))
	}
	lines = append(lines, "float32 computed in float32 (sgemm, sgeqrf family, sgesdd); "+blas.Env+"=gonum forces pure Go")
	return append(lines, bf16Line())
}

// bf16Line says how the cpu backend computes a BF16 sketch
// (WithSketchPrecision(SketchBF16), --sketch-precision bf16).
func bf16Line() string {
	if bf16.Available() {
		if bf16.OnThreadPool() {
			return "bf16 sketch: AVX-512 BF16 kernel (VDPBF16PS), its parallel products on OpenBLAS's worker threads"
		}
		return "bf16 sketch: AVX-512 BF16 kernel (VDPBF16PS)"
	}
	return "bf16 sketch: emulated in float32, slower (the kernel needs AVX512_BF16, a cgo build and GCC ≥ 10 or clang ≥ 9)"
}

// Float64 returns the float64 engine.
func (b *Backend) Float64() la.Engine[float64] {
	b.load()
	return b.f64
}

// Float32 returns the float32 engine.
func (b *Backend) Float32() la.Engine[float32] {
	b.load()
	return b.f32
}
