package cuda

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeEnv is an env over a fixed set of folders, files and variables.
func fakeEnv(vars map[string]string, dirs []string, files map[string]string) env {
	isDir := map[string]bool{}
	for _, d := range dirs {
		isDir[d] = true
	}
	return env{
		getenv: func(k string) string { return vars[k] },
		lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		realpath: func(p string) string {
			if r, ok := vars["realpath:"+p]; ok {
				return r
			}
			return p
		},
		glob: func(p string) []string {
			var out []string
			for _, d := range dirs {
				if ok, _ := filepath.Match(p, d); ok {
					out = append(out, d)
				}
			}
			for f := range files {
				if ok, _ := filepath.Match(p, f); ok {
					out = append(out, f)
				}
			}
			return out
		},
		isDir: func(p string) bool { return isDir[p] },
		read: func(p string) ([]byte, error) {
			if s, ok := files[p]; ok {
				return []byte(s), nil
			}
			return nil, errors.New("no such file")
		},
		exists: func(p string) bool { _, f := files[p]; return f || isDir[p] },
	}
}

func names(ls []location) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.name)
	}
	return out
}

func TestLocationsEnvVarIsExclusive(t *testing.T) {
	e := fakeEnv(map[string]string{LibDirEnv: "/opt/mycuda/lib", "LD_LIBRARY_PATH": "/a"}, []string{"/a", "/usr/local/cuda/lib64"}, nil)
	if got := names(locations(e)); !reflect.DeepEqual(got, []string{"/opt/mycuda/lib"}) {
		t.Errorf("locations = %q; want only the LOWRANK_CUDA_LIB_DIR folder", got)
	}
}

func TestLocationsOrder(t *testing.T) {
	arch := archTriplet()
	dirs := []string{
		"/ld/path", "/from/ldconf", "/from/include", "/usr/local/cuda/lib64",
		"/usr/local/cuda-12.4/lib64", "/usr/local/cuda-12.10/lib64", "/usr/lib/" + arch,
		"/venv/lib/python3.12/site-packages/nvidia/cu13/lib",
		"/usr/local/lib/python3.11/dist-packages/nvidia/cublas/lib",
	}
	files := map[string]string{
		"/etc/ld.so.conf":             "# comment\ninclude /etc/ld.so.conf.d/*.conf\n/from/ldconf\n",
		"/etc/ld.so.conf.d/cuda.conf": "/from/include # trailing comment\n",
	}
	dirs = append(dirs, "/venv/lib/python3.12/site-packages", "/usr/local/lib/python3.11/dist-packages")
	e := fakeEnv(map[string]string{"LD_LIBRARY_PATH": "/ld/path::/missing", "VIRTUAL_ENV": "/venv"}, dirs, files)
	got := names(locations(e))
	want := []string{
		"/ld/path", "/from/include", "/from/ldconf", "/usr/local/cuda/lib64",
		"/usr/local/cuda-12.10/lib64", "/usr/local/cuda-12.4/lib64", "/usr/lib/" + arch,
		"/venv/lib/python3.12/site-packages/nvidia/cu13/lib",
		"/usr/local/lib/python3.11/dist-packages/nvidia/{cublas,cusolver,cusparse,nvjitlink,cuda_nvrtc}/lib",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("locations =\n%q\nwant\n%q", got, want)
	}
	ls := locations(e)
	wheel := ls[len(ls)-1]
	if d := wheel.dir(keyCusolver); d != "/usr/local/lib/python3.11/dist-packages/nvidia/cusolver/lib" {
		t.Errorf("wheel cusolver folder = %s", d)
	}
	if d := wheel.dir(keyNvrtc); d != "/usr/local/lib/python3.11/dist-packages/nvidia/cuda_nvrtc/lib" {
		t.Errorf("wheel nvrtc folder = %s", d)
	}
}

func TestSonames(t *testing.T) {
	for m := minMajor; m <= maxMajor; m++ {
		s := sonames(m)
		for _, k := range []string{keyCublasLt, keyCublas, keyCusparse, keyCusolver, keyNvrtc} {
			if len(s[k]) == 0 {
				t.Errorf("CUDA %d: no soname for %s", m, k)
			}
		}
		if _, ok := minDriver[m]; !ok {
			t.Errorf("CUDA %d: no minimum driver", m)
		}
	}
	// cuSPARSE keeps .12 in CUDA 13; cuSOLVER is .12 in 13, .11 in 12 (docs/cuda.md, "Sonames").
	if sonames(13)[keyCusparse][0] != "libcusparse.so.12" || sonames(13)[keyCusolver][0] != "libcusolver.so.12" ||
		sonames(12)[keyCusolver][0] != "libcusolver.so.11" {
		t.Error("soname table does not match NVIDIA's sonames")
	}
}

func TestChooseArch(t *testing.T) {
	for _, tc := range []struct {
		cc        int
		supported []int
		arch      string
		cubin     bool
		fail      bool
	}{
		{90, []int{75, 80, 86, 89, 90, 100, 120}, "sm_90", true, false},
		{89, []int{75, 80, 86, 90}, "sm_86", true, false},        // same major, lower minor: cubin runs
		{120, []int{75, 80, 86, 90}, "compute_90", false, false}, // newer major: PTX for the driver to JIT
		{61, []int{75, 80}, "", false, true},
		{90, nil, "sm_90", true, false},
	} {
		arch, cubin, err := chooseArch(tc.cc, tc.supported)
		if tc.fail {
			if err == nil {
				t.Errorf("cc %d: no error", tc.cc)
			}
			continue
		}
		if err != nil || arch != tc.arch || cubin != tc.cubin {
			t.Errorf("chooseArch(%d, %v) = %s, %v, %v; want %s, %v", tc.cc, tc.supported, arch, cubin, err, tc.arch, tc.cubin)
		}
	}
}

