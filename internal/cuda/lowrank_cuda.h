/*
 * lowrank_cuda.h: our own declarations of the CUDA driver, cuBLAS, cuSOLVER
 * and NVRTC entry points lowrank calls, so that the package builds without
 * any CUDA header or library. Every function is looked up with dlsym at run
 * time and called through one of the static trampolines below (cgo cannot
 * call a C function pointer directly).
 *
 * Each lr_<symbol>_t is the function-pointer type of the exported symbol
 * <symbol>. The file internal/cuda/headercheck/check.c compiles this header
 * with LR_HEADERCHECK defined after the real cuda.h, cublas_v2.h,
 * cusolverDn.h and nvrtc.h, which maps the handle and enum aliases onto the
 * real types, and asserts that every lr_<symbol>_t is compatible with the
 * type of &<symbol>; it also asserts that each enum is as wide as the int we
 * pass for it.
 *
 * Device pointers cross from Go as unsigned long long (CUdeviceptr) and are
 * cast here; scalars such as alpha and beta are passed by value and their
 * address taken here, so no Go pointer is ever handed to CUDA.
 */
#ifndef LOWRANK_CUDA_H
#define LOWRANK_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef LR_HEADERCHECK
typedef CUresult lr_CUresult;
typedef CUdevice lr_CUdevice;
typedef CUdeviceptr lr_CUdeviceptr;
typedef CUcontext lr_CUcontext;
typedef CUstream lr_CUstream;
typedef CUevent lr_CUevent;
typedef CUmodule lr_CUmodule;
typedef CUfunction lr_CUfunction;
typedef CUdevice_attribute lr_CUdevice_attribute;
typedef cublasStatus_t lr_cublasStatus;
typedef cublasHandle_t lr_cublasHandle;
typedef cublasOperation_t lr_cublasOperation;
typedef cublasSideMode_t lr_cublasSideMode;
typedef cublasPointerMode_t lr_cublasPointerMode;
typedef cublasMath_t lr_cublasMath;
typedef cudaStream_t lr_cudaStream;
typedef libraryPropertyType lr_libraryPropertyType;
typedef cusolverStatus_t lr_cusolverStatus;
typedef cusolverDnHandle_t lr_cusolverDnHandle;
typedef gesvdjInfo_t lr_gesvdjInfo;
typedef cusolverDnParams_t lr_cusolverDnParams;
typedef cusolverEigMode_t lr_cusolverEigMode;
typedef cudaDataType lr_cudaDataType;
typedef cublasComputeType_t lr_cublasComputeType;
typedef cublasGemmAlgo_t lr_cublasGemmAlgo;
typedef nvrtcResult lr_nvrtcResult;
typedef nvrtcProgram lr_nvrtcProgram;
typedef cusparseStatus_t lr_cusparseStatus;
#else
typedef int lr_CUresult;
typedef int lr_CUdevice;
typedef unsigned long long lr_CUdeviceptr;
typedef void *lr_CUcontext;
typedef void *lr_CUstream;
typedef void *lr_CUevent;
typedef void *lr_CUmodule;
typedef void *lr_CUfunction;
typedef int lr_CUdevice_attribute;
typedef int lr_cublasStatus;
typedef void *lr_cublasHandle;
typedef int lr_cublasOperation;
typedef int lr_cublasSideMode;
typedef int lr_cublasPointerMode;
typedef int lr_cublasMath;
typedef void *lr_cudaStream;
typedef int lr_libraryPropertyType;
typedef int lr_cusolverStatus;
typedef void *lr_cusolverDnHandle;
typedef void *lr_gesvdjInfo;
typedef void *lr_cusolverDnParams;
typedef int lr_cusolverEigMode;
typedef int lr_cudaDataType;
typedef int lr_cublasComputeType;
typedef int lr_cublasGemmAlgo;
typedef int lr_nvrtcResult;
typedef void *lr_nvrtcProgram;
typedef int lr_cusparseStatus;
#endif
#if defined(LR_HEADERCHECK) && defined(LR_HAVE_NVJITLINK)
typedef nvJitLinkResult lr_nvJitLinkResult;
#else
typedef int lr_nvJitLinkResult;
#endif

/* ---- CUDA driver API (libcuda.so.1) ---- */
typedef lr_CUresult (*lr_cuInit_t)(unsigned int);
typedef lr_CUresult (*lr_cuDriverGetVersion_t)(int *);
typedef lr_CUresult (*lr_cuDeviceGetCount_t)(int *);
typedef lr_CUresult (*lr_cuDeviceGet_t)(lr_CUdevice *, int);
typedef lr_CUresult (*lr_cuDeviceGetName_t)(char *, int, lr_CUdevice);
typedef lr_CUresult (*lr_cuDeviceGetAttribute_t)(int *, lr_CUdevice_attribute, lr_CUdevice);
typedef lr_CUresult (*lr_cuDeviceTotalMem_v2_t)(size_t *, lr_CUdevice);
typedef lr_CUresult (*lr_cuDevicePrimaryCtxRetain_t)(lr_CUcontext *, lr_CUdevice);
typedef lr_CUresult (*lr_cuDevicePrimaryCtxRelease_v2_t)(lr_CUdevice);
typedef lr_CUresult (*lr_cuCtxSetCurrent_t)(lr_CUcontext);
typedef lr_CUresult (*lr_cuCtxGetCurrent_t)(lr_CUcontext *);
typedef lr_CUresult (*lr_cuCtxSynchronize_t)(void);
typedef lr_CUresult (*lr_cuMemAlloc_v2_t)(lr_CUdeviceptr *, size_t);
typedef lr_CUresult (*lr_cuMemFree_v2_t)(lr_CUdeviceptr);
typedef lr_CUresult (*lr_cuMemGetInfo_v2_t)(size_t *, size_t *);
typedef lr_CUresult (*lr_cuMemAllocHost_v2_t)(void **, size_t);
typedef lr_CUresult (*lr_cuMemFreeHost_t)(void *);
typedef lr_CUresult (*lr_cuMemcpyHtoDAsync_v2_t)(lr_CUdeviceptr, const void *, size_t, lr_CUstream);
typedef lr_CUresult (*lr_cuMemcpyDtoHAsync_v2_t)(void *, lr_CUdeviceptr, size_t, lr_CUstream);
typedef lr_CUresult (*lr_cuMemcpyDtoDAsync_v2_t)(lr_CUdeviceptr, lr_CUdeviceptr, size_t, lr_CUstream);
typedef lr_CUresult (*lr_cuMemsetD32Async_t)(lr_CUdeviceptr, unsigned int, size_t, lr_CUstream);
typedef lr_CUresult (*lr_cuStreamCreate_t)(lr_CUstream *, unsigned int);
typedef lr_CUresult (*lr_cuStreamDestroy_v2_t)(lr_CUstream);
typedef lr_CUresult (*lr_cuStreamSynchronize_t)(lr_CUstream);
typedef lr_CUresult (*lr_cuEventCreate_t)(lr_CUevent *, unsigned int);
typedef lr_CUresult (*lr_cuEventRecord_t)(lr_CUevent, lr_CUstream);
typedef lr_CUresult (*lr_cuEventSynchronize_t)(lr_CUevent);
typedef lr_CUresult (*lr_cuEventElapsedTime_t)(float *, lr_CUevent, lr_CUevent);
typedef lr_CUresult (*lr_cuEventDestroy_v2_t)(lr_CUevent);
typedef lr_CUresult (*lr_cuModuleLoadData_t)(lr_CUmodule *, const void *);
typedef lr_CUresult (*lr_cuModuleGetFunction_t)(lr_CUfunction *, lr_CUmodule, const char *);
typedef lr_CUresult (*lr_cuModuleUnload_t)(lr_CUmodule);
typedef lr_CUresult (*lr_cuLaunchKernel_t)(lr_CUfunction, unsigned int, unsigned int, unsigned int,
                                          unsigned int, unsigned int, unsigned int, unsigned int,
                                          lr_CUstream, void **, void **);
