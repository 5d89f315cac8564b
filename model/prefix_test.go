package model_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// TestPEFTBaseModelPrefix: real checkpoints are often saved without the
// model class's base_model_prefix (GPT-2's model.safetensors holds
// "h.0.attn.c_attn.weight", OPT's "decoder.layers.…") while a PEFT adapter
// trained on the *ForCausalLM model names its modules with it
// ("base_model.model.transformer.h.0.attn.c_attn"), or the other way
// round. transformers maps the prefix when it loads; so does
// OpenAdapterWith, when one prefix maps every module the base lacks, and
// the layers apply as W·x + b + scale·B·(A·x). rank_pattern keys still
// match the adapter's own names.
func TestPEFTBaseModelPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const d, k, r = 6, 4, 2
	W := gauss(rng, d*k, 1)
	bias := gauss(rng, d, 1)
	A := stored(gauss(rng, r*k, 1), safetensors.F32)
	B := stored(gauss(rng, d*r, 1), safetensors.F32)
	x := gauss(rng, k, 1)
	for _, tc := range []struct {
		name, baseModule, adapterModule, pattern string
		fanIn                                    bool
	}{
		// GPT-2: Conv1D weights stored in×out, checkpoint without "transformer."
		{"strip", "h.0.attn.c_attn", "transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_attn", true},
		// an adapter of the bare model applied to a checkpoint saved with the prefix
		{"add", "model.layers.0.mlp.down_proj", "layers.0.mlp.down_proj", "layers.0.mlp.down_proj", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			base := filepath.Join(dir, "base.safetensors")
			wt := tensor{name: tc.baseModule + ".weight", dt: safetensors.F64, shape: []int{d, k}, vals: W}
			if tc.fanIn {
				wt = tensor{name: tc.baseModule + ".weight", dt: safetensors.F64, shape: []int{k, d}, vals: transpose(W, d, k)}
			}
			writeST(t, base, nil, wt,
				tensor{name: tc.baseModule + ".bias", dt: safetensors.F64, shape: []int{d}, vals: bias},
				tensor{name: "wte.weight", dt: safetensors.F64, shape: []int{3, k}, vals: gauss(rng, 3*k, 1)})
			ad := filepath.Join(dir, "ad")
			os.MkdirAll(ad, 0o755)
			aT, bT := tensor{name: "base_model.model." + tc.adapterModule + ".lora_A.weight", dt: safetensors.F32, shape: []int{r, k}, vals: A},
				tensor{name: "base_model.model." + tc.adapterModule + ".lora_B.weight", dt: safetensors.F32, shape: []int{d, r}, vals: B}
			fan := "false"
			if tc.fanIn {
				fan = "true"
				// PEFT stores a Conv1D's LoRA like a Linear's: A r×in, B out×r
			}
			os.WriteFile(filepath.Join(ad, model.PEFTConfigName), []byte(`{"peft_type":"LORA","r":8,"lora_alpha":4,
				"rank_pattern":{"`+tc.pattern+`":2},"alpha_pattern":{"`+tc.pattern+`":6},"fan_in_fan_out":`+fan+`}`), 0o644)
			writeST(t, filepath.Join(ad, model.PEFTWeightsName), nil, aT, bT)

			m, err := model.OpenWith(base, model.Options{FanInFanOut: tc.fanIn})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			a, err := model.OpenAdapterWith(ad, model.AdapterOptions{Base: m})
			if err != nil {
				t.Fatalf("OpenAdapterWith: %v", err)
			}
			defer a.Close()
			lo, err := a.LoRA64(tc.baseModule)
			if err != nil {
				t.Fatal(err)
			}
			if lo.Scale() != 3 { // alpha_pattern 6 / rank_pattern 2, matched by the adapter's name
				t.Errorf("scale %v; want 3", lo.Scale())
			}
			l, err := m.Linear64(tc.baseModule)
			if err != nil {
				t.Fatal(err)
			}
			y := make([]float64, d)
			if err := l.ForwardAdapter(y, x, lo); err != nil {
				t.Fatal(err)
			}
			want := matvec(merged(W, B, A, d, r, k, 3), d, k, x, bias)
			if e := relDiff(y, want); e > 1e-12 {
				t.Errorf("ForwardAdapter off by %.3g", e)
			}
		})
	}
	// Two prefixes that could each map the module: refused, naming it.
	dir := t.TempDir()
	base := filepath.Join(dir, "base.safetensors")
	writeST(t, base, nil,
		tensor{name: "a.fc.weight", dt: safetensors.F64, shape: []int{d, k}, vals: W},
		tensor{name: "b.fc.weight", dt: safetensors.F64, shape: []int{d, k}, vals: W})
	ad := filepath.Join(dir, "ad")
	os.MkdirAll(ad, 0o755)
	os.WriteFile(filepath.Join(ad, model.PEFTConfigName), []byte(`{"peft_type":"LORA","r":2,"lora_alpha":2}`), 0o644)
	writeST(t, filepath.Join(ad, model.PEFTWeightsName), nil,
		tensor{name: "base_model.model.fc.lora_A.weight", dt: safetensors.F32, shape: []int{r, k}, vals: A},
		tensor{name: "base_model.model.fc.lora_B.weight", dt: safetensors.F32, shape: []int{d, r}, vals: B})
	m, err := model.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := model.OpenAdapterWith(ad, model.AdapterOptions{Base: m}); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("ambiguous prefix: %v; want ErrNotFound", err)
	}
}
