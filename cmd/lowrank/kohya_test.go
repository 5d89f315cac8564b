package main

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// Issue 9, point 5: with base tensors x.weight and unet_x.weight and
// --kohya-prefix lora_unet, the adapter for x was merged into
// unet_x.weight (the first underscore split that matched). kohya names now
// map exactly: PREFIX_ + the module with dots as underscores, the prefix
// being --kohya-prefix, the one extract recorded, or one of the defaults;
// a name two tensors could claim is an error naming both.
func TestKohyaNamesMapExactly(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	x, ux := gauss(rng, 6*5, 1), gauss(rng, 6*5, 1)
	tx := append([]float64(nil), x...)
	for i, v := range lowRankMat(rng, 6, 5, 1, 1) {
		tx[i] += v
	}
	base, tuned := filepath.Join(dir, "base.safetensors"), filepath.Join(dir, "tuned.safetensors")
	writeST(t, base, nil, tensor{name: "x.weight", dt: safetensors.F64, shape: []int{6, 5}, vals: x}, tensor{name: "unet_x.weight", dt: safetensors.F64, shape: []int{6, 5}, vals: ux})
	writeST(t, tuned, nil, tensor{name: "x.weight", dt: safetensors.F64, shape: []int{6, 5}, vals: tx}, tensor{name: "unet_x.weight", dt: safetensors.F64, shape: []int{6, 5}, vals: ux})
	lora := filepath.Join(dir, "lora.safetensors")
	mustCLI(t, "extract", "--base", base, "--tuned", tuned, "-o", lora, "--format", "kohya", "--kohya-prefix", "lora_unet", "--rank", "1", "--quiet")

	check := func(merged string) {
		t.Helper()
		mv, _, _ := readST(t, merged)
		if e := relDiff(mv["x.weight"], tx); e > 1e-12 {
			t.Errorf("x.weight differs from tuned by %g: the adapter went elsewhere", e)
		}
		if e := relDiff(mv["unet_x.weight"], ux); e != 0 {
			t.Errorf("unet_x.weight changed (by %g): the adapter for x was merged into it", e)
		}
	}
	// The prefix extract recorded is used.
	m1 := filepath.Join(dir, "m1.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", lora, "-o", m1, "--quiet")
	check(m1)

	// A kohya file written elsewhere (no record of its prefix): with the
	// default prefixes the name is ambiguous, and that is an error naming
	// both tensors; --kohya-prefix resolves it.
	f, err := safetensors.Open(lora)
	if err != nil {
		t.Fatal(err)
	}
	var ts []tensor
	for _, ti := range f.Tensors() {
		v, _ := f.Float64s(ti.Name)
		ts = append(ts, tensor{name: ti.Name, dt: ti.DType, shape: ti.Shape, vals: v})
	}
	f.Close()
	bare := filepath.Join(dir, "bare.safetensors")
	writeST(t, bare, nil, ts...)
	assertFails(t, dir, nil, []string{"merge", "--base", base, "--adapter", bare, "-o", filepath.Join(dir, "m2.safetensors"), "--quiet"},
		`LoRA "lora_unet_x" names both`, `"x.weight"`, `"unet_x.weight"`, "--kohya-prefix")
	m3 := filepath.Join(dir, "m3.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", bare, "-o", m3, "--kohya-prefix", "lora_unet", "--quiet")
	check(m3)
	// Under another prefix, the name maps to unet_x, and says so.
	m4 := filepath.Join(dir, "m4.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", bare, "-o", m4, "--kohya-prefix", "lora", "--quiet")
	if mv, _, _ := readST(t, m4); relDiff(mv["x.weight"], x) != 0 {
		t.Errorf("--kohya-prefix lora changed x.weight")
	}

	// Two base tensors whose kohya names are the same.
	amb := filepath.Join(dir, "amb.safetensors")
	writeST(t, amb, nil, tensor{name: "a.b_c.weight", dt: safetensors.F64, shape: []int{6, 5}, vals: x}, tensor{name: "a_b.c.weight", dt: safetensors.F64, shape: []int{6, 5}, vals: x})
	ab := filepath.Join(dir, "ab.safetensors")
	writeST(t, ab, nil, tensor{name: "lora_a_b_c.lora_down.weight", dt: safetensors.F64, shape: []int{1, 5}, vals: x[:5]},
		tensor{name: "lora_a_b_c.lora_up.weight", dt: safetensors.F64, shape: []int{6, 1}, vals: x[:6]})
	assertFails(t, dir, nil, []string{"merge", "--base", amb, "--adapter", ab, "-o", filepath.Join(dir, "m5.safetensors"), "--quiet"},
		`"lora_a_b_c" is the kohya name of both`, `"a.b_c.weight"`, `"a_b.c.weight"`)
}
