// Package cuda loads the CUDA driver, cuBLAS, cuSOLVER and NVRTC at run
// time and calls them. With internal/blas it is one of the two packages of
// lowrank that call C: both look their entry points up through
// internal/dl (the one place that calls dlopen and dlsym) and call them
// through small C trampolines. Everything above it (lowrank/gpu) is plain
// Go.
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
//  2. cuDriverGetVersion (which needs no cuInit, so that every reason names
//     the driver), cuInit(0), cuDeviceGetCount; a failure is reported with
//     its status name and advice (CUDA_ERROR_NO_DEVICE says whether the
//     nvidia kernel module is loaded at all; CUDA_ERROR_STUB_LIBRARY,
//     CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, …).
//  3. cuBLASLt, cuBLAS, nvJitLink, cuSPARSE and cuSOLVER — dependencies
//     first, all from one installation, by their versioned sonames, newest
//     CUDA major first but never above the driver's major (a driver for CUDA
//     12.x cannot run CUDA 13 libraries). The installations tried are
//     LOWRANK_CUDA_LIB_DIR alone when set; otherwise the folders of
//     LD_LIBRARY_PATH and of ldconfig (/etc/ld.so.conf), /usr/local/cuda/lib64
//     and /usr/local/cuda-X.Y/lib64, the distribution's library folders, and
//     the NVIDIA pip wheels of the Python installations found
//     (site-packages/nvidia/cu13/lib, site-packages/nvidia/*/lib). A set is
//     used only when each library's own version call agrees with its soname
//     and cuSOLVER was linked against the cuBLAS loaded (its ELF DT_NEEDED):
//     libcusolver.so.11 is the soname of CUDA 11.8's and of CUDA 12's.
//  4. NVRTC of the same major from the same installation, after its
//     builtins library, checked with nvrtcVersion; it is optional (only the
//     fused kernels need it).
//
// Entry points are looked up by their versioned names where cuda.h maps the
// plain name onto one (cuMemAlloc_v2, cuStreamDestroy_v2, cublasSgemm_v2).
//
// # Threads and the stream
//
// All GPU work of a Device runs on one goroutine locked to one OS thread,
// which owns the primary context, the stream and the cuBLAS and cuSOLVER
// handles; Device.Do sends it jobs. See Device.
//
// Work is queued on the stream and runs asynchronously. cuMemFree is not
// stream-ordered, so Ctx.Free first waits for the stream when work was
// queued since the last synchronization. No Go memory is ever handed to an
// asynchronous call: copies go through pinned staging buffers, and the
// scalars a library writes back (cusolverDnXgesvdp's error estimate) go to
// pinned memory read after a synchronization.
//
// # Errors
//
// Failed calls return *Error, whose text starts with "cuda: " and names
// the call and the status ("cuda: cusolverDnSgesvd:
// CUSOLVER_STATUS_INVALID_VALUE"); a cuSOLVER routine that succeeds but
// reports a failure in devInfo gives one too (DevInfoError). Out-of-memory
// statuses match ErrOutOfMemory, and an SVD that did not converge
// ErrNoConvergence, with errors.Is (lowrank/gpu maps them to la's
// sentinels). Failures to load return *LoadError, whose text is the reason
// the GPU cannot be used, shown after the backend's name. Built with
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
// # Tests
//
// The package internal/testkit/fakecuda is a functional fake of the
// driver, cuBLAS and cuSOLVER for tests without a GPU, with knobs for each
// failure. The tests of reallibs_test.go run against NVIDIA's real
// libraries where they are installed (CI installs CUDA 11.8's from Debian's
// non-free component, .ci/cuda-libs.sh), without a GPU. The file
// headercheck/check.c checks every declaration of lowrank_cuda.h, and every
// status value of the tables, against the real CUDA headers
// (TestHeaderCheck, and scripts/gpu-check.sh on a GPU machine).
package cuda
