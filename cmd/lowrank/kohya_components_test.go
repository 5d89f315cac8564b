package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// A Stable Diffusion LoRA holds the UNet's modules (lora_unet_…) and the
// text encoder's (lora_te_…); diffusers stores the two models in two
// folders. Merged into the UNet folder, the text encoder's names map to
// nothing: an error that says how to merge the UNet's alone, and with
// --kohya-prefix lora_unet the UNet's are merged (W + alpha/r·up·down),
// the others left out with a note. Both merged before: refused whatever
// the flags.
func TestMergeKohyaUNetPartIntoDiffusersFolder(t *testing.T) {
	dir := t.TempDir()
	unet := filepath.Join(dir, "unet")
	if err := os.Mkdir(unet, 0o755); err != nil {
		t.Fatal(err)
	}
	const d, k, r = 3, 4, 2
	w := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	writeST(t, filepath.Join(unet, "diffusion_pytorch_model.safetensors"), map[string]string{"format": "pt"},
		tensor{name: "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", dt: safetensors.F32, shape: []int{d, k}, vals: w})
	down := []float64{1, 0, 0, 1, 0, 1, 1, 0} // r×k
	up := []float64{1, 2, 3, 4, 5, 6}         // d×r
	lora := filepath.Join(dir, "sd-lora.safetensors")
	q := "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
	te := "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
	writeST(t, lora, nil,
		tensor{name: q + ".alpha", dt: safetensors.F16, shape: []int{}, vals: []float64{1}},
		tensor{name: q + ".lora_down.weight", dt: safetensors.F32, shape: []int{r, k}, vals: down},
		tensor{name: q + ".lora_up.weight", dt: safetensors.F32, shape: []int{d, r}, vals: up},
		tensor{name: te + ".alpha", dt: safetensors.F16, shape: []int{}, vals: []float64{1}},
		tensor{name: te + ".lora_down.weight", dt: safetensors.F32, shape: []int{r, 8}, vals: make([]float64, r*8)},
		tensor{name: te + ".lora_up.weight", dt: safetensors.F32, shape: []int{8, r}, vals: make([]float64, 8*r)})

	out := filepath.Join(dir, "merged")
	code, _, stderr := runCLI(t, "merge", "--base", unet, "--adapter", lora, "-o", out, "--quiet")
	if code == 0 || !strings.Contains(stderr, te) || !strings.Contains(stderr, "--kohya-prefix") {
		t.Fatalf("merge without --kohya-prefix: code %d, stderr %q; want an error naming %s and --kohya-prefix", code, stderr, te)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("output written after an error")
	}
	code, _, stderr = runCLI(t, "merge", "--base", unet, "--adapter", lora, "-o", out, "--quiet", "--kohya-prefix", "lora_unet")
	if code != 0 || !strings.Contains(stderr, "1 LoRA modules under none of --kohya-prefix lora_unet left out") || !strings.Contains(stderr, te) {
		t.Fatalf("merge --kohya-prefix lora_unet: code %d, stderr %q", code, stderr)
	}
	got, _, _ := readST(t, filepath.Join(out, "diffusion_pytorch_model.safetensors"))
	g := got["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"]
	for i := 0; i < d; i++ {
		for j := 0; j < k; j++ {
			want := w[i*k+j]
			for p := 0; p < r; p++ {
				want += 0.5 * up[i*r+p] * down[p*k+j] // alpha/r = 1/2
			}
			if g[i*k+j] != want {
				t.Fatalf("merged [%d,%d] = %v; want %v", i, j, g[i*k+j], want)
			}
		}
	}
}

// extract of a base and a tuned model that name their tensors differently
// (an LDM single file against a diffusers folder) has nothing to compare:
// an error that says so, not "no weight differs".
func TestExtractNoCommonNames(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "sd.safetensors")
	writeST(t, base, nil, tensor{name: "model.diffusion_model.input_blocks.1.1.proj_in.weight", dt: safetensors.F32, shape: []int{2, 2}, vals: []float64{1, 2, 3, 4}})
	tuned := filepath.Join(dir, "unet.safetensors")
	writeST(t, tuned, nil, tensor{name: "down_blocks.0.attentions.0.proj_in.weight", dt: safetensors.F32, shape: []int{2, 2}, vals: []float64{1, 2, 3, 5}})
	out := filepath.Join(dir, "ad.safetensors")
	code, _, stderr := runCLI(t, "extract", "--base", base, "--tuned", tuned, "--rank", "1", "--format", "kohya", "-o", out, "--quiet")
	if code == 0 || !strings.HasPrefix(stderr, "lowrank: ") || !strings.Contains(stderr, "no tensor name in common") {
		t.Fatalf("code %d, stderr %q; want an error saying the models share no tensor name", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("adapter written")
	}
}

// merge of a LoRA into a factorized base (NAME.weight.A/.B) is refused
// saying the module is factorized, not that it is missing from the base.
func TestMergeIntoFactorizedBase(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.safetensors")
	w := make([]float64, 64)
	for i := range w {
		w[i] = float64(i%7) - 3
	}
	writeST(t, base, nil, tensor{name: "fc.weight", dt: safetensors.F32, shape: []int{8, 8}, vals: w})
	small := filepath.Join(dir, "small.safetensors")
	if code, _, stderr := runCLI(t, "factorize", base, "-o", small, "--rank", "1", "--min-saving", "0", "--quiet"); code != 0 {
		t.Fatalf("factorize: %s", stderr)
	}
	lora := filepath.Join(dir, "lora.safetensors")
	writeST(t, lora, nil,
		tensor{name: "lora_fc.lora_down.weight", dt: safetensors.F32, shape: []int{1, 8}, vals: make([]float64, 8)},
		tensor{name: "lora_fc.lora_up.weight", dt: safetensors.F32, shape: []int{8, 1}, vals: make([]float64, 8)})
	code, _, stderr := runCLI(t, "merge", "--base", small, "--adapter", lora, "-o", filepath.Join(dir, "m.safetensors"), "--quiet")
	if code == 0 || !strings.HasPrefix(stderr, "lowrank: ") || !strings.Contains(stderr, `module "fc" is stored factorized`) {
		t.Fatalf("code %d, stderr %q; want an error saying fc is factorized", code, stderr)
	}
}

// A diffusers folder that holds only a variant's weights
// (diffusion_pytorch_model.fp16.safetensors) is refused naming that file.
func TestFolderWithVariantOnly(t *testing.T) {
	dir := t.TempDir()
	writeST(t, filepath.Join(dir, "diffusion_pytorch_model.fp16.safetensors"), nil, tensor{name: "conv_in.weight", dt: safetensors.F16, shape: []int{2, 2}, vals: []float64{1, 2, 3, 4}})
	for _, args := range [][]string{{"info", dir}, {"factorize", dir, "-o", filepath.Join(t.TempDir(), "o"), "--rank", "1"}} {
		code, _, stderr := runCLI(t, args...)
		if code == 0 || !strings.HasPrefix(stderr, "lowrank: ") || !strings.Contains(stderr, `"diffusion_pytorch_model.fp16.safetensors"`) {
			t.Errorf("%s: code %d, stderr %q; want an error naming the variant file", args[0], code, stderr)
		}
	}
}