typedef lr_CUresult (*lr_cuGetErrorName_t)(lr_CUresult, const char **);
typedef lr_CUresult (*lr_cuGetErrorString_t)(lr_CUresult, const char **);

/* ---- cuBLAS (libcublas.so.N) ---- */
typedef lr_cublasStatus (*lr_cublasCreate_v2_t)(lr_cublasHandle *);
typedef lr_cublasStatus (*lr_cublasDestroy_v2_t)(lr_cublasHandle);
typedef lr_cublasStatus (*lr_cublasSetStream_v2_t)(lr_cublasHandle, lr_cudaStream);
typedef lr_cublasStatus (*lr_cublasSetPointerMode_v2_t)(lr_cublasHandle, lr_cublasPointerMode);
typedef lr_cublasStatus (*lr_cublasSetMathMode_t)(lr_cublasHandle, lr_cublasMath);
typedef lr_cublasStatus (*lr_cublasGetProperty_t)(lr_libraryPropertyType, int *);
typedef const char *(*lr_cublasGetStatusName_t)(lr_cublasStatus);
typedef lr_cublasStatus (*lr_cublasSgemm_v2_t)(lr_cublasHandle, lr_cublasOperation, lr_cublasOperation, int, int, int,
                                               const float *, const float *, int, const float *, int,
                                               const float *, float *, int);
typedef lr_cublasStatus (*lr_cublasDgemm_v2_t)(lr_cublasHandle, lr_cublasOperation, lr_cublasOperation, int, int, int,
                                               const double *, const double *, int, const double *, int,
                                               const double *, double *, int);
typedef lr_cublasStatus (*lr_cublasGemmEx_t)(lr_cublasHandle, lr_cublasOperation, lr_cublasOperation, int, int, int,
                                             const void *, const void *, lr_cudaDataType, int, const void *,
                                             lr_cudaDataType, int, const void *, void *, lr_cudaDataType, int,
                                             lr_cublasComputeType, lr_cublasGemmAlgo);
typedef lr_cublasStatus (*lr_cublasSgemv_v2_t)(lr_cublasHandle, lr_cublasOperation, int, int, const float *,
                                               const float *, int, const float *, int, const float *, float *, int);
typedef lr_cublasStatus (*lr_cublasDgemv_v2_t)(lr_cublasHandle, lr_cublasOperation, int, int, const double *,
                                               const double *, int, const double *, int, const double *, double *,
                                               int);
typedef lr_cublasStatus (*lr_cublasSgeam_t)(lr_cublasHandle, lr_cublasOperation, lr_cublasOperation, int, int,
                                            const float *, const float *, int, const float *, const float *, int,
                                            float *, int);
typedef lr_cublasStatus (*lr_cublasDgeam_t)(lr_cublasHandle, lr_cublasOperation, lr_cublasOperation, int, int,
                                            const double *, const double *, int, const double *, const double *,
                                            int, double *, int);
typedef lr_cublasStatus (*lr_cublasSdgmm_t)(lr_cublasHandle, lr_cublasSideMode, int, int, const float *, int,
                                            const float *, int, float *, int);
typedef lr_cublasStatus (*lr_cublasDdgmm_t)(lr_cublasHandle, lr_cublasSideMode, int, int, const double *, int,
                                            const double *, int, double *, int);
typedef lr_cublasStatus (*lr_cublasSnrm2_v2_t)(lr_cublasHandle, int, const float *, int, float *);
typedef lr_cublasStatus (*lr_cublasDnrm2_v2_t)(lr_cublasHandle, int, const double *, int, double *);

/* ---- cuSOLVER dense (libcusolver.so.N) ---- */
typedef lr_cusolverStatus (*lr_cusolverGetProperty_t)(lr_libraryPropertyType, int *);
typedef lr_cusolverStatus (*lr_cusolverDnCreate_t)(lr_cusolverDnHandle *);
typedef lr_cusolverStatus (*lr_cusolverDnDestroy_t)(lr_cusolverDnHandle);
typedef lr_cusolverStatus (*lr_cusolverDnSetStream_t)(lr_cusolverDnHandle, lr_cudaStream);
typedef lr_cusolverStatus (*lr_cusolverDnSgeqrf_bufferSize_t)(lr_cusolverDnHandle, int, int, float *, int, int *);
typedef lr_cusolverStatus (*lr_cusolverDnDgeqrf_bufferSize_t)(lr_cusolverDnHandle, int, int, double *, int, int *);
typedef lr_cusolverStatus (*lr_cusolverDnSgeqrf_t)(lr_cusolverDnHandle, int, int, float *, int, float *, float *, int,
                                                   int *);
