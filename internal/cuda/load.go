//go:build cgo

package cuda

/*
#include "lowrank_cuda.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"

	"github.com/lowrank-go/lowrank/internal/dl"
)

// Device attributes (cuda.h CUdevice_attribute).
const (
	attrMultiprocessorCount = 16
	attrCCMajor             = 75
	attrCCMinor             = 76
)

// libs are the loaded libraries and their entry points.
type libs struct {
	// devices is cuDeviceGetCount's answer.
	devices   int
	driverLib Library
	drv       driverAPI
	blas      blasAPI
	solver    solverAPI
	vers      versionAPI
	nvrtc     nvrtcAPI
	hasNVRTC  bool
	nvrtcErr  string
	major     int // CUDA major version of the math libraries
	paths     map[string]string
	loaded    map[string]*loadedLib // the math libraries, with their versions
	driver    int                   // cuDriverGetVersion, 0 when unknown
}

// driverErr returns the typed error for CUresult r of call, preferring the
// driver's own name for codes the table does not know.
func (s *libs) driverErr(call string, r C.int) error {
	if r == 0 {
		return nil
	}
	e := newError(LibDriver, call, int(r)).(*Error)
	if _, known := cuResultNames[int(r)]; !known && s.drv.cuGetErrorName != nil {
		var name *C.char
		if C.lrc_cuGetErrorName(s.drv.cuGetErrorName, r, &name) == 0 && name != nil {
			e.Name = C.GoString(name)
		}
	}
	return e
}

// driverDetail names the driver library and the CUDA version it supports,
// for the messages of a driver that cannot be used.
func (s *libs) driverDetail() string {
	v := "version unknown"
	if s.driver > 0 {
		v = "CUDA " + versionString(s.driver)
	}
	return fmt.Sprintf("driver %s, %s", v, s.driverLib.Path())
}

// openDriver loads libcuda.so.1 and initializes the driver. It asks the
// driver's version before cuInit (cuDriverGetVersion needs no cuInit), so
// that every reason it gives names the driver.
func openDriver(l Loader, e env) (*libs, error) {
	s := &libs{paths: map[string]string{}, loaded: map[string]*loadedLib{}}
	var first error
	for _, c := range []string{"libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1", "/usr/local/nvidia/lib64/libcuda.so.1"} {
		if strings.HasPrefix(c, "/") && !l.Exists(c) {
			continue
		}
		lib, err := l.Open(c)
		if err == nil {
			s.driverLib = lib
			break
		}
		if first == nil {
			first = err
		}
	}
	if s.driverLib == nil {
		msg := NoDriverMessage
		if first != nil {
			msg += "; dlopen: " + first.Error()
		}
		return nil, &LoadError{Msg: msg, Err: first}
	}
	if err := bind(s.driverLib, "libcuda.so.1", s.drv.initSymbols()); err != nil {
		return nil, err
	}
	var v C.int
	if C.lrc_cuDriverGetVersion(s.drv.cuDriverGetVersion, &v) == 0 {
		s.driver = int(v)
	}
	if r := C.lrc_cuInit(s.drv.cuInit, 0); r != 0 {
		err := s.driverErr("cuInit", r).(*Error)
		err.Detail = s.driverDetail()
		if err.Status == cuErrorNoDevice {
			err.Advice = noDeviceAdvice(e)
		}
		return nil, loadError(err)
	}
	if s.driver == 0 {
		if r := C.lrc_cuDriverGetVersion(s.drv.cuDriverGetVersion, &v); r != 0 {
			return nil, loadError(s.driverErr("cuDriverGetVersion", r))
		}
		s.driver = int(v)
	}
	var n C.int
	if r := C.lrc_cuDeviceGetCount(s.drv.cuDeviceGetCount, &n); r != 0 {
		return nil, loadError(s.driverErr("cuDeviceGetCount", r))
	}
	s.devices = int(n)
	if n == 0 {
		return nil, &LoadError{Msg: "cuDeviceGetCount: 0 devices (" + s.driverDetail() + "): " + noDeviceAdvice(e)}
	}
	if err := bind(s.driverLib, "libcuda.so.1", s.drv.symbols()); err != nil {
		return nil, err
	}
	return s, nil
}

// loadMath loads cuBLASLt, cuBLAS, nvJitLink, cuSPARSE, cuSOLVER and NVRTC
// of one CUDA major version ≤ the driver's, all from one installation,
// dependencies first; the first installation (see locations) that has a
// complete and consistent set wins, newest major first.
func (s *libs) loadMath(l Loader, e env) error {
	driverMajor := s.driver / 1000
	if driverMajor < minMajor {
		return &LoadError{Msg: fmt.Sprintf("the NVIDIA driver (%s) is older than CUDA %d, the oldest lowrank loads: upgrade it to %s or newer",
			s.driverDetail(), minMajor, minDriver[minMajor])}
	}
	top := min(driverMajor, maxMajor)
	locs := locations(e)
	var tooNew, fails []string
	seen := map[string]bool{}
	for _, loc := range locs {
		for m := maxMajor; m > top; m-- {
			if f := filepath.Join(loc.dir(keyCublas), sonames(m)[keyCublas][0]); l.Exists(f) && !seen[f] {
				seen[f] = true
				tooNew = append(tooNew, fmt.Sprintf("%s (needs driver ≥ %s)", f, minDriver[m]))
			}
		}
		for m := top; m >= minMajor; m-- {
			if !l.Exists(filepath.Join(loc.dir(keyCublas), sonames(m)[keyCublas][0])) {
				continue
			}
			err := s.tryLoad(l, loc, m)
			if err == nil {
				return nil
			}
			fails = append(fails, err.Error())
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "no usable cuBLAS and cuSOLVER for driver CUDA %s", versionString(s.driver))
	if len(fails) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(fails, "; "))
	} else {
		var want []string
		for m := top; m >= minMajor; m-- {
			want = append(want, sonames(m)[keyCublas][0])
		}
		fmt.Fprintf(&b, ": %s not found", strings.Join(want, ", "))
	}
	if len(tooNew) > 0 {
		fmt.Fprintf(&b, "; the driver is too old for %s: upgrade the driver or install CUDA %d libraries", strings.Join(tooNew, ", "), top)
	}
	if d := e.getenv(LibDirEnv); d != "" {
		fmt.Fprintf(&b, " (searched %s=%s only)", LibDirEnv, d)
	} else {
		var names []string
		for _, loc := range locs {
			names = append(names, loc.name)
		}
		if len(names) == 0 {
			names = []string{"none of the usual folders exist"}
		}
		fmt.Fprintf(&b, " (searched %s; set %s to the folder that holds them)", strings.Join(names, ", "), LibDirEnv)
	}
	return &LoadError{Msg: b.String()}
}

// tryLoad loads the libraries of CUDA major m from loc and checks that
// they are one installation (checkInstallation).
func (s *libs) tryLoad(l Loader, loc location, m int) (err error) {
	names := sonames(m)
	var opened []Library
	defer func() {
		if err != nil {
			for i := len(opened) - 1; i >= 0; i-- {
				opened[i].Close()
			}
			s.paths = map[string]string{}
			s.loaded = map[string]*loadedLib{}
		}
	}()
	libsByKey := map[string]Library{}
	for _, key := range requiredKeys {
		cands := names[key]
		if len(cands) == 0 {
			continue
		}
		lib, soname, oerr := openFirst(l, loc.dir(key), cands)
		if oerr != nil {
			return fmt.Errorf("%s: %v", loc.dir(key), oerr)
		}
		opened = append(opened, lib)
		libsByKey[key] = lib
		s.paths[key] = lib.Path()
		ll := &loadedLib{key: key, soname: soname, path: lib.Path()}
		if nl, ok := lib.(dl.NeededLister); ok {
			if need, err := nl.Needed(); err == nil {
				ll.needed = need
			}
		}
		s.loaded[key] = ll
	}
	if err := bind(libsByKey[keyCublas], names[keyCublas][0], s.blas.symbols()); err != nil {
		return err
	}
	if err := bind(libsByKey[keyCusolver], names[keyCusolver][0], s.solver.symbols()); err != nil {
		return err
	}
	if err := bind(libsByKey[keyCublasLt], names[keyCublasLt][0], s.vers.cublasLtSymbols()); err != nil {
		return err
	}
	if err := bind(libsByKey[keyCusparse], names[keyCusparse][0], s.vers.cusparseSymbols()); err != nil {
		return err
	}
	if lib := libsByKey[keyNvJitLink]; lib != nil {
		if err := bind(lib, names[keyNvJitLink][0], s.vers.nvJitLinkSymbols()); err != nil {
			return err
		}
	}
	s.readVersions()
	if err := checkInstallation(m, s.loaded); err != nil {
		return &LoadError{Msg: err.Error()}
	}
	s.major = m
	s.loadNVRTC(l, loc, m)
	return nil
}

// readVersions asks each loaded math library its version.
func (s *libs) readVersions() {
	prop := func(key string, get func(t C.int, v *C.int) C.int) {
		ll := s.loaded[key]
		if ll == nil {
			return
		}
		var parts [3]C.int
		for i := range parts {
			if get(C.int(i), &parts[i]) != 0 {
				return
			}
		}
		ll.ver, ll.hasVer = libVer{int(parts[0]), int(parts[1]), int(parts[2])}, true
	}
	blas, solver, lt, sparse := s.blas.getProperty, s.solver.getProperty, s.vers.cublasLt, s.vers.cusparse
	prop(keyCublas, func(t C.int, v *C.int) C.int { return C.lrc_cublasGetProperty(blas, t, v) })
	prop(keyCusolver, func(t C.int, v *C.int) C.int { return C.lrc_cusolverGetProperty(solver, t, v) })
	prop(keyCublasLt, func(t C.int, v *C.int) C.int { return C.lrc_cublasLtGetProperty(lt, t, v) })
	prop(keyCusparse, func(t C.int, v *C.int) C.int { return C.lrc_cusparseGetProperty(sparse, t, v) })
	if ll := s.loaded[keyNvJitLink]; ll != nil && s.vers.nvJitLink != nil {
		var a, b C.int
		if C.lrc_nvJitLinkVersion(s.vers.nvJitLink, &a, &b) == 0 {
			ll.ver, ll.hasVer = libVer{int(a), int(b), -1}, true
		}
	}
}

// loadNVRTC loads NVRTC of CUDA major m from loc, after the builtins
// library it needs (the pip wheel's libnvrtc.so.13 has no RUNPATH, so it
// would not find libnvrtc-builtins.so.13.x by itself), and checks with
// nvrtcVersion that it is CUDA m's. NVRTC is optional: without it the
// fused kernels are off.
func (s *libs) loadNVRTC(l Loader, loc location, m int) {
	dir := loc.dir(keyNvrtc)
	builtins := l.Glob(filepath.Join(dir, fmt.Sprintf("libnvrtc-builtins.so.%d.*", m)))
	sort.Strings(builtins)
	if len(builtins) > 0 {
		if b, err := l.Open(builtins[len(builtins)-1]); err == nil {
			s.paths["nvrtc-builtins"] = b.Path()
		}
	}
	lib, soname, err := openFirst(l, dir, sonames(m)[keyNvrtc])
	if err != nil {
		s.nvrtcErr = fmt.Sprintf("%s: %v", dir, err)
		return
	}
	if err := bind(lib, soname, s.nvrtc.symbols()); err != nil {
		s.nvrtcErr = err.Error()
		lib.Close()
		return
	}
	var maj, mnr C.int
	if C.lrc_nvrtcVersion(s.nvrtc.version, &maj, &mnr) != 0 {
		s.nvrtcErr = fmt.Sprintf("%s (%s): nvrtcVersion failed", soname, lib.Path())
		lib.Close()
		return
	}
	if int(maj) != m {
		s.nvrtcErr = fmt.Sprintf("%s (%s) is NVRTC %d.%d, not CUDA %d's", soname, lib.Path(), maj, mnr, m)
		lib.Close()
		return
	}
	s.loaded[keyNvrtc] = &loadedLib{key: keyNvrtc, soname: soname, path: lib.Path(), ver: libVer{int(maj), int(mnr), -1}, hasVer: true}
	s.paths[keyNvrtc] = lib.Path()
	s.hasNVRTC = true
}

// openFirst opens the first of names that exists in dir.
func openFirst(l Loader, dir string, names []string) (Library, string, error) {
	var errs []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		if !l.Exists(p) {
			errs = append(errs, n+" not found")
			continue
		}
		lib, err := l.Open(p)
		if err == nil {
			return lib, n, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, "", errors.New(strings.Join(errs, "; "))
}

// deviceInfo queries the static facts of device dev.
func (s *libs) deviceInfo(ordinal int) (Info, C.int, error) {
	info := Info{Ordinal: ordinal, Devices: s.devices, Driver: s.driver, DriverPath: s.driverLib.Path()}
	var dev C.int
	if r := C.lrc_cuDeviceGet(s.drv.cuDeviceGet, &dev, C.int(ordinal)); r != 0 {
		return info, 0, s.driverErr("cuDeviceGet", r)
	}
	name := make([]byte, 256)
	if r := C.lrc_cuDeviceGetName(s.drv.cuDeviceGetName, (*C.char)(unsafe.Pointer(&name[0])), C.int(len(name)), dev); r != 0 {
		return info, 0, s.driverErr("cuDeviceGetName", r)
	}
	if i := strings.IndexByte(string(name), 0); i >= 0 {
		info.Name = string(name[:i])
	}
	for _, a := range []struct {
		attr int
		dst  *int
	}{{attrCCMajor, &info.CCMajor}, {attrCCMinor, &info.CCMinor}, {attrMultiprocessorCount, &info.SMs}} {
		var v C.int
		if r := C.lrc_cuDeviceGetAttribute(s.drv.cuDeviceGetAttribute, &v, C.int(a.attr), dev); r != 0 {
			return info, 0, s.driverErr("cuDeviceGetAttribute", r)
		}
		*a.dst = int(v)
	}
	var total C.size_t
	if r := C.lrc_cuDeviceTotalMem_v2(s.drv.cuDeviceTotalMem, &total, dev); r != 0 {
		return info, 0, s.driverErr("cuDeviceTotalMem_v2", r)
	}
	info.TotalMem = uint64(total)

	for _, dep := range []struct{ key, name string }{
		{keyCublas, "cuBLAS"}, {keyCusolver, "cuSOLVER"}, {keyCublasLt, "cuBLASLt"}, {keyCusparse, "cuSPARSE"}, {keyNvJitLink, "nvJitLink"},
	} {
		if ll := s.loaded[dep.key]; ll != nil {
			v := fmt.Sprintf("(CUDA %d)", s.major)
			if ll.hasVer {
				v = ll.ver.String()
			}
			info.Libs = append(info.Libs, LibInfo{Name: dep.name, Version: v, Path: ll.path})
		}
	}
	if ll := s.loaded[keyNvrtc]; s.hasNVRTC && ll != nil {
		info.NVRTC = &LibInfo{Name: "NVRTC", Version: ll.ver.String(), Path: ll.path}
	} else {
		info.NVRTCErr = s.nvrtcErr
	}
	info.HasGesvdp = s.solver.hasGesvdp()
	return info, dev, nil
}
