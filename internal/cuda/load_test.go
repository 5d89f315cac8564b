//go:build cgo

package cuda_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/internal/testkit/fakecuda"
)

const fakeDir = "/fake/cuda/lib"

// open runs cuda.Open against the fake, with the libraries searched in
// fakeDir only.
func open(t *testing.T, f *fakecuda.Fake) (*cuda.Device, error) {
	t.Helper()
	t.Setenv(cuda.LibDirEnv, fakeDir)
	f.Install()
	return cuda.Open(cuda.Config{Loader: f})
}

func mustFail(t *testing.T, f *fakecuda.Fake, want ...string) error {
	t.Helper()
	d, err := open(t, f)
	if err == nil {
		d.Close()
		t.Fatalf("Open succeeded; want an error containing %q", want)
	}
	var le *cuda.LoadError
	if !errors.As(err, &le) {
		t.Errorf("error %T is not a *cuda.LoadError: %v", err, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if n := fakecuda.Retained(); n != 0 {
		t.Errorf("%d primary context references left after a failed Open", n)
	}
	if n := fakecuda.Handles(); n != 0 {
		t.Errorf("%d handles left after a failed Open", n)
	}
	return err
}

func TestNoDriver(t *testing.T) {
	err := mustFail(t, &fakecuda.Fake{NoDriver: true},
		"libcuda.so.1 not found: no NVIDIA driver visible (in Docker, run with --gpus all)",
		"cannot open shared object file")
	if !strings.HasPrefix(err.Error(), cuda.NoDriverMessage) {
		t.Errorf("error %q does not start with the no-driver message", err)
	}
}

func TestMissingDriverSymbol(t *testing.T) {
	mustFail(t, &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), MissingSyms: []string{"cuInit"}},
		"libcuda.so.1", "has no symbol cuInit", "undefined symbol: cuInit")
}

func TestCuInitFailures(t *testing.T) {
	for _, tc := range []struct {
		code int
		want []string
	}{
		// The driver's version is read before cuInit, so that even this
		// reason names it.
		{100, []string{"cuInit: CUDA_ERROR_NO_DEVICE (driver CUDA 13.0, /usr/lib/fake/libcuda.so.1): ",
			"no NVIDIA device or kernel module is visible", "--gpus all"}},
		{34, []string{"cuInit: CUDA_ERROR_STUB_LIBRARY (driver CUDA 13.0", "stub"}},
		{803, []string{"cuInit: CUDA_ERROR_SYSTEM_DRIVER_MISMATCH", "kernel module"}},
		{804, []string{"CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE"}},
		{35, []string{"CUDA_ERROR_INSUFFICIENT_DRIVER", "driver is too old"}},
		{12345, []string{"cuInit: CUDA_ERROR_FAKE_UNKNOWN"}}, // name from cuGetErrorName
	} {
		err := mustFail(t, &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), InitResult: tc.code}, tc.want...)
		var ce *cuda.Error
		if !errors.As(err, &ce) || ce.Status != tc.code || ce.Call != "cuInit" || ce.Lib != cuda.LibDriver {
			t.Errorf("code %d: error %v does not unwrap to the cuInit *cuda.Error", tc.code, err)
		}
	}
}

func TestNoDevices(t *testing.T) {
	mustFail(t, &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), DeviceCount: -1}, "cuDeviceGetCount: 0 devices (driver CUDA 13.0",
		"no NVIDIA device or kernel module is visible")
}

func TestLibraryMissing(t *testing.T) {
	mustFail(t, &fakecuda.Fake{},
		"no usable cuBLAS and cuSOLVER for driver CUDA 13.0", "libcublas.so.13, libcublas.so.12, libcublas.so.11 not found",
		"searched LOWRANK_CUDA_LIB_DIR="+fakeDir)
}

func TestCusolverMissing(t *testing.T) {
	var fs []string
	for _, f := range fakecuda.CUDA13(fakeDir) {
		if !strings.Contains(f, "cusolver") {
			fs = append(fs, f)
		}
	}
	mustFail(t, &fakecuda.Fake{Files: fs}, "libcusolver.so.12 not found")
}

func TestDependencyFailsToLoad(t *testing.T) {
	mustFail(t, &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir),
		OpenErr: map[string]string{"libcusolver.so.12": "libcusolver.so.12: undefined symbol: __nvJitLinkFoo"}},
		"undefined symbol: __nvJitLinkFoo")
}

func TestMissingLibrarySymbol(t *testing.T) {
	mustFail(t, &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), MissingSyms: []string{"cusolverDnSgesvd"}},
		"libcusolver.so.12", "has no symbol cusolverDnSgesvd")
}

