package cuda

import "unsafe"

// The entry points of each library, filled by bind. Versioned names come
// first where cuda.h maps the plain name onto them (cuMemAlloc →
// cuMemAlloc_v2, …); cuEventElapsedTime keeps its oldest name first so
// that drivers older than 12.8 work: CUDA 12.8's cuda.h maps it onto
// cuEventElapsedTime_v2, and CUDA 13 drivers export both (see
// docs/cuda.md, "Entry points").

type driverAPI struct {
	cuInit, cuDriverGetVersion, cuDeviceGetCount, cuDeviceGet, cuDeviceGetName,
	cuDeviceGetAttribute, cuDeviceTotalMem, cuDevicePrimaryCtxRetain,
	cuDevicePrimaryCtxRelease, cuCtxSetCurrent, cuCtxSynchronize,
	cuMemAlloc, cuMemFree, cuMemGetInfo, cuMemAllocHost, cuMemFreeHost,
	cuMemcpyHtoDAsync, cuMemcpyDtoHAsync, cuMemcpyDtoDAsync, cuMemsetD32Async,
	cuStreamCreate, cuStreamDestroy, cuStreamSynchronize,
	cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime, cuEventDestroy,
	cuModuleLoadData, cuModuleGetFunction, cuModuleUnload, cuLaunchKernel,
	cuGetErrorName, cuGetErrorString unsafe.Pointer
}

// driverInit are the symbols needed to find a device; the rest are bound
// only once cuInit has succeeded.
func (a *driverAPI) initSymbols() []symbol {
	return []symbol{
		sym(&a.cuInit, "cuInit"),
		sym(&a.cuDriverGetVersion, "cuDriverGetVersion"),
		sym(&a.cuDeviceGetCount, "cuDeviceGetCount"),
		optSym(&a.cuGetErrorName, "cuGetErrorName"),
		optSym(&a.cuGetErrorString, "cuGetErrorString"),
	}
}

