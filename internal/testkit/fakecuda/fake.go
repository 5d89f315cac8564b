//go:build cgo

// Package fakecuda is a fake CUDA installation for tests of
// lowrank/internal/cuda and lowrank/gpu on machines without a GPU: a Loader
// whose "libraries" are C functions in this package (fake.c).
//
// The fake is functional: device memory is host memory, copies and
// memsets work, and the cuBLAS (gemm, gemv, geam, dgmm, nrm2) and
// cuSOLVER (geqrf, orgqr, gesvd, gesvdj, Xgesvdp and their bufferSize)
// routines lowrank calls are reference loops on column-major data, so the
// gpu backend's engine runs end to end on the host. NVRTC loads but
// cannot compile, and kernel launches fail. Each library answers its
// version call (cublasGetProperty, nvrtcVersion, …) with the version of
// the CUDA release its soname belongs to.
//
// It is stricter than the real libraries, so that what works on a GPU only
// by luck fails here:
//
//   - every pointer must lie inside a live allocation, and leading
//     dimensions and in-place rules are checked;
//   - fresh memory, device or pinned, reads as NaN, and so does freed
//     memory;
//   - the stream's work is numbered: freeing memory that work queued since
//     the last synchronization uses is a violation (cuMemFree is not
//     stream-ordered), and a device-to-host copy reads its source, and
//     writes the host, only when a synchronization completes it;
//   - geam reads B even when beta = 0, in IEEE arithmetic (0·NaN is NaN);
//   - Xgesvdp's h_err_sigma must be pinned memory, written at the next
//     synchronization.
//
// Breaches are collected by Violations.
//
// Knobs inject the failures a GPU can produce: a missing library or
// symbol, cuInit codes, an old driver, a small device (MemLimit), the Nth
// call of any entry point failing with any status (SetFaults), including
// a lost context (Fault.Sticky), workspace sizes that do not fit
// (SetLwork), solvers that do not converge (SetDevInfo), and libraries of
// two CUDA installations mixed in one folder (Versions, Needed). Counters
// (LiveAllocations, PinnedAllocations, Events, Handles, Retained) show what
// is left behind.
//
// The fake calls the real trampolines of internal/cuda through real
// function pointers, so a test exercises the same code as a GPU run. It
// keeps its state in C globals: use one Fake at a time (no t.Parallel).
// Several Devices (DeviceCount ≥ 2, one per ordinal) may be open at once:
// the fake is a cuda.SerialLoader, so their jobs run one at a time; they
// share the fake's memory, counters and faults (a Sticky fault loses every
// device's context).
package fakecuda

/*
#cgo LDFLAGS: -lm
#include <stdlib.h>
#include "fake.h"
*/
import "C"

import (
	"errors"
	"path"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/lowrank-go/lowrank/internal/cuda"
)

// Fake is a fake CUDA installation. The zero value plus Files is a healthy
// CUDA 13 driver with one device.
type Fake struct {
	// Files are the absolute paths of the libraries that exist, e.g.
	// "/fake/lib/libcublas.so.13". libcuda.so.1 is found by name unless
	// NoDriver is set.
	Files []string
	// NoDriver makes dlopen("libcuda.so.1") fail.
	NoDriver bool
	// OpenErr makes opening the file with this base name fail with the text.
	OpenErr map[string]string
	// MissingSyms lists symbols no library exports.
	MissingSyms []string
	// InitResult is what cuInit returns (0 = CUDA_SUCCESS).
	InitResult int
	// DriverVersion is what cuDriverGetVersion reports (0 means 13000).
	DriverVersion int
	// DeviceCount is the number of devices (0 means 1; use -1 for none).
	DeviceCount int
	// MemLimit is the device memory in bytes (0 means 16 GiB): an
	// allocation larger than what is left fails with
	// CUDA_ERROR_OUT_OF_MEMORY, and cuMemGetInfo reports what is left.
	MemLimit uint64
	// Versions makes the library with this base name report the version
	// of another CUDA release than its soname's (the major of the
	// release's version of that library: 11 for cuBLAS 11.11.3 or
	// cuSOLVER 11.7.5, 12 for cuSPARSE 12.5.10, ...). By default each
	// library reports the version its soname belongs to: cuBLAS 13.0.2
	// for libcublas.so.13, NVRTC 11.8 for libnvrtc.so.11.2, ...
	Versions map[string]int
	// Needed gives, by base name, the sonames a library depends on (its
	// DT_NEEDED entries). Libraries without an entry say they cannot tell.
	Needed map[string][]string

	// Opened records every path opened, in order.
	Opened []string
}