typedef lr_cusolverStatus (*lr_cusolverDnDgeqrf_t)(lr_cusolverDnHandle, int, int, double *, int, double *, double *,
                                                   int, int *);
typedef lr_cusolverStatus (*lr_cusolverDnSorgqr_bufferSize_t)(lr_cusolverDnHandle, int, int, int, const float *, int,
                                                              const float *, int *);
typedef lr_cusolverStatus (*lr_cusolverDnDorgqr_bufferSize_t)(lr_cusolverDnHandle, int, int, int, const double *, int,
                                                              const double *, int *);
typedef lr_cusolverStatus (*lr_cusolverDnSorgqr_t)(lr_cusolverDnHandle, int, int, int, float *, int, const float *,
                                                   float *, int, int *);
typedef lr_cusolverStatus (*lr_cusolverDnDorgqr_t)(lr_cusolverDnHandle, int, int, int, double *, int, const double *,
                                                   double *, int, int *);
typedef lr_cusolverStatus (*lr_cusolverDnSgesvd_bufferSize_t)(lr_cusolverDnHandle, int, int, int *);
typedef lr_cusolverStatus (*lr_cusolverDnDgesvd_bufferSize_t)(lr_cusolverDnHandle, int, int, int *);
typedef lr_cusolverStatus (*lr_cusolverDnSgesvd_t)(lr_cusolverDnHandle, signed char, signed char, int, int, float *,
                                                   int, float *, float *, int, float *, int, float *, int, float *,
                                                   int *);
typedef lr_cusolverStatus (*lr_cusolverDnDgesvd_t)(lr_cusolverDnHandle, signed char, signed char, int, int, double *,
                                                   int, double *, double *, int, double *, int, double *, int,
                                                   double *, int *);
typedef lr_cusolverStatus (*lr_cusolverDnCreateGesvdjInfo_t)(lr_gesvdjInfo *);
typedef lr_cusolverStatus (*lr_cusolverDnDestroyGesvdjInfo_t)(lr_gesvdjInfo);
typedef lr_cusolverStatus (*lr_cusolverDnXgesvdjSetTolerance_t)(lr_gesvdjInfo, double);
typedef lr_cusolverStatus (*lr_cusolverDnXgesvdjSetMaxSweeps_t)(lr_gesvdjInfo, int);
typedef lr_cusolverStatus (*lr_cusolverDnSgesvdj_bufferSize_t)(lr_cusolverDnHandle, lr_cusolverEigMode, int, int, int,
                                                               const float *, int, const float *, const float *, int,
                                                               const float *, int, int *, lr_gesvdjInfo);
typedef lr_cusolverStatus (*lr_cusolverDnDgesvdj_bufferSize_t)(lr_cusolverDnHandle, lr_cusolverEigMode, int, int, int,
                                                               const double *, int, const double *, const double *,
                                                               int, const double *, int, int *, lr_gesvdjInfo);
typedef lr_cusolverStatus (*lr_cusolverDnSgesvdj_t)(lr_cusolverDnHandle, lr_cusolverEigMode, int, int, int, float *,
                                                    int, float *, float *, int, float *, int, float *, int, int *,
                                                    lr_gesvdjInfo);
typedef lr_cusolverStatus (*lr_cusolverDnDgesvdj_t)(lr_cusolverDnHandle, lr_cusolverEigMode, int, int, int, double *,
                                                    int, double *, double *, int, double *, int, double *, int, int *,
                                                    lr_gesvdjInfo);
typedef lr_cusolverStatus (*lr_cusolverDnCreateParams_t)(lr_cusolverDnParams *);
typedef lr_cusolverStatus (*lr_cusolverDnDestroyParams_t)(lr_cusolverDnParams);
typedef lr_cusolverStatus (*lr_cusolverDnXgesvdp_bufferSize_t)(lr_cusolverDnHandle, lr_cusolverDnParams,
                                                               lr_cusolverEigMode, int, int64_t, int64_t,
                                                               lr_cudaDataType, const void *, int64_t,
                                                               lr_cudaDataType, const void *, lr_cudaDataType,
                                                               const void *, int64_t, lr_cudaDataType, const void *,
                                                               int64_t, lr_cudaDataType, size_t *, size_t *);
typedef lr_cusolverStatus (*lr_cusolverDnXgesvdp_t)(lr_cusolverDnHandle, lr_cusolverDnParams, lr_cusolverEigMode, int,
                                                    int64_t, int64_t, lr_cudaDataType, void *, int64_t,
                                                    lr_cudaDataType, void *, lr_cudaDataType, void *, int64_t,
                                                    lr_cudaDataType, void *, int64_t, lr_cudaDataType, void *, size_t,
                                                    void *, size_t, int *, double *);

/* ---- the version calls of the other libraries of an installation ---- */
typedef lr_cublasStatus (*lr_cublasLtGetProperty_t)(lr_libraryPropertyType, int *);
typedef lr_cusparseStatus (*lr_cusparseGetProperty_t)(lr_libraryPropertyType, int *);
typedef lr_nvJitLinkResult (*lr_nvJitLinkVersion_t)(unsigned int *, unsigned int *);

/* ---- NVRTC (libnvrtc.so.N) ---- */
typedef const char *(*lr_nvrtcGetErrorString_t)(lr_nvrtcResult);
typedef lr_nvrtcResult (*lr_nvrtcVersion_t)(int *, int *);
typedef lr_nvrtcResult (*lr_nvrtcGetNumSupportedArchs_t)(int *);
typedef lr_nvrtcResult (*lr_nvrtcGetSupportedArchs_t)(int *);
typedef lr_nvrtcResult (*lr_nvrtcCreateProgram_t)(lr_nvrtcProgram *, const char *, const char *, int,
                                                  const char *const *, const char *const *);
