package cuda

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoCgo is returned by Open in a binary built with CGO_ENABLED=0. Like
// a *LoadError, its text is a reason, shown after the backend's name.
var ErrNoCgo = errors.New("cuda backend needs cgo (built with CGO_ENABLED=0)")

// ErrClosed is returned by Device methods after Close.
var ErrClosed = errors.New("cuda: device closed")

// ErrOutOfMemory is matched (errors.Is) by every *Error that ran out of
// device memory: CUDA_ERROR_OUT_OF_MEMORY, CUBLAS_STATUS_ALLOC_FAILED,
// CUSOLVER_STATUS_ALLOC_FAILED, NVRTC_ERROR_OUT_OF_MEMORY. The gpu package
// maps it to la.ErrDeviceMemory, on which lowrank reruns on the CPU.
var ErrOutOfMemory = errors.New("cuda: out of device memory")

// ErrNoConvergence is matched by the *Error of a cuSOLVER SVD whose
// devInfo is positive: the solver did not converge.
var ErrNoConvergence = errors.New("cuda: the solver did not converge")

// Library names used in errors.
const (
	LibDriver   = "libcuda"
	LibCUBLAS   = "cublas"
	LibCUSOLVER = "cusolver"
	LibNVRTC    = "nvrtc"
)

// Error is a failed call into a CUDA library: it names the library, the
// call and the status, and gives advice for the common failures:
//
//	cuda: cusolverDnSgesvd: CUSOLVER_STATUS_INVALID_VALUE
//	cuda: cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (1048576 bytes): the GPU is out of memory
//	cuda: cusolverDnDgesvdj: devInfo = 3 (50×30): the SVD did not converge
//
// A cuSOLVER routine that returns success but reports a failure in devInfo
// is an *Error too (see DevInfoError). errors.Is(err, ErrOutOfMemory)
// reports whether the call ran out of device memory, errors.Is(err,
// ErrNoConvergence) whether an SVD did not converge.
type Error struct {
	Lib     string // LibDriver, LibCUBLAS, LibCUSOLVER or LibNVRTC
	Call    string // the C function, e.g. "cusolverDnSgesvd"
	Status  int    // the status code it returned (0 for a devInfo failure)
	Name    string // the status name, e.g. "CUSOLVER_STATUS_INVALID_VALUE", or "devInfo = -4"
	DevInfo int    // cuSOLVER's devInfo when the call itself succeeded, else 0
	Advice  string // what to do about it, or ""
	Detail  string // extra context (an NVRTC log, the matrix shape), or ""
}

func (e *Error) Error() string { return "cuda: " + e.text() }

// text is the error without the package prefix, for the reasons of
// LoadError and LostError.
func (e *Error) text() string {
	var b strings.Builder
	b.WriteString(e.Call)
	b.WriteString(": ")
	b.WriteString(e.Name)
	if e.Detail != "" {
		b.WriteString(" (")
		b.WriteString(e.Detail)
		b.WriteString(")")
	}
	if e.Advice != "" {
		b.WriteString(": ")
		b.WriteString(e.Advice)
	}
	return b.String()
}

// Is reports whether e ran out of memory (target ErrOutOfMemory) or is an
// SVD that did not converge (target ErrNoConvergence).
func (e *Error) Is(target error) bool {
	switch target {
	case ErrOutOfMemory:
		return e.outOfMemory()
	case ErrNoConvergence:
		return e.DevInfo > 0
	}
	return false
}

// DevInfoError returns the error of the cuSOLVER routine call that
// returned success but wrote info ≠ 0 to devInfo: a negative info names
// the wrong parameter, a positive one means (for the SVD routines) that
// the solver did not converge, and matches ErrNoConvergence. detail (the
// matrix shape, say) may be "".
func DevInfoError(call string, info int, detail string) *Error {
	e := &Error{Lib: LibCUSOLVER, Call: call, Name: fmt.Sprintf("devInfo = %d", info), DevInfo: info, Detail: detail}
	if info < 0 {
		e.Advice = fmt.Sprintf("parameter %d is wrong", -info)
	} else {
		e.Advice = "the SVD did not converge"
	}
	return e
}

func (e *Error) outOfMemory() bool {
	switch e.Lib {
	case LibDriver:
		return e.Status == cuErrorOutOfMemory
	case LibCUBLAS:
		return e.Status == cublasStatusAllocFailed
	case LibCUSOLVER:
		return e.Status == cusolverStatusAllocFailed
	case LibNVRTC:
		return e.Status == nvrtcErrorOutOfMemory
	}
	return false
}

