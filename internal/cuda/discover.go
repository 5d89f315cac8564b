package cuda

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// LibDirEnv names a folder to load the CUDA libraries (cuBLAS, cuBLASLt,
// cuSOLVER and its dependencies, NVRTC) from. When it is set, no other
// folder is searched for them; libcuda.so.1, which belongs to the driver,
// is still found by the dynamic linker.
const LibDirEnv = "LOWRANK_CUDA_LIB_DIR"

// The libraries of one CUDA installation, in load order: dependencies
// first (cuSOLVER needs cuBLASLt, cuBLAS, nvJitLink and cuSPARSE).
const (
	keyCublasLt  = "cublasLt"
	keyCublas    = "cublas"
	keyNvJitLink = "nvJitLink"
	keyCusparse  = "cusparse"
	keyCusolver  = "cusolver"
	keyNvrtc     = "nvrtc"
)

var requiredKeys = []string{keyCublasLt, keyCublas, keyNvJitLink, keyCusparse, keyCusolver}

// minMajor and maxMajor bound the CUDA major versions whose libraries the
// loader knows the sonames of.
const (
	minMajor = 11
	maxMajor = 13
)

// sonames returns, for CUDA major version major, the file names to try for
// each library key, best first. A key with no names is not needed for that
// major (nvJitLink before 12). cuSPARSE keeps soname 12 in CUDA 13;
// cuSOLVER is .12 in 13 and .11 in 12 and 11.1–11.8 (NVIDIA's release
// notes; the table is in docs/cuda.md, "Sonames").
func sonames(major int) map[string][]string {
	switch major {
	case 13:
		return map[string][]string{
			keyCublasLt: {"libcublasLt.so.13"}, keyCublas: {"libcublas.so.13"},
			keyNvJitLink: {"libnvJitLink.so.13"}, keyCusparse: {"libcusparse.so.12"},
			keyCusolver: {"libcusolver.so.12"}, keyNvrtc: {"libnvrtc.so.13"},
		}
	case 12:
		return map[string][]string{
			keyCublasLt: {"libcublasLt.so.12"}, keyCublas: {"libcublas.so.12"},
			keyNvJitLink: {"libnvJitLink.so.12"}, keyCusparse: {"libcusparse.so.12"},
			keyCusolver: {"libcusolver.so.11"}, keyNvrtc: {"libnvrtc.so.12"},
		}
	case 11:
		return map[string][]string{
			keyCublasLt: {"libcublasLt.so.11"}, keyCublas: {"libcublas.so.11"},
			keyCusparse: {"libcusparse.so.11"}, keyCusolver: {"libcusolver.so.11", "libcusolver.so.10"},
			keyNvrtc: {"libnvrtc.so.11.2", "libnvrtc.so.11.1", "libnvrtc.so.11.0"},
		}
	}
	return nil
}

// minDriver is the oldest driver branch that runs each CUDA major (NVIDIA's
// minor-version compatibility table).
var minDriver = map[int]string{13: "580", 12: "525", 11: "450.80.02"}

// location is one installation of the CUDA libraries: a folder that holds
// them all (a toolkit's lib64, a distribution's lib folder, the CUDA 13 pip
// wheels' nvidia/cu13/lib) or the per-package folders of the CUDA 11/12 pip
// wheels under one site-packages/nvidia.
type location struct {
	name string            // shown in messages
	dirs map[string]string // library key → folder; "" key is the default folder
}

func (l location) dir(key string) string {
	if d, ok := l.dirs[key]; ok {
		return d
	}
	return l.dirs[""]
}

func dirLocation(d string) location {
	return location{name: d, dirs: map[string]string{"": d}}
}

// wheelLocation is the CUDA 11/12 pip layout: site-packages/nvidia/<pkg>/lib.
func wheelLocation(nv string) location {
	return location{name: nv + "/{cublas,cusolver,cusparse,nvjitlink,cuda_nvrtc}/lib", dirs: map[string]string{
		"":           filepath.Join(nv, "cublas", "lib"),
		keyCublasLt:  filepath.Join(nv, "cublas", "lib"),
		keyCublas:    filepath.Join(nv, "cublas", "lib"),
		keyNvJitLink: filepath.Join(nv, "nvjitlink", "lib"),
		keyCusparse:  filepath.Join(nv, "cusparse", "lib"),
		keyCusolver:  filepath.Join(nv, "cusolver", "lib"),
		keyNvrtc:     filepath.Join(nv, "cuda_nvrtc", "lib"),
	}}
}

// env is the environment the search reads, so that tests can give their own.
type env struct {
	getenv   func(string) string
	lookup   func(string) (string, bool)
	glob     func(string) []string
	isDir    func(string) bool
	read     func(string) ([]byte, error)
	realpath func(string) string // the folder with symbolic links resolved
	exists   func(string) bool
}

func osEnv() env {
	return env{
		getenv: os.Getenv,
		lookup: os.LookupEnv,
		realpath: func(p string) string {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				return r
			}
			return p
		},
		glob: func(p string) []string {
			m, _ := filepath.Glob(p)
			return m
		},
		isDir: func(p string) bool {
			st, err := os.Stat(p)
			return err == nil && st.IsDir()
		},
		read:   os.ReadFile,
		exists: exists,
	}
}