typedef lr_nvrtcResult (*lr_nvrtcDestroyProgram_t)(lr_nvrtcProgram *);
typedef lr_nvrtcResult (*lr_nvrtcCompileProgram_t)(lr_nvrtcProgram, int, const char *const *);
typedef lr_nvrtcResult (*lr_nvrtcGetPTXSize_t)(lr_nvrtcProgram, size_t *);
typedef lr_nvrtcResult (*lr_nvrtcGetPTX_t)(lr_nvrtcProgram, char *);
typedef lr_nvrtcResult (*lr_nvrtcGetCUBINSize_t)(lr_nvrtcProgram, size_t *);
typedef lr_nvrtcResult (*lr_nvrtcGetCUBIN_t)(lr_nvrtcProgram, char *);
typedef lr_nvrtcResult (*lr_nvrtcGetProgramLogSize_t)(lr_nvrtcProgram, size_t *);
typedef lr_nvrtcResult (*lr_nvrtcGetProgramLog_t)(lr_nvrtcProgram, char *);

/* ---- trampolines ----
 * lrc_<symbol>(fn, args...) calls the function fn, which dlsym returned for
 * <symbol>, with the arguments converted to the real parameter types.
 */
#define LR_DPTR(T, p) ((T *)(uintptr_t)(p))

static inline int lrc_cuInit(void *f, unsigned int flags) { return ((lr_cuInit_t)f)(flags); }
static inline int lrc_cuDriverGetVersion(void *f, int *v) { return ((lr_cuDriverGetVersion_t)f)(v); }
static inline int lrc_cuDeviceGetCount(void *f, int *n) { return ((lr_cuDeviceGetCount_t)f)(n); }
static inline int lrc_cuDeviceGet(void *f, int *dev, int ordinal) {
	lr_CUdevice d = 0;
	int r = ((lr_cuDeviceGet_t)f)(&d, ordinal);
	*dev = (int)d;
	return r;
}
static inline int lrc_cuDeviceGetName(void *f, char *name, int len, int dev) {
	return ((lr_cuDeviceGetName_t)f)(name, len, (lr_CUdevice)dev);
}
static inline int lrc_cuDeviceGetAttribute(void *f, int *v, int attr, int dev) {
	return ((lr_cuDeviceGetAttribute_t)f)(v, (lr_CUdevice_attribute)attr, (lr_CUdevice)dev);
}
static inline int lrc_cuDeviceTotalMem_v2(void *f, size_t *bytes, int dev) {
	return ((lr_cuDeviceTotalMem_v2_t)f)(bytes, (lr_CUdevice)dev);
}
static inline int lrc_cuDevicePrimaryCtxRetain(void *f, void **ctx, int dev) {
	lr_CUcontext c = 0;
	int r = ((lr_cuDevicePrimaryCtxRetain_t)f)(&c, (lr_CUdevice)dev);
	*ctx = (void *)c;
	return r;
}
static inline int lrc_cuDevicePrimaryCtxRelease_v2(void *f, int dev) {
	return ((lr_cuDevicePrimaryCtxRelease_v2_t)f)((lr_CUdevice)dev);
}
static inline int lrc_cuCtxSetCurrent(void *f, void *ctx) { return ((lr_cuCtxSetCurrent_t)f)((lr_CUcontext)ctx); }
static inline int lrc_cuCtxSynchronize(void *f) { return ((lr_cuCtxSynchronize_t)f)(); }
static inline int lrc_cuMemAlloc_v2(void *f, unsigned long long *p, size_t n) {
	lr_CUdeviceptr d = 0;
	int r = ((lr_cuMemAlloc_v2_t)f)(&d, n);
	*p = (unsigned long long)d;
	return r;
}
static inline int lrc_cuMemFree_v2(void *f, unsigned long long p) { return ((lr_cuMemFree_v2_t)f)((lr_CUdeviceptr)p); }
static inline int lrc_cuMemGetInfo_v2(void *f, size_t *free_, size_t *total) {
	return ((lr_cuMemGetInfo_v2_t)f)(free_, total);
}
static inline int lrc_cuMemAllocHost_v2(void *f, void **p, size_t n) { return ((lr_cuMemAllocHost_v2_t)f)(p, n); }
static inline int lrc_cuMemFreeHost(void *f, void *p) { return ((lr_cuMemFreeHost_t)f)(p); }
static inline int lrc_cuMemcpyHtoDAsync_v2(void *f, unsigned long long dst, void *src, size_t n, void *s) {
	return ((lr_cuMemcpyHtoDAsync_v2_t)f)((lr_CUdeviceptr)dst, src, n, (lr_CUstream)s);
}
static inline int lrc_cuMemcpyDtoHAsync_v2(void *f, void *dst, unsigned long long src, size_t n, void *s) {
	return ((lr_cuMemcpyDtoHAsync_v2_t)f)(dst, (lr_CUdeviceptr)src, n, (lr_CUstream)s);
}
static inline int lrc_cuMemcpyDtoDAsync_v2(void *f, unsigned long long dst, unsigned long long src, size_t n, void *s) {
	return ((lr_cuMemcpyDtoDAsync_v2_t)f)((lr_CUdeviceptr)dst, (lr_CUdeviceptr)src, n, (lr_CUstream)s);
}
static inline int lrc_cuMemsetD32Async(void *f, unsigned long long dst, unsigned int v, size_t n, void *s) {
	return ((lr_cuMemsetD32Async_t)f)((lr_CUdeviceptr)dst, v, n, (lr_CUstream)s);
}
static inline int lrc_cuStreamCreate(void *f, void **s, unsigned int flags) {
	lr_CUstream st = 0;
	int r = ((lr_cuStreamCreate_t)f)(&st, flags);
	*s = (void *)st;
	return r;
}
static inline int lrc_cuStreamDestroy_v2(void *f, void *s) { return ((lr_cuStreamDestroy_v2_t)f)((lr_CUstream)s); }
static inline int lrc_cuStreamSynchronize(void *f, void *s) { return ((lr_cuStreamSynchronize_t)f)((lr_CUstream)s); }
static inline int lrc_cuEventCreate(void *f, void **e, unsigned int flags) {
	lr_CUevent ev = 0;
	int r = ((lr_cuEventCreate_t)f)(&ev, flags);
	*e = (void *)ev;
	return r;
}
static inline int lrc_cuEventRecord(void *f, void *e, void *s) {
	return ((lr_cuEventRecord_t)f)((lr_CUevent)e, (lr_CUstream)s);
}
static inline int lrc_cuEventSynchronize(void *f, void *e) { return ((lr_cuEventSynchronize_t)f)((lr_CUevent)e); }
static inline int lrc_cuEventElapsedTime(void *f, float *ms, void *a, void *b) {
	return ((lr_cuEventElapsedTime_t)f)(ms, (lr_CUevent)a, (lr_CUevent)b);
}
static inline int lrc_cuEventDestroy_v2(void *f, void *e) { return ((lr_cuEventDestroy_v2_t)f)((lr_CUevent)e); }
static inline int lrc_cuModuleLoadData(void *f, void **m, const void *image) {
	lr_CUmodule mod = 0;
	int r = ((lr_cuModuleLoadData_t)f)(&mod, image);
	*m = (void *)mod;
	return r;
}
static inline int lrc_cuModuleGetFunction(void *f, void **fn, void *m, const char *name) {
	lr_CUfunction fun = 0;
	int r = ((lr_cuModuleGetFunction_t)f)(&fun, (lr_CUmodule)m, name);
	*fn = (void *)fun;
	return r;
}
static inline int lrc_cuModuleUnload(void *f, void *m) { return ((lr_cuModuleUnload_t)f)((lr_CUmodule)m); }

