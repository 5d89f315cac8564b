//go:build cgo

package cuda

/*
#include <stdlib.h>
#include "lowrank_cuda.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// DType is the element type of a BLAS or LAPACK call.
type DType int

const (
	F32 DType = iota // float (S routines, CUDA_R_32F)
	F64              // double (D routines, CUDA_R_64F)
)

// Size returns the element size in bytes.
func (t DType) Size() int {
	if t == F32 {
		return 4
	}
	return 8
}

// cudaDataType returns CUDA_R_32F (0) or CUDA_R_64F (1).
func (t DType) cudaDataType() C.int {
	if t == F32 {
		return 0
	}
	return 1
}

// prefix returns "S" or "D" for call names.
func (t DType) prefix() string {
	if t == F32 {
		return "S"
	}
	return "D"
}

// drvErr returns the typed error of driver call's result r. A status that
// loses the context (a kernel fault) marks the device lost.
func (c *Ctx) drvErr(call string, r C.int) error {
	err := c.s.driverErr(call, r)
	if e, ok := err.(*Error); ok && contextLost(e.Status) {
		c.d.lost.CompareAndSwap(nil, e)
	}
	return err
}

// blasErr returns the typed error of cuBLAS call's status r, named by
// cuBLAS itself (cublasGetStatusName) for statuses the table lacks.
func (c *Ctx) blasErr(call string, r C.int) error {
	err := newError(LibCUBLAS, call, int(r))
	if e, ok := err.(*Error); ok {
		if _, known := cublasNames[int(r)]; !known {
			if n := c.s.cublasStatusName(int(r)); n != "" {
				e.Name = n
			}
		}
	}
	return err
}

func solverErr(call string, r C.int) error { return newError(LibCUSOLVER, call, int(r)) }

// ---- memory ----

// Alloc allocates bytes of device memory (at least 1 byte is allocated).
// Running out of memory returns an *Error matching ErrOutOfMemory.
func (c *Ctx) Alloc(bytes int) (DevPtr, error) {
	if bytes < 0 {
		return 0, fmt.Errorf("cuda: allocation of %d bytes", bytes)
	}
	var p C.ulonglong
	if r := C.lrc_cuMemAlloc_v2(c.s.drv.cuMemAlloc, &p, C.size_t(max(bytes, 1))); r != 0 {
		err := c.drvErr("cuMemAlloc_v2", r).(*Error)
		err.Detail = fmt.Sprintf("%d bytes", bytes)
		return 0, err
	}
	live.Add(1)
	return DevPtr(p), nil
}

// Free releases memory from Alloc. Free(0) does nothing.
//
// cuMemFree is not stream-ordered: its documentation does not promise to
// wait for the work queued on the stream that may still use the memory.
// So when work was queued since the last synchronization, Free first
// waits for the stream (cuStreamSynchronize). Most frees follow a
// download, which has waited already, and cost nothing more. (The
// stream-ordered cuMemFreeAsync, CUDA 11.2+, is documented for memory from
// the stream-ordered allocator's pools, which lowrank does not use.)
func (c *Ctx) Free(p DevPtr) error {
	if p == 0 {
		return nil
	}
	live.Add(-1)
	var serr error
	if c.queued && c.d.lost.Load() == nil { // nothing runs on a lost context
		// A failed wait is reported (see freeErr) and tried once more: a
		// stream that cannot be waited for twice has lost its context,
		// and the memory goes with it.
		if serr = c.Sync(); serr != nil {
			_ = c.Sync()
			if c.freeErr == nil {
				c.freeErr = serr
			}
		}
	}
	ferr := c.drvErr("cuMemFree_v2", C.lrc_cuMemFree_v2(c.s.drv.cuMemFree, C.ulonglong(p)))
	if serr != nil {
		return serr
	}
	return ferr
}

// MemInfo returns the free and total device memory in bytes.
func (c *Ctx) MemInfo() (free, total uint64, err error) {
	var f, t C.size_t
	if r := C.lrc_cuMemGetInfo_v2(c.s.drv.cuMemGetInfo, &f, &t); r != 0 {
		return 0, 0, c.drvErr("cuMemGetInfo_v2", r)
	}
	return uint64(f), uint64(t), nil
}

// Zero sets bytes of device memory at p to zero bits (bytes must be a
// multiple of 4), asynchronously on the stream.
func (c *Ctx) Zero(p DevPtr, bytes int) error {
	if bytes == 0 {
		return nil
	}
	if bytes%4 != 0 {
		return fmt.Errorf("cuda: zero of %d bytes, not a multiple of 4", bytes)
	}
	c.queued = true
	return c.drvErr("cuMemsetD32Async", C.lrc_cuMemsetD32Async(c.s.drv.cuMemsetD32Async, C.ulonglong(p), 0, C.size_t(bytes/4), c.stream))
}

// CopyDtoD copies bytes from src to dst on the stream.
func (c *Ctx) CopyDtoD(dst, src DevPtr, bytes int) error {
	if bytes == 0 {
		return nil
	}
	c.queued = true
	return c.drvErr("cuMemcpyDtoDAsync_v2", C.lrc_cuMemcpyDtoDAsync_v2(c.s.drv.cuMemcpyDtoDAsync, C.ulonglong(dst), C.ulonglong(src), C.size_t(bytes), c.stream))
}

// Sync waits until all work queued on the stream has finished.
func (c *Ctx) Sync() error {
	if err := c.drvErr("cuStreamSynchronize", C.lrc_cuStreamSynchronize(c.s.drv.cuStreamSynchronize, c.stream)); err != nil {
		return err
	}
	c.queued = false
	return nil
}

// ---- pinned staging ----

// StageBytes is the size of each of the two pinned staging buffers.
const StageBytes = 8 << 20

func (c *Ctx) ensureStage() error {
	for i := range c.stagePtr {
		if c.stagePtr[i] != nil {
			continue
		}
		var p unsafe.Pointer
		if r := C.lrc_cuMemAllocHost_v2(c.s.drv.cuMemAllocHost, &p, StageBytes); r != 0 {
			return c.drvErr("cuMemAllocHost_v2", r)
		}
		c.stagePtr[i] = p
		c.stage[i] = unsafe.Slice((*byte)(p), StageBytes)
		var ev unsafe.Pointer
		if r := C.lrc_cuEventCreate(c.s.drv.cuEventCreate, &ev, 2 /* CU_EVENT_DISABLE_TIMING */); r != 0 {
			return c.drvErr("cuEventCreate", r)
		}
		c.stageEv[i] = ev
	}
	return nil
}

