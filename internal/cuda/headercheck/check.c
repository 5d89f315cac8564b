/*
 * check.c: asserts at compile time that every function-pointer type that
 * internal/cuda/lowrank_cuda.h declares matches the prototype in the real
 * CUDA headers. It is never part of the Go build (this folder has no Go
 * file); scripts/gpu-check.sh compiles it on a machine with the CUDA
 * toolkit:
 *
 *   gcc -std=c11 -fsyntax-only -I/usr/local/cuda/include \
 *       internal/cuda/headercheck/check.c
 *
 * A mismatch (a missing const, int where the library takes int64_t, a
 * parameter too many) stops the compilation with the symbol's name.
 */
#include <cuda.h>
#include <cublas_v2.h>
#include <cublasLt.h>
#include <cusparse.h>
#include <cusolverDn.h>
#include <nvrtc.h>
/* nvJitLinkVersion exists from CUDA 12.3 on. */
#if CUDA_VERSION >= 12030 && defined(__has_include)
#if __has_include(<nvJitLink.h>)
#include <nvJitLink.h>
#define LR_HAVE_NVJITLINK 1
#endif
#endif

#define LR_HEADERCHECK 1
#include "../lowrank_cuda.h"

#define LR_CHECK(sym) \
	_Static_assert(__builtin_types_compatible_p(lr_##sym##_t, __typeof__(&sym)), \
	               "lowrank_cuda.h: lr_" #sym "_t does not match the prototype of " #sym)

/* Every enum we pass as an int must be an int's width. */
#define LR_SAME_SIZE(T) _Static_assert(sizeof(T) == sizeof(int), #T " is not the size of an int")
LR_SAME_SIZE(CUresult);
LR_SAME_SIZE(CUdevice);
LR_SAME_SIZE(CUdevice_attribute);
LR_SAME_SIZE(cublasStatus_t);
LR_SAME_SIZE(cublasOperation_t);
LR_SAME_SIZE(cublasSideMode_t);
LR_SAME_SIZE(cublasPointerMode_t);
LR_SAME_SIZE(cublasMath_t);
LR_SAME_SIZE(libraryPropertyType);
LR_SAME_SIZE(cusolverStatus_t);
LR_SAME_SIZE(cusolverEigMode_t);
LR_SAME_SIZE(cudaDataType);
LR_SAME_SIZE(nvrtcResult);
LR_SAME_SIZE(cusparseStatus_t);
#ifdef LR_HAVE_NVJITLINK
LR_SAME_SIZE(nvJitLinkResult);
#endif
_Static_assert(sizeof(CUdeviceptr) == sizeof(unsigned long long), "CUdeviceptr is not 64-bit");

/* The enum values internal/cuda uses. */
_Static_assert(CUDA_SUCCESS == 0 && CUDA_ERROR_OUT_OF_MEMORY == 2 && CUDA_ERROR_NO_DEVICE == 100 &&
                   CUDA_ERROR_STUB_LIBRARY == 34 && CUDA_ERROR_SYSTEM_DRIVER_MISMATCH == 803,
               "CUresult values");
_Static_assert(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT == 16 && CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR == 75 &&
                   CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR == 76,
               "device attributes");
_Static_assert(CU_STREAM_NON_BLOCKING == 1 && CU_EVENT_DEFAULT == 0 && CU_EVENT_DISABLE_TIMING == 2, "flags");
_Static_assert(CUBLAS_OP_N == 0 && CUBLAS_OP_T == 1 && CUBLAS_SIDE_LEFT == 0 && CUBLAS_SIDE_RIGHT == 1 &&
                   CUBLAS_POINTER_MODE_HOST == 0 && CUBLAS_POINTER_MODE_DEVICE == 1 && CUBLAS_DEFAULT_MATH == 0,
               "cuBLAS enums");
_Static_assert(CUBLAS_STATUS_ALLOC_FAILED == 3 && CUSOLVER_STATUS_ALLOC_FAILED == 2, "alloc-failed statuses");
_Static_assert(CUSOLVER_EIG_MODE_VECTOR == 1 && CUDA_R_32F == 0 && CUDA_R_64F == 1, "cuSOLVER enums");
_Static_assert(MAJOR_VERSION == 0 && MINOR_VERSION == 1 && PATCH_LEVEL == 2, "libraryPropertyType");

#if CUDA_VERSION < 13000
LR_CHECK(cuEventElapsedTime);
#endif
LR_CHECK(cuInit);
LR_CHECK(cuDriverGetVersion);
LR_CHECK(cuDeviceGetCount);
LR_CHECK(cuDeviceGet);
LR_CHECK(cuDeviceGetName);
LR_CHECK(cuDeviceGetAttribute);
LR_CHECK(cuDeviceTotalMem_v2);
LR_CHECK(cuDevicePrimaryCtxRetain);
LR_CHECK(cuDevicePrimaryCtxRelease_v2);
LR_CHECK(cuCtxSetCurrent);
LR_CHECK(cuCtxGetCurrent);
LR_CHECK(cuCtxSynchronize);
LR_CHECK(cuMemAlloc_v2);
LR_CHECK(cuMemFree_v2);
LR_CHECK(cuMemGetInfo_v2);
LR_CHECK(cuMemAllocHost_v2);
LR_CHECK(cuMemFreeHost);
LR_CHECK(cuMemcpyHtoDAsync_v2);
LR_CHECK(cuMemcpyDtoHAsync_v2);
LR_CHECK(cuMemcpyDtoDAsync_v2);
LR_CHECK(cuMemsetD32Async);
LR_CHECK(cuStreamCreate);
LR_CHECK(cuStreamDestroy_v2);
LR_CHECK(cuStreamSynchronize);
LR_CHECK(cuEventCreate);
LR_CHECK(cuEventRecord);
LR_CHECK(cuEventSynchronize);
LR_CHECK(cuEventDestroy_v2);
LR_CHECK(cuModuleLoadData);
LR_CHECK(cuModuleGetFunction);
LR_CHECK(cuModuleUnload);
LR_CHECK(cuLaunchKernel);
LR_CHECK(cuGetErrorName);
LR_CHECK(cuGetErrorString);
LR_CHECK(cublasCreate_v2);
LR_CHECK(cublasDestroy_v2);
LR_CHECK(cublasSetStream_v2);
LR_CHECK(cublasSetPointerMode_v2);
LR_CHECK(cublasSetMathMode);
LR_CHECK(cublasGetProperty);
LR_CHECK(cublasGetStatusName);
LR_CHECK(cublasSgemm_v2);
LR_CHECK(cublasGemmEx);
LR_CHECK(cublasDgemm_v2);
LR_CHECK(cublasSgemv_v2);
LR_CHECK(cublasDgemv_v2);
LR_CHECK(cublasSgeam);
LR_CHECK(cublasDgeam);
LR_CHECK(cublasSdgmm);
LR_CHECK(cublasDdgmm);
LR_CHECK(cublasSnrm2_v2);
LR_CHECK(cublasDnrm2_v2);
LR_CHECK(cusolverGetProperty);
LR_CHECK(cusolverDnCreate);
LR_CHECK(cusolverDnDestroy);
LR_CHECK(cusolverDnSetStream);
LR_CHECK(cusolverDnSgeqrf_bufferSize);
LR_CHECK(cusolverDnDgeqrf_bufferSize);
LR_CHECK(cusolverDnSgeqrf);
LR_CHECK(cusolverDnDgeqrf);
LR_CHECK(cusolverDnSorgqr_bufferSize);
LR_CHECK(cusolverDnDorgqr_bufferSize);
LR_CHECK(cusolverDnSorgqr);
LR_CHECK(cusolverDnDorgqr);
LR_CHECK(cusolverDnSgesvd_bufferSize);
LR_CHECK(cusolverDnDgesvd_bufferSize);
LR_CHECK(cusolverDnSgesvd);
LR_CHECK(cusolverDnDgesvd);
LR_CHECK(cusolverDnCreateGesvdjInfo);
LR_CHECK(cusolverDnDestroyGesvdjInfo);
LR_CHECK(cusolverDnXgesvdjSetTolerance);
LR_CHECK(cusolverDnXgesvdjSetMaxSweeps);
LR_CHECK(cusolverDnSgesvdj_bufferSize);
LR_CHECK(cusolverDnDgesvdj_bufferSize);
LR_CHECK(cusolverDnSgesvdj);
LR_CHECK(cusolverDnDgesvdj);
LR_CHECK(cusolverDnCreateParams);
LR_CHECK(cusolverDnDestroyParams);
LR_CHECK(cusolverDnXgesvdp_bufferSize);
LR_CHECK(cusolverDnXgesvdp);
LR_CHECK(nvrtcGetErrorString);
LR_CHECK(nvrtcVersion);
LR_CHECK(nvrtcGetNumSupportedArchs);
LR_CHECK(nvrtcGetSupportedArchs);
LR_CHECK(nvrtcCreateProgram);
LR_CHECK(nvrtcDestroyProgram);
LR_CHECK(nvrtcCompileProgram);
LR_CHECK(nvrtcGetPTXSize);
LR_CHECK(nvrtcGetPTX);
LR_CHECK(nvrtcGetCUBINSize);
LR_CHECK(nvrtcGetCUBIN);
LR_CHECK(nvrtcGetProgramLogSize);
LR_CHECK(nvrtcGetProgramLog);
LR_CHECK(cublasLtGetProperty);
LR_CHECK(cusparseGetProperty);
#ifdef LR_HAVE_NVJITLINK
LR_CHECK(nvJitLinkVersion);
#endif

/*
 * The status tables of internal/cuda/errors.go, one LR_NAME per entry
 * (TestHeaderCheckCoversTables keeps the list in step with the tables).
 * Left out: CUDA_ERROR_INSUFFICIENT_DRIVER (35), the runtime's code, not a
 * CUresult, and CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER (36), which cuda.h
 * 11.8 does not have. TestRealStatusNames checks the names against
 * cuGetErrorName, cublasGetStatusName and nvrtcGetErrorString too;
 * cuSOLVER has no such call, so this list is its only check.
 */
#define LR_NAME(sym, v) _Static_assert((sym) == (v), #sym " is not " #v)
LR_NAME(CUDA_SUCCESS, 0);
LR_NAME(CUDA_ERROR_INVALID_VALUE, 1);
LR_NAME(CUDA_ERROR_OUT_OF_MEMORY, 2);
LR_NAME(CUDA_ERROR_NOT_INITIALIZED, 3);
LR_NAME(CUDA_ERROR_DEINITIALIZED, 4);
LR_NAME(CUDA_ERROR_STUB_LIBRARY, 34);
LR_NAME(CUDA_ERROR_DEVICE_UNAVAILABLE, 46);
LR_NAME(CUDA_ERROR_NO_DEVICE, 100);
LR_NAME(CUDA_ERROR_INVALID_DEVICE, 101);
LR_NAME(CUDA_ERROR_INVALID_IMAGE, 200);
LR_NAME(CUDA_ERROR_INVALID_CONTEXT, 201);
LR_NAME(CUDA_ERROR_NO_BINARY_FOR_GPU, 209);
LR_NAME(CUDA_ERROR_ECC_UNCORRECTABLE, 214);
LR_NAME(CUDA_ERROR_INVALID_PTX, 218);
LR_NAME(CUDA_ERROR_UNSUPPORTED_PTX_VERSION, 222);
LR_NAME(CUDA_ERROR_INVALID_HANDLE, 400);
LR_NAME(CUDA_ERROR_NOT_FOUND, 500);
LR_NAME(CUDA_ERROR_NOT_READY, 600);
LR_NAME(CUDA_ERROR_ILLEGAL_ADDRESS, 700);
LR_NAME(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, 701);
LR_NAME(CUDA_ERROR_LAUNCH_TIMEOUT, 702);
LR_NAME(CUDA_ERROR_ASSERT, 710);
LR_NAME(CUDA_ERROR_HARDWARE_STACK_ERROR, 714);
LR_NAME(CUDA_ERROR_ILLEGAL_INSTRUCTION, 715);
LR_NAME(CUDA_ERROR_MISALIGNED_ADDRESS, 716);
LR_NAME(CUDA_ERROR_INVALID_ADDRESS_SPACE, 717);
LR_NAME(CUDA_ERROR_INVALID_PC, 718);
LR_NAME(CUDA_ERROR_LAUNCH_FAILED, 719);
LR_NAME(CUDA_ERROR_NOT_PERMITTED, 800);
LR_NAME(CUDA_ERROR_NOT_SUPPORTED, 801);
LR_NAME(CUDA_ERROR_SYSTEM_NOT_READY, 802);
LR_NAME(CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, 803);
LR_NAME(CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE, 804);
LR_NAME(CUDA_ERROR_UNKNOWN, 999);
LR_NAME(CUBLAS_STATUS_SUCCESS, 0);
LR_NAME(CUBLAS_STATUS_NOT_INITIALIZED, 1);
LR_NAME(CUBLAS_STATUS_ALLOC_FAILED, 3);
LR_NAME(CUBLAS_STATUS_INVALID_VALUE, 7);
LR_NAME(CUBLAS_STATUS_ARCH_MISMATCH, 8);
LR_NAME(CUBLAS_STATUS_MAPPING_ERROR, 11);
LR_NAME(CUBLAS_STATUS_EXECUTION_FAILED, 13);
LR_NAME(CUBLAS_STATUS_INTERNAL_ERROR, 14);
LR_NAME(CUBLAS_STATUS_NOT_SUPPORTED, 15);
LR_NAME(CUBLAS_STATUS_LICENSE_ERROR, 16);
LR_NAME(CUSOLVER_STATUS_SUCCESS, 0);
LR_NAME(CUSOLVER_STATUS_NOT_INITIALIZED, 1);
LR_NAME(CUSOLVER_STATUS_ALLOC_FAILED, 2);
LR_NAME(CUSOLVER_STATUS_INVALID_VALUE, 3);
LR_NAME(CUSOLVER_STATUS_ARCH_MISMATCH, 4);
LR_NAME(CUSOLVER_STATUS_MAPPING_ERROR, 5);
LR_NAME(CUSOLVER_STATUS_EXECUTION_FAILED, 6);
LR_NAME(CUSOLVER_STATUS_INTERNAL_ERROR, 7);
LR_NAME(CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED, 8);
LR_NAME(CUSOLVER_STATUS_NOT_SUPPORTED, 9);
LR_NAME(CUSOLVER_STATUS_ZERO_PIVOT, 10);
LR_NAME(CUSOLVER_STATUS_INVALID_LICENSE, 11);
LR_NAME(CUSOLVER_STATUS_INVALID_WORKSPACE, 31);
LR_NAME(NVRTC_SUCCESS, 0);
LR_NAME(NVRTC_ERROR_OUT_OF_MEMORY, 1);
LR_NAME(NVRTC_ERROR_PROGRAM_CREATION_FAILURE, 2);
LR_NAME(NVRTC_ERROR_INVALID_INPUT, 3);
LR_NAME(NVRTC_ERROR_INVALID_PROGRAM, 4);
LR_NAME(NVRTC_ERROR_INVALID_OPTION, 5);
LR_NAME(NVRTC_ERROR_COMPILATION, 6);
LR_NAME(NVRTC_ERROR_BUILTIN_OPERATION_FAILURE, 7);
LR_NAME(NVRTC_ERROR_INTERNAL_ERROR, 11);

int main(void) { return 0; }
