package main

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// tensor is a test tensor: values in float64, written as dt.
type tensor struct {
	name  string
	dt    safetensors.DType
	shape []int
	vals  []float64
	raw   []byte // for non-float dtypes
}

// writeST writes tensors (in order) to path.
func writeST(t *testing.T, path string, meta map[string]string, ts ...tensor) {
	t.Helper()
	w, err := safetensors.Create(path, safetensors.WriterOptions{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		if x.raw != nil || !x.dt.IsFloat() {
			err = w.WriteRaw(x.name, x.dt, x.shape, x.raw)
		} else {
			err = w.WriteFloat64(x.name, x.dt, x.shape, x.vals)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	w.SetMetadata(meta)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// readST returns every float tensor of path as float64, and the metadata.
func readST(t *testing.T, path string) (map[string][]float64, map[string][]int, map[string]string) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vals, shapes := map[string][]float64{}, map[string][]int{}
	for _, ti := range f.Tensors() {
		shapes[ti.Name] = ti.Shape
		if ti.DType.IsFloat() {
			v, err := f.Float64s(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			vals[ti.Name] = v
		}
	}
	return vals, shapes, f.Metadata()
}

// gauss returns n standard normal values.
func gauss(rng *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * scale
	}
	return v
}

// lowRankMat returns a d×k matrix of rank r (product of Gaussian factors).
func lowRankMat(rng *rand.Rand, d, k, r int, scale float64) []float64 {
	g1, g2 := gauss(rng, d*r, 1), gauss(rng, r*k, 1)
	w := make([]float64, d*k)
	for i := range d {
		for j := range k {
			var s float64
			for t := range r {
				s += g1[i*r+t] * g2[t*k+j]
			}
			w[i*k+j] = s * scale / math.Sqrt(float64(r))
		}
	}
	return w
}

// decaying returns a d×k matrix with singular values 1, 0.7, 0.49, ….
func decaying(rng *rand.Rand, d, k int) []float64 {
	w := make([]float64, d*k)
	for t := range min(d, k) {
		u, v := gauss(rng, d, 1), gauss(rng, k, 1)
		s := math.Pow(0.7, float64(t)) / math.Sqrt(float64(d*k))
		for i := range d {
			for j := range k {
				w[i*k+j] += s * u[i] * v[j]
			}
		}
	}
	return w
}

// matmul returns the d×k product of b (d×r) and a (r×k).
func matmul(b, a []float64, d, r, k int) []float64 {
	out := make([]float64, d*k)
	for i := range d {
		for t := range r {
			x := b[i*r+t]
			for j := range k {
				out[i*k+j] += x * a[t*k+j]
			}
		}
	}
	return out
}

// relDiff returns ‖x − y‖ / ‖y‖.
func relDiff(x, y []float64) float64 {
	var num, den float64
	for i := range x {
		num += (x[i] - y[i]) * (x[i] - y[i])
		den += y[i] * y[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// cli runs the tool and returns its exit code, stdout and stderr.
func cli(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// mustCLI runs the tool and fails the test on a non-zero exit.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := cli(args...)
	if code != 0 {
		t.Fatalf("lowrank %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// assertFails checks the rules for bad input: exit ≠ 0, one line on
// stderr starting with "lowrank:" and containing every want, and nothing
// new (no output, no temporary file) in dir besides the names in keep.
func assertFails(t *testing.T, dir string, keep []string, args []string, wants ...string) {
	t.Helper()
	before := listDir(t, dir)
	code, _, errs := cli(args...)
	if code == 0 {
		t.Fatalf("lowrank %s: exit 0; want a failure", strings.Join(args, " "))
	}
	lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "lowrank: ") {
		t.Errorf("stderr is not one 'lowrank:' line:\n%s", errs)
	}
	for _, w := range wants {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr %q does not contain %q", strings.TrimSpace(errs), w)
		}
	}
	after := listDir(t, dir)
	for name := range after {
		if !before[name] && !contains(keep, name) {
			t.Errorf("%s left behind after a failure", name)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func listDir(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out[rel] = true
		}
		return nil
	})
	return out
}

// readJSON decodes a JSON file into a generic map.
func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