// Stage returns the first pinned staging buffer (StageBytes long). Data
// put there can be sent with StageToDevice and read back with
// DeviceToStage; the caller must Sync before reusing or reading it.
func (c *Ctx) Stage() ([]byte, error) {
	if err := c.ensureStage(); err != nil {
		return nil, err
	}
	return c.stage[0], nil
}

// StageToDevice queues a copy of stage[off:off+n] to dst.
func (c *Ctx) StageToDevice(dst DevPtr, off, n int) error {
	if n == 0 {
		return nil
	}
	if off < 0 || off+n > StageBytes {
		return fmt.Errorf("cuda: staging range [%d, %d) out of bounds", off, off+n)
	}
	src := unsafe.Add(c.stagePtr[0], off)
	c.queued = true
	return c.drvErr("cuMemcpyHtoDAsync_v2", C.lrc_cuMemcpyHtoDAsync_v2(c.s.drv.cuMemcpyHtoDAsync, C.ulonglong(dst), src, C.size_t(n), c.stream))
}

// DeviceToStage queues a copy of n bytes at src into stage[off:off+n].
func (c *Ctx) DeviceToStage(off int, src DevPtr, n int) error {
	if n == 0 {
		return nil
	}
	if off < 0 || off+n > StageBytes {
		return fmt.Errorf("cuda: staging range [%d, %d) out of bounds", off, off+n)
	}
	dst := unsafe.Add(c.stagePtr[0], off)
	c.queued = true
	return c.drvErr("cuMemcpyDtoHAsync_v2", C.lrc_cuMemcpyDtoHAsync_v2(c.s.drv.cuMemcpyDtoHAsync, dst, C.ulonglong(src), C.size_t(n), c.stream))
}

// CopyHtoD copies src (host memory) to dst through the pinned staging
// buffers: while one chunk is in flight to the device the next is copied
// into the other buffer. It returns when the copy is complete.
func (c *Ctx) CopyHtoD(dst DevPtr, src []byte) (err error) {
	if len(src) == 0 {
		return nil
	}
	if err := c.ensureStage(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = c.Sync() // let queued copies finish before the buffers are reused
		}
	}()
	var pending [2]bool
	for i, off := 0, 0; off < len(src); i++ {
		b := i & 1
		if pending[b] {
			if err := c.drvErr("cuEventSynchronize", C.lrc_cuEventSynchronize(c.s.drv.cuEventSynchronize, c.stageEv[b])); err != nil {
				return err
			}
		}
		n := min(len(src)-off, StageBytes)
		copy(c.stage[b][:n], src[off:off+n])
		c.queued = true
		if r := C.lrc_cuMemcpyHtoDAsync_v2(c.s.drv.cuMemcpyHtoDAsync, C.ulonglong(dst)+C.ulonglong(off), c.stagePtr[b], C.size_t(n), c.stream); r != 0 {
			return c.drvErr("cuMemcpyHtoDAsync_v2", r)
		}
		if r := C.lrc_cuEventRecord(c.s.drv.cuEventRecord, c.stageEv[b], c.stream); r != 0 {
			return c.drvErr("cuEventRecord", r)
		}
		pending[b] = true
		off += n
	}
	return c.Sync()
}