func (a *driverAPI) symbols() []symbol {
	return []symbol{
		sym(&a.cuDeviceGet, "cuDeviceGet"),
		sym(&a.cuDeviceGetName, "cuDeviceGetName"),
		sym(&a.cuDeviceGetAttribute, "cuDeviceGetAttribute"),
		sym(&a.cuDeviceTotalMem, "cuDeviceTotalMem_v2"),
		sym(&a.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
		sym(&a.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"),
		sym(&a.cuCtxSetCurrent, "cuCtxSetCurrent"),
		sym(&a.cuCtxSynchronize, "cuCtxSynchronize"),
		sym(&a.cuMemAlloc, "cuMemAlloc_v2"),
		sym(&a.cuMemFree, "cuMemFree_v2"),
		sym(&a.cuMemGetInfo, "cuMemGetInfo_v2"),
		sym(&a.cuMemAllocHost, "cuMemAllocHost_v2"),
		sym(&a.cuMemFreeHost, "cuMemFreeHost"),
		sym(&a.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
		sym(&a.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"),
		sym(&a.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
		sym(&a.cuMemsetD32Async, "cuMemsetD32Async"),
		sym(&a.cuStreamCreate, "cuStreamCreate"),
		sym(&a.cuStreamDestroy, "cuStreamDestroy_v2", "cuStreamDestroy"),
		sym(&a.cuStreamSynchronize, "cuStreamSynchronize"),
		sym(&a.cuEventCreate, "cuEventCreate"),
		sym(&a.cuEventRecord, "cuEventRecord"),
		sym(&a.cuEventSynchronize, "cuEventSynchronize"),
		sym(&a.cuEventElapsedTime, "cuEventElapsedTime", "cuEventElapsedTime_v2"),
		sym(&a.cuEventDestroy, "cuEventDestroy_v2", "cuEventDestroy"),
		sym(&a.cuModuleLoadData, "cuModuleLoadData"),
		sym(&a.cuModuleGetFunction, "cuModuleGetFunction"),
		sym(&a.cuModuleUnload, "cuModuleUnload"),
		sym(&a.cuLaunchKernel, "cuLaunchKernel"),
	}
}

type blasAPI struct {
	create, destroy, setStream, setPointerMode, setMathMode, getProperty, getStatusName,
	sgemm, dgemm, gemmEx, sgemv, dgemv, sgeam, dgeam, sdgmm, ddgmm, snrm2, dnrm2 unsafe.Pointer
}

func (a *blasAPI) symbols() []symbol {
	return []symbol{
		sym(&a.create, "cublasCreate_v2"),
		sym(&a.destroy, "cublasDestroy_v2"),
		sym(&a.setStream, "cublasSetStream_v2"),
		sym(&a.setPointerMode, "cublasSetPointerMode_v2"),
		optSym(&a.setMathMode, "cublasSetMathMode"),
		sym(&a.getProperty, "cublasGetProperty"),
		optSym(&a.getStatusName, "cublasGetStatusName"), // CUDA 11.4.2+
		sym(&a.sgemm, "cublasSgemm_v2"),
		sym(&a.dgemm, "cublasDgemm_v2"),
		optSym(&a.gemmEx, "cublasGemmEx"), // the tensor-core sketch (WithSketchPrecision)
		sym(&a.sgemv, "cublasSgemv_v2"),
		sym(&a.dgemv, "cublasDgemv_v2"),
		sym(&a.sgeam, "cublasSgeam"),
		sym(&a.dgeam, "cublasDgeam"),
		sym(&a.sdgmm, "cublasSdgmm"),
		sym(&a.ddgmm, "cublasDdgmm"),
		sym(&a.snrm2, "cublasSnrm2_v2"),
		sym(&a.dnrm2, "cublasDnrm2_v2"),
	}
}

type solverAPI struct {
	getProperty, create, destroy, setStream,
	sgeqrfBuf, dgeqrfBuf, sgeqrf, dgeqrf, sorgqrBuf, dorgqrBuf, sorgqr, dorgqr,
	sgesvdBuf, dgesvdBuf, sgesvd, dgesvd,
	createGesvdjInfo, destroyGesvdjInfo, gesvdjSetTolerance, gesvdjSetMaxSweeps,
	sgesvdjBuf, dgesvdjBuf, sgesvdj, dgesvdj,
	createParams, destroyParams, xgesvdpBuf, xgesvdp unsafe.Pointer
}

func (a *solverAPI) symbols() []symbol {
	return []symbol{
		sym(&a.getProperty, "cusolverGetProperty"),
		sym(&a.create, "cusolverDnCreate"),
		sym(&a.destroy, "cusolverDnDestroy"),
		sym(&a.setStream, "cusolverDnSetStream"),
		sym(&a.sgeqrfBuf, "cusolverDnSgeqrf_bufferSize"),
		sym(&a.dgeqrfBuf, "cusolverDnDgeqrf_bufferSize"),
		sym(&a.sgeqrf, "cusolverDnSgeqrf"),
		sym(&a.dgeqrf, "cusolverDnDgeqrf"),
		sym(&a.sorgqrBuf, "cusolverDnSorgqr_bufferSize"),
		sym(&a.dorgqrBuf, "cusolverDnDorgqr_bufferSize"),
		sym(&a.sorgqr, "cusolverDnSorgqr"),
		sym(&a.dorgqr, "cusolverDnDorgqr"),
		sym(&a.sgesvdBuf, "cusolverDnSgesvd_bufferSize"),
		sym(&a.dgesvdBuf, "cusolverDnDgesvd_bufferSize"),
		sym(&a.sgesvd, "cusolverDnSgesvd"),
		sym(&a.dgesvd, "cusolverDnDgesvd"),
		sym(&a.createGesvdjInfo, "cusolverDnCreateGesvdjInfo"),
		sym(&a.destroyGesvdjInfo, "cusolverDnDestroyGesvdjInfo"),
		optSym(&a.gesvdjSetTolerance, "cusolverDnXgesvdjSetTolerance"),
		optSym(&a.gesvdjSetMaxSweeps, "cusolverDnXgesvdjSetMaxSweeps"),
		sym(&a.sgesvdjBuf, "cusolverDnSgesvdj_bufferSize"),
		sym(&a.dgesvdjBuf, "cusolverDnDgesvdj_bufferSize"),
		sym(&a.sgesvdj, "cusolverDnSgesvdj"),
		sym(&a.dgesvdj, "cusolverDnDgesvdj"),
		// The 64-bit API (CUDA 11.1+); gesvdp is used only where present.
		optSym(&a.createParams, "cusolverDnCreateParams"),
		optSym(&a.destroyParams, "cusolverDnDestroyParams"),
		optSym(&a.xgesvdpBuf, "cusolverDnXgesvdp_bufferSize"),
		optSym(&a.xgesvdp, "cusolverDnXgesvdp"),
	}
}

func (a *solverAPI) hasGesvdp() bool {
	return a.createParams != nil && a.destroyParams != nil && a.xgesvdpBuf != nil && a.xgesvdp != nil
}

// versionAPI are the version calls of the libraries lowrank loads only as
// dependencies, with which loadMath checks that they belong to the same
// installation as cuBLAS and cuSOLVER.
type versionAPI struct {
	cublasLt, cusparse, nvJitLink unsafe.Pointer
}

func (a *versionAPI) cublasLtSymbols() []symbol {
	return []symbol{sym(&a.cublasLt, "cublasLtGetProperty")}
}

func (a *versionAPI) cusparseSymbols() []symbol {
	return []symbol{sym(&a.cusparse, "cusparseGetProperty")}
}

// nvJitLinkSymbols: nvJitLinkVersion exists from CUDA 12.3 on.
func (a *versionAPI) nvJitLinkSymbols() []symbol {
	return []symbol{optSym(&a.nvJitLink, "nvJitLinkVersion")}
}

type nvrtcAPI struct {
	getErrorString, version, getNumSupportedArchs, getSupportedArchs,
	createProgram, destroyProgram, compileProgram,
	getPTXSize, getPTX, getCUBINSize, getCUBIN, getLogSize, getLog unsafe.Pointer
}

func (a *nvrtcAPI) symbols() []symbol {
	return []symbol{
		sym(&a.getErrorString, "nvrtcGetErrorString"),
		sym(&a.version, "nvrtcVersion"),
		optSym(&a.getNumSupportedArchs, "nvrtcGetNumSupportedArchs"),
		optSym(&a.getSupportedArchs, "nvrtcGetSupportedArchs"),
		sym(&a.createProgram, "nvrtcCreateProgram"),
		sym(&a.destroyProgram, "nvrtcDestroyProgram"),
		sym(&a.compileProgram, "nvrtcCompileProgram"),
		sym(&a.getPTXSize, "nvrtcGetPTXSize"),
		sym(&a.getPTX, "nvrtcGetPTX"),
		optSym(&a.getCUBINSize, "nvrtcGetCUBINSize"),
		optSym(&a.getCUBIN, "nvrtcGetCUBIN"),
		sym(&a.getLogSize, "nvrtcGetProgramLogSize"),
		sym(&a.getLog, "nvrtcGetProgramLog"),
	}
}
