package kernels

import (
	"regexp"
	"strings"
	"testing"
)

var globalRE = regexp.MustCompile(`extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(`)

// TestOneKernelPerFile checks the convention the loader relies on: each
// file defines exactly one extern "C" __global__ function, named like the
// file.
func TestOneKernelPerFile(t *testing.T) {
	names := Names()
	if len(names) == 0 {
		t.Fatal("no kernels embedded")
	}
	for _, n := range names {
		src, err := Source(n)
		if err != nil {
			t.Fatal(err)
		}
		m := globalRE.FindAllStringSubmatch(src, -1)
		if len(m) != 1 || m[0][1] != n {
			t.Errorf("%s.cu: extern \"C\" __global__ functions %v; want exactly one named %s", n, m, n)
		}
		if strings.Contains(src, "#include") {
			t.Errorf("%s.cu includes a header; NVRTC is given none", n)
		}
	}
	if _, err := Source("nope"); err == nil || !strings.Contains(err.Error(), "fused_apply") {
		t.Errorf("Source of an unknown kernel: %v", err)
	}
}
