//go:build cgo

package cuda

// Tests against NVIDIA's real libraries, on a machine without a GPU: the
// driver library (libcuda.so.1) and a CUDA installation, such as Debian
// 12's libcuda1, libcublas11, libcublaslt11, libcusparse11,
// libcusolver11, libnvrtc11.2 and libnvrtc-builtins11.8 from non-free.
// They run everything that needs no device: every symbol binding,
// loadMath, NVRTC on every kernel, the reason cuInit gives, and the
// status-name tables. Without the libraries they skip, unless
// LOWRANK_REQUIRE_CUDA_LIBS=1 (set by .ci/cuda-libs.sh), which makes them
// fail instead.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/lowrank-go/lowrank/internal/dl"
	"github.com/lowrank-go/lowrank/kernels"
)

// RequireLibsEnv set to 1 turns the skips of the real-library tests into
// failures.
const requireLibsEnv = "LOWRANK_REQUIRE_CUDA_LIBS"

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv(requireLibsEnv) == "1" {
		t.Fatalf(requireLibsEnv+"=1: "+format, args...)
	}
	t.Skipf(format, args...)
}

// realDriver opens the real libcuda.so.1 and binds the symbols cuInit
// needs, without calling cuInit.
func realDriver(t *testing.T) *libs {
	t.Helper()
	lib, err := dl.System.Open("libcuda.so.1")
	if err != nil {
		skipOrFail(t, "no libcuda.so.1: %v", err)
	}
	s := &libs{driverLib: lib, paths: map[string]string{}, loaded: map[string]*loadedLib{}}
	if err := bind(lib, "libcuda.so.1", s.drv.initSymbols()); err != nil {
		t.Fatal(err)
	}
	v, r := s.driverVersion()
	if r != 0 || v <= 0 {
		t.Fatalf("cuDriverGetVersion before cuInit: %d, status %d", v, r)
	}
	s.driver = v
	return s
}

var (
	realOnce sync.Once
	realLibs *libs
	realErr  error
)

// realMath runs the project's own loadMath on the real libraries, once
// per process: the test hook past cuInit (which fails without a device)
// is to take the driver's version from cuDriverGetVersion.
func realMath(t *testing.T) *libs {
	t.Helper()
	s := realDriver(t)
	realOnce.Do(func() {
		realErr = s.loadMath(dl.System, osEnv())
		realLibs = s
	})
	if realErr != nil {
		skipOrFail(t, "loadMath on the real libraries: %v", realErr)
	}
	return realLibs
}

// TestRealOpen runs Open on the real driver. Without a device, cuInit
// fails with CUDA_ERROR_NO_DEVICE, and the reason must name the driver's
// version (asked before cuInit) and say that no device or kernel module is
// visible. Without libcuda.so.1 the reason is NoDriverMessage.
func TestRealOpen(t *testing.T) {
	if _, err := dl.System.Open("libcuda.so.1"); err != nil {
		if os.Getenv(requireLibsEnv) == "1" {
			t.Fatalf("%s=1 but libcuda.so.1 does not open: %v", requireLibsEnv, err)
		}
		_, err := Open(Config{})
		if err == nil || !strings.HasPrefix(err.Error(), NoDriverMessage) {
			t.Errorf("Open without a driver: %v; want %q", err, NoDriverMessage)
		}
		return
	}
	s := realDriver(t)
	d, err := Open(Config{})
	if err == nil {
		d.Close()
		t.Skip("a GPU is usable here: the GPU tests cover Open")
	}
	t.Logf("Open: %v", err)
	var ce *Error
	var le *LoadError
	if !errors.As(err, &le) || !errors.As(err, &ce) || ce.Call != "cuInit" {
		t.Fatalf("Open: %v; want a *LoadError from cuInit", err)
	}
	if ce.Status != cuErrorNoDevice {
		t.Skipf("cuInit fails with %s here, not CUDA_ERROR_NO_DEVICE", ce.Name)
	}
	want := fmt.Sprintf("cuInit: CUDA_ERROR_NO_DEVICE (driver CUDA %s, %s): no NVIDIA device or kernel module is visible to this process",
		versionString(s.driver), s.driverLib.Path())
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("reason\n%q\ndoes not start with\n%q", err, want)
	}
	if _, statErr := os.Stat(procNvidiaVersion); statErr != nil && !strings.Contains(err.Error(), "the nvidia kernel module is not loaded") {
		t.Errorf("reason %q does not say that the kernel module is not loaded", err)
	}
}

