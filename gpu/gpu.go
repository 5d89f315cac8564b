// Package gpu is lowrank's CUDA backend: dense linear algebra on an NVIDIA
// GPU through cuBLAS, cuSOLVER and NVRTC, which lowrank/internal/cuda loads
// at run time. This package itself is plain Go.
//
// # Storage
//
// A matrix lives in device memory in the caller's row-major layout with a
// row stride (leading dimension), so that uploads and downloads are plain
// copies and a View shares storage. cuBLAS, being column-major, sees a
// row-major r×c matrix as the column-major c×r matrix of its transpose;
// every call is mapped accordingly:
//
//	C = op(A)·op(B)   (row-major)   ⇔   Cᵀ = op(B)ᵀ·op(A)ᵀ   (column-major)
//
// Transfers go through pinned host buffers; nothing but small vectors
// (scales, norms, singular values) crosses to the host inside the
// algorithms, so the randomized SVD, truncation and the split run on the
// device.
//
// # Exact SVD
//
// cuSOLVER's gesvd needs rows ≥ columns; the matrix is copied into a
// column-major work buffer of that shape (transposed when tall), so the
// caller's matrix is kept and any solver can be retried. The solver is
// chosen by ChooseSolver (provisional rule: gesvdj up to 1024, gesvd
// above; gesvdp on request), overridable with LOWRANK_CUDA_SVD. Before
// the call the workspace is sized with *_bufferSize and compared with
// cuMemGetInfo: when it does not fit, gesvd is tried; when nothing fits the
// error matches la.ErrDeviceMemory and lowrank reruns on the CPU.
//
// # Apply
//
// NewApplier uploads B and A once. Apply sends x (and the bias) in one
// pinned copy, computes A·x then B·(A·x) with cublas?gemv (one vector) or
// ?gemm (a batch), adds the bias on the device, and copies y back. With
// LOWRANK_CUDA_FUSED=1 a fused NVRTC kernel (kernels/fused_apply.cu) does
// both products and the bias in one launch for up to FusedMaxBatch vectors;
// it is off by default until measured faster on a GPU
// (scripts/gpu-check.sh benchmarks both).
//
// # Failures
//
// Out of device memory (an allocation, a library's own allocation, or a
// workspace plan that does not fit) is an error matching la.ErrDeviceMemory,
// on which lowrank.Factorize reruns on the CPU and logs why. A solver that
// does not converge (devInfo > 0), or whose workspace does not fit, is
// retried with gesvd; when that fails too the error wraps
// la.ErrNoConvergence (or la.ErrDeviceMemory). Any other failed call is a
// *cuda.Error naming the library, the call and the status, and the device
// stays usable; a kernel fault loses the context, after which every call
// fails at once with a *cuda.LostError (restart the process). Device
// memory is freed on every path. docs/gpufaults.md lists each fault and
// the test that injects it through the fake CUDA of internal/testkit/fakecuda.
//
// # Threads
//
// All work runs on the one locked OS thread of internal/cuda's Device, so
// the engines are safe for concurrent use.
package gpu

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/la"
)

// Backend is the CUDA backend. Create it with New; Init loads the
// libraries on first use.
type Backend struct {
	once        sync.Once
	initialized atomic.Bool // Init has run
	err         error
	dev         *cuda.Device
	cfg         settings
	f32         la.Engine[float32]
	f64         la.Engine[float64]

	// open opens the device; nil means the process's shared device.
	// Tests give a backend its own device over a fake CUDA installation.
	open func() (*cuda.Device, error)
	// ordinal is a NewDevice backend's device.
	ordinal int
}

// New returns the CUDA backend. It loads nothing; Init does.
func New() *Backend { return &Backend{} }

// Name returns "cuda".
func (b *Backend) Name() string { return "cuda" }

// The device is opened once per process and shared by every Backend.
var shared struct {
	once   sync.Once
	dev    *cuda.Device
	err    error
	loader cuda.Loader // nil: dlopen; tests set a fake before first use
}

