//go:build cgo

package cuda

/*
#include <stdlib.h>
#include "lowrank_cuda.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/lowrank-go/lowrank/internal/dl"
)

// Config says how Open finds the device and the libraries.
type Config struct {
	// Loader opens the shared libraries; nil means dlopen.
	Loader Loader
	// Ordinal is the device to use (after CUDA_VISIBLE_DEVICES).
	Ordinal int
}

// Device is one GPU with its libraries loaded, and the goroutine that runs
// all the work for it.
//
// Thread model: CUDA's current context is per OS thread, and cuBLAS and
// cuSOLVER handles are bound to the context (and, per the cuBLAS docs,
// best used from one thread). Goroutines move between OS threads at any
// function call, so a Device starts one goroutine that locks itself to its
// OS thread (runtime.LockOSThread), makes the device's primary context
// current there once, creates the stream and the handles there, and then
// executes every job sent by Do, one at a time. No other thread ever calls
// CUDA for the Device, so the context is always current, the handles are
// never shared between threads, and the engine built on it is safe for
// concurrent use without further locking. The price is one channel round
// trip per Do (a few microseconds), so callers batch a whole operation
// (upload, kernels, download) into one job.
type Device struct {
	libs *libs
	info Info
	dev  C.int

	jobs    chan *Job
	quit    chan struct{}
	stopped chan struct{}
	once    sync.Once

	ctx *Ctx // owned by the worker goroutine
	// serial is held while the worker calls CUDA (see SerialLoader).
	serial sync.Locker

	// lost is the driver error that lost the context, once one did.
	lost atomic.Pointer[Error]
}

// Job is a reusable unit of work for Device.Run: running a prepared Job
// allocates nothing, which keeps lowrank's Apply allocation-free.
type Job struct {
	f       func(*Ctx) error
	done    chan error
	cleanup bool // runs even after the context is lost
}

// NewJob prepares f to be run, possibly many times, with Device.Run. A Job
// must not be run by two goroutines at once.
func NewJob(f func(*Ctx) error) *Job { return &Job{f: f, done: make(chan error, 1)} }

// Open loads libcuda.so.1, initializes the driver, loads cuBLAS, cuSOLVER
// and NVRTC (see the package documentation for the search), and starts the
// device's worker. The error says why the GPU cannot be used.
func Open(cfg Config) (*Device, error) {
	l := cfg.Loader
	if l == nil {
		l = dl.System
	}
	e := osEnv()
	s, err := openDriver(l, e)
	if err != nil {
		return nil, err
	}
	if err := s.loadMath(l, e); err != nil {
		return nil, err
	}
	info, dev, err := s.deviceInfo(cfg.Ordinal)
	if err != nil {
		return nil, loadError(err)
	}
	d := &Device{
		libs: s, info: info, dev: dev, serial: serialFor(l),
		jobs:    make(chan *Job),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	ready := make(chan error, 1)
	go d.run(ready)
	if err := <-ready; err != nil {
		return nil, loadError(err)
	}
	return d, nil
}

// Info returns what the device is and which libraries it runs on.
func (d *Device) Info() Info { return d.info }

// Do runs f on the device's worker thread and returns its error. f must
// not call Do (it would wait for itself). A panic in f is returned as an
// error.
func (d *Device) Do(f func(*Ctx) error) error { return d.Run(NewJob(f)) }

// Cleanup runs f on the worker thread like Do, even after the context was
// lost, so that memory and handles are accounted for. f should only free:
// on a lost context every other call fails.
func (d *Device) Cleanup(f func(*Ctx) error) error {
	j := NewJob(f)
	j.cleanup = true
	return d.Run(j)
}

// Lost returns the error that lost the device's context (a kernel fault:
// CUDA_ERROR_LAUNCH_FAILED, CUDA_ERROR_ILLEGAL_ADDRESS, ...), as a
// *LostError, or nil while the device is usable.
func (d *Device) Lost() error {
	if e := d.lost.Load(); e != nil {
		return &LostError{Err: e}
	}
	return nil
}

// Run runs the prepared job j on the device's worker thread, like Do.
//
// Once a call has lost the context, CUDA fails every later call in the
// process with the same status: Run then returns a *LostError at once,
// naming the call that lost it, without running j.
func (d *Device) Run(j *Job) error {
	if e := d.lost.Load(); e != nil && !j.cleanup {
		return &LostError{Err: e}
	}
	select {
	case d.jobs <- j:
	case <-d.quit:
		return ErrClosed
	}
	return <-j.done
}

// Close stops the worker and releases the handles, the stream, the pinned
// buffers and the primary context. Device memory still allocated is not
// freed. The libraries stay loaded.
func (d *Device) Close() error {
	d.once.Do(func() { close(d.quit) })
	<-d.stopped
	return nil
}

func (d *Device) run(ready chan<- error) {
	// The goroutine never unlocks: when it returns, Go ends the OS thread,
	// and the context current on it goes with it.
	runtime.LockOSThread()
	defer close(d.stopped)
	d.serial.Lock()
	c, err := d.setup()
	d.serial.Unlock()
	if err != nil {
		ready <- err
		return
	}
	d.ctx = c
	ready <- nil
	for {
		select {
		case j := <-d.jobs:
			d.serial.Lock()
			err := c.exec(j.f)
			d.serial.Unlock()
			j.done <- err
		case <-d.quit:
			d.serial.Lock()
			c.teardown()
			d.serial.Unlock()
			return
		}
	}
}

// SerialLoader is a Loader whose libraries may not be called from two
// threads at once (the fake CUDA of internal/testkit/fakecuda keeps its
// state in C globals): the Devices opened through one run their jobs one
// at a time, process-wide.
type SerialLoader interface {
	Loader
	Serial() bool
}

// serialJobs serializes the jobs of Devices opened through a
// SerialLoader; others use a lock of their own, never contended.
var serialJobs sync.Mutex

// serialFor returns the lock d's jobs take.
func serialFor(l Loader) sync.Locker {
	if sl, ok := l.(SerialLoader); ok && sl.Serial() {
		return &serialJobs
	}
	return new(sync.Mutex)
}

func (c *Ctx) exec(f func(*Ctx) error) (err error) {
	c.freeErr = nil
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cuda: panic in device job: %v", r)
		}
		// A job that frees with defer ignores Free's error: a failed wait
		// for the stream before a free is still the job's failure.
		if err == nil && c.freeErr != nil {
			err = c.freeErr
		}
		c.freeErr = nil
	}()
	return f(c)
}

// setup makes the primary context current on the worker thread and creates
// the stream and the library handles.
func (d *Device) setup() (*Ctx, error) {
	s := d.libs
	c := &Ctx{d: d, s: s, modules: map[string]*Function{}}
	if r := C.lrc_cuDevicePrimaryCtxRetain(s.drv.cuDevicePrimaryCtxRetain, &c.pctx, d.dev); r != 0 {
		return nil, s.driverErr("cuDevicePrimaryCtxRetain", r)
	}
	c.retained = true
	fail := func(err error) (*Ctx, error) {
		c.teardown()
		return nil, err
	}
	if r := C.lrc_cuCtxSetCurrent(s.drv.cuCtxSetCurrent, c.pctx); r != 0 {
		return fail(s.driverErr("cuCtxSetCurrent", r))
	}
	// A non-blocking stream: our work never waits for, nor holds up, work
	// other code in the process puts on the legacy default stream.
	if r := C.lrc_cuStreamCreate(s.drv.cuStreamCreate, &c.stream, 1); r != 0 {
		return fail(s.driverErr("cuStreamCreate", r))
	}
	if r := C.lrc_cublasCreate_v2(s.blas.create, &c.blas); r != 0 {
		return fail(newError(LibCUBLAS, "cublasCreate_v2", int(r)))
	}
	if r := C.lrc_cublasSetStream_v2(s.blas.setStream, c.blas, c.stream); r != 0 {
		return fail(newError(LibCUBLAS, "cublasSetStream_v2", int(r)))
	}
	if r := C.lrc_cusolverDnCreate(s.solver.create, &c.solver); r != 0 {
		return fail(newError(LibCUSOLVER, "cusolverDnCreate", int(r)))
	}
	if r := C.lrc_cusolverDnSetStream(s.solver.setStream, c.solver, c.stream); r != 0 {
		return fail(newError(LibCUSOLVER, "cusolverDnSetStream", int(r)))
	}
	free, _, err := c.MemInfo()
	if err != nil {
		return fail(err)
	}
	d.info.FreeMem = free
	return c, nil
}

// live counts device allocations made by every Device and not yet freed.
var live atomic.Int64

// LiveAllocations returns the number of device allocations not yet freed
// (Ctx.Alloc minus Ctx.Free), for leak tests.
func LiveAllocations() int64 { return live.Load() }

// DevPtr is a device address (CUdeviceptr).
type DevPtr uint64

// Ctx is the device's state on its worker thread: the stream, the cuBLAS
// and cuSOLVER handles, pinned staging buffers and loaded kernels. It is
// valid only inside a function passed to Device.Do.
type Ctx struct {
	d        *Device
	s        *libs
	pctx     unsafe.Pointer
	retained bool
	stream   unsafe.Pointer
	blas     unsafe.Pointer
	solver   unsafe.Pointer
	// ptrDevice is the cuBLAS handle's pointer mode: false HOST (the
	// default), true DEVICE.
	ptrDevice bool
	// queued is set when work was queued on the stream since the last
	// synchronization, which Free waits for; freeErr is the first failure
	// of that wait in the current job.
	queued  bool
	freeErr error

	stagePtr [2]unsafe.Pointer
	stage    [2][]byte
	stageEv  [2]unsafe.Pointer

	gesvdjInfo unsafe.Pointer
	params     unsafe.Pointer
	hostWork   unsafe.Pointer // C memory for cuSOLVER's host workspace
	hostWorkN  uintptr
	scalar     unsafe.Pointer // pinned memory for a scalar a library writes (gesvdp's h_err_sigma)

	argbuf  unsafe.Pointer // C memory for kernel arguments
	modules map[string]*Function
	archs   []int
}

// Info returns the device's Info.
func (c *Ctx) Info() Info { return c.d.info }

func (c *Ctx) teardown() {
	s := c.s
	for _, f := range c.modules {
		if f.mod != nil {
			C.lrc_cuModuleUnload(s.drv.cuModuleUnload, f.mod)
		}
	}
	c.modules = nil
	for i := range c.stagePtr {
		if c.stageEv[i] != nil {
			C.lrc_cuEventDestroy_v2(s.drv.cuEventDestroy, c.stageEv[i])
			c.stageEv[i] = nil
		}
		if c.stagePtr[i] != nil {
			C.lrc_cuMemFreeHost(s.drv.cuMemFreeHost, c.stagePtr[i])
			c.stagePtr[i] = nil
			c.stage[i] = nil
		}
	}
	if c.gesvdjInfo != nil {
		C.lrc_cusolverDnDestroyGesvdjInfo(s.solver.destroyGesvdjInfo, c.gesvdjInfo)
		c.gesvdjInfo = nil
	}
	if c.params != nil {
		C.lrc_cusolverDnDestroyParams(s.solver.destroyParams, c.params)
		c.params = nil
	}
	if c.hostWork != nil {
		C.free(c.hostWork)
		c.hostWork = nil
	}
	if c.scalar != nil {
		C.lrc_cuMemFreeHost(s.drv.cuMemFreeHost, c.scalar)
		c.scalar = nil
	}
	if c.argbuf != nil {
		C.free(c.argbuf)
		c.argbuf = nil
	}
	if c.solver != nil {
		C.lrc_cusolverDnDestroy(s.solver.destroy, c.solver)
		c.solver = nil
	}
	if c.blas != nil {
		C.lrc_cublasDestroy_v2(s.blas.destroy, c.blas)
		c.blas = nil
	}
	if c.stream != nil {
		C.lrc_cuStreamDestroy_v2(s.drv.cuStreamDestroy, c.stream)
		c.stream = nil
	}
	if c.retained {
		C.lrc_cuDevicePrimaryCtxRelease_v2(s.drv.cuDevicePrimaryCtxRelease, c.d.dev)
		c.retained = false
	}
}
