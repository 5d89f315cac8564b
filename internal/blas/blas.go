// Package blas loads a system BLAS and LAPACK (OpenBLAS, MKL, or the
// Debian libblas.so.3/liblapack.so.3 pair) at run time with dlopen
// (through internal/dl), the way internal/cuda loads CUDA: no header and
// no library is needed to build, one binary uses the library where it is
// installed, and the portable gonum path runs where it is not.
//
// Nothing is loaded when the package is imported: Load opens the library
// on its first call, inside a sync.Once, and every later call returns the
// same answer. The environment variable LOWRANK_BLAS chooses:
//
//	auto (or unset)   libopenblas.so.0, then MKL's libmkl_rt.so.2 / .so,
//	                  then libblas.so.3 with liblapack.so.3
//	gonum             no system library (Load returns ErrDisabled)
//	/path/lib.so      that library; several paths separated by ':' are
//	                  searched in order (a BLAS, then a LAPACK)
//
// The wrappers take row-major matrices for BLAS (CBLAS does the layout)
// and column-major ones for LAPACK, which is Fortran; callers map a
// row-major m×n matrix to the column-major n×m one over the same memory
// instead of copying. Fortran integers are 32-bit (the LP64 interface, the
// default of every library tried); dimensions beyond that are an error.
package blas

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
)

// Env is the environment variable that selects the library.
const Env = "LOWRANK_BLAS"

// Lib is a loaded BLAS/LAPACK. Its methods are safe for concurrent use.
type Lib struct {
	// Vendor is "OpenBLAS", "MKL" or "BLAS/LAPACK" (an unknown vendor).
	Vendor string
	// Version is the library's own description (openblas_get_config,
	// MKL_Get_Version_String), or "".
	Version string
	// Paths are the files the symbols were found in, BLAS first.
	Paths []string
	// Threads is the library's thread count when it was loaded (0 when
	// it cannot be asked): OPENBLAS_NUM_THREADS, MKL_NUM_THREADS or the
	// number of processors. lowrank never asks for more.
	Threads int
	// ThreadControl names the function SetThreads calls
	// ("openblas_set_num_threads", "MKL_Set_Num_Threads"), or "" when the
	// library has none.
	ThreadControl string
	// Core is OpenBLAS's kernel family (openblas_get_corename), or "".
	Core string
	// CoreSet is the OPENBLAS_CORETYPE value Load chose from the CPU's
	// flags because none was set, or "".
	CoreSet string

	sym symbols
}

// ErrDisabled is returned by Load when LOWRANK_BLAS=gonum.
var ErrDisabled = errors.New("blas: system BLAS disabled by " + Env + "=gonum")

// ErrNoCgo is returned by Load in a binary built with CGO_ENABLED=0.
var ErrNoCgo = errors.New("blas: system BLAS needs cgo (this binary was built with CGO_ENABLED=0)")

// LoadError says why no system library could be used.
type LoadError struct {
	// Tried lists each candidate with the reason it was rejected.
	Tried []string
}

func (e *LoadError) Error() string {
	return "blas: no system BLAS/LAPACK found (" + strings.Join(e.Tried, "; ") + ")"
}

// Error is a failed LAPACK call: a negative Info names the illegal
// argument, a positive one the routine's own failure (an SVD that did not
// converge).
type Error struct {
	Routine string // "sgesdd_"
	Info    int
	M, N    int
}

func (e *Error) Error() string {
	what := "did not converge"
	if e.Info < 0 {
		what = fmt.Sprintf("argument %d had an illegal value", -e.Info)
	}
	return fmt.Sprintf("blas: LAPACK %s on %d×%d: %s (info=%d)", e.Routine, e.M, e.N, what, e.Info)
}

// ErrLUBreakdown is returned by LUBasis when the library's LU factorization
// broke down (a pivot so small that its reciprocal overflowed).
var ErrLUBreakdown = errors.New("blas: LU factorization broke down (pivot below the smallest normal number)")

// ErrCholBreakdown is returned by CholBasis for a matrix too ill
// conditioned for its Gram matrix's Cholesky factorization.
var ErrCholBreakdown = errors.New("blas: CholeskyQR broke down (the columns are too close to dependent)")

// ErrNoChol is returned by CholBasis for a library without ?trmm,
// dpotrf or dtrtri.
var ErrNoChol = errors.New("blas: the library has no triangular product (?trmm), Cholesky factorization (dpotrf) or triangular inverse (dtrtri)")