// CUDA13 returns the files of a complete CUDA 13 installation in dir.
func CUDA13(dir string) []string {
	return files(dir, "libcublasLt.so.13", "libcublas.so.13", "libnvJitLink.so.13", "libcusparse.so.12",
		"libcusolver.so.12", "libnvrtc-builtins.so.13.0", "libnvrtc.so.13")
}

// CUDA12 returns the files of a complete CUDA 12 installation in dir.
func CUDA12(dir string) []string {
	return files(dir, "libcublasLt.so.12", "libcublas.so.12", "libnvJitLink.so.12", "libcusparse.so.12",
		"libcusolver.so.11", "libnvrtc-builtins.so.12.9", "libnvrtc.so.12")
}

func files(dir string, names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = path.Join(dir, n)
	}
	return out
}

// Install resets the fake (memory, counters, faults, knobs, violations)
// and sets the driver's behaviour from f; call it before cuda.Open, and
// only once the previous fake Device is closed.
func (f *Fake) Install() {
	ver := f.DriverVersion
	if ver == 0 {
		ver = 13000
	}
	count := f.DeviceCount
	if count == 0 {
		count = 1
	} else if count < 0 {
		count = 0
	}
	limit := f.MemLimit
	if limit == 0 {
		limit = 16 << 30
	}
	C.fk_configure(C.int(f.InitResult), C.int(ver), C.int(count), C.ulonglong(limit))
}

// Retained returns how many primary-context references are held.
func Retained() int { return int(C.fk_get_retained()) }

// LiveAllocations returns the fake driver's count of allocations.
func LiveAllocations() int { return int(C.fk_get_live()) }

// Handles returns the number of streams and library handles alive.
func Handles() int { return int(C.fk_get_handles()) }

// Serial implements cuda.SerialLoader: the fake's state is C globals, so
// the Devices opened through it (two or more with DeviceCount) run their
// jobs one at a time.
func (f *Fake) Serial() bool { return true }

// Open implements cuda.Loader.
func (f *Fake) Open(p string) (cuda.Library, error) {
	f.Opened = append(f.Opened, p)
	base := path.Base(p)
	if msg, ok := f.OpenErr[base]; ok {
		return nil, errors.New(msg)
	}
	if p == "libcuda.so.1" {
		if f.NoDriver {
			return nil, errors.New("libcuda.so.1: cannot open shared object file: No such file or directory")
		}
		return &lib{f: f, path: "/usr/lib/fake/libcuda.so.1"}, nil
	}
	if !f.Exists(p) {
		return nil, errors.New(p + ": cannot open shared object file: No such file or directory")
	}
	return &lib{f: f, path: p}, nil
}

// Exists implements cuda.Loader.
func (f *Fake) Exists(p string) bool {
	for _, x := range f.Files {
		if x == p {
			return true
		}
	}
	return false
}

