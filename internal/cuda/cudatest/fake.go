//go:build cgo

// Package cudatest is a fake CUDA installation for tests of
// lowrank/internal/cuda on machines without a GPU: a Loader whose
// "libraries" are C functions in this package that behave like the driver,
// cuBLAS, cuSOLVER and NVRTC as far as loading and initialization go, with
// knobs for the failures (no libcuda, a missing symbol, cuInit returning
// CUDA_ERROR_NO_DEVICE, an old driver, out of memory).
//
// It calls the real trampolines of internal/cuda through real function
// pointers, so a test exercises the same code as a GPU run up to the first
// computation. The fake keeps its state in C globals: use one Fake at a
// time (no t.Parallel).
package cudatest

/*
#include <stdlib.h>
#include <string.h>

static int fk_init_result = 0;
static int fk_driver_version = 13000;
static int fk_device_count = 1;
static unsigned long long fk_mem_limit = 1ULL << 34;
static unsigned long long fk_next_ptr = 1ULL << 32;
static int fk_retained = 0;
static int fk_live = 0;
static int fk_handles = 0;

static void fk_configure(int init, int ver, int count, unsigned long long limit) {
	fk_init_result = init;
	fk_driver_version = ver;
	fk_device_count = count;
	fk_mem_limit = limit;
	fk_retained = 0;
	fk_live = 0;
	fk_handles = 0;
}
static int fk_get_retained(void) { return fk_retained; }
static int fk_get_live(void) { return fk_live; }
static int fk_get_handles(void) { return fk_handles; }

static int fk_unimplemented(void) { return 999; }

static int fk_cuInit(unsigned int flags) { return fk_init_result; }
static int fk_cuDriverGetVersion(int *v) { *v = fk_driver_version; return 0; }
static int fk_cuDeviceGetCount(int *n) { *n = fk_device_count; return 0; }
static int fk_cuDeviceGet(int *d, int ordinal) { if (ordinal >= fk_device_count) return 101; *d = ordinal; return 0; }
static int fk_cuDeviceGetName(char *name, int len, int dev) { strncpy(name, "Fake GPU", len); name[len - 1] = 0; return 0; }
static int fk_cuDeviceGetAttribute(int *v, int attr, int dev) {
	switch (attr) {
	case 75: *v = 9; break;
	case 76: *v = 0; break;
	case 16: *v = 132; break;
	default: *v = 0;
	}
	return 0;
}
static int fk_cuDeviceTotalMem(size_t *b, int dev) { *b = (size_t)fk_mem_limit; return 0; }
static int fk_cuDevicePrimaryCtxRetain(void **c, int dev) { *c = (void *)0x1000; fk_retained++; return 0; }
static int fk_cuDevicePrimaryCtxRelease(int dev) { fk_retained--; return 0; }
static int fk_cuCtxSetCurrent(void *c) { return 0; }
static int fk_cuStreamCreate(void **s, unsigned int flags) { *s = (void *)0x2000; fk_handles++; return 0; }
static int fk_cuStreamDestroy(void *s) { fk_handles--; return 0; }
static int fk_cuMemGetInfo(size_t *f, size_t *t) { *f = (size_t)fk_mem_limit; *t = (size_t)fk_mem_limit; return 0; }
static int fk_cuMemAlloc(unsigned long long *p, size_t n) {
	if (n > fk_mem_limit) return 2;
	*p = fk_next_ptr;
	fk_next_ptr += (n + 255) / 256 * 256;
	fk_live++;
	return 0;
}
static int fk_cuMemFree(unsigned long long p) { fk_live--; return 0; }
static int fk_cuGetErrorName(int e, const char **s) { *s = "CUDA_ERROR_FAKE_UNKNOWN"; return 0; }

static int fk_handle_create(void **h) { *h = (void *)0x3000; fk_handles++; return 0; }
static int fk_handle_destroy(void *h) { fk_handles--; return 0; }
static int fk_set_stream(void *h, void *s) { return 0; }
static int fk_get_property(int type, int *v) { *v = type == 0 ? 13 : type == 1 ? 0 : 2; return 0; }
static int fk_cusolver_get_property(int type, int *v) { *v = type == 0 ? 12 : type == 1 ? 0 : 4; return 0; }
static int fk_nvrtcVersion(int *major, int *minor) { *major = 13; *minor = 0; return 0; }
static const char *fk_nvrtcGetErrorString(int r) { return "NVRTC_FAKE"; }

struct fk_entry { const char *name; void *fn; };
static struct fk_entry fk_table[] = {
	{"cuInit", (void *)fk_cuInit},
	{"cuDriverGetVersion", (void *)fk_cuDriverGetVersion},
	{"cuDeviceGetCount", (void *)fk_cuDeviceGetCount},
	{"cuDeviceGet", (void *)fk_cuDeviceGet},
	{"cuDeviceGetName", (void *)fk_cuDeviceGetName},
	{"cuDeviceGetAttribute", (void *)fk_cuDeviceGetAttribute},
	{"cuDeviceTotalMem_v2", (void *)fk_cuDeviceTotalMem},
	{"cuDevicePrimaryCtxRetain", (void *)fk_cuDevicePrimaryCtxRetain},
	{"cuDevicePrimaryCtxRelease_v2", (void *)fk_cuDevicePrimaryCtxRelease},
	{"cuCtxSetCurrent", (void *)fk_cuCtxSetCurrent},
	{"cuStreamCreate", (void *)fk_cuStreamCreate},
	{"cuStreamDestroy_v2", (void *)fk_cuStreamDestroy},
	{"cuMemGetInfo_v2", (void *)fk_cuMemGetInfo},
	{"cuMemAlloc_v2", (void *)fk_cuMemAlloc},
	{"cuMemFree_v2", (void *)fk_cuMemFree},
	{"cuGetErrorName", (void *)fk_cuGetErrorName},
	{"cublasCreate_v2", (void *)fk_handle_create},
	{"cublasDestroy_v2", (void *)fk_handle_destroy},
	{"cublasSetStream_v2", (void *)fk_set_stream},
	{"cublasGetProperty", (void *)fk_get_property},
	{"cusolverDnCreate", (void *)fk_handle_create},
	{"cusolverDnDestroy", (void *)fk_handle_destroy},
	{"cusolverDnSetStream", (void *)fk_set_stream},
	{"cusolverGetProperty", (void *)fk_cusolver_get_property},
	{"nvrtcVersion", (void *)fk_nvrtcVersion},
	{"nvrtcGetErrorString", (void *)fk_nvrtcGetErrorString},
	{0, 0},
};

// fk_sym returns the fake for name, or a stub that returns 999 for an entry
// point the fake does not implement (never called by the tests).
static void *fk_sym(const char *name) {
	struct fk_entry *e;
	for (e = fk_table; e->name; e++)
		if (strcmp(e->name, name) == 0) return e->fn;
	return (void *)fk_unimplemented;
}
*/
import "C"

import (
	"errors"
	"path"
	"sort"
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
	// MemLimit is the device memory in bytes (0 means 16 GiB); larger
	// allocations fail with CUDA_ERROR_OUT_OF_MEMORY.
	MemLimit uint64

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

// Install sets the fake driver's behaviour; call it before cuda.Open.
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
	return C.fk_sym(cn), nil
}

func (l *lib) Path() string { return l.path }
func (l *lib) Close()       {}

// OpenedBase returns the base names of the files opened, in order.
func (f *Fake) OpenedBase() string {
	var b []string
	for _, p := range f.Opened {
		b = append(b, path.Base(p))
	}
	return strings.Join(b, " ")
}
