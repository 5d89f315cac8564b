package cuda

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// IncludeEnv names the folders with the CUDA headers (cuda.h,
// cublas_v2.h, cublasLt.h, cusparse.h, cusolverDn.h, nvrtc.h) for
// TestHeaderCheck: one, or several separated by ':' (NVIDIA's pip wheels
// put each library's headers in a folder of its own).
const includeEnv = "LOWRANK_CUDA_INCLUDE"

// TestHeaderCheckCoversTables: headercheck/check.c checks the prototype of
// the first name of every entry point the package binds, and the value of
// every status the tables of errors.go name (but the two it explains).
func TestHeaderCheckCoversTables(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("headercheck", "check.c"))
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^LR_CHECK\((\w+)\);`).FindAllStringSubmatch(string(src), -1) {
		checked[m[1]] = true
	}
	var (
		drv    driverAPI
		blas   blasAPI
		solver solverAPI
		vers   versionAPI
		nvrtc  nvrtcAPI
	)
	var all []symbol
	for _, list := range [][]symbol{drv.initSymbols(), drv.symbols(), blas.symbols(), solver.symbols(),
		vers.cublasLtSymbols(), vers.cusparseSymbols(), vers.nvJitLinkSymbols(), nvrtc.symbols()} {
		all = append(all, list...)
	}
	for _, s := range all {
		if !checked[s.names[0]] {
			t.Errorf("check.c has no LR_CHECK(%s)", s.names[0])
		}
	}
	names := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^LR_NAME\((\w+), (-?\d+)\);`).FindAllStringSubmatch(string(src), -1) {
		v, _ := strconv.Atoi(m[2])
		names[m[1]] = v
	}
	n := 0
	for _, tb := range []map[int]string{cuResultNames, cublasNames, cusolverNames, nvrtcNames} {
		for code, name := range tb {
			if name == "CUDA_ERROR_INSUFFICIENT_DRIVER" || name == "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER" {
				continue
			}
			n++
			if v, ok := names[name]; !ok || v != code {
				t.Errorf("check.c has no LR_NAME(%s, %d)", name, code)
			}
		}
	}
	if len(names) != n {
		t.Errorf("check.c has %d LR_NAME lines; the tables have %d entries to check", len(names), n)
	}
}

// headerDirs are where TestHeaderCheck looks for the CUDA headers when
// LOWRANK_CUDA_INCLUDE is not set.
var headerDirs = []string{"/usr/local/cuda/include", "/usr/include"}

// TestHeaderCheck compiles headercheck/check.c against real CUDA headers:
// every prototype of lowrank_cuda.h, every enum width and value the
// package relies on. It skips where no headers are found, unless
// LOWRANK_REQUIRE_CUDA_LIBS=1.
func TestHeaderCheck(t *testing.T) {
	dir := os.Getenv(includeEnv)
	if dir == "" {
		for _, d := range headerDirs {
			if fileExists(filepath.Join(d, "cuda.h")) && fileExists(filepath.Join(d, "cusolverDn.h")) {
				dir = d
				break
			}
		}
	}
	if dir == "" {
		if os.Getenv("LOWRANK_REQUIRE_CUDA_LIBS") == "1" {
			t.Fatalf("LOWRANK_REQUIRE_CUDA_LIBS=1 but no CUDA headers: set %s", includeEnv)
		}
		t.Skipf("no CUDA headers in %s; set %s", strings.Join(headerDirs, " or "), includeEnv)
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	args := []string{"-std=c11", "-Wall", "-Werror", "-fsyntax-only"}
	version := "unknown"
	for _, d := range filepath.SplitList(dir) {
		args = append(args, "-I"+d)
		if v, err := os.ReadFile(filepath.Join(d, "cuda.h")); err == nil {
			if m := regexp.MustCompile(`#define CUDA_VERSION (\d+)`).FindSubmatch(v); m != nil {
				version = string(m[1])
			}
		}
	}
	out, err := exec.Command(cc, append(args, filepath.Join("headercheck", "check.c"))...).CombinedOutput()
	if err != nil {
		t.Fatalf("headercheck/check.c against %s: %v\n%s", dir, err, out)
	}
	t.Logf("headers of CUDA_VERSION %s in %s: every declaration matches", version, dir)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