// Status codes the package acts on (cuda.h, cublas_api.h,
// cusolver_common.h).
const (
	cuSuccess                 = 0
	cuErrorInvalidValue       = 1
	cuErrorOutOfMemory        = 2
	cuErrorNotInitialized     = 3
	cuErrorStubLibrary        = 34
	cuErrorRequiresNewer      = 36
	cuErrorDeviceUnavailable  = 46
	cuErrorNoDevice           = 100
	cuErrorInvalidDevice      = 101
	cuErrorNoBinaryForGPU     = 209
	cuErrorInvalidPTX         = 218
	cuErrorUnsupportedPTX     = 222
	cuErrorSystemNotReady     = 802
	cuErrorDriverMismatch     = 803
	cuErrorCompatNotSupported = 804
	cuErrorNotSupported       = 801
	cuErrorInsufficientDriver = 35 // the runtime's cudaErrorInsufficientDriver; not in cuda.h

	cublasStatusAllocFailed   = 3
	cusolverStatusAllocFailed = 2
	nvrtcErrorOutOfMemory     = 1
)

var cuResultNames = map[int]string{
	0: "CUDA_SUCCESS", 1: "CUDA_ERROR_INVALID_VALUE", 2: "CUDA_ERROR_OUT_OF_MEMORY",
	3: "CUDA_ERROR_NOT_INITIALIZED", 4: "CUDA_ERROR_DEINITIALIZED", 34: "CUDA_ERROR_STUB_LIBRARY",
	35: "CUDA_ERROR_INSUFFICIENT_DRIVER", 36: "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER",
	46: "CUDA_ERROR_DEVICE_UNAVAILABLE", 100: "CUDA_ERROR_NO_DEVICE", 101: "CUDA_ERROR_INVALID_DEVICE",
	200: "CUDA_ERROR_INVALID_IMAGE", 201: "CUDA_ERROR_INVALID_CONTEXT", 209: "CUDA_ERROR_NO_BINARY_FOR_GPU",
	218: "CUDA_ERROR_INVALID_PTX", 222: "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", 400: "CUDA_ERROR_INVALID_HANDLE",
	214: "CUDA_ERROR_ECC_UNCORRECTABLE",
	500: "CUDA_ERROR_NOT_FOUND", 600: "CUDA_ERROR_NOT_READY", 700: "CUDA_ERROR_ILLEGAL_ADDRESS",
	701: "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", 702: "CUDA_ERROR_LAUNCH_TIMEOUT", 710: "CUDA_ERROR_ASSERT",
	714: "CUDA_ERROR_HARDWARE_STACK_ERROR", 715: "CUDA_ERROR_ILLEGAL_INSTRUCTION", 716: "CUDA_ERROR_MISALIGNED_ADDRESS",
	717: "CUDA_ERROR_INVALID_ADDRESS_SPACE", 718: "CUDA_ERROR_INVALID_PC", 719: "CUDA_ERROR_LAUNCH_FAILED",
	800: "CUDA_ERROR_NOT_PERMITTED", 801: "CUDA_ERROR_NOT_SUPPORTED", 802: "CUDA_ERROR_SYSTEM_NOT_READY",
	803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH", 804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
	999: "CUDA_ERROR_UNKNOWN",
}

var cublasNames = map[int]string{
	0: "CUBLAS_STATUS_SUCCESS", 1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
	7: "CUBLAS_STATUS_INVALID_VALUE", 8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR",
	13: "CUBLAS_STATUS_EXECUTION_FAILED", 14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED",
	16: "CUBLAS_STATUS_LICENSE_ERROR",
}

var cusolverNames = map[int]string{
	0: "CUSOLVER_STATUS_SUCCESS", 1: "CUSOLVER_STATUS_NOT_INITIALIZED", 2: "CUSOLVER_STATUS_ALLOC_FAILED",
	3: "CUSOLVER_STATUS_INVALID_VALUE", 4: "CUSOLVER_STATUS_ARCH_MISMATCH", 5: "CUSOLVER_STATUS_MAPPING_ERROR",
	6: "CUSOLVER_STATUS_EXECUTION_FAILED", 7: "CUSOLVER_STATUS_INTERNAL_ERROR",
	8: "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED", 9: "CUSOLVER_STATUS_NOT_SUPPORTED",
	10: "CUSOLVER_STATUS_ZERO_PIVOT", 11: "CUSOLVER_STATUS_INVALID_LICENSE", 31: "CUSOLVER_STATUS_INVALID_WORKSPACE",
}

var nvrtcNames = map[int]string{
	0: "NVRTC_SUCCESS", 1: "NVRTC_ERROR_OUT_OF_MEMORY", 2: "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
	3: "NVRTC_ERROR_INVALID_INPUT", 4: "NVRTC_ERROR_INVALID_PROGRAM", 5: "NVRTC_ERROR_INVALID_OPTION",
	6: "NVRTC_ERROR_COMPILATION", 7: "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE", 11: "NVRTC_ERROR_INTERNAL_ERROR",
}

// StatusName returns the symbolic name of status code s of library lib.
func StatusName(lib string, s int) string {
	var t map[int]string
	switch lib {
	case LibDriver:
		t = cuResultNames
	case LibCUBLAS:
		t = cublasNames
	case LibCUSOLVER:
		t = cusolverNames
	case LibNVRTC:
		t = nvrtcNames
	}
	if n, ok := t[s]; ok {
		return n
	}
	return fmt.Sprintf("%s status %d", lib, s)
}