// CopyDtoH copies len(dst) bytes from src into dst (host memory) through
// the pinned staging buffers, after all work queued before it.
func (c *Ctx) CopyDtoH(dst []byte, src DevPtr) (err error) {
	if len(dst) == 0 {
		return nil
	}
	if err := c.ensureStage(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = c.Sync()
		}
	}()
	chunks := (len(dst) + StageBytes - 1) / StageBytes
	enqueue := func(i int) error {
		b := i & 1
		off := i * StageBytes
		n := min(len(dst)-off, StageBytes)
		c.queued = true
		if r := C.lrc_cuMemcpyDtoHAsync_v2(c.s.drv.cuMemcpyDtoHAsync, c.stagePtr[b], C.ulonglong(src)+C.ulonglong(off), C.size_t(n), c.stream); r != 0 {
			return c.drvErr("cuMemcpyDtoHAsync_v2", r)
		}
		if r := C.lrc_cuEventRecord(c.s.drv.cuEventRecord, c.stageEv[b], c.stream); r != 0 {
			return c.drvErr("cuEventRecord", r)
		}
		return nil
	}
	for i := 0; i < min(chunks, 2); i++ {
		if err := enqueue(i); err != nil {
			return err
		}
	}
	for i := 0; i < chunks; i++ {
		b := i & 1
		if r := C.lrc_cuEventSynchronize(c.s.drv.cuEventSynchronize, c.stageEv[b]); r != 0 {
			return c.drvErr("cuEventSynchronize", r)
		}
		off := i * StageBytes
		n := min(len(dst)-off, StageBytes)
		copy(dst[off:off+n], c.stage[b][:n])
		if i+2 < chunks {
			if err := enqueue(i + 2); err != nil {
				return err
			}
		}
	}
	// The last event waited for was recorded after everything queued.
	c.queued = false
	return nil
}

// ---- events (timing) ----

// Event is a CUDA event that records timing.
type Event struct{ e unsafe.Pointer }

// NewEvent creates a timing event.
func (c *Ctx) NewEvent() (Event, error) {
	var e unsafe.Pointer
	if r := C.lrc_cuEventCreate(c.s.drv.cuEventCreate, &e, 0); r != 0 {
		return Event{}, c.drvErr("cuEventCreate", r)
	}
	return Event{e}, nil
}

// Record records e on the stream.
func (c *Ctx) Record(e Event) error {
	return c.drvErr("cuEventRecord", C.lrc_cuEventRecord(c.s.drv.cuEventRecord, e.e, c.stream))
}

// Elapsed waits for end and returns the milliseconds between start and end.
func (c *Ctx) Elapsed(start, end Event) (float32, error) {
	if r := C.lrc_cuEventSynchronize(c.s.drv.cuEventSynchronize, end.e); r != 0 {
		return 0, c.drvErr("cuEventSynchronize", r)
	}
	var ms C.float
	if r := C.lrc_cuEventElapsedTime(c.s.drv.cuEventElapsedTime, &ms, start.e, end.e); r != 0 {
		return 0, c.drvErr("cuEventElapsedTime", r)
	}
	return float32(ms), nil
}

// DestroyEvent destroys e.
func (c *Ctx) DestroyEvent(e Event) {
	if e.e != nil {
		C.lrc_cuEventDestroy_v2(c.s.drv.cuEventDestroy, e.e)
	}
}

// ---- cuBLAS ----