/*
 * lrc_cuLaunchKernel launches fn with nargs arguments whose values lie in
 * C memory at argbuf + offs[i]: kernelParams is built here, in C memory, as
 * the driver wants (params[i] = &arg_i), so no Go pointer is involved.
 */
#define LR_MAX_KERNEL_ARGS 32
static inline int lrc_cuLaunchKernel(void *f, void *fn, unsigned int gx, unsigned int gy, unsigned int gz,
                                     unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem, void *s,
                                     char *argbuf, const int *offs, int nargs) {
	void *params[LR_MAX_KERNEL_ARGS];
	int i;
	if (nargs < 0 || nargs > LR_MAX_KERNEL_ARGS) return 1; /* CUDA_ERROR_INVALID_VALUE */
	for (i = 0; i < nargs; i++) params[i] = argbuf + offs[i];
	return ((lr_cuLaunchKernel_t)f)((lr_CUfunction)fn, gx, gy, gz, bx, by, bz, shmem, (lr_CUstream)s, params, 0);
}
static inline int lrc_cuGetErrorName(void *f, int e, const char **s) {
	return ((lr_cuGetErrorName_t)f)((lr_CUresult)e, s);
}
static inline int lrc_cuGetErrorString(void *f, int e, const char **s) {
	return ((lr_cuGetErrorString_t)f)((lr_CUresult)e, s);
}

static inline int lrc_cublasCreate_v2(void *f, void **h) {
	lr_cublasHandle hh = 0;
	int r = ((lr_cublasCreate_v2_t)f)(&hh);
	*h = (void *)hh;
	return r;
}
static inline int lrc_cublasDestroy_v2(void *f, void *h) { return ((lr_cublasDestroy_v2_t)f)((lr_cublasHandle)h); }
static inline int lrc_cublasSetStream_v2(void *f, void *h, void *s) {
	return ((lr_cublasSetStream_v2_t)f)((lr_cublasHandle)h, (lr_cudaStream)s);
}
static inline int lrc_cublasSetPointerMode_v2(void *f, void *h, int mode) {
	return ((lr_cublasSetPointerMode_v2_t)f)((lr_cublasHandle)h, (lr_cublasPointerMode)mode);
}
static inline int lrc_cublasSetMathMode(void *f, void *h, int mode) {
	return ((lr_cublasSetMathMode_t)f)((lr_cublasHandle)h, (lr_cublasMath)mode);
}
static inline const char *lrc_cublasGetStatusName(void *f, int s) {
	return ((lr_cublasGetStatusName_t)f)((lr_cublasStatus)s);
}
static inline int lrc_cublasGetProperty(void *f, int type, int *v) {
	return ((lr_cublasGetProperty_t)f)((lr_libraryPropertyType)type, v);
}
static inline int lrc_cublasSgemm_v2(void *f, void *h, int ta, int tb, int m, int n, int k, float alpha,
                                     unsigned long long a, int lda, unsigned long long b, int ldb, float beta,
                                     unsigned long long c, int ldc) {
	return ((lr_cublasSgemm_v2_t)f)((lr_cublasHandle)h, (lr_cublasOperation)ta, (lr_cublasOperation)tb, m, n, k,
	                                &alpha, LR_DPTR(const float, a), lda, LR_DPTR(const float, b), ldb, &beta,
	                                LR_DPTR(float, c), ldc);
}
static inline int lrc_cublasDgemm_v2(void *f, void *h, int ta, int tb, int m, int n, int k, double alpha,
                                     unsigned long long a, int lda, unsigned long long b, int ldb, double beta,
                                     unsigned long long c, int ldc) {
	return ((lr_cublasDgemm_v2_t)f)((lr_cublasHandle)h, (lr_cublasOperation)ta, (lr_cublasOperation)tb, m, n, k,
	                                &alpha, LR_DPTR(const double, a), lda, LR_DPTR(const double, b), ldb, &beta,
	                                LR_DPTR(double, c), ldc);
}
/* lrc_cublasGemmEx_f32: cublasGemmEx on float32 A, B and C with float32
   alpha and beta, in the given compute type, with CUBLAS_GEMM_DEFAULT. */