// ErrNoLU is returned by LUBasis for a library without ?getrf.
var ErrNoLU = errors.New("blas: the library has no LU factorization (?getrf)")

// ErrTooLarge is returned for a dimension that a 32-bit Fortran integer
// cannot hold.
var ErrTooLarge = errors.New("blas: matrix too large for a 32-bit BLAS/LAPACK interface")

// candidates returns the library sets Load tries, in order, for the value
// of LOWRANK_BLAS (auto when empty); nil with ErrDisabled for gonum.
func candidates(env string) ([][]string, error) {
	switch v := strings.TrimSpace(env); strings.ToLower(v) {
	case "", "auto":
		return [][]string{
			{"libopenblas.so.0"},
			{"libmkl_rt.so.2"},
			{"libmkl_rt.so"},
			{"libblas.so.3", "liblapack.so.3"},
		}, nil
	case "gonum":
		return nil, ErrDisabled
	default:
		var set []string
		for _, p := range strings.Split(v, ":") {
			if p = strings.TrimSpace(p); p != "" {
				set = append(set, p)
			}
		}
		if len(set) == 0 {
			return nil, fmt.Errorf("blas: %s=%q; expected auto, gonum or a library path", Env, env)
		}
		return [][]string{set}, nil
	}
}

// fits reports whether every value fits in a 32-bit Fortran integer.
func fits(v ...int) bool {
	for _, x := range v {
		if x < math.MinInt32 || x > math.MaxInt32 {
			return false
		}
	}
	return true
}

// lwork turns a workspace size returned by a query (a float) into a slice
// length, rounding up: a float32 cannot hold every integer above 2²⁴.
func lwork(w float64) int {
	n := int(math.Ceil(w * (1 + 1e-6)))
	return max(n, 1)
}

func getenv() string { return os.Getenv(Env) }

// need returns the length a column-major m×n matrix with leading
// dimension ld occupies.
func need(m, n, ld int) int {
	if m == 0 || n == 0 {
		return 0
	}
	return (n-1)*ld + m
}

// check is one argument test: when bad, LAPACK would reject argument arg.
type check struct {
	bad bool
	arg int
}

// firstBad returns the number of the first argument whose check fails, or
// 0. LAPACK is never called with an illegal argument: the reference
// XERBLA stops the process.
func firstBad(cs ...check) int {
	for _, c := range cs {
		if c.bad {
			return c.arg
		}
	}
	return 0
}

// CoreTypeEnv is OpenBLAS's own variable that forces its kernel family
// in DYNAMIC_ARCH builds (Debian's, conda's, pip's).
const CoreTypeEnv = "OPENBLAS_CORETYPE"

// openblasCore returns the OpenBLAS kernel family this CPU supports, from
// the flags in /proc/cpuinfo: "SkylakeX" with AVX-512 (F, CD, BW, DQ, VL),
// "Haswell" with AVX2 and FMA, or "" (leave OpenBLAS's detection alone).
//
// OpenBLAS picks its kernels from the CPU's family and model numbers; a
// CPU newer than the library, or a virtual CPU with a generic model, falls
// back to the SSE3 "Prescott" kernels, five to eight times slower on a
// machine with AVX-512 (measured on this project's 2-core Xeon: SGEMM
// 4096³ ≈ 20 GFLOP/s against ≈ 140 with SkylakeX). Choosing from the
// feature flags cannot pick kernels the CPU lacks.
func openblasCore(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		has := map[string]bool{}
		for _, f := range strings.Fields(val) {
			has[f] = true
		}
		switch {
		case has["avx512f"] && has["avx512cd"] && has["avx512bw"] && has["avx512dq"] && has["avx512vl"]:
			return "SkylakeX"
		case has["avx2"] && has["fma"]:
			return "Haswell"
		}
		return ""
	}
	return ""
}

// chooseCore sets OPENBLAS_CORETYPE from the CPU's flags before OpenBLAS
// is loaded, unless the user set it, and returns what it set ("" for
// nothing).
func chooseCore() string {
	if _, set := os.LookupEnv(CoreTypeEnv); set {
		return ""
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	core := openblasCore(string(b))
	if core == "" || os.Setenv(CoreTypeEnv, core) != nil {
		return ""
	}
	return core
}