func op(t bool) C.int {
	if t {
		return 1 // CUBLAS_OP_T
	}
	return 0 // CUBLAS_OP_N
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C on column-major matrices
// (cublas?gemm_v2): op(A) is m×k, op(B) k×n, C m×n.
func (c *Ctx) Gemm(t DType, ta, tb bool, m, n, k int, alpha float64, a DevPtr, lda int, b DevPtr, ldb int, beta float64, cc DevPtr, ldc int) error {
	if err := c.pointerMode(false); err != nil {
		return err
	}
	var r C.int
	c.queued = true
	if t == F32 {
		r = C.lrc_cublasSgemm_v2(c.s.blas.sgemm, c.blas, op(ta), op(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
			C.ulonglong(a), C.int(lda), C.ulonglong(b), C.int(ldb), C.float(beta), C.ulonglong(cc), C.int(ldc))
	} else {
		r = C.lrc_cublasDgemm_v2(c.s.blas.dgemm, c.blas, op(ta), op(tb), C.int(m), C.int(n), C.int(k), C.double(alpha),
			C.ulonglong(a), C.int(lda), C.ulonglong(b), C.int(ldb), C.double(beta), C.ulonglong(cc), C.int(ldc))
	}
	if r != 0 {
		return c.blasErr("cublas"+t.prefix()+"gemm_v2", r)
	}
	return nil
}

// ComputeType is a cublasComputeType_t: the arithmetic of GemmEx.
type ComputeType int

// The compute types GemmEx is called with (cublas_api.h).
const (
	Compute32F         ComputeType = 68 // CUBLAS_COMPUTE_32F
	Compute32FFast16BF ComputeType = 75 // CUBLAS_COMPUTE_32F_FAST_16BF: inputs rounded to bfloat16
	Compute32FFastTF32 ComputeType = 77 // CUBLAS_COMPUTE_32F_FAST_TF32: inputs rounded to TF32
)

// String returns the cuBLAS name of t.
func (t ComputeType) String() string {
	switch t {
	case Compute32F:
		return "CUBLAS_COMPUTE_32F"
	case Compute32FFast16BF:
		return "CUBLAS_COMPUTE_32F_FAST_16BF"
	case Compute32FFastTF32:
		return "CUBLAS_COMPUTE_32F_FAST_TF32"
	}
	return fmt.Sprintf("cublasComputeType_t(%d)", int(t))
}

// HasGemmEx says whether the cuBLAS library exports cublasGemmEx.
func (c *Ctx) HasGemmEx() bool { return c.s.blas.gemmEx != nil }

// GemmEx computes C = alpha·op(A)·op(B) + beta·C like Gemm on float32
// column-major matrices (CUDA_R_32F A, B and C), in compute type ct
// (cublasGemmEx with CUBLAS_GEMM_DEFAULT). It fails when the library has
// no cublasGemmEx.
func (c *Ctx) GemmEx(ct ComputeType, ta, tb bool, m, n, k int, alpha float32, a DevPtr, lda int, b DevPtr, ldb int, beta float32, cc DevPtr, ldc int) error {
	if c.s.blas.gemmEx == nil {
		return fmt.Errorf("cuda: %s exports no cublasGemmEx, which %v needs", c.s.paths[keyCublas], ct)
	}
	if err := c.pointerMode(false); err != nil {
		return err
	}
	c.queued = true
	r := C.lrc_cublasGemmEx_f32(c.s.blas.gemmEx, c.blas, op(ta), op(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
		C.ulonglong(a), C.int(lda), C.ulonglong(b), C.int(ldb), C.float(beta), C.ulonglong(cc), C.int(ldc), C.int(ct))
	if r != 0 {
		return c.blasErr("cublasGemmEx ("+ct.String()+")", r)
	}
	return nil
}

// Gemv computes y = alpha·op(A)·x + beta·y for the column-major m×n A.
func (c *Ctx) Gemv(t DType, trans bool, m, n int, alpha float64, a DevPtr, lda int, x DevPtr, incx int, beta float64, y DevPtr, incy int) error {
	if err := c.pointerMode(false); err != nil {
		return err
	}
	var r C.int
	c.queued = true
	if t == F32 {
		r = C.lrc_cublasSgemv_v2(c.s.blas.sgemv, c.blas, op(trans), C.int(m), C.int(n), C.float(alpha), C.ulonglong(a), C.int(lda),
			C.ulonglong(x), C.int(incx), C.float(beta), C.ulonglong(y), C.int(incy))
	} else {
		r = C.lrc_cublasDgemv_v2(c.s.blas.dgemv, c.blas, op(trans), C.int(m), C.int(n), C.double(alpha), C.ulonglong(a), C.int(lda),
			C.ulonglong(x), C.int(incx), C.double(beta), C.ulonglong(y), C.int(incy))
	}
	if r != 0 {
		return c.blasErr("cublas"+t.prefix()+"gemv_v2", r)
	}
	return nil
}

// Geam computes C = alpha·op(A) + beta·op(B) (m×n, column-major). With
// beta = 0 it copies or transposes A; cuBLAS allows C = B in place when
// ldb = ldc and tb is false, which callers use to pass a valid B.
func (c *Ctx) Geam(t DType, ta, tb bool, m, n int, alpha float64, a DevPtr, lda int, beta float64, b DevPtr, ldb int, cc DevPtr, ldc int) error {
	if err := c.pointerMode(false); err != nil {
		return err
	}
	var r C.int
	c.queued = true
	if t == F32 {
		r = C.lrc_cublasSgeam(c.s.blas.sgeam, c.blas, op(ta), op(tb), C.int(m), C.int(n), C.float(alpha), C.ulonglong(a), C.int(lda),
			C.float(beta), C.ulonglong(b), C.int(ldb), C.ulonglong(cc), C.int(ldc))
	} else {
		r = C.lrc_cublasDgeam(c.s.blas.dgeam, c.blas, op(ta), op(tb), C.int(m), C.int(n), C.double(alpha), C.ulonglong(a), C.int(lda),
			C.double(beta), C.ulonglong(b), C.int(ldb), C.ulonglong(cc), C.int(ldc))
	}
	if r != 0 {
		return c.blasErr("cublas"+t.prefix()+"geam", r)
	}
	return nil
}

// Dgmm computes C = diag(x)·A (right false) or A·diag(x) (right true) for
// the column-major m×n A.
func (c *Ctx) Dgmm(t DType, right bool, m, n int, a DevPtr, lda int, x DevPtr, incx int, cc DevPtr, ldc int) error {
	side := C.int(0)
	if right {
		side = 1
	}
	var r C.int
	c.queued = true
	if t == F32 {
		r = C.lrc_cublasSdgmm(c.s.blas.sdgmm, c.blas, side, C.int(m), C.int(n), C.ulonglong(a), C.int(lda), C.ulonglong(x), C.int(incx), C.ulonglong(cc), C.int(ldc))
	} else {
		r = C.lrc_cublasDdgmm(c.s.blas.ddgmm, c.blas, side, C.int(m), C.int(n), C.ulonglong(a), C.int(lda), C.ulonglong(x), C.int(incx), C.ulonglong(cc), C.int(ldc))
	}
	if r != 0 {
		return c.blasErr("cublas"+t.prefix()+"dgmm", r)
	}
	return nil
}

// pointerMode makes the cuBLAS handle take scalars from device memory
// (device true: nrm2's result) or from host memory (alpha and beta of
// gemm, gemv and geam). The mode is switched lazily, before each call that
// depends on it, rather than set and restored around one call: a failure
// to restore it would otherwise leave the handle in DEVICE mode, and every
// later gemm would read alpha at a host address on the device.
func (c *Ctx) pointerMode(device bool) error {
	if c.ptrDevice == device {
		return nil
	}
	mode := C.int(0)
	if device {
		mode = 1
	}
	if r := C.lrc_cublasSetPointerMode_v2(c.s.blas.setPointerMode, c.blas, mode); r != 0 {
		return c.blasErr("cublasSetPointerMode_v2", r)
	}
	c.ptrDevice = device
	return nil
}

// Nrm2s queues, for each i < count, the Euclidean norm of the n elements
// x + i·stride, x + i·stride + incx, … into result[i] (device memory of
// type t): one cublas?nrm2 call per vector, with the result left on the
// device so that the calls do not wait for each other.
func (c *Ctx) Nrm2s(t DType, count, n int, x DevPtr, stride, incx int, result DevPtr) error {
	if err := c.pointerMode(true); err != nil {
		return err
	}
	size := DevPtr(t.Size())
	c.queued = true
	for i := 0; i < count; i++ {
		xi := x + DevPtr(i*stride)*size
		ri := result + DevPtr(i)*size
		var r C.int
		if t == F32 {
			r = C.lrc_cublasSnrm2_v2(c.s.blas.snrm2, c.blas, C.int(n), C.ulonglong(xi), C.int(incx), C.ulonglong(ri))
		} else {
			r = C.lrc_cublasDnrm2_v2(c.s.blas.dnrm2, c.blas, C.int(n), C.ulonglong(xi), C.int(incx), C.ulonglong(ri))
		}
		if r != 0 {
			return c.blasErr("cublas"+t.prefix()+"nrm2_v2", r)
		}
	}
	return nil
}

// ---- cuSOLVER ----

// GeqrfBufferSize returns geqrf's workspace in elements.
func (c *Ctx) GeqrfBufferSize(t DType, m, n int, a DevPtr, lda int) (int, error) {
	var lw C.int
	var r C.int
	if t == F32 {
		r = C.lrc_cusolverDnSgeqrf_bufferSize(c.s.solver.sgeqrfBuf, c.solver, C.int(m), C.int(n), C.ulonglong(a), C.int(lda), &lw)
	} else {
		r = C.lrc_cusolverDnDgeqrf_bufferSize(c.s.solver.dgeqrfBuf, c.solver, C.int(m), C.int(n), C.ulonglong(a), C.int(lda), &lw)
	}
	if r != 0 {
		return 0, solverErr("cusolverDn"+t.prefix()+"geqrf_bufferSize", r)
	}
	return int(lw), nil
}

// Geqrf computes the QR factorization of the column-major m×n A in place.
func (c *Ctx) Geqrf(t DType, m, n int, a DevPtr, lda int, tau, work DevPtr, lwork int, info DevPtr) error {
	var r C.int
	c.queued = true
	if t == F32 {
		r = C.lrc_cusolverDnSgeqrf(c.s.solver.sgeqrf, c.solver, C.int(m), C.int(n), C.ulonglong(a), C.int(lda), C.ulonglong(tau), C.ulonglong(work), C.int(lwork), C.ulonglong(info))
	} else {
		r = C.lrc_cusolverDnDgeqrf(c.s.solver.dgeqrf, c.solver, C.int(m), C.int(n), C.ulonglong(a), C.int(lda), C.ulonglong(tau), C.ulonglong(work), C.int(lwork), C.ulonglong(info))
	}
	if r != 0 {
		return solverErr("cusolverDn"+t.prefix()+"geqrf", r)
	}
	return nil
}

// OrgqrBufferSize returns orgqr's workspace in elements.
func (c *Ctx) OrgqrBufferSize(t DType, m, n, k int, a DevPtr, lda int, tau DevPtr) (int, error) {
	var lw C.int
	var r C.int
	if t == F32 {
		r = C.lrc_cusolverDnSorgqr_bufferSize(c.s.solver.sorgqrBuf, c.solver, C.int(m), C.int(n), C.int(k), C.ulonglong(a), C.int(lda), C.ulonglong(tau), &lw)
	} else {
		r = C.lrc_cusolverDnDorgqr_bufferSize(c.s.solver.dorgqrBuf, c.solver, C.int(m), C.int(n), C.int(k), C.ulonglong(a), C.int(lda), C.ulonglong(tau), &lw)
	}
	if r != 0 {
		return 0, solverErr("cusolverDn"+t.prefix()+"orgqr_bufferSize", r)
	}
	return int(lw), nil
}

// Orgqr overwrites the geqrf output A with the m×n matrix Q.
func (c *Ctx) Orgqr(t DType, m, n, k int, a DevPtr, lda int, tau, work DevPtr, lwork int, info DevPtr) error {
	var r C.int
	c.queued = true
	if t == F32 {
		r = C.lrc_cusolverDnSorgqr(c.s.solver.sorgqr, c.solver, C.int(m), C.int(n), C.int(k), C.ulonglong(a), C.int(lda), C.ulonglong(tau), C.ulonglong(work), C.int(lwork), C.ulonglong(info))
	} else {
		r = C.lrc_cusolverDnDorgqr(c.s.solver.dorgqr, c.solver, C.int(m), C.int(n), C.int(k), C.ulonglong(a), C.int(lda), C.ulonglong(tau), C.ulonglong(work), C.int(lwork), C.ulonglong(info))
	}
	if r != 0 {
		return solverErr("cusolverDn"+t.prefix()+"orgqr", r)
	}
	return nil
}

// GesvdBufferSize returns gesvd's workspace in elements.
func (c *Ctx) GesvdBufferSize(t DType, m, n int) (int, error) {
	var lw C.int
	var r C.int
	if t == F32 {
		r = C.lrc_cusolverDnSgesvd_bufferSize(c.s.solver.sgesvdBuf, c.solver, C.int(m), C.int(n), &lw)
	} else {
		r = C.lrc_cusolverDnDgesvd_bufferSize(c.s.solver.dgesvdBuf, c.solver, C.int(m), C.int(n), &lw)
	}
	if r != 0 {
		return 0, solverErr("cusolverDn"+t.prefix()+"gesvd_bufferSize", r)
	}
	return int(lw), nil
}

// Gesvd computes the SVD of the column-major m×n A (m ≥ n) with cuSOLVER's
// QR-iteration solver: jobu and jobvt are LAPACK's 'A', 'S', 'O' or 'N'.
// It returns Vᵀ.
func (c *Ctx) Gesvd(t DType, jobu, jobvt byte, m, n int, a DevPtr, lda int, s, u DevPtr, ldu int, vt DevPtr, ldvt int, work DevPtr, lwork int, info DevPtr) error {
	var r C.int
	c.queued = true
	if t == F32 {
		r = C.lrc_cusolverDnSgesvd(c.s.solver.sgesvd, c.solver, C.int(jobu), C.int(jobvt), C.int(m), C.int(n), C.ulonglong(a), C.int(lda),
			C.ulonglong(s), C.ulonglong(u), C.int(ldu), C.ulonglong(vt), C.int(ldvt), C.ulonglong(work), C.int(lwork), C.ulonglong(info))
	} else {
		r = C.lrc_cusolverDnDgesvd(c.s.solver.dgesvd, c.solver, C.int(jobu), C.int(jobvt), C.int(m), C.int(n), C.ulonglong(a), C.int(lda),
			C.ulonglong(s), C.ulonglong(u), C.int(ldu), C.ulonglong(vt), C.int(ldvt), C.ulonglong(work), C.int(lwork), C.ulonglong(info))
	}
	if r != 0 {
		return solverErr("cusolverDn"+t.prefix()+"gesvd", r)
	}
	return nil
}

// gesvdjParams returns the (shared) gesvdj parameters: tolerance machine
// precision and at most 100 sweeps, cuSOLVER's defaults made explicit.
func (c *Ctx) gesvdjParams() (unsafe.Pointer, error) {
	if c.gesvdjInfo != nil {
		return c.gesvdjInfo, nil
	}
	var p unsafe.Pointer
	if r := C.lrc_cusolverDnCreateGesvdjInfo(c.s.solver.createGesvdjInfo, &p); r != 0 {
		return nil, solverErr("cusolverDnCreateGesvdjInfo", r)
	}
	if c.s.solver.gesvdjSetMaxSweeps != nil {
		if r := C.lrc_cusolverDnXgesvdjSetMaxSweeps(c.s.solver.gesvdjSetMaxSweeps, p, 100); r != 0 {
			C.lrc_cusolverDnDestroyGesvdjInfo(c.s.solver.destroyGesvdjInfo, p)
			return nil, solverErr("cusolverDnXgesvdjSetMaxSweeps", r)
		}
	}
	c.gesvdjInfo = p
	return p, nil
}

// GesvdjBufferSize returns gesvdj's workspace in elements for the economy
// SVD with vectors (jobz = VECTOR, econ = 1).
func (c *Ctx) GesvdjBufferSize(t DType, m, n int, a DevPtr, lda int, s, u DevPtr, ldu int, v DevPtr, ldv int) (int, error) {
	p, err := c.gesvdjParams()
	if err != nil {
		return 0, err
	}
	var lw C.int
	var r C.int
	if t == F32 {
		r = C.lrc_cusolverDnSgesvdj_bufferSize(c.s.solver.sgesvdjBuf, c.solver, 1, 1, C.int(m), C.int(n), C.ulonglong(a), C.int(lda),
			C.ulonglong(s), C.ulonglong(u), C.int(ldu), C.ulonglong(v), C.int(ldv), &lw, p)
	} else {
		r = C.lrc_cusolverDnDgesvdj_bufferSize(c.s.solver.dgesvdjBuf, c.solver, 1, 1, C.int(m), C.int(n), C.ulonglong(a), C.int(lda),
			C.ulonglong(s), C.ulonglong(u), C.int(ldu), C.ulonglong(v), C.int(ldv), &lw, p)
	}
	if r != 0 {
		return 0, solverErr("cusolverDn"+t.prefix()+"gesvdj_bufferSize", r)
	}
	return int(lw), nil
}

// Gesvdj computes the economy SVD of the column-major m×n A with the
// Jacobi solver. It returns V (n×min(m,n)), not Vᵀ. A is destroyed.
func (c *Ctx) Gesvdj(t DType, m, n int, a DevPtr, lda int, s, u DevPtr, ldu int, v DevPtr, ldv int, work DevPtr, lwork int, info DevPtr) error {
	p, err := c.gesvdjParams()
	if err != nil {
		return err
	}
	var r C.int
	c.queued = true
	if t == F32 {
		r = C.lrc_cusolverDnSgesvdj(c.s.solver.sgesvdj, c.solver, 1, 1, C.int(m), C.int(n), C.ulonglong(a), C.int(lda),
			C.ulonglong(s), C.ulonglong(u), C.int(ldu), C.ulonglong(v), C.int(ldv), C.ulonglong(work), C.int(lwork), C.ulonglong(info), p)
	} else {
		r = C.lrc_cusolverDnDgesvdj(c.s.solver.dgesvdj, c.solver, 1, 1, C.int(m), C.int(n), C.ulonglong(a), C.int(lda),
			C.ulonglong(s), C.ulonglong(u), C.int(ldu), C.ulonglong(v), C.int(ldv), C.ulonglong(work), C.int(lwork), C.ulonglong(info), p)
	}
	if r != 0 {
		return solverErr("cusolverDn"+t.prefix()+"gesvdj", r)
	}
	return nil
}

// HasGesvdp reports whether cusolverDnXgesvdp is available.
func (c *Ctx) HasGesvdp() bool { return c.s.solver.hasGesvdp() }

func (c *Ctx) dnParams() (unsafe.Pointer, error) {
	if c.params != nil {
		return c.params, nil
	}
	if !c.s.solver.hasGesvdp() {
		return nil, fmt.Errorf("cuda: this cuSOLVER has no cusolverDnXgesvdp")
	}
	var p unsafe.Pointer
	if r := C.lrc_cusolverDnCreateParams(c.s.solver.createParams, &p); r != 0 {
		return nil, solverErr("cusolverDnCreateParams", r)
	}
	c.params = p
	return p, nil
}

// GesvdpBufferSize returns Xgesvdp's device and host workspace in bytes
// for the economy SVD with vectors of the column-major m×n A.
func (c *Ctx) GesvdpBufferSize(t DType, m, n int, a DevPtr, lda int, s, u DevPtr, ldu int, v DevPtr, ldv int) (dev, host int, err error) {
	p, err := c.dnParams()
	if err != nil {
		return 0, 0, err
	}
	var d, h C.size_t
	r := C.lrc_cusolverDnXgesvdp_bufferSize(c.s.solver.xgesvdpBuf, c.solver, p, 1, 1, C.int64_t(m), C.int64_t(n), t.cudaDataType(),
		C.ulonglong(a), C.int64_t(lda), C.ulonglong(s), C.ulonglong(u), C.int64_t(ldu), C.ulonglong(v), C.int64_t(ldv), &d, &h)
	return int(d), int(h), solverErr("cusolverDnXgesvdp_bufferSize", r)
}

// Gesvdp computes the economy SVD of the column-major m×n A with the
// polar-decomposition solver (cusolverDnXgesvdp). It returns V, not Vᵀ,
// and cuSOLVER's estimate of the error of the singular values.
//
// Neither host pointer it hands cuSOLVER is Go memory, which C must not
// keep after the call returns: the host workspace is C memory owned by the
// Ctx, and h_err_sigma is a scalar in pinned memory (cuMemAllocHost) that
// is read only after the stream is synchronized, since the documentation
// does not say that cuSOLVER has written it when the call returns.
func (c *Ctx) Gesvdp(t DType, m, n int, a DevPtr, lda int, s, u DevPtr, ldu int, v DevPtr, ldv int, work DevPtr, devBytes, hostBytes int, info DevPtr) (float64, error) {
	p, err := c.dnParams()
	if err != nil {
		return 0, err
	}
	if c.scalar == nil {
		var sp unsafe.Pointer
		if r := C.lrc_cuMemAllocHost_v2(c.s.drv.cuMemAllocHost, &sp, 64); r != 0 {
			return 0, c.drvErr("cuMemAllocHost_v2", r)
		}
		c.scalar = sp
	}
	if hostBytes > 0 && uintptr(hostBytes) > c.hostWorkN {
		if c.hostWork != nil {
			if c.queued { // an earlier call may still use it
				if err := c.Sync(); err != nil {
					return 0, err
				}
			}
			C.free(c.hostWork)
		}
		c.hostWork = C.malloc(C.size_t(hostBytes))
		if c.hostWork == nil {
			c.hostWorkN = 0
			return 0, fmt.Errorf("cuda: cannot allocate %d bytes of host workspace", hostBytes)
		}
		c.hostWorkN = uintptr(hostBytes)
	}
	var hw unsafe.Pointer
	if hostBytes > 0 {
		hw = c.hostWork
	}
	c.queued = true
	r := C.lrc_cusolverDnXgesvdp(c.s.solver.xgesvdp, c.solver, p, 1, 1, C.int64_t(m), C.int64_t(n), t.cudaDataType(),
		C.ulonglong(a), C.int64_t(lda), C.ulonglong(s), C.ulonglong(u), C.int64_t(ldu), C.ulonglong(v), C.int64_t(ldv),
		C.ulonglong(work), C.size_t(devBytes), hw, C.size_t(hostBytes), C.ulonglong(info), (*C.double)(c.scalar))
	if r != 0 {
		return 0, solverErr("cusolverDnXgesvdp", r)
	}
	if err := c.Sync(); err != nil {
		return 0, err
	}
	return float64(*(*C.double)(c.scalar)), nil
}