func openDevice() (*cuda.Device, error) {
	shared.once.Do(func() {
		shared.dev, shared.err = cuda.Open(cuda.Config{Loader: shared.loader})
	})
	return shared.dev, shared.err
}

// Absent reports, without loading the driver, that this machine certainly
// has no NVIDIA GPU, and why (cuda.NoGPU: Linux on amd64, sysfs lists no
// NVIDIA PCI device, no /dev/dxg, LOWRANK_CUDA_LIB_DIR unset); false when
// it cannot tell, when Init has already run, and for a backend over a
// loader of its own (tests' fake CUDA). The automatic backend choice
// asks it before Init, whose cuInit takes 100–200 ms to fail where
// NVIDIA's libcuda is installed without a GPU.
func (b *Backend) Absent() (string, bool) {
	if b.open != nil || shared.loader != nil || b.initialized.Load() {
		return "", false
	}
	return cuda.NoGPU()
}

// Init loads libcuda, cuBLAS, cuSOLVER and NVRTC and opens device 0 (after
// CUDA_VISIBLE_DEVICES) the first time it is called, and returns why the
// backend cannot run, or nil. Later calls return the same answer.
func (b *Backend) Init() error {
	b.once.Do(func() {
		defer b.initialized.Store(true)
		if err := b.cfg.fromEnv(); err != nil {
			b.err = err
			return
		}
		open := b.open
		if open == nil {
			open = openDevice
		}
		dev, err := open()
		if err != nil {
			b.err = err
			return
		}
		b.dev = dev
		b.f32, b.f64 = newEngines(dev, &b.cfg)
	})
	return b.err
}

// Describe lists the device, its memory, compute capability, the driver
// and each library's version and path, and the backend's choices.
func (b *Backend) Describe() []string {
	if b.Init() != nil {
		return nil
	}
	lines := b.dev.Info().Lines()
	solver := Solver(b.cfg.solver.Load())
	if solver == SolverAuto {
		lines = append(lines, fmt.Sprintf("exact SVD: gesvdj for max(m,n) ≤ %d, gesvd above (provisional rule; %s overrides)", JacobiMaxDim, SolverEnv))
	} else {
		lines = append(lines, fmt.Sprintf("exact SVD: %s (%s)", solver, SolverEnv))
	}
	if b.cfg.fused.Load() {
		lines = append(lines, fmt.Sprintf("apply: fused NVRTC kernel for batches ≤ %d, cuBLAS above (%s=1)", FusedMaxBatch, FusedEnv))
	} else {
		lines = append(lines, fmt.Sprintf("apply: cuBLAS gemv/gemm (%s=1 selects the fused kernel)", FusedEnv))
	}
	lines = append(lines, "threads: one locked OS thread owns the context, stream and handles")
	if err := b.dev.Lost(); err != nil {
		lines = append(lines, "UNUSABLE: "+err.Error())
	}
	return lines
}

// Float64 returns the float64 engine, or nil when Init fails.
func (b *Backend) Float64() la.Engine[float64] {
	if b.Init() != nil {
		return nil
	}
	return b.f64
}

// Float32 returns the float32 engine, or nil when Init fails.
func (b *Backend) Float32() la.Engine[float32] {
	if b.Init() != nil {
		return nil
	}
	return b.f32
}

// SetSolver selects the exact SVD solver for this backend's engines
// (SolverAuto restores the rule). It overrides LOWRANK_CUDA_SVD.
func (b *Backend) SetSolver(s Solver) { b.cfg.solver.Store(int32(s)) }

// SetFusedApply turns the fused apply kernel on or off for the following
// Apply calls of this backend's Appliers. It overrides LOWRANK_CUDA_FUSED.
func (b *Backend) SetFusedApply(on bool) { b.cfg.fused.Store(on) }
