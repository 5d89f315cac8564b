package main

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// TestSketchPrecisionFlag: --sketch-precision tf32 and bf16 reach the
// randomized method (the factors differ from f32's bit for bit) at the
// same error; a bad value and an F64 tensor are errors.
func TestSketchPrecisionFlag(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "w.safetensors")
	d, k := 300, 400
	writeST(t, in, nil, tensor{name: "w", dt: safetensors.F32, shape: []int{d, k}, vals: gauss(rand.New(rand.NewPCG(3, 4)), d*k, 1)})
	factors := map[string][]float64{}
	for _, p := range []string{"f32", "tf32", "bf16"} {
		out := filepath.Join(dir, p+".safetensors")
		mustCLI(t, "factorize", in, "-o", out, "--rank", "16", "--method", "randomized", "--sketch-precision", p, "--quiet")
		vals, _, _ := readST(t, out)
		b, a := vals["w.B"], vals["w.A"]
		if b == nil || a == nil {
			t.Fatalf("%s: no w.B or w.A in the output", p)
		}
		factors[p] = append(append([]float64(nil), b...), a...)
		rec := matmul(b, a, d, 16, k)
		w, _, _ := readST(t, in)
		factors[p+" error"] = []float64{relDiff(rec, w["w"])}
	}
	for _, p := range []string{"tf32", "bf16"} {
		if relDiff(factors[p], factors["f32"]) == 0 {
			t.Errorf("--sketch-precision %s gave the f32 factors bit for bit", p)
		}
		e, e32 := factors[p+" error"][0], factors["f32 error"][0]
		if e > e32*1.001 {
			t.Errorf("--sketch-precision %s: relative error %.6g; f32's %.6g", p, e, e32)
		}
	}
	assertFails(t, dir, nil, []string{"factorize", in, "-o", filepath.Join(dir, "x.safetensors"), "--rank", "16", "--sketch-precision", "fp8"},
		"--sketch-precision", "expected f32, tf32 or bf16")
	in64 := filepath.Join(dir, "w64.safetensors")
	writeST(t, in64, nil, tensor{name: "w", dt: safetensors.F64, shape: []int{d, k}, vals: decaying(rand.New(rand.NewPCG(3, 4)), d, k)})
	assertFails(t, dir, []string{"w64.safetensors"}, []string{"factorize", in64, "-o", filepath.Join(dir, "y.safetensors"), "--rank", "16",
		"--method", "randomized", "--sketch-precision", "bf16"}, "float32")
}