// Glob implements cuda.Loader for patterns with * in the base name.
func (f *Fake) Glob(pattern string) []string {
	var out []string
	for _, x := range f.Files {
		if ok, _ := path.Match(pattern, x); ok {
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

type lib struct {
	f    *Fake
	path string
}

func (l *lib) Sym(name string) (unsafe.Pointer, error) {
	for _, m := range l.f.MissingSyms {
		if m == name {
			return nil, errors.New(l.path + ": undefined symbol: " + name)
		}
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	base := path.Base(l.path)
	major, ok := l.f.Versions[base]
	if !ok {
		major = sonameMajor(base)
	}
	if p := C.fk_version_sym(cn, C.int(major)); p != nil {
		return p, nil
	}
	p := C.fk_sym(cn)
	if p == nil {
		return nil, errors.New(l.path + ": undefined symbol: " + name)
	}
	return p, nil
}

func (l *lib) Path() string { return l.path }

// Needed implements dl.NeededLister from Fake.Needed.
func (l *lib) Needed() ([]string, error) {
	if n, ok := l.f.Needed[path.Base(l.path)]; ok {
		return n, nil
	}
	return nil, errors.New("fakecuda: no DT_NEEDED entries given for " + path.Base(l.path))
}

// sonameMajor returns N of lib….so.N[.M], or 0.
func sonameMajor(base string) int {
	_, after, ok := strings.Cut(base, ".so.")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(strings.SplitN(after, ".", 2)[0])
	return n
}
func (l *lib) Close() {}

// OpenedBase returns the base names of the files opened, in order.
func (f *Fake) OpenedBase() string {
	var b []string
	for _, p := range f.Opened {
		b = append(b, path.Base(p))
	}
	return strings.Join(b, " ")
}

// Status codes for faults (cuda.h, cublas_api.h, cusolver_common.h).
const (
	CudaErrorInvalidValue = 1
	CudaErrorOutOfMemory  = 2
	CudaErrorLaunchFailed = 719 // a kernel faulted: the context is lost
	CudaErrorIllegalAddr  = 700 // a kernel read or wrote out of bounds: the context is lost

	CublasStatusAllocFailed     = 3
	CublasStatusExecutionFailed = 13
	CublasStatusInternalError   = 14

	CusolverStatusAllocFailed     = 2
	CusolverStatusExecutionFailed = 6
	CusolverStatusInternalError   = 7
)

// Fault makes calls of the fake fail.
type Fault struct {
	// Call is an entry point ("cuMemAlloc_v2", "cublasDgemm_v2") or a
	// prefix ending in '*' ("cublas*", "cusolverDnSgesvd*", "cu*").
	Call string
	// Nth is which matching call fails, from 1, counted from SetFaults.
	Nth int
	// Status is what it returns.
	Status int
	// Repeat makes every later matching call fail too (a full device).
	Repeat bool
	// Sticky loses the context, as a kernel fault does: from then on every
	// driver call fails with Status (or CUDA_ERROR_LAUNCH_FAILED when the
	// fault is in cuBLAS or cuSOLVER), cuBLAS calls with
	// CUBLAS_STATUS_EXECUTION_FAILED and cuSOLVER calls with
	// CUSOLVER_STATUS_INTERNAL_ERROR, until the primary context is
	// released.
	Sticky bool
}

// SetFaults replaces the faults and starts counting calls for them anew.
func SetFaults(fs ...Fault) {
	C.fk_clear_faults()
	for _, f := range fs {
		cp := C.CString(f.Call)
		r := C.fk_add_fault(cp, C.int(f.Nth), C.int(f.Status), cbool(f.Sticky), cbool(f.Repeat))
		C.free(unsafe.Pointer(cp))
		if r != 0 {
			panic("fakecuda: too many faults, or a Call name too long: " + f.Call)
		}
	}
}

// ClearFaults removes every fault (a lost context stays lost until the
// device is closed).
func ClearFaults() { C.fk_clear_faults() }

// ContextLost reports the status driver calls fail with since a sticky
// fault, or 0.
func ContextLost() int { return int(C.fk_sticky()) }

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Calls returns how many calls matching pattern (an entry point, or a
// prefix ending in '*') the fake received since Install or ResetCalls.
func Calls(pattern string) int {
	cp := C.CString(pattern)
	defer C.free(unsafe.Pointer(cp))
	return int(C.fk_calls(cp))
}

// ResetCalls sets the call counts to zero.
func ResetCalls() { C.fk_reset_calls() }

// Solver routines for SetLwork and SetDevInfo.
const (
	Geqrf  = 0
	Orgqr  = 1
	Gesvd  = 2
	Gesvdj = 3
	Gesvdp = 4
)

// SetLwork makes the bufferSize query of routine (Geqrf, Orgqr, Gesvd,
// Gesvdj) report lwork elements, in both precisions, or that of Gesvdp
// lwork bytes of device workspace; a negative lwork restores the fake's
// own size.
func SetLwork(routine, lwork int) { C.fk_set_lwork(C.int(routine), C.int(lwork)) }

// SetDevInfo makes routine write v to devInfo instead of 0 (a positive v
// means "did not converge", a negative one "parameter -v is wrong"); its
// outputs are then NaN. 0 restores the normal behaviour.
func SetDevInfo(routine, v int) { C.fk_set_devinfo(C.int(routine), C.int(v)) }

// LiveBytes returns the bytes of device memory allocated and not freed.
func LiveBytes() uint64 { return uint64(C.fk_get_live_bytes()) }

// PinnedAllocations returns the number of pinned host buffers
// (cuMemAllocHost) not freed.
func PinnedAllocations() int { return int(C.fk_get_pinned()) }

// Events returns the number of CUDA events not destroyed.
func Events() int { return int(C.fk_get_events()) }

// Pending returns the number of asynchronous copies not yet completed by
// a synchronization.
func Pending() int { return int(C.fk_get_pending()) }

// Reclaimed returns how many allocations were still live when the primary
// context was destroyed (and freed with it), since Install.
func Reclaimed() int { return int(C.fk_get_reclaimed()) }

// Violations returns the breaches of the CUDA contract the fake saw since
// Install: accesses outside every allocation, illegal aliasing, host
// buffers touched while an asynchronous copy was in flight, Go memory
// passed to an asynchronous copy.
func Violations() []string {
	n := int(C.fk_violations())
	out := make([]string, 0, n)
	for i := range min(n, 64) {
		out = append(out, C.GoString(C.fk_violation(C.int(i))))
	}
	if n > 64 {
		out = append(out, "... and more")
	}
	return out
}
