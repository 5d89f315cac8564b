package gpu

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
)

// Solver is a cuSOLVER routine for the exact SVD.
type Solver int32

const (
	// SolverAuto applies the rule of ChooseSolver.
	SolverAuto Solver = iota
	// SolverGesvd is cusolverDn?gesvd: QR iteration, LAPACK's classic.
	SolverGesvd
	// SolverGesvdj is cusolverDn?gesvdj: one-sided Jacobi.
	SolverGesvdj
	// SolverGesvdp is cusolverDnXgesvdp: polar decomposition + syevd
	// (CUDA 11.1+).
	SolverGesvdp
)

// String returns "auto", "gesvd", "gesvdj" or "gesvdp".
func (s Solver) String() string {
	switch s {
	case SolverAuto:
		return "auto"
	case SolverGesvd:
		return "gesvd"
	case SolverGesvdj:
		return "gesvdj"
	case SolverGesvdp:
		return "gesvdp"
	}
	return fmt.Sprintf("Solver(%d)", int(s))
}

// ParseSolver parses a solver name.
func ParseSolver(name string) (Solver, error) {
	for _, s := range []Solver{SolverAuto, SolverGesvd, SolverGesvdj, SolverGesvdp} {
		if strings.EqualFold(strings.TrimSpace(name), s.String()) {
			return s, nil
		}
	}
	return SolverAuto, fmt.Errorf("lowrank: SVD solver %q; expected auto, gesvd, gesvdj or gesvdp", name)
}

// JacobiMaxDim is the largest max(m, n) for which SolverAuto uses gesvdj.
//
// PROVISIONAL: not measured by this project yet. It is JAX's threshold
// (gesvdj up to 1024, gesvd above), which also keeps gesvdj away from the
// sizes where PyTorch saw it fail to converge (pytorch#64237).
// scripts/gpu-check.sh benchmarks every solver at several shapes
// (BenchmarkExactSVD) so that a GPU session can set the rule from data.
const JacobiMaxDim = 1024

// ChooseSolver returns the solver the exact SVD of an m×n matrix uses when
// req is asked for:
//
//   - an explicit request is honoured (gesvdp only where cuSOLVER has it,
//     gesvdj otherwise);
//   - SolverAuto takes gesvdj (Jacobi) when max(m, n) ≤ JacobiMaxDim and
//     gesvd (QR iteration) above. gesvdp is never chosen automatically:
//     cuSOLVER documents that its polar decomposition may lose accuracy in
//     the singular vectors of (nearly) rank-deficient matrices, which is
//     exactly what low-rank compression feeds it.
//
// Whatever is chosen, the SVD falls back to gesvd when the solver does not
// converge or its workspace does not fit in device memory.
func ChooseSolver(req Solver, m, n int, hasGesvdp bool) Solver {
	switch req {
	case SolverGesvd, SolverGesvdj:
		return req
	case SolverGesvdp:
		if hasGesvdp {
			return req
		}
		return SolverGesvdj
	}
	if max(m, n) <= JacobiMaxDim {
		return SolverGesvdj
	}
	return SolverGesvd
}

// Environment variables read by Init.
const (
	// SolverEnv selects the exact SVD solver: auto (default), gesvd,
	// gesvdj or gesvdp.
	SolverEnv = "LOWRANK_CUDA_SVD"
	// FusedEnv set to 1 makes Apply use the fused NVRTC kernel for one
	// vector and small batches instead of two cuBLAS calls.
	FusedEnv = "LOWRANK_CUDA_FUSED"
)

// FusedMaxBatch is the largest batch the fused kernel takes.
const FusedMaxBatch = 64

// settings are the backend's run-time choices, shared by its engines.
type settings struct {
	solver atomic.Int32
	fused  atomic.Bool
}

func (s *settings) fromEnv() error {
	if v := os.Getenv(SolverEnv); v != "" {
		sv, err := ParseSolver(v)
		if err != nil {
			return fmt.Errorf("%s: %w", SolverEnv, err)
		}
		s.solver.Store(int32(sv))
	}
	switch strings.TrimSpace(os.Getenv(FusedEnv)) {
	case "", "0", "false", "off":
	case "1", "true", "on":
		s.fused.Store(true)
	default:
		return fmt.Errorf("%s=%q; expected 0 or 1", FusedEnv, os.Getenv(FusedEnv))
	}
	return nil
}
