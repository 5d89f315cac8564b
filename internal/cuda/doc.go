// Package cuda loads the CUDA driver, cuBLAS, cuSOLVER and NVRTC at run
// time and calls them. It is the only package of lowrank that uses cgo:
// everything above it (lowrank/gpu) is plain Go.
//
// # Loading
//
// Nothing is linked at build time and no CUDA header is needed to build:
// the package declares its own function-pointer types (lowrank_cuda.h),
// looks each entry point up with dlsym, and calls it through a small C
// trampoline (cgo cannot call a C function pointer). Open does, in order:
//
//  1. dlopen("libcuda.so.1") — the driver, which the NVIDIA container
//     toolkit mounts into containers started with --gpus; failing that the
//     GPU cannot be used: "libcuda.so.1 not found: no NVIDIA driver visible
//     (in Docker, run with --gpus all)".
//  2. cuInit(0), cuDriverGetVersion, cuDeviceGetCount; a failure is reported
//     with its status name and advice (CUDA_ERROR_NO_DEVICE,
//     CUDA_ERROR_STUB_LIBRARY, CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, …).
//  3. cuBLASLt, cuBLAS, nvJitLink, cuSPARSE and cuSOLVER — dependencies
//     first, all from one installation, by their versioned sonames, newest
//     CUDA major first but never above the driver's major (a driver for CUDA
//     12.x cannot run CUDA 13 libraries). The installations tried are
//     LOWRANK_CUDA_LIB_DIR alone when set; otherwise the folders of
//     LD_LIBRARY_PATH and of ldconfig (/etc/ld.so.conf), /usr/local/cuda/lib64
//     and /usr/local/cuda-X.Y/lib64, the distribution's library folders, and
//     the NVIDIA pip wheels of the Python installations found
//     (site-packages/nvidia/cu13/lib, site-packages/nvidia/*/lib).
//  4. NVRTC of the same major from the same installation, after its
//     builtins library; it is optional (only the fused kernels need it).
//
// Entry points are looked up by their versioned names where cuda.h maps the
// plain name onto one (cuMemAlloc_v2, cuStreamDestroy_v2, cublasSgemm_v2).
// dlerror is read in the same C call as the dlopen or dlsym it describes.
//
// # Threads
//
// All GPU work of a Device runs on one goroutine locked to one OS thread,
// which owns the primary context, the stream and the cuBLAS and cuSOLVER
// handles; Device.Do sends it jobs. See Device.
//
// # Errors
//
// Failed calls return *Error, naming the library, the call and the status
// ("cusolverDnSgesvd: CUSOLVER_STATUS_INVALID_VALUE"); out-of-memory
// statuses match la.ErrDeviceMemory with errors.Is. Failures to load return
// *LoadError, whose text is the reason the GPU cannot be used. Built with
// CGO_ENABLED=0, Open returns ErrNoCgo.
//
// A driver status that loses the context (a kernel fault such as
// CUDA_ERROR_LAUNCH_FAILED or CUDA_ERROR_ILLEGAL_ADDRESS; CUDA then fails
// every later call in the process) marks the Device lost: its failing call
// returns that *Error, and every later Do returns a *LostError naming it at
// once, without touching the GPU. Device.Cleanup still runs frees, so that
// allocations stay accounted for; the memory goes with the context.
// Other failures leave the Device usable.
//
// The package internal/testkit/fakecuda is a functional fake of the
// driver, cuBLAS and cuSOLVER for tests without a GPU, with knobs for each
// failure.
//
// The file headercheck/check.c, compiled by scripts/gpu-check.sh where the
// CUDA headers exist, checks every declaration of lowrank_cuda.h against
// the real prototypes.
package cuda
