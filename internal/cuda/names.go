//go:build cgo

package cuda

/*
#include "lowrank_cuda.h"
*/
import "C"

// The libraries' own names for their status codes, for codes the tables
// of errors.go lack (and for the tests that check those tables against
// the real libraries). Each returns "" when the library cannot say.

// cuErrorName returns cuGetErrorName's name for CUresult code.
func (s *libs) cuErrorName(code int) string {
	if s.drv.cuGetErrorName == nil {
		return ""
	}
	var name *C.char
	if C.lrc_cuGetErrorName(s.drv.cuGetErrorName, C.int(code), &name) != 0 || name == nil {
		return ""
	}
	return C.GoString(name)
}

// cublasStatusName returns cublasGetStatusName's name for code (cuBLAS
// 11.4.2+).
func (s *libs) cublasStatusName(code int) string {
	if s.blas.getStatusName == nil {
		return ""
	}
	if n := C.lrc_cublasGetStatusName(s.blas.getStatusName, C.int(code)); n != nil {
		return C.GoString(n)
	}
	return ""
}

// nvrtcErrorString returns nvrtcGetErrorString's name for code.
func (s *libs) nvrtcErrorString(code int) string {
	if s.nvrtc.getErrorString == nil {
		return ""
	}
	if n := C.lrc_nvrtcGetErrorString(s.nvrtc.getErrorString, C.int(code)); n != nil {
		return C.GoString(n)
	}
	return ""
}

// driverVersion calls cuDriverGetVersion, which needs no cuInit, and
// returns the version and the status.
func (s *libs) driverVersion() (version, status int) {
	var v C.int
	r := C.lrc_cuDriverGetVersion(s.drv.cuDriverGetVersion, &v)
	return int(v), int(r)
}