// TestRealSymbols binds every symbol of every table against the real
// libraries and checks that each entry, required or optional, resolved:
// an optional symbol missing from the installation CI uses would never
// be exercised.
func TestRealSymbols(t *testing.T) {
	s := realMath(t)
	if err := bind(s.driverLib, "libcuda.so.1", s.drv.symbols()); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, api := range []struct {
		name string
		v    any
		skip map[string]string // field → why it may be nil
	}{
		{"libcuda", &s.drv, nil},
		{"cuBLAS", &s.blas, nil},
		{"cuSOLVER", &s.solver, nil},
		{"NVRTC", &s.nvrtc, nil},
		{"versions", &s.vers, map[string]string{"nvJitLink": "nvJitLinkVersion exists from CUDA 12.3 on"}},
	} {
		rv := reflect.ValueOf(api.v).Elem()
		for i := range rv.NumField() {
			f := rv.Field(i)
			if f.Type() != reflect.TypeFor[unsafe.Pointer]() {
				continue
			}
			name := rv.Type().Field(i).Name
			if why, ok := api.skip[name]; ok && f.UnsafePointer() == nil {
				t.Logf("%s.%s: absent (%s)", api.name, name, why)
				continue
			}
			total++
			if f.UnsafePointer() == nil {
				t.Errorf("%s.%s did not resolve in CUDA %d's libraries", api.name, name, s.major)
			}
		}
	}
	t.Logf("%d entry points resolved (CUDA %d)", total, s.major)
}

// TestRealLoadMath checks what loadMath chose on the real installation:
// one CUDA major, every library from one installation, each library's
// own version call agreeing, and cuSOLVER's DT_NEEDED read.
func TestRealLoadMath(t *testing.T) {
	s := realMath(t)
	t.Logf("driver CUDA %s: loaded CUDA %d", versionString(s.driver), s.major)
	if s.major < minMajor || s.major > s.driver/1000 {
		t.Errorf("major %d for driver %d", s.major, s.driver)
	}
	for _, key := range []string{keyCublasLt, keyCublas, keyCusparse, keyCusolver, keyNvrtc} {
		ll := s.loaded[key]
		if ll == nil {
			t.Errorf("%s not loaded", key)
			continue
		}
		t.Logf("%-9s %-8v %s (%s)", key, ll.ver, ll.soname, ll.path)
		if !ll.hasVer || ll.ver.major != sonameMajor(ll.soname) {
			t.Errorf("%s (%s): version %v (known %v) does not match its soname", key, ll.path, ll.ver, ll.hasVer)
		}
	}
	if s.major >= 12 && s.loaded[keyNvJitLink] == nil {
		t.Error("nvJitLink not loaded")
	}
	if !s.hasNVRTC {
		t.Errorf("NVRTC not loaded: %s", s.nvrtcErr)
	}
	if p := s.paths["nvrtc-builtins"]; p == "" {
		t.Error("libnvrtc-builtins not loaded")
	}
	need := s.loaded[keyCusolver].needed
	if need == nil || !slices.Contains(need, sonames(s.major)[keyCublas][0]) {
		t.Errorf("cuSOLVER's DT_NEEDED %q does not name %s", need, sonames(s.major)[keyCublas][0])
	}
	if err := checkInstallation(s.major, s.loaded); err != nil {
		t.Error(err)
	}
}

