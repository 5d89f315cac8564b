package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/internal/testkit/hostile"
	"github.com/lowrank-go/lowrank/safetensors"
)

// hostileDir is the checked-in suite (go generate ./internal/testkit/hostile).
var hostileDir = filepath.Join("..", "..", "testdata", "hostile")

// TestHostileSuite runs every hostile input through info, factorize and
// merge and checks what the suite's table says: success, or exit ≠ 0 with
// one "lowrank:" line naming the input and saying what was wrong; in every
// case no panic, nothing left next to the output, the input untouched,
// and allocations bounded by a small multiple of the input size.
func TestHostileSuite(t *testing.T) {
	base := filepath.Join(hostileDir, hostile.BaseName)
	for _, c := range hostile.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			dir := hostileDir
			if c.Big {
				if testing.Short() {
					t.Skip("-short: skipping a case built at run time (tens of MB)")
				}
				dir = t.TempDir()
				for name, b := range hostile.BuildBig(c) {
					p := filepath.Join(dir, name)
					os.MkdirAll(filepath.Dir(p), 0o755)
					if err := os.WriteFile(p, b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			in := filepath.Join(dir, c.Name)
			if _, err := os.Stat(in); err != nil {
				t.Fatalf("%v (run go generate ./internal/testkit/hostile)", err)
			}
			weights := in
			if c.Kind == hostile.Adapter {
				weights = filepath.Join(in, peftWeightsName)
			}
			out := t.TempDir()
			runs := []struct {
				name, expect string
				args         []string
				output       string
				inputs       []string
			}{
				{"info", c.Info, []string{"info", in}, "", []string{in}},
				{"factorize", c.Factorize, []string{"factorize", weights, "-o", filepath.Join(out, "f.safetensors"), "--quiet"}, filepath.Join(out, "f.safetensors"), []string{weights}},
			}
			if c.Kind == hostile.File {
				runs = append(runs, struct {
					name, expect string
					args         []string
					output       string
					inputs       []string
				}{"merge", c.Merge, []string{"merge", in, "-o", filepath.Join(out, "m.safetensors"), "--quiet"}, filepath.Join(out, "m.safetensors"), []string{in}})
			} else {
				runs = append(runs, struct {
					name, expect string
					args         []string
					output       string
					inputs       []string
				}{"merge", c.Merge, []string{"merge", "--base", base, "--adapter", in, "-o", filepath.Join(out, "m.safetensors"), "--quiet"}, filepath.Join(out, "m.safetensors"), []string{in, base}})
			}
			before := listDir(t, dir)
			for _, r := range runs {
				if r.expect == hostile.NotRun {
					continue
				}
				var size int64
				for _, p := range r.inputs {
					filepath.Walk(p, func(_ string, info os.FileInfo, err error) error {
						if err == nil && !info.IsDir() {
							size += info.Size()
						}
						return nil
					})
				}
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				code, _, stderr := cli(r.args...)
				runtime.ReadMemStats(&m1)
				if alloc, bound := m1.TotalAlloc-m0.TotalAlloc, uint64(64<<20+16*size); alloc > bound {
					t.Errorf("%s: allocated %d bytes for %d bytes of input; want at most %d", r.name, alloc, size, bound)
				}
				if r.expect == hostile.OK {
					if code != 0 {
						t.Errorf("%s: exit %d, stderr %q; want success", r.name, code, stderr)
						continue
					}
					if r.output != "" {
						checkFinite(t, r.output, r.inputs...)
						os.Remove(r.output)
					}
				} else {
					line := strings.TrimSuffix(stderr, "\n")
					switch {
					case code == 0:
						t.Errorf("%s: exit 0; want an error containing %q", r.name, r.expect)
					case !strings.HasPrefix(line, "lowrank: ") || strings.Contains(line, "\n"):
						t.Errorf("%s: stderr is not one \"lowrank:\" line: %q", r.name, stderr)
					case !strings.Contains(line, r.expect):
						t.Errorf("%s: %q does not contain %q", r.name, line, r.expect)
					case !strings.Contains(line, in):
						t.Errorf("%s: %q does not name the input %s", r.name, line, in)
					}
				}
				if left := listDir(t, out); len(left) > 0 {
					t.Errorf("%s: left %v in the output folder", r.name, left)
					os.RemoveAll(out)
					os.Mkdir(out, 0o755)
				}
			}
			after := listDir(t, dir)
			if len(after) != len(before) {
				t.Errorf("the input folder changed: %d entries, then %d", len(before), len(after))
			}
		})
	}
}

// checkFinite opens an output and checks that every float tensor in it
// that was computed (not copied byte for byte from one of the inputs) is
// finite.
func checkFinite(t *testing.T, path string, inputs ...string) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Errorf("output does not open: %v", err)
		return
	}
	defer f.Close()
	copied := func(name string) bool {
		out, err := f.ReadRaw(name)
		if err != nil {
			return false
		}
		for _, p := range inputs {
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				p = filepath.Join(p, peftWeightsName)
			}
			in, err := safetensors.Open(p)
			if err != nil {
				continue
			}
			b, err := in.ReadRaw(name)
			in.Close()
			if err == nil && string(b) == string(out) {
				return true
			}
		}
		return false
	}
	for _, ti := range f.Tensors() {
		if !ti.DType.IsFloat() || copied(ti.Name) {
			continue
		}
		v, err := f.Float64s(ti.Name)
		if err != nil {
			t.Errorf("%s: %v", ti.Name, err)
			continue
		}
		if i := firstNonFinite(v); i >= 0 {
			t.Errorf("%s: output tensor %q has %v at %d", path, ti.Name, v[i], i)
		}
	}
}