// locations returns the installations to try, in order: LOWRANK_CUDA_LIB_DIR
// alone when it is set; otherwise the folders of LD_LIBRARY_PATH, those of
// ldconfig (/etc/ld.so.conf and its includes), the CUDA toolkit's, the
// distribution's library folders, and the pip wheels of the Python
// installations found (site-packages/nvidia/cu13/lib, nvidia/*/lib).
// Folders that do not exist are left out, and so is a folder that is
// another's symbolic link (Debian's /lib is /usr/lib).
func locations(e env) []location {
	if d := strings.TrimSpace(e.getenv(LibDirEnv)); d != "" {
		return []location{dirLocation(d)}
	}
	var dirs []string
	for _, d := range filepath.SplitList(e.getenv("LD_LIBRARY_PATH")) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	dirs = append(dirs, ldconfigDirs(e, "/etc/ld.so.conf", 0)...)
	arch := archTriplet()
	dirs = append(dirs,
		"/usr/local/cuda/lib64",
		"/usr/local/cuda/targets/"+archTarget()+"/lib",
	)
	// Versioned toolkits, newest first.
	vers := e.glob("/usr/local/cuda-*/lib64")
	sort.Sort(sort.Reverse(byVersion(vers)))
	dirs = append(dirs, vers...)
	dirs = append(dirs, "/usr/lib/"+arch, "/lib/"+arch, "/usr/lib64", "/lib64", "/usr/lib")
	if p := e.getenv("CONDA_PREFIX"); p != "" {
		dirs = append(dirs, filepath.Join(p, "lib"))
	}

	var out []location
	seen := map[string]bool{}
	add := func(l location) {
		key := l.name
		if d, ok := l.dirs[""]; ok && len(l.dirs) == 1 && e.realpath != nil {
			key = e.realpath(d)
		}
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, l)
	}
	for _, d := range dirs {
		d = filepath.Clean(d)
		if e.isDir(d) {
			add(dirLocation(d))
		}
	}
	for _, sp := range sitePackages(e) {
		nv := filepath.Join(sp, "nvidia")
		if d := filepath.Join(nv, "cu13", "lib"); e.isDir(d) {
			add(dirLocation(d))
		}
		if e.isDir(filepath.Join(nv, "cublas", "lib")) {
			add(wheelLocation(nv))
		}
	}
	return out
}

// sitePackages returns the Python package folders where pip may have
// installed NVIDIA's wheels.
func sitePackages(e env) []string {
	var pats []string
	for _, v := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if p := e.getenv(v); p != "" {
			pats = append(pats, filepath.Join(p, "lib", "python3*", "site-packages"))
		}
	}
	for _, p := range filepath.SplitList(e.getenv("PYTHONPATH")) {
		if p != "" {
			pats = append(pats, p)
		}
	}
	if h := e.getenv("HOME"); h != "" {
		pats = append(pats,
			filepath.Join(h, ".local", "lib", "python3*", "site-packages"),
			filepath.Join(h, ".pyenv", "versions", "*", "lib", "python3*", "site-packages"))
	}
	pats = append(pats,
		"/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
		"/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages",
		"/opt/conda/lib/python3*/site-packages")
	var out []string
	for _, p := range pats {
		if strings.ContainsAny(p, "*?[") {
			out = append(out, e.glob(p)...)
		} else {
			out = append(out, p)
		}
	}
	return out
}

// ldconfigDirs returns the folders listed in an ld.so.conf file and the
// files it includes, in order.
func ldconfigDirs(e env, file string, depth int) []string {
	if depth > 8 {
		return nil
	}
	data, err := e.read(file)
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "include"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			pat := strings.TrimSpace(rest)
			if !filepath.IsAbs(pat) {
				pat = filepath.Join(filepath.Dir(file), pat)
			}
			inc := e.glob(pat)
			sort.Strings(inc)
			for _, f := range inc {
				out = append(out, ldconfigDirs(e, f, depth+1)...)
			}
			continue
		}
		if strings.HasPrefix(line, "hwcap") {
			continue
		}
		out = append(out, line)
	}
	return out
}

func archTriplet() string {
	if runtime.GOARCH == "arm64" {
		return "aarch64-linux-gnu"
	}
	return "x86_64-linux-gnu"
}

func archTarget() string {
	if runtime.GOARCH == "arm64" {
		return "sbsa-linux"
	}
	return "x86_64-linux"
}

// byVersion sorts /usr/local/cuda-X.Y/... paths by X.Y numerically.
type byVersion []string

func (v byVersion) Len() int      { return len(v) }
func (v byVersion) Swap(i, j int) { v[i], v[j] = v[j], v[i] }
func (v byVersion) Less(i, j int) bool {
	a, b := cudaDirVersion(v[i]), cudaDirVersion(v[j])
	if a[0] != b[0] {
		return a[0] < b[0]
	}
	return a[1] < b[1]
}

func cudaDirVersion(p string) [2]int {
	i := strings.Index(p, "cuda-")
	if i < 0 {
		return [2]int{}
	}
	s := p[i+len("cuda-"):]
	if j := strings.IndexByte(s, '/'); j >= 0 {
		s = s[:j]
	}
	maj, min, _ := strings.Cut(s, ".")
	x, _ := strconv.Atoi(maj)
	y, _ := strconv.Atoi(min)
	return [2]int{x, y}
}
