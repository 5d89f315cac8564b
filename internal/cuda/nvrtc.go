//go:build cgo

package cuda

/*
#include <stdlib.h>
#include "lowrank_cuda.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// Function is a kernel compiled by NVRTC and loaded into the device's
// context.
type Function struct {
	mod, fn unsafe.Pointer
	// Arch is the architecture it was compiled for ("sm_90", or
	// "compute_90" for PTX the driver compiled).
	Arch string
}

// HasNVRTC reports whether NVRTC was loaded.
func (c *Ctx) HasNVRTC() bool { return c.s.hasNVRTC }

func (c *Ctx) nvrtcErr(call string, r C.int, detail string) error {
	if r == 0 {
		return nil
	}
	e := newError(LibNVRTC, call, int(r)).(*Error)
	if _, known := nvrtcNames[int(r)]; !known {
		if s := C.lrc_nvrtcGetErrorString(c.s.nvrtc.getErrorString, r); s != nil {
			e.Name = C.GoString(s)
		}
	}
	e.Detail = detail
	return e
}

func (c *Ctx) supportedArchs() []int {
	if c.archs != nil || c.s.nvrtc.getNumSupportedArchs == nil || c.s.nvrtc.getSupportedArchs == nil {
		return c.archs
	}
	var n C.int
	if C.lrc_nvrtcGetNumSupportedArchs(c.s.nvrtc.getNumSupportedArchs, &n) != 0 || n <= 0 || n > 256 {
		return nil
	}
	buf := make([]C.int, int(n))
	if C.lrc_nvrtcGetSupportedArchs(c.s.nvrtc.getSupportedArchs, &buf[0]) != 0 {
		return nil
	}
	for _, a := range buf {
		c.archs = append(c.archs, int(a))
	}
	return c.archs
}

// Kernel returns the extern "C" kernel name of the CUDA C++ source src,
// compiled with the given extra NVRTC options (such as "-DREAL=float") for
// this device's architecture. The result is cached under key for the life
// of the device, so each kernel is compiled once per process.
func (c *Ctx) Kernel(key, src, name string, opts []string) (*Function, error) {
	if f, ok := c.modules[key]; ok {
		return f, nil
	}
	if !c.s.hasNVRTC {
		return nil, errors.New("cuda: NVRTC is not available: " + c.s.nvrtcErr)
	}
	info := c.d.info
	arch, cubin, err := chooseArch(info.CCMajor*10+info.CCMinor, c.supportedArchs())
	if err != nil {
		return nil, err
	}
	image, _, err := c.compile(src, name, KernelOptions(arch, opts), cubin)
	if err != nil {
		return nil, err
	}
	cimg := C.CBytes(image)
	defer C.free(cimg)
	f := &Function{Arch: arch}
	if r := C.lrc_cuModuleLoadData(c.s.drv.cuModuleLoadData, &f.mod, cimg); r != 0 {
		return nil, c.drvErr("cuModuleLoadData", r)
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if r := C.lrc_cuModuleGetFunction(c.s.drv.cuModuleGetFunction, &f.fn, f.mod, cname); r != 0 {
		C.lrc_cuModuleUnload(c.s.drv.cuModuleUnload, f.mod)
		return nil, c.drvErr("cuModuleGetFunction", r)
	}
	c.modules[key] = f
	return f, nil
}

// KernelOptions returns the NVRTC options Kernel compiles with for arch
// ("sm_90", "compute_90"): the architecture, then the kernel's own.
func KernelOptions(arch string, opts []string) []string {
	return append([]string{"--gpu-architecture=" + arch}, opts...)
}

// compile runs NVRTC on src and returns a cubin, or NUL-terminated PTX,
// and NVRTC's log (its warnings; "" when there are none).
func (c *Ctx) compile(src, name string, opts []string, cubin bool) ([]byte, string, error) {
	n := &c.s.nvrtc
	csrc := C.CString(src)
	defer C.free(unsafe.Pointer(csrc))
	cname := C.CString(name + ".cu")
	defer C.free(unsafe.Pointer(cname))
	var prog unsafe.Pointer
	if r := C.lrc_nvrtcCreateProgram(n.createProgram, &prog, csrc, cname); r != 0 {
		return nil, "", c.nvrtcErr("nvrtcCreateProgram", r, name)
	}
	defer C.lrc_nvrtcDestroyProgram(n.destroyProgram, prog)

	copts := (**C.char)(C.malloc(C.size_t(len(opts)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(copts))
	list := unsafe.Slice(copts, len(opts))
	for i, o := range opts {
		list[i] = C.CString(o)
	}
	defer func() {
		for _, p := range list {
			C.free(unsafe.Pointer(p))
		}
	}()
	if r := C.lrc_nvrtcCompileProgram(n.compileProgram, prog, C.int(len(opts)), copts); r != 0 {
		detail := name + " " + strings.Join(opts, " ")
		if log := c.programLog(prog); log != "" {
			detail += ": " + log
		}
		return nil, "", c.nvrtcErr("nvrtcCompileProgram", r, detail)
	}
	log := c.programLog(prog)
	sizeFn, getFn, what := n.getPTXSize, n.getPTX, "nvrtcGetPTX"
	if cubin {
		if n.getCUBINSize == nil || n.getCUBIN == nil {
			return nil, log, errors.New("cuda: this NVRTC cannot produce a cubin (no nvrtcGetCUBIN)")
		}
		sizeFn, getFn, what = n.getCUBINSize, n.getCUBIN, "nvrtcGetCUBIN"
	}
	var size C.size_t
	if r := C.lrc_nvrtcGetSize(sizeFn, prog, &size); r != 0 {
		return nil, log, c.nvrtcErr(what+"Size", r, name)
	}
	if size == 0 {
		return nil, log, fmt.Errorf("cuda: %sSize returned 0 bytes for %s", what, name)
	}
	buf := C.malloc(size)
	defer C.free(buf)
	if r := C.lrc_nvrtcGetBytes(getFn, prog, (*C.char)(buf)); r != 0 {
		return nil, log, c.nvrtcErr(what, r, name)
	}
	return C.GoBytes(buf, C.int(size)), log, nil
}

func (c *Ctx) programLog(prog unsafe.Pointer) string {
	var size C.size_t
	if C.lrc_nvrtcGetSize(c.s.nvrtc.getLogSize, prog, &size) != 0 || size <= 1 {
		return ""
	}
	buf := C.malloc(size)
	defer C.free(buf)
	if C.lrc_nvrtcGetBytes(c.s.nvrtc.getLog, prog, (*C.char)(buf)) != 0 {
		return ""
	}
	return strings.TrimSpace(C.GoString((*C.char)(buf)))
}

// Kernel arguments are passed at their exact C widths: DevPtr as a
// CUdeviceptr (8 bytes), int32 and uint32 as int, float32 as float,
// float64 as double, int64 as long long.
const maxKernelArgs = 32

// Launch queues f on the stream with the given grid and block sizes,
// dynamic shared memory and arguments (DevPtr, int32, uint32, int64,
// float32 or float64, in the kernel's parameter order). The argument
// values are copied into C memory and kernelParams is built in C, so no
// Go pointer reaches the driver.
func (c *Ctx) Launch(f *Function, grid, block [3]uint32, shmem uint32, args ...any) error {
	if len(args) > maxKernelArgs {
		return fmt.Errorf("cuda: %d kernel arguments, at most %d", len(args), maxKernelArgs)
	}
	if c.argbuf == nil {
		c.argbuf = C.malloc(C.size_t(maxKernelArgs*8 + maxKernelArgs*4))
		if c.argbuf == nil {
			return errors.New("cuda: cannot allocate the kernel argument buffer")
		}
	}
	offs := unsafe.Slice((*C.int)(unsafe.Add(c.argbuf, maxKernelArgs*8)), maxKernelArgs)
	off := 0
	put := func(i int, size int) unsafe.Pointer {
		off = (off + size - 1) / size * size
		offs[i] = C.int(off)
		p := unsafe.Add(c.argbuf, off)
		off += size
		return p
	}
	for i, a := range args {
		switch v := a.(type) {
		case DevPtr:
			*(*uint64)(put(i, 8)) = uint64(v)
		case int64:
			*(*int64)(put(i, 8)) = v
		case float64:
			*(*float64)(put(i, 8)) = v
		case int32:
			*(*int32)(put(i, 4)) = v
		case uint32:
			*(*uint32)(put(i, 4)) = v
		case float32:
			*(*float32)(put(i, 4)) = v
		default:
			return fmt.Errorf("cuda: kernel argument %d has type %T; want DevPtr, int32, uint32, int64, float32 or float64", i, a)
		}
	}
	c.queued = true
	r := C.lrc_cuLaunchKernel(c.s.drv.cuLaunchKernel, f.fn,
		C.uint(grid[0]), C.uint(grid[1]), C.uint(grid[2]),
		C.uint(block[0]), C.uint(block[1]), C.uint(block[2]),
		C.uint(shmem), c.stream, (*C.char)(c.argbuf), &offs[0], C.int(len(args)))
	return c.drvErr("cuLaunchKernel", r)
}