func TestErrorText(t *testing.T) {
	err := newError(LibCUSOLVER, "cusolverDnSgesvd", 3)
	if err.Error() != "cuda: cusolverDnSgesvd: CUSOLVER_STATUS_INVALID_VALUE" {
		t.Errorf("got %q", err)
	}
	if errors.Is(err, ErrOutOfMemory) || errors.Is(err, ErrNoConvergence) {
		t.Error("INVALID_VALUE matches ErrOutOfMemory or ErrNoConvergence")
	}
	for _, e := range []error{
		newError(LibDriver, "cuMemAlloc_v2", 2),
		newError(LibCUBLAS, "cublasSgemm_v2", 3),
		newError(LibCUSOLVER, "cusolverDnSgesvdj", 2),
		newError(LibNVRTC, "nvrtcCompileProgram", 1),
	} {
		if !errors.Is(e, ErrOutOfMemory) {
			t.Errorf("%v does not match ErrOutOfMemory", e)
		}
		if !strings.Contains(e.Error(), "out of") || !strings.Contains(e.Error(), "memory") {
			t.Errorf("%v gives no advice", e)
		}
	}
	if got := newError(LibCUBLAS, "cublasSgemm_v2", 42).Error(); got != "cuda: cublasSgemm_v2: cublas status 42" {
		t.Errorf("unknown status: %q", got)
	}
	if newError(LibNVRTC, "nvrtcCompileProgram", 0) != nil {
		t.Error("status 0 is an error")
	}
}

// TestDevInfoError: a devInfo failure is a *Error naming the routine; a
// positive devInfo matches ErrNoConvergence, a negative one names the
// parameter.
func TestDevInfoError(t *testing.T) {
	var err error = DevInfoError("cusolverDnDgesvdj", 3, "50×30")
	if got, want := err.Error(), "cuda: cusolverDnDgesvdj: devInfo = 3 (50×30): the SVD did not converge"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if !errors.Is(err, ErrNoConvergence) || errors.Is(err, ErrOutOfMemory) {
		t.Error("devInfo = 3 does not match ErrNoConvergence only")
	}
	err = DevInfoError("cusolverDnSgeqrf", -4, "")
	if got, want := err.Error(), "cuda: cusolverDnSgeqrf: devInfo = -4: parameter 4 is wrong"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if errors.Is(err, ErrNoConvergence) {
		t.Error("devInfo = -4 matches ErrNoConvergence")
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Lib != LibCUSOLVER || ce.DevInfo != -4 || ce.Status != 0 {
		t.Errorf("%#v", ce)
	}
}

// TestLocationsSymlinkedFolders: Debian's /lib is a link to /usr/lib, so
// /lib/x86_64-linux-gnu is the folder /usr/lib/x86_64-linux-gnu already
// searched; it is searched (and its files listed) once.
func TestLocationsSymlinkedFolders(t *testing.T) {
	arch := archTriplet()
	e := fakeEnv(map[string]string{"realpath:/lib/" + arch: "/usr/lib/" + arch},
		[]string{"/usr/lib/" + arch, "/lib/" + arch}, nil)
	got := names(locations(e))
	if !reflect.DeepEqual(got, []string{"/usr/lib/" + arch}) {
		t.Errorf("locations = %q; want /usr/lib/%s once", got, arch)
	}
}

func TestNoDeviceAdvice(t *testing.T) {
	none := noDeviceAdvice(fakeEnv(nil, nil, nil))
	if !strings.Contains(none, "no NVIDIA device or kernel module is visible") || !strings.Contains(none, "kernel module is not loaded (no /proc/driver/nvidia/version)") {
		t.Errorf("without the kernel module: %q", none)
	}
	loaded := noDeviceAdvice(fakeEnv(map[string]string{"CUDA_VISIBLE_DEVICES": ""}, nil, map[string]string{
		procNvidiaVersion: "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  Wed Oct  1 00:00:00 UTC 2025\nGCC version: gcc 12\n",
	}))
	for _, w := range []string{"the nvidia kernel module 535.261.03 is loaded but shows no device", `CUDA_VISIBLE_DEVICES=""`} {
		if !strings.Contains(loaded, w) {
			t.Errorf("with the kernel module and CUDA_VISIBLE_DEVICES empty: %q lacks %q", loaded, w)
		}
	}
}

func TestSonameMajor(t *testing.T) {
	for f, want := range map[string]int{
		"libcublas.so.12": 12, "/x/libnvrtc.so.11.2": 11, "libnvrtc-builtins.so.13.0": 13, "libcuda.so": 0, "libfoo": 0,
	} {
		if got := sonameMajor(f); got != want {
			t.Errorf("sonameMajor(%q) = %d; want %d", f, got, want)
		}
	}
	if !sameLibrary("libcublas.so.11", "libcublas.so.12") || sameLibrary("libcublas.so.12", "libcublasLt.so.12") {
		t.Error("sameLibrary is wrong")
	}
}