func TestDriverTooOldForLibraries(t *testing.T) {
	// A CUDA 12.4 driver with only CUDA 13 libraries: they must not be
	// loaded, and the message must say why.
	f := &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), DriverVersion: 12040}
	mustFail(t, f, "driver CUDA 12.4", "driver is too old for "+fakeDir+"/libcublas.so.13 (needs driver ≥ 580)")
	for _, p := range f.Opened {
		if strings.HasSuffix(p, ".so.13") || strings.Contains(p, ".so.13.") {
			t.Errorf("opened %s on a CUDA 12 driver", p)
		}
	}
}

func TestPicksNewestMajorNotAboveDriver(t *testing.T) {
	files := append(fakecuda.CUDA13(fakeDir), fakecuda.CUDA12(fakeDir)...)
	f := &fakecuda.Fake{Files: files, DriverVersion: 12080}
	d, err := open(t, f)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, want := f.OpenedBase(), "libcuda.so.1 libcublasLt.so.12 libcublas.so.12 libnvJitLink.so.12 libcusparse.so.12 libcusolver.so.11 libnvrtc-builtins.so.12.9 libnvrtc.so.12"; got != want {
		t.Errorf("opened %q\nwant   %q (dependencies first, CUDA 12 only)", got, want)
	}
}

func TestOpenDescribeClose(t *testing.T) {
	f := &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir)}
	d, err := open(t, f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.OpenedBase(), "libcuda.so.1 libcublasLt.so.13 libcublas.so.13 libnvJitLink.so.13 libcusparse.so.12 libcusolver.so.12 libnvrtc-builtins.so.13.0 libnvrtc.so.13"; got != want {
		t.Errorf("opened %q\nwant   %q", got, want)
	}
	info := d.Info()
	lines := strings.Join(info.Lines(), "\n")
	for _, w := range []string{
		"device 0: Fake GPU (compute capability 9.0, 132 SMs)",
		"memory: 16.0 GiB total, 16.0 GiB free",
		"driver: CUDA 13.0 (/usr/lib/fake/libcuda.so.1)",
		"cuBLAS 13.0.2 (" + fakeDir + "/libcublas.so.13)",
		"cuSOLVER 12.0.4 (" + fakeDir + "/libcusolver.so.12)",
		"NVRTC 13.0 (" + fakeDir + "/libnvrtc.so.13)",
	} {
		if !strings.Contains(lines, w) {
			t.Errorf("Info lines lack %q:\n%s", w, lines)
		}
	}
	if fakecuda.Retained() != 1 || fakecuda.Handles() != 3 {
		t.Errorf("after Open: %d context references and %d handles; want 1 and 3 (stream, cuBLAS, cuSOLVER)", fakecuda.Retained(), fakecuda.Handles())
	}

	// Device memory: allocations are counted, and running out matches
	// cuda.ErrOutOfMemory.
	base := cuda.LiveAllocations()
	err = d.Do(func(c *cuda.Ctx) error {
		p, err := c.Alloc(1 << 20)
		if err != nil {
			return err
		}
		if cuda.LiveAllocations() != base+1 {
			t.Errorf("LiveAllocations = %d after Alloc; want %d", cuda.LiveAllocations(), base+1)
		}
		if err := c.Free(p); err != nil {
			return err
		}
		_, err = c.Alloc(32 << 30)
		return err
	})
	if !errors.Is(err, cuda.ErrOutOfMemory) {
		t.Errorf("allocating more than the device has: %v; want an error matching cuda.ErrOutOfMemory", err)
	}
	if err == nil || !strings.Contains(err.Error(), "cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY") {
		t.Errorf("error %q does not name the call and status", err)
	}
	if cuda.LiveAllocations() != base || fakecuda.LiveAllocations() != 0 {
		t.Errorf("allocations leaked: %d (fake driver: %d)", cuda.LiveAllocations()-base, fakecuda.LiveAllocations())
	}

	// A panic in a job is an error, and the worker survives it.
	if err := d.Do(func(*cuda.Ctx) error { panic("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panicking job returned %v", err)
	}
	if err := d.Do(func(*cuda.Ctx) error { return nil }); err != nil {
		t.Errorf("job after a panic: %v", err)
	}

	d.Close()
	if fakecuda.Retained() != 0 || fakecuda.Handles() != 0 {
		t.Errorf("after Close: %d context references and %d handles; want 0", fakecuda.Retained(), fakecuda.Handles())
	}
	if err := d.Do(func(*cuda.Ctx) error { return nil }); !errors.Is(err, cuda.ErrClosed) {
		t.Errorf("Do after Close: %v; want ErrClosed", err)
	}
}

func TestNVRTCOptional(t *testing.T) {
	var fs []string
	for _, f := range fakecuda.CUDA13(fakeDir) {
		if !strings.Contains(f, "nvrtc") {
			fs = append(fs, f)
		}
	}
	d, err := open(t, &fakecuda.Fake{Files: fs})
	if err != nil {
		t.Fatalf("Open without NVRTC: %v", err)
	}
	defer d.Close()
	info := d.Info()
	if info.NVRTC != nil || !strings.Contains(info.NVRTCErr, "libnvrtc.so.13 not found") {
		t.Errorf("NVRTC = %v, NVRTCErr = %q", info.NVRTC, info.NVRTCErr)
	}
	if !strings.Contains(strings.Join(info.Lines(), "\n"), "NVRTC: not available") {
		t.Errorf("Lines do not say NVRTC is missing: %q", info.Lines())
	}
}

// TestOldDriver: a driver older than CUDA 11 gets one plain reason, not an
// empty list of files ("CUDA 10.2:  not found") naming a file twice.
func TestOldDriver(t *testing.T) {
	err := mustFail(t, &fakecuda.Fake{Files: fakecuda.CUDA12(fakeDir), DriverVersion: 10020},
		"the NVIDIA driver (driver CUDA 10.2, /usr/lib/fake/libcuda.so.1) is older than CUDA 11, the oldest lowrank loads: upgrade it to 450.80.02 or newer")
	if strings.Contains(err.Error(), "not found") || strings.Count(err.Error(), "libcublas") > 0 {
		t.Errorf("reason %q lists files", err)
	}
}

// TestMixedInstallation: one installation per load, checked by each
// library's own version call and by the libraries cuSOLVER was linked
// against. libcusolver.so.11 is the soname of both CUDA 11.8 and CUDA 12:
// a folder with CUDA 12's cuBLAS and 11.8's cuSOLVER used to load as one
// set.
func TestMixedInstallation(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    fakecuda.Fake
		want string
	}{
		{"cuSOLVER 11.8 beside cuBLAS 12", fakecuda.Fake{Files: fakecuda.CUDA12(fakeDir), DriverVersion: 12080,
			Needed: map[string][]string{"libcusolver.so.11": {"libcublas.so.11", "libcublasLt.so.11", "libc.so.6"}}},
			"libcusolver.so.11 (" + fakeDir + "/libcusolver.so.11) belongs to CUDA 11: it needs libcublas.so.11, but libcublas.so.12 was loaded"},
		{"cuBLASLt of another release", fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), Versions: map[string]int{"libcublasLt.so.13": 12}},
			"libcublasLt.so.13 (" + fakeDir + "/libcublasLt.so.13) is cuBLASLt 12.9.1 but libcublas.so.13 (" + fakeDir + "/libcublas.so.13) is cuBLAS 13.0.2"},
		{"cuBLAS that is not its soname's", fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), Versions: map[string]int{"libcublas.so.13": 12}},
			"libcublas.so.13 (" + fakeDir + "/libcublas.so.13) reports cuBLAS 12.9.1, not CUDA 13's"},
		{"cuSOLVER that is not its soname's", fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), Versions: map[string]int{"libcusolver.so.12": 11}},
			"libcusolver.so.12 (" + fakeDir + "/libcusolver.so.12) reports version 11.7.5, not 12.x"},
		{"nvJitLink of another major", fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), Versions: map[string]int{"libnvJitLink.so.13": 12}},
			"reports nvJitLink 12.9, not CUDA 13's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			mustFail(t, &f, "no usable cuBLAS and cuSOLVER", tc.want)
		})
	}
	// The same set, consistent, loads.
	f := &fakecuda.Fake{Files: fakecuda.CUDA12(fakeDir), DriverVersion: 12080,
		Needed: map[string][]string{"libcusolver.so.11": {"libcublas.so.12", "libcublasLt.so.12", "libcusparse.so.12", "libnvJitLink.so.12"}}}
	d, err := open(t, f)
	if err != nil {
		t.Fatalf("a consistent CUDA 12 set: %v", err)
	}
	lines := strings.Join(d.Info().Lines(), "\n")
	d.Close()
	for _, w := range []string{"cuBLAS 12.9.1", "cuSOLVER 11.7.5", "cuBLASLt 12.9.1", "cuSPARSE 12.5.10", "nvJitLink 12.9", "NVRTC 12.9"} {
		if !strings.Contains(lines, w) {
			t.Errorf("Info lines lack %q:\n%s", w, lines)
		}
	}
}

// TestNVRTCOfAnotherRelease: an NVRTC whose nvrtcVersion is not the
// installation's major is not used, and Info says why.
func TestNVRTCOfAnotherRelease(t *testing.T) {
	d, err := open(t, &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), Versions: map[string]int{"libnvrtc.so.13": 12}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if info := d.Info(); info.NVRTC != nil || !strings.Contains(info.NVRTCErr, "libnvrtc.so.13 ("+fakeDir+"/libnvrtc.so.13) is NVRTC 12.9, not CUDA 13's") {
		t.Errorf("NVRTC = %v, NVRTCErr = %q", info.NVRTC, info.NVRTCErr)
	}
}
