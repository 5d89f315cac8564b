package model_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// kohya's LoRAModule reads an alpha of 0 as alpha = r ("alpha = lora_dim
// if alpha is None or alpha == 0"): the scale is 1, as for a module
// without alpha. A negative or NaN alpha is still refused.
func TestKohyaAlphaZeroIsRank(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.safetensors")
	writeST(t, base, nil, tensor{name: "fc.weight", dt: safetensors.F32, shape: []int{3, 4}, vals: make([]float64, 12)})
	m, err := model.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, c := range []struct {
		alpha float64
		scale float64
		err   string
	}{{0, 1, ""}, {1, 0.5, ""}, {-1, 0, "expected a positive alpha (or 0, read as r as kohya does)"}} {
		lora := filepath.Join(dir, "lora.safetensors")
		writeST(t, lora, nil,
			tensor{name: "lora_fc.alpha", dt: safetensors.F16, shape: []int{}, vals: []float64{c.alpha}},
			tensor{name: "lora_fc.lora_down.weight", dt: safetensors.F32, shape: []int{2, 4}, vals: make([]float64, 8)},
			tensor{name: "lora_fc.lora_up.weight", dt: safetensors.F32, shape: []int{3, 2}, vals: make([]float64, 6)})
		ad, err := model.OpenAdapterWith(lora, model.AdapterOptions{Base: m})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("alpha %v: error %v; want one containing %q", c.alpha, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("alpha %v: %v", c.alpha, err)
		}
		mods := ad.Modules()
		if len(mods) != 1 || mods[0].Scale != c.scale {
			t.Errorf("alpha %v: modules %+v; want scale %v", c.alpha, mods, c.scale)
		}
		ad.Close()
	}
}

// With KohyaPrefixes given, names under none of them are left out and
// listed by Skipped (a UNet's part of a UNet + text encoder LoRA); without,
// they are an error that says so.
func TestKohyaPrefixesSelect(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.safetensors")
	writeST(t, base, nil, tensor{name: "mid_block.attentions.0.proj_in.weight", dt: safetensors.F32, shape: []int{3, 4}, vals: make([]float64, 12)})
	m, err := model.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	lora := filepath.Join(dir, "lora.safetensors")
	writeST(t, lora, nil,
		tensor{name: "lora_unet_mid_block_attentions_0_proj_in.lora_down.weight", dt: safetensors.F32, shape: []int{2, 4}, vals: make([]float64, 8)},
		tensor{name: "lora_unet_mid_block_attentions_0_proj_in.lora_up.weight", dt: safetensors.F32, shape: []int{3, 2}, vals: make([]float64, 6)},
		tensor{name: "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", dt: safetensors.F32, shape: []int{2, 4}, vals: make([]float64, 8)},
		tensor{name: "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", dt: safetensors.F32, shape: []int{3, 2}, vals: make([]float64, 6)})
	if _, err := model.OpenAdapterWith(lora, model.AdapterOptions{Base: m}); err == nil || !strings.Contains(err.Error(), "KohyaPrefixes") {
		t.Errorf("without prefixes: %v; want an error naming KohyaPrefixes", err)
	}
	ad, err := model.OpenAdapterWith(lora, model.AdapterOptions{Base: m, KohyaPrefixes: []string{"lora_unet"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	if n, sk := ad.Names(), ad.Skipped(); len(n) != 1 || n[0] != "mid_block.attentions.0.proj_in" || len(sk) != 1 || sk[0] != "lora_te_text_model_encoder_layers_0_mlp_fc1" {
		t.Errorf("names %q, skipped %q", n, sk)
	}
}