// TestRealNVRTC compiles every kernel, in float and double, for every
// architecture the real NVRTC supports, as a cubin (sm_XY) and as PTX
// (compute_XY), with the options Kernel uses, and wants no warning.
func TestRealNVRTC(t *testing.T) {
	s := realMath(t)
	if !s.hasNVRTC {
		t.Fatalf("NVRTC not loaded: %s", s.nvrtcErr)
	}
	c := &Ctx{s: s}
	archs := c.supportedArchs()
	if len(archs) == 0 {
		t.Fatal("nvrtcGetSupportedArchs gave nothing")
	}
	t.Logf("NVRTC %v supports %v", s.loaded[keyNvrtc].ver, archs)
	if testing.Short() {
		archs = archs[len(archs)-1:] // -short: the newest only
	}
	n := 0
	for _, name := range kernels.Names() {
		src, err := kernels.Source(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, real := range kernels.Reals {
			for _, a := range archs {
				for _, cubin := range []bool{true, false} {
					arch := fmt.Sprintf("compute_%d", a)
					if cubin {
						arch = fmt.Sprintf("sm_%d", a)
					}
					opts := KernelOptions(arch, kernels.Defines(real))
					image, log, err := c.compile(src, name, opts, cubin)
					what := fmt.Sprintf("%s %s", name, strings.Join(opts, " "))
					n++
					switch {
					case err != nil:
						t.Errorf("%s: %v", what, err)
					case log != "":
						t.Errorf("%s: NVRTC warns:\n%s", what, log)
					case cubin && !bytes.HasPrefix(image, []byte("\x7fELF")):
						t.Errorf("%s: the cubin is not an ELF file", what)
					case !cubin && (!bytes.Contains(image, []byte(".target sm_"+fmt.Sprint(a))) ||
						!bytes.Contains(image, []byte(".entry "+name)) || image[len(image)-1] != 0):
						t.Errorf("%s: the PTX lacks .target sm_%d or .entry %s, or its NUL", what, a, name)
					}
				}
			}
		}
	}
	t.Logf("%d compilations", n)
	// A kernel that does not compile gives NVRTC's log in the error.
	_, _, err := c.compile("extern \"C\" __global__ void broken() { undeclared(); }", "broken", KernelOptions(fmt.Sprintf("sm_%d", archs[len(archs)-1]), nil), true)
	var ce *Error
	if !errors.As(err, &ce) || ce.Name != "NVRTC_ERROR_COMPILATION" || !strings.Contains(err.Error(), "undeclared") {
		t.Errorf("a broken kernel: %v; want NVRTC_ERROR_COMPILATION with the log", err)
	}
}

// TestRealStatusNames checks the status-name tables against the
// libraries' own: cuGetErrorName for the driver, cublasGetStatusName for
// cuBLAS, nvrtcGetErrorString for NVRTC. (cuSOLVER has no such call: its
// table is checked against cusolver_common.h by headercheck/check.c.)
func TestRealStatusNames(t *testing.T) {
	s := realMath(t)
	checked := 0
	for code, name := range cuResultNames {
		if code == cuErrorInsufficientDriver {
			continue // the runtime's code, not a CUresult
		}
		got := s.cuErrorName(code)
		if got == "" && code == cuErrorRequiresNewer {
			// Newer than cuda.h 11.8, and than some drivers.
			t.Logf("CUresult %d (%s): driver CUDA %s does not know it", code, name, versionString(s.driver))
			continue
		}
		checked++
		if got != name {
			t.Errorf("CUresult %d: the table says %s, cuGetErrorName %q", code, name, got)
		}
	}
	t.Logf("%d CUresult names match cuGetErrorName, %d cuBLAS names cublasGetStatusName, %d NVRTC names nvrtcGetErrorString",
		checked, len(cublasNames), len(nvrtcNames))
	if s.blas.getStatusName == nil {
		t.Fatal("no cublasGetStatusName")
	}
	for code, name := range cublasNames {
		if got := s.cublasStatusName(code); got != name {
			t.Errorf("cublasStatus_t %d: the table says %s, cublasGetStatusName %q", code, name, got)
		}
	}
	for code, name := range nvrtcNames {
		if got := s.nvrtcErrorString(code); got != name {
			t.Errorf("nvrtcResult %d: the table says %s, nvrtcGetErrorString %q", code, name, got)
		}
	}
}