static inline int lrc_cublasGemmEx_f32(void *f, void *h, int ta, int tb, int m, int n, int k, float alpha,
                                       unsigned long long a, int lda, unsigned long long b, int ldb, float beta,
                                       unsigned long long c, int ldc, int compute) {
	return ((lr_cublasGemmEx_t)f)((lr_cublasHandle)h, (lr_cublasOperation)ta, (lr_cublasOperation)tb, m, n, k,
	                              &alpha, LR_DPTR(const void, a), (lr_cudaDataType)0, lda, LR_DPTR(const void, b),
	                              (lr_cudaDataType)0, ldb, &beta, LR_DPTR(void, c), (lr_cudaDataType)0, ldc,
	                              (lr_cublasComputeType)compute, (lr_cublasGemmAlgo)-1);
}
static inline int lrc_cublasSgemv_v2(void *f, void *h, int t, int m, int n, float alpha, unsigned long long a, int lda,
                                     unsigned long long x, int incx, float beta, unsigned long long y, int incy) {
	return ((lr_cublasSgemv_v2_t)f)((lr_cublasHandle)h, (lr_cublasOperation)t, m, n, &alpha, LR_DPTR(const float, a),
	                                lda, LR_DPTR(const float, x), incx, &beta, LR_DPTR(float, y), incy);
}
static inline int lrc_cublasDgemv_v2(void *f, void *h, int t, int m, int n, double alpha, unsigned long long a,
                                     int lda, unsigned long long x, int incx, double beta, unsigned long long y,
                                     int incy) {
	return ((lr_cublasDgemv_v2_t)f)((lr_cublasHandle)h, (lr_cublasOperation)t, m, n, &alpha,
	                                LR_DPTR(const double, a), lda, LR_DPTR(const double, x), incx, &beta,
	                                LR_DPTR(double, y), incy);
}
static inline int lrc_cublasSgeam(void *f, void *h, int ta, int tb, int m, int n, float alpha, unsigned long long a,
                                  int lda, float beta, unsigned long long b, int ldb, unsigned long long c, int ldc) {
	return ((lr_cublasSgeam_t)f)((lr_cublasHandle)h, (lr_cublasOperation)ta, (lr_cublasOperation)tb, m, n, &alpha,
	                             LR_DPTR(const float, a), lda, &beta, LR_DPTR(const float, b), ldb,
	                             LR_DPTR(float, c), ldc);
}
static inline int lrc_cublasDgeam(void *f, void *h, int ta, int tb, int m, int n, double alpha, unsigned long long a,
                                  int lda, double beta, unsigned long long b, int ldb, unsigned long long c, int ldc) {
	return ((lr_cublasDgeam_t)f)((lr_cublasHandle)h, (lr_cublasOperation)ta, (lr_cublasOperation)tb, m, n, &alpha,
	                             LR_DPTR(const double, a), lda, &beta, LR_DPTR(const double, b), ldb,
	                             LR_DPTR(double, c), ldc);
}
static inline int lrc_cublasSdgmm(void *f, void *h, int side, int m, int n, unsigned long long a, int lda,
                                  unsigned long long x, int incx, unsigned long long c, int ldc) {
	return ((lr_cublasSdgmm_t)f)((lr_cublasHandle)h, (lr_cublasSideMode)side, m, n, LR_DPTR(const float, a), lda,
	                             LR_DPTR(const float, x), incx, LR_DPTR(float, c), ldc);
}
static inline int lrc_cublasDdgmm(void *f, void *h, int side, int m, int n, unsigned long long a, int lda,
                                  unsigned long long x, int incx, unsigned long long c, int ldc) {
	return ((lr_cublasDdgmm_t)f)((lr_cublasHandle)h, (lr_cublasSideMode)side, m, n, LR_DPTR(const double, a), lda,
	                             LR_DPTR(const double, x), incx, LR_DPTR(double, c), ldc);
}
/* nrm2 with the result in device memory (pointer mode DEVICE must be set). */
static inline int lrc_cublasSnrm2_v2(void *f, void *h, int n, unsigned long long x, int incx, unsigned long long r) {
	return ((lr_cublasSnrm2_v2_t)f)((lr_cublasHandle)h, n, LR_DPTR(const float, x), incx, LR_DPTR(float, r));
}
static inline int lrc_cublasDnrm2_v2(void *f, void *h, int n, unsigned long long x, int incx, unsigned long long r) {
	return ((lr_cublasDnrm2_v2_t)f)((lr_cublasHandle)h, n, LR_DPTR(const double, x), incx, LR_DPTR(double, r));
}

