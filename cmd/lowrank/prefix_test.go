package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// TestMergeGPT2Layout: GPT-2's model.safetensors names its Conv1D weights
// "h.0.attn.c_attn.weight" (in×out, no "transformer." prefix) while a PEFT
// adapter of GPT2LMHeadModel names "base_model.model.transformer.h.0.attn.c_attn"
// with fan_in_fan_out. merge maps the prefix as transformers does and
// writes W + scale·(B·A)ᵀ.
func TestMergeGPT2Layout(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(2, 3))
	const in, out, r = 4, 6, 2
	w := gauss(rng, in*out, 1) // stored in×out
	a, b := gauss(rng, r*in, 1), gauss(rng, out*r, 1)
	base := filepath.Join(dir, "model.safetensors")
	writeST(t, base, map[string]string{"format": "pt"},
		tensor{name: "h.0.attn.c_attn.weight", dt: safetensors.F64, shape: []int{in, out}, vals: w},
		tensor{name: "wte.weight", dt: safetensors.F64, shape: []int{3, in}, vals: gauss(rng, 3*in, 1)})
	ad := filepath.Join(dir, "ad")
	os.MkdirAll(ad, 0o755)
	os.WriteFile(filepath.Join(ad, "adapter_config.json"), []byte(`{"peft_type":"LORA","r":2,"lora_alpha":4,"fan_in_fan_out":true,"target_modules":["c_attn"]}`), 0o644)
	writeST(t, filepath.Join(ad, "adapter_model.safetensors"), nil,
		tensor{name: "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", dt: safetensors.F64, shape: []int{r, in}, vals: a},
		tensor{name: "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight", dt: safetensors.F64, shape: []int{out, r}, vals: b})
	merged := filepath.Join(dir, "merged.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", ad, "-o", merged, "--quiet")
	got, _, _ := readST(t, merged)
	ba := matmul(b, a, out, r, in) // out×in
	want := make([]float64, in*out)
	for i := range in {
		for j := range out {
			want[i*out+j] = w[i*out+j] + 2*ba[j*in+i]
		}
	}
	if e := relDiff(got["h.0.attn.c_attn.weight"], want); e > 1e-12 {
		t.Errorf("merged weight off by %g", e)
	}
}
