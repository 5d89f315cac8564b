package cuda

import (
	"bufio"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// libVer is a library's version as its own version call reports it
// (cublasGetProperty, cusolverGetProperty, nvrtcVersion, …); patch is -1
// where the call gives none.
type libVer struct{ major, minor, patch int }

func (v libVer) String() string {
	if v.patch < 0 {
		return fmt.Sprintf("%d.%d", v.major, v.minor)
	}
	return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch)
}

// sonameMajor returns N of a file named lib….so.N or lib….so.N.M…, or 0.
func sonameMajor(file string) int {
	_, after, ok := strings.Cut(path.Base(file), ".so.")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(strings.SplitN(after, ".", 2)[0])
	return n
}

// loadedLib is one library of an installation as loadMath found it.
type loadedLib struct {
	key    string
	soname string   // the name it was opened by
	path   string   // the file
	ver    libVer   // its own version call's answer; major 0 when it has none
	needed []string // its DT_NEEDED sonames, or nil when unknown
	hasVer bool
}

// checkInstallation checks that the libraries of CUDA major m loaded
// together (cuBLASLt, cuBLAS, cuSPARSE, cuSOLVER, nvJitLink) come from one
// installation, by their own version calls and by the libraries cuSOLVER
// was linked against:
//
//   - cuBLAS reports version major m, and cuBLASLt the same version as
//     cuBLAS (they are released together);
//   - cuSPARSE and cuSOLVER report the major of their soname (cuSOLVER is
//     libcusolver.so.11 in CUDA 11.1–11.8 and 12, .so.12 in CUDA 13);
//   - nvJitLink, where it reports a version (12.3+), reports major m;
//   - the cuBLAS, cuBLASLt, cuSPARSE and nvJitLink sonames cuSOLVER's file
//     depends on (ELF DT_NEEDED) are the ones loaded. This is what tells a
//     CUDA 11.8 libcusolver.so.11 from a CUDA 12 one: the first needs
//     libcublas.so.11, the second libcublas.so.12.
//
// It returns nil or the first mismatch, naming both files.
func checkInstallation(m int, libs map[string]*loadedLib) error {
	blas, lt := libs[keyCublas], libs[keyCublasLt]
	if blas != nil && blas.hasVer && blas.ver.major != m {
		return fmt.Errorf("%s (%s) reports cuBLAS %v, not CUDA %d's", blas.soname, blas.path, blas.ver, m)
	}
	if blas != nil && lt != nil && blas.hasVer && lt.hasVer && (lt.ver.major != blas.ver.major || lt.ver.minor != blas.ver.minor || lt.ver.patch != blas.ver.patch) {
		return fmt.Errorf("%s (%s) is cuBLASLt %v but %s (%s) is cuBLAS %v: they come from different CUDA installations",
			lt.soname, lt.path, lt.ver, blas.soname, blas.path, blas.ver)
	}
	for _, key := range []string{keyCusparse, keyCusolver} {
		l := libs[key]
		if l != nil && l.hasVer && l.ver.major != sonameMajor(l.soname) {
			return fmt.Errorf("%s (%s) reports version %v, not %d.x", l.soname, l.path, l.ver, sonameMajor(l.soname))
		}
	}
	if l := libs[keyNvJitLink]; l != nil && l.hasVer && l.ver.major != m {
		return fmt.Errorf("%s (%s) reports nvJitLink %v, not CUDA %d's", l.soname, l.path, l.ver, m)
	}
	solver := libs[keyCusolver]
	if solver == nil || solver.needed == nil {
		return nil
	}
	for _, need := range solver.needed {
		for _, key := range []string{keyCublasLt, keyCublas, keyCusparse, keyNvJitLink} {
			l := libs[key]
			if l == nil || !sameLibrary(need, l.soname) || need == l.soname {
				continue
			}
			return fmt.Errorf("%s (%s) belongs to CUDA %d: it needs %s, but %s was loaded (%s); the folder mixes two CUDA installations",
				solver.soname, solver.path, sonameMajor(need), need, l.soname, l.path)
		}
	}
	return nil
}

// sameLibrary reports whether two sonames name the same library, maybe
// of different versions: libcublas.so.11 and libcublas.so.12, but not
// libcublas.so.12 and libcublasLt.so.12.
func sameLibrary(a, b string) bool {
	ai, bi := strings.Index(a, ".so."), strings.Index(b, ".so.")
	return ai > 0 && bi > 0 && a[:ai] == b[:bi]
}

// procNvidiaVersion is where the NVIDIA kernel module reports itself.
const procNvidiaVersion = "/proc/driver/nvidia/version"

// noDeviceAdvice says why a driver that loaded sees no device: the kernel
// module is not loaded (no /proc/driver/nvidia/version: a container
// started without --gpus, a machine without an NVIDIA GPU) or it is
// loaded but shows this process no device (CUDA_VISIBLE_DEVICES).
func noDeviceAdvice(e env) string {
	var b strings.Builder
	b.WriteString("no NVIDIA device or kernel module is visible to this process")
	if data, err := e.read(procNvidiaVersion); err != nil {
		b.WriteString(": the nvidia kernel module is not loaded (no " + procNvidiaVersion + ")")
	} else {
		line, _, _ := strings.Cut(string(data), "\n")
		mod := strings.TrimSpace(line)
		if f := moduleVersion(mod); f != "" {
			mod = f
		}
		b.WriteString(": the nvidia kernel module " + mod + " is loaded but shows no device")
	}
	if v, ok := e.lookup("CUDA_VISIBLE_DEVICES"); ok {
		fmt.Fprintf(&b, "; CUDA_VISIBLE_DEVICES=%q", v)
	}
	b.WriteString("; check nvidia-smi, CUDA_VISIBLE_DEVICES, and in Docker NVIDIA_VISIBLE_DEVICES and --gpus all")
	return b.String()
}

// moduleVersion finds the version in /proc/driver/nvidia/version's first
// line ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  …").
func moduleVersion(line string) string {
	sc := bufio.NewScanner(strings.NewReader(line))
	sc.Split(bufio.ScanWords)
	prev := ""
	for sc.Scan() {
		w := sc.Text()
		if prev == "Module" && len(w) > 0 && w[0] >= '0' && w[0] <= '9' {
			return w
		}
		prev = w
	}
	return ""
}