static inline int lrc_cusolverGetProperty(void *f, int type, int *v) {
	return ((lr_cusolverGetProperty_t)f)((lr_libraryPropertyType)type, v);
}
static inline int lrc_cusolverDnCreate(void *f, void **h) {
	lr_cusolverDnHandle hh = 0;
	int r = ((lr_cusolverDnCreate_t)f)(&hh);
	*h = (void *)hh;
	return r;
}
static inline int lrc_cusolverDnDestroy(void *f, void *h) {
	return ((lr_cusolverDnDestroy_t)f)((lr_cusolverDnHandle)h);
}
static inline int lrc_cusolverDnSetStream(void *f, void *h, void *s) {
	return ((lr_cusolverDnSetStream_t)f)((lr_cusolverDnHandle)h, (lr_cudaStream)s);
}
static inline int lrc_cusolverDnSgeqrf_bufferSize(void *f, void *h, int m, int n, unsigned long long a, int lda,
                                                  int *lwork) {
	return ((lr_cusolverDnSgeqrf_bufferSize_t)f)((lr_cusolverDnHandle)h, m, n, LR_DPTR(float, a), lda, lwork);
}
static inline int lrc_cusolverDnDgeqrf_bufferSize(void *f, void *h, int m, int n, unsigned long long a, int lda,
                                                  int *lwork) {
	return ((lr_cusolverDnDgeqrf_bufferSize_t)f)((lr_cusolverDnHandle)h, m, n, LR_DPTR(double, a), lda, lwork);
}
static inline int lrc_cusolverDnSgeqrf(void *f, void *h, int m, int n, unsigned long long a, int lda,
                                       unsigned long long tau, unsigned long long work, int lwork,
                                       unsigned long long info) {
	return ((lr_cusolverDnSgeqrf_t)f)((lr_cusolverDnHandle)h, m, n, LR_DPTR(float, a), lda, LR_DPTR(float, tau),
	                                  LR_DPTR(float, work), lwork, LR_DPTR(int, info));
}
static inline int lrc_cusolverDnDgeqrf(void *f, void *h, int m, int n, unsigned long long a, int lda,
                                       unsigned long long tau, unsigned long long work, int lwork,
                                       unsigned long long info) {
	return ((lr_cusolverDnDgeqrf_t)f)((lr_cusolverDnHandle)h, m, n, LR_DPTR(double, a), lda, LR_DPTR(double, tau),
	                                  LR_DPTR(double, work), lwork, LR_DPTR(int, info));
}
static inline int lrc_cusolverDnSorgqr_bufferSize(void *f, void *h, int m, int n, int k, unsigned long long a, int lda,
                                                  unsigned long long tau, int *lwork) {
	return ((lr_cusolverDnSorgqr_bufferSize_t)f)((lr_cusolverDnHandle)h, m, n, k, LR_DPTR(const float, a), lda,
	                                             LR_DPTR(const float, tau), lwork);
}
static inline int lrc_cusolverDnDorgqr_bufferSize(void *f, void *h, int m, int n, int k, unsigned long long a, int lda,
                                                  unsigned long long tau, int *lwork) {
	return ((lr_cusolverDnDorgqr_bufferSize_t)f)((lr_cusolverDnHandle)h, m, n, k, LR_DPTR(const double, a), lda,
	                                             LR_DPTR(const double, tau), lwork);
}
static inline int lrc_cusolverDnSorgqr(void *f, void *h, int m, int n, int k, unsigned long long a, int lda,
                                       unsigned long long tau, unsigned long long work, int lwork,
                                       unsigned long long info) {
	return ((lr_cusolverDnSorgqr_t)f)((lr_cusolverDnHandle)h, m, n, k, LR_DPTR(float, a), lda,
	                                  LR_DPTR(const float, tau), LR_DPTR(float, work), lwork, LR_DPTR(int, info));
}
static inline int lrc_cusolverDnDorgqr(void *f, void *h, int m, int n, int k, unsigned long long a, int lda,
                                       unsigned long long tau, unsigned long long work, int lwork,
                                       unsigned long long info) {
	return ((lr_cusolverDnDorgqr_t)f)((lr_cusolverDnHandle)h, m, n, k, LR_DPTR(double, a), lda,
	                                  LR_DPTR(const double, tau), LR_DPTR(double, work), lwork, LR_DPTR(int, info));
}
static inline int lrc_cusolverDnSgesvd_bufferSize(void *f, void *h, int m, int n, int *lwork) {
	return ((lr_cusolverDnSgesvd_bufferSize_t)f)((lr_cusolverDnHandle)h, m, n, lwork);
}
static inline int lrc_cusolverDnDgesvd_bufferSize(void *f, void *h, int m, int n, int *lwork) {
	return ((lr_cusolverDnDgesvd_bufferSize_t)f)((lr_cusolverDnHandle)h, m, n, lwork);
}
static inline int lrc_cusolverDnSgesvd(void *f, void *h, int jobu, int jobvt, int m, int n, unsigned long long a,
                                       int lda, unsigned long long s, unsigned long long u, int ldu,
                                       unsigned long long vt, int ldvt, unsigned long long work, int lwork,
                                       unsigned long long info) {
	return ((lr_cusolverDnSgesvd_t)f)((lr_cusolverDnHandle)h, (signed char)jobu, (signed char)jobvt, m, n,
	                                  LR_DPTR(float, a), lda, LR_DPTR(float, s), LR_DPTR(float, u), ldu,
	                                  LR_DPTR(float, vt), ldvt, LR_DPTR(float, work), lwork, (float *)0,
	                                  LR_DPTR(int, info));
}
static inline int lrc_cusolverDnDgesvd(void *f, void *h, int jobu, int jobvt, int m, int n, unsigned long long a,
                                       int lda, unsigned long long s, unsigned long long u, int ldu,
                                       unsigned long long vt, int ldvt, unsigned long long work, int lwork,
                                       unsigned long long info) {
	return ((lr_cusolverDnDgesvd_t)f)((lr_cusolverDnHandle)h, (signed char)jobu, (signed char)jobvt, m, n,
	                                  LR_DPTR(double, a), lda, LR_DPTR(double, s), LR_DPTR(double, u), ldu,
	                                  LR_DPTR(double, vt), ldvt, LR_DPTR(double, work), lwork, (double *)0,
	                                  LR_DPTR(int, info));
}
static inline int lrc_cusolverDnCreateGesvdjInfo(void *f, void **info) {
	lr_gesvdjInfo i = 0;
	int r = ((lr_cusolverDnCreateGesvdjInfo_t)f)(&i);
	*info = (void *)i;
	return r;
}
static inline int lrc_cusolverDnDestroyGesvdjInfo(void *f, void *info) {
	return ((lr_cusolverDnDestroyGesvdjInfo_t)f)((lr_gesvdjInfo)info);
}
static inline int lrc_cusolverDnXgesvdjSetTolerance(void *f, void *info, double tol) {
	return ((lr_cusolverDnXgesvdjSetTolerance_t)f)((lr_gesvdjInfo)info, tol);
}
static inline int lrc_cusolverDnXgesvdjSetMaxSweeps(void *f, void *info, int sweeps) {
	return ((lr_cusolverDnXgesvdjSetMaxSweeps_t)f)((lr_gesvdjInfo)info, sweeps);
}
static inline int lrc_cusolverDnSgesvdj_bufferSize(void *f, void *h, int jobz, int econ, int m, int n,
                                                   unsigned long long a, int lda, unsigned long long s,
                                                   unsigned long long u, int ldu, unsigned long long v, int ldv,
                                                   int *lwork, void *info) {
	return ((lr_cusolverDnSgesvdj_bufferSize_t)f)((lr_cusolverDnHandle)h, (lr_cusolverEigMode)jobz, econ, m, n,
	                                              LR_DPTR(const float, a), lda, LR_DPTR(const float, s),
	                                              LR_DPTR(const float, u), ldu, LR_DPTR(const float, v), ldv, lwork,
	                                              (lr_gesvdjInfo)info);
}
static inline int lrc_cusolverDnDgesvdj_bufferSize(void *f, void *h, int jobz, int econ, int m, int n,
                                                   unsigned long long a, int lda, unsigned long long s,
                                                   unsigned long long u, int ldu, unsigned long long v, int ldv,
                                                   int *lwork, void *info) {
	return ((lr_cusolverDnDgesvdj_bufferSize_t)f)((lr_cusolverDnHandle)h, (lr_cusolverEigMode)jobz, econ, m, n,
	                                              LR_DPTR(const double, a), lda, LR_DPTR(const double, s),
	                                              LR_DPTR(const double, u), ldu, LR_DPTR(const double, v), ldv, lwork,
	                                              (lr_gesvdjInfo)info);
}
static inline int lrc_cusolverDnSgesvdj(void *f, void *h, int jobz, int econ, int m, int n, unsigned long long a,
                                        int lda, unsigned long long s, unsigned long long u, int ldu,
                                        unsigned long long v, int ldv, unsigned long long work, int lwork,
                                        unsigned long long info, void *params) {
	return ((lr_cusolverDnSgesvdj_t)f)((lr_cusolverDnHandle)h, (lr_cusolverEigMode)jobz, econ, m, n,
	                                   LR_DPTR(float, a), lda, LR_DPTR(float, s), LR_DPTR(float, u), ldu,
	                                   LR_DPTR(float, v), ldv, LR_DPTR(float, work), lwork, LR_DPTR(int, info),
	                                   (lr_gesvdjInfo)params);
}
static inline int lrc_cusolverDnDgesvdj(void *f, void *h, int jobz, int econ, int m, int n, unsigned long long a,
                                        int lda, unsigned long long s, unsigned long long u, int ldu,
                                        unsigned long long v, int ldv, unsigned long long work, int lwork,
                                        unsigned long long info, void *params) {
	return ((lr_cusolverDnDgesvdj_t)f)((lr_cusolverDnHandle)h, (lr_cusolverEigMode)jobz, econ, m, n,
	                                   LR_DPTR(double, a), lda, LR_DPTR(double, s), LR_DPTR(double, u), ldu,
	                                   LR_DPTR(double, v), ldv, LR_DPTR(double, work), lwork, LR_DPTR(int, info),
	                                   (lr_gesvdjInfo)params);
}
static inline int lrc_cusolverDnCreateParams(void *f, void **p) {
	lr_cusolverDnParams pp = 0;
	int r = ((lr_cusolverDnCreateParams_t)f)(&pp);
	*p = (void *)pp;
	return r;
}
static inline int lrc_cusolverDnDestroyParams(void *f, void *p) {
	return ((lr_cusolverDnDestroyParams_t)f)((lr_cusolverDnParams)p);
}
/* Xgesvdp: one data type dt for A, S, U, V and the computation. */
static inline int lrc_cusolverDnXgesvdp_bufferSize(void *f, void *h, void *p, int jobz, int econ, int64_t m,
                                                   int64_t n, int dt, unsigned long long a, int64_t lda,
                                                   unsigned long long s, unsigned long long u, int64_t ldu,
                                                   unsigned long long v, int64_t ldv, size_t *dev, size_t *host) {
	lr_cudaDataType t = (lr_cudaDataType)dt;
	return ((lr_cusolverDnXgesvdp_bufferSize_t)f)((lr_cusolverDnHandle)h, (lr_cusolverDnParams)p,
	                                              (lr_cusolverEigMode)jobz, econ, m, n, t, LR_DPTR(const void, a),
	                                              lda, t, LR_DPTR(const void, s), t, LR_DPTR(const void, u), ldu, t,
	                                              LR_DPTR(const void, v), ldv, t, dev, host);
}
static inline int lrc_cusolverDnXgesvdp(void *f, void *h, void *p, int jobz, int econ, int64_t m, int64_t n, int dt,
                                        unsigned long long a, int64_t lda, unsigned long long s, unsigned long long u,
                                        int64_t ldu, unsigned long long v, int64_t ldv, unsigned long long work,
                                        size_t devBytes, void *hostWork, size_t hostBytes, unsigned long long info,
                                        double *errSigma) {
	lr_cudaDataType t = (lr_cudaDataType)dt;
	return ((lr_cusolverDnXgesvdp_t)f)((lr_cusolverDnHandle)h, (lr_cusolverDnParams)p, (lr_cusolverEigMode)jobz,
	                                   econ, m, n, t, LR_DPTR(void, a), lda, t, LR_DPTR(void, s), t,
	                                   LR_DPTR(void, u), ldu, t, LR_DPTR(void, v), ldv, t, LR_DPTR(void, work),
	                                   devBytes, hostWork, hostBytes, LR_DPTR(int, info), errSigma);
}