// advice says what to do about the common failures.
func advice(lib, call string, s int) string {
	switch lib {
	case LibDriver:
		switch s {
		case cuErrorNoDevice:
			return "no CUDA device visible (check nvidia-smi, CUDA_VISIBLE_DEVICES, and in Docker NVIDIA_VISIBLE_DEVICES and --gpus all)"
		case cuErrorStubLibrary:
			return "the libcuda.so.1 found is the toolkit's stub, not the driver's: remove the stubs folder from LD_LIBRARY_PATH"
		case cuErrorInsufficientDriver, cuErrorRequiresNewer:
			return "the NVIDIA driver is too old for these CUDA libraries: upgrade the driver or use an older CUDA"
		case cuErrorDriverMismatch:
			return "libcuda.so.1 does not match the loaded NVIDIA kernel module (a CUDA compat library on a newer driver, or a driver update without reboot)"
		case cuErrorCompatNotSupported:
			return "CUDA forward compatibility is not supported on this GPU: use libraries no newer than the driver"
		case cuErrorDeviceUnavailable:
			return "the GPU is busy or in exclusive-process mode (see nvidia-smi)"
		case cuErrorSystemNotReady:
			return "the NVIDIA system services are not ready (fabric manager on NVSwitch systems?)"
		case cuErrorOutOfMemory:
			return "the GPU is out of memory"
		case cuErrorNotInitialized:
			return "cuInit has not succeeded"
		case cuErrorNoBinaryForGPU, cuErrorInvalidPTX, cuErrorUnsupportedPTX:
			return "the kernel was compiled for another architecture or by an NVRTC newer than the driver"
		}
		if contextLost(s) {
			return "a GPU kernel faulted and the context is lost: no CUDA call can succeed in this process any more"
		}
	case LibCUBLAS:
		if s == cublasStatusAllocFailed {
			return "the GPU is out of memory"
		}
	case LibCUSOLVER:
		if s == cusolverStatusAllocFailed {
			return "the GPU is out of memory"
		}
	case LibNVRTC:
		if s == nvrtcErrorOutOfMemory {
			return "out of host memory while compiling a kernel"
		}
	}
	return ""
}

// newError returns the typed error for status s of call, or nil for
// success (status 0 in every library).
func newError(lib, call string, s int) error {
	if s == 0 {
		return nil
	}
	return &Error{Lib: lib, Call: call, Status: s, Name: StatusName(lib, s), Advice: advice(lib, call, s)}
}

// contextLost reports whether CUresult s leaves the context unusable: after
// a kernel fault "the process is left in an inconsistent state and any
// further CUDA work will return the same error" (cuda.h), until the
// process ends.
func contextLost(s int) bool {
	switch s {
	case 214, // CUDA_ERROR_ECC_UNCORRECTABLE
		700, // CUDA_ERROR_ILLEGAL_ADDRESS
		702, // CUDA_ERROR_LAUNCH_TIMEOUT
		710, // CUDA_ERROR_ASSERT
		714, // CUDA_ERROR_HARDWARE_STACK_ERROR
		715, // CUDA_ERROR_ILLEGAL_INSTRUCTION
		716, // CUDA_ERROR_MISALIGNED_ADDRESS
		717, // CUDA_ERROR_INVALID_ADDRESS_SPACE
		718, // CUDA_ERROR_INVALID_PC
		719: // CUDA_ERROR_LAUNCH_FAILED
		return true
	}
	return false
}

// LostError is returned by every Device call after a driver call lost the
// context (see contextLost). It names that call and its status; errors.As
// reaches the original *Error.
type LostError struct {
	Err *Error
}

func (e *LostError) Error() string {
	return "cuda: the GPU context was lost (" + e.Err.Call + ": " + e.Err.Name + "); restart the process to use the GPU again"
}
func (e *LostError) Unwrap() error { return e.Err }

// LoadError says why the CUDA libraries could not be loaded: a library that
// is missing, a symbol that is missing, a driver too old for the libraries
// found. Its text is a reason, shown after the backend's name ("cuda  not
// available: <reason>", "lowrank: backend cuda: <reason>"), so unlike the
// package's other errors it does not start with "cuda: ".
type LoadError struct {
	Msg string // the whole reason
	Err error  // the underlying error (a dlerror text, an *Error), or nil
}

func (e *LoadError) Error() string { return e.Msg }
func (e *LoadError) Unwrap() error { return e.Err }

// loadError turns the error of a call made while opening the device into a
// *LoadError whose reason is the error without the "cuda: " prefix.
func loadError(err error) *LoadError {
	if le, ok := err.(*LoadError); ok {
		return le
	}
	msg := err.Error()
	if e, ok := err.(*Error); ok {
		msg = e.text()
	}
	return &LoadError{Msg: msg, Err: err}
}

// NoDriverMessage is the reason given when libcuda.so.1 cannot be opened.
const NoDriverMessage = "libcuda.so.1 not found: no NVIDIA driver visible (in Docker, run with --gpus all)"
