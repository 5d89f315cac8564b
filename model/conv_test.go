package model_test

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// A Conv2d weight is a layer on unfolded patches, and a kohya conv LoRA
// (LoCon: lora_down r × in × k_h × k_w, lora_up out × r × 1 × 1), read
// against an LDM-named base, applies to it unmerged as the merged weight
// would: W·p + scale·up·(down·p) for a patch p, computed here by hand.
func TestConvLayerAndLoRA(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 9))
	out, in, kh, kw, r := 5, 3, 3, 3, 2
	k := in * kh * kw
	w := gauss(rng, out*k, 1)
	base := filepath.Join(dir, "base.safetensors")
	writeST(t, base, nil, tensor{name: "model.diffusion_model.input_blocks.1.0.in_layers.2.weight", dt: safetensors.F64, shape: []int{out, in, kh, kw}, vals: w})
	down, up := gauss(rng, r*k, 1), gauss(rng, out*r, 1)
	lora := filepath.Join(dir, "locon.safetensors")
	writeST(t, lora, nil,
		tensor{name: "lora_unet_down_blocks_0_resnets_0_conv1.alpha", dt: safetensors.F64, shape: []int{}, vals: []float64{1}},
		tensor{name: "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", dt: safetensors.F64, shape: []int{r, in, kh, kw}, vals: down},
		tensor{name: "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", dt: safetensors.F64, shape: []int{out, r, 1, 1}, vals: up})
	m, err := model.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	name := "model.diffusion_model.input_blocks.1.0.in_layers.2"
	li, err := m.Info(name)
	if err != nil || li.D != out || li.K != k || !slices.Equal(li.Kernel, []int{kh, kw}) {
		t.Fatalf("Info: %+v, %v", li, err)
	}
	ad, err := model.OpenAdapterWith(lora, model.AdapterOptions{Base: m, KohyaPrefixes: []string{"lora_unet"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	mods := ad.Modules()
	if len(mods) != 1 || mods[0].Module != name || !slices.Equal(mods[0].Kernel, []int{kh, kw}) {
		t.Fatalf("modules %+v", mods)
	}
	lr, err := ad.LoRA64(name)
	if err != nil {
		t.Fatal(err)
	}
	if lr.Scale() != 0.5 {
		t.Errorf("scale %v; want alpha/r = 0.5", lr.Scale())
	}
	l, err := m.Linear64(name)
	if err != nil {
		t.Fatal(err)
	}
	p := gauss(rng, k, 1) // one patch: in × k_h × k_w, flattened as the weight is
	y := make([]float64, out)
	if err := l.ForwardAdapter(y, p, lr); err != nil {
		t.Fatal(err)
	}
	if e := relDiff(y, matvec(merged(w, up, down, out, r, k, 0.5), out, k, p, nil)); e > 1e-13 {
		t.Errorf("conv LoRA forward off by %.3g", e)
	}
	// A 1×1 LoRA does not fit a 3×3 conv: ErrMismatch.
	bad := filepath.Join(dir, "bad.safetensors")
	writeST(t, bad, nil,
		tensor{name: "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", dt: safetensors.F64, shape: []int{r, in, 1, 1}, vals: gauss(rng, r*in, 1)},
		tensor{name: "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", dt: safetensors.F64, shape: []int{out, r, 1, 1}, vals: up})
	if _, err := model.OpenAdapterWith(bad, model.AdapterOptions{Base: m, KohyaPrefixes: []string{"lora_unet"}}); !errors.Is(err, model.ErrMismatch) {
		t.Errorf("a 1×1 LoRA on a 3×3 conv: %v", err)
	}
}