static inline const char *lrc_nvrtcGetErrorString(void *f, int r) {
	return ((lr_nvrtcGetErrorString_t)f)((lr_nvrtcResult)r);
}
static inline int lrc_nvrtcVersion(void *f, int *major, int *minor) { return ((lr_nvrtcVersion_t)f)(major, minor); }
static inline int lrc_cublasLtGetProperty(void *f, int type, int *v) {
	return ((lr_cublasLtGetProperty_t)f)((lr_libraryPropertyType)type, v);
}
static inline int lrc_cusparseGetProperty(void *f, int type, int *v) {
	return ((lr_cusparseGetProperty_t)f)((lr_libraryPropertyType)type, v);
}
static inline int lrc_nvJitLinkVersion(void *f, int *major, int *minor) {
	unsigned int a = 0, b = 0;
	int r = ((lr_nvJitLinkVersion_t)f)(&a, &b);
	*major = (int)a;
	*minor = (int)b;
	return r;
}
static inline int lrc_nvrtcGetNumSupportedArchs(void *f, int *n) { return ((lr_nvrtcGetNumSupportedArchs_t)f)(n); }
static inline int lrc_nvrtcGetSupportedArchs(void *f, int *archs) { return ((lr_nvrtcGetSupportedArchs_t)f)(archs); }
static inline int lrc_nvrtcCreateProgram(void *f, void **prog, const char *src, const char *name) {
	lr_nvrtcProgram p = 0;
	int r = ((lr_nvrtcCreateProgram_t)f)(&p, src, name, 0, 0, 0);
	*prog = (void *)p;
	return r;
}
static inline int lrc_nvrtcDestroyProgram(void *f, void *prog) {
	lr_nvrtcProgram p = (lr_nvrtcProgram)prog;
	return ((lr_nvrtcDestroyProgram_t)f)(&p);
}
static inline int lrc_nvrtcCompileProgram(void *f, void *prog, int nopts, char **opts) {
	return ((lr_nvrtcCompileProgram_t)f)((lr_nvrtcProgram)prog, nopts, (const char *const *)opts);
}
static inline int lrc_nvrtcGetSize(void *f, void *prog, size_t *n) {
	/* nvrtcGetPTXSize, nvrtcGetCUBINSize and nvrtcGetProgramLogSize share this type. */
	return ((lr_nvrtcGetCUBINSize_t)f)((lr_nvrtcProgram)prog, n);
}
static inline int lrc_nvrtcGetBytes(void *f, void *prog, char *out) {
	/* nvrtcGetPTX, nvrtcGetCUBIN and nvrtcGetProgramLog share this type. */
	return ((lr_nvrtcGetCUBIN_t)f)((lr_nvrtcProgram)prog, out);
}

#endif /* LOWRANK_CUDA_H */
