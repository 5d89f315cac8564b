package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// lowRank returns a d×k matrix of rank r (row-major), scaled by s.
func lowRank(rng *rand.Rand, d, k, r int, s float64) []float64 {
	u, v := make([]float64, d*r), make([]float64, r*k)
	for i := range u {
		u[i] = rng.NormFloat64()
	}
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	m := make([]float64, d*k)
	for i := range d {
		for j := range k {
			for l := range r {
				m[i*k+j] += s * u[i*r+l] * v[l*k+j]
			}
		}
	}
	return m
}

func randn(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

func addTo(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] + b[i]
	}
	return out
}

// unetPair writes a small UNet-like base and a tuned copy whose 3×3 conv,
// 1×1 conv (stored 4-D) and attention Linear changed by rank-2 deltas,
// with the UNet's modules named by name (diffusers or LDM names of the
// same three modules), and returns their paths.
func unetPair(t *testing.T, dir, tag string, names [3]string) (base, tuned string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 13))
	shapes := [3][]int{{8, 6, 3, 3}, {8, 8, 1, 1}, {8, 8}}
	var bs, ts []tensor
	for i, n := range names {
		size := 1
		for _, s := range shapes[i] {
			size *= s
		}
		w := randn(rng, size)
		dw := lowRank(rng, shapes[i][0], size/shapes[i][0], 2, 0.1)
		bs = append(bs, tensor{name: n + ".weight", dt: safetensors.F32, shape: shapes[i], vals: w})
		ts = append(ts, tensor{name: n + ".weight", dt: safetensors.F32, shape: shapes[i], vals: addTo(w, dw)})
	}
	bias := tensor{name: names[0] + ".bias", dt: safetensors.F32, shape: []int{8}, vals: randn(rng, 8)}
	bs, ts = append(bs, bias), append(ts, bias)
	base, tuned = filepath.Join(dir, tag+"-base.safetensors"), filepath.Join(dir, tag+"-tuned.safetensors")
	writeST(t, base, nil, bs...)
	writeST(t, tuned, nil, ts...)
	return base, tuned
}

var (
	diffusersNames = [3]string{"down_blocks.0.resnets.0.conv1", "down_blocks.0.attentions.0.proj_in", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"}
	ldmNames       = [3]string{"model.diffusion_model.input_blocks.1.0.in_layers.2", "model.diffusion_model.input_blocks.1.1.proj_in", "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q"}
)

// closeTo fails unless every tensor of want is in got within rel.
func closeTo(t *testing.T, what, got, want string, tol float64) {
	t.Helper()
	g, _, _ := readST(t, got)
	w, _, _ := readST(t, want)
	for name, v := range w {
		if e := relDiff(g[name], v); !(e <= tol) {
			t.Errorf("%s: %s differs from %s by %g; want ≤ %g", what, name, want, e, tol)
		}
	}
}

// Issue 13, point 1: conv LoRA (LoCon) through extract, merge and info, in
// both formats; kohya's layout; checked by an independent numpy
// implementation of the conv layers (scripts/lora_conv_check.py); LDM ↔
// diffusers names both ways.
func TestConvLoRA(t *testing.T) {
	dir := t.TempDir()
	base, tuned := unetPair(t, dir, "diffusers", diffusersNames)

	// kohya: lora_down r × in × k_h × k_w, lora_up out × r × 1 × 1, alpha.
	kohya := filepath.Join(dir, "locon.safetensors")
	table := mustCLI(t, "extract", "--base", base, "--tuned", tuned, "-o", kohya, "--format", "kohya", "--kohya-prefix", "lora_unet", "--tol", "1e-5")
	if strings.Contains(table, "CHANGED") || strings.Count(table, " adapter") < 3 {
		t.Errorf("extract left out a conv:\n%s", table)
	}
	_, shapes, _ := readST(t, kohya)
	for name, want := range map[string][]int{
		"lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight":                              {2, 6, 3, 3},
		"lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight":                                {8, 2, 1, 1},
		"lora_unet_down_blocks_0_resnets_0_conv1.alpha":                                         {},
		"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight":                         {2, 8, 1, 1},
		"lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight":                           {8, 2, 1, 1},
		"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight": {2, 8},
	} {
		if got, ok := shapes[name]; !ok || !equalShape(got, want) {
			t.Errorf("kohya %s: shape %v (present %v); want %v", name, got, ok, want)
		}
	}
	info := mustCLI(t, "info", kohya)
	for _, want := range []string{"conv 3×3", "conv 1×1", "8×2×1×1", "2×6×3×3"} {
		if !strings.Contains(info, want) {
			t.Errorf("info does not show %q:\n%s", want, info)
		}
	}
	merged := filepath.Join(dir, "merged.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", kohya, "-o", merged, "--quiet")
	closeTo(t, "kohya merge", merged, tuned, 1e-5)

	// F16 factors (as most published LoCons are) merge too.
	k16 := filepath.Join(dir, "locon16.safetensors")
	mustCLI(t, "extract", "--base", base, "--tuned", tuned, "-o", k16, "--format", "kohya", "--kohya-prefix", "lora_unet", "--tol", "1e-5", "--dtype", "f16", "--quiet")
	m16 := filepath.Join(dir, "merged16.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", k16, "-o", m16, "--quiet")
	closeTo(t, "kohya F16 merge", m16, tuned, 1e-3)

	// PEFT: lora_A.weight r × in × k_h × k_w, lora_B.weight out × r × 1 × 1.
	peft := filepath.Join(dir, "peft")
	mustCLI(t, "extract", "--base", base, "--tuned", tuned, "-o", peft, "--tol", "1e-5", "--quiet")
	_, shapes, _ = readST(t, filepath.Join(peft, peftWeightsName))
	for name, want := range map[string][]int{
		"base_model.model.down_blocks.0.resnets.0.conv1.lora_A.weight":      {2, 6, 3, 3},
		"base_model.model.down_blocks.0.resnets.0.conv1.lora_B.weight":      {8, 2, 1, 1},
		"base_model.model.down_blocks.0.attentions.0.proj_in.lora_A.weight": {2, 8, 1, 1},
	} {
		if got, ok := shapes[name]; !ok || !equalShape(got, want) {
			t.Errorf("PEFT %s: shape %v (present %v); want %v", name, got, ok, want)
		}
	}
	if info := mustCLI(t, "info", peft); !strings.Contains(info, "conv 3×3") {
		t.Errorf("info of the PEFT adapter does not show the conv:\n%s", info)
	}
	mergedP := filepath.Join(dir, "merged-peft.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", peft, "-o", mergedP, "--quiet")
	closeTo(t, "PEFT merge", mergedP, tuned, 1e-5)
	// Unmerge takes it back out.
	back := filepath.Join(dir, "back.safetensors")
	mustCLI(t, "merge", "--base", mergedP, "--adapter", peft, "--unmerge", "-o", back, "--quiet")
	closeTo(t, "PEFT unmerge", back, base, 1e-5)

	// kohya's diffusers names against an LDM-named base: mapped.
	ldmBase, ldmTuned := unetPair(t, dir, "ldm", ldmNames)
	toLDM := filepath.Join(dir, "to-ldm.safetensors")
	mustCLI(t, "merge", "--base", ldmBase, "--adapter", kohya, "-o", toLDM, "--quiet")
	closeTo(t, "diffusers-named LoRA into an LDM base", toLDM, ldmTuned, 1e-5)
	// And the other way: a LoRA extracted from the LDM-named pair, merged
	// into the diffusers-named base.
	ldmLoRA := filepath.Join(dir, "ldm-lora.safetensors")
	mustCLI(t, "extract", "--base", ldmBase, "--tuned", ldmTuned, "-o", ldmLoRA, "--format", "kohya", "--kohya-prefix", "lora_unet", "--tol", "1e-5", "--quiet")
	toDiff := filepath.Join(dir, "to-diffusers.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", ldmLoRA, "-o", toDiff, "--quiet")
	closeTo(t, "LDM-named LoRA into a diffusers base", toDiff, tuned, 1e-5)

	// A LoRA whose LDM names the table cannot map (input_blocks.3.1 has
	// no counterpart in the layout): refused, naming the problem.
	odd := filepath.Join(dir, "odd.safetensors")
	rng := rand.New(rand.NewPCG(1, 2))
	writeST(t, odd, nil,
		tensor{name: "lora_unet_input_blocks_3_1_proj_in.lora_down.weight", dt: safetensors.F32, shape: []int{2, 8, 1, 1}, vals: randn(rng, 16)},
		tensor{name: "lora_unet_input_blocks_3_1_proj_in.lora_up.weight", dt: safetensors.F32, shape: []int{8, 2, 1, 1}, vals: randn(rng, 16)})
	assertFails(t, dir, nil, []string{"merge", "--base", base, "--adapter", odd, "-o", filepath.Join(dir, "x.safetensors")},
		"lora_unet_input_blocks_3_1_proj_in", "the LDM way", "diffusers way", "maps them to no module of the base")

	// The independent check: the conv layers applied in numpy (last:
	// it skips without python3 and numpy).
	{
		py := pythonWithNumpy(t)
		script, _ := filepath.Abs("../../scripts/lora_conv_check.py")
		for _, args := range [][]string{
			{"extracted", base, tuned, kohya}, {"extracted", base, tuned, peft},
			{"merged", base, kohya, merged}, {"merged", base, peft, mergedP},
		} {
			out, err := exec.Command(py, append([]string{script}, args...)...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "OK: 2 modules checked") {
				t.Errorf("lora_conv_check.py %v: %v\n%s", args, err, out)
			}
		}
	}
}

// A kohya conv LoRA whose lora_up is not out × r × 1 × 1 is refused with
// the shape it expected.
func TestConvLoRAShapeMismatch(t *testing.T) {
	dir := t.TempDir()
	base, _ := unetPair(t, dir, "d", diffusersNames)
	rng := rand.New(rand.NewPCG(3, 4))
	bad := filepath.Join(dir, "bad.safetensors")
	writeST(t, bad, nil,
		tensor{name: "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", dt: safetensors.F32, shape: []int{2, 6, 1, 1}, vals: randn(rng, 12)},
		tensor{name: "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", dt: safetensors.F32, shape: []int{8, 2, 1, 1}, vals: randn(rng, 16)})
	code, _, stderr := cli("merge", "--base", base, "--adapter", bad, "-o", filepath.Join(dir, "x.safetensors"))
	if code == 0 || !strings.HasPrefix(stderr, "lowrank: ") || !strings.Contains(stderr, "8×6×3×3") {
		t.Errorf("a 1×1 LoRA on a 3×3 conv: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.safetensors")); err == nil {
		t.Errorf("a refused merge left its output")
	}
}

// jsonField reads one field of a JSON object.
func jsonField(t *testing.T, raw []byte, key string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m[key]
}

// info lists kohya modules of both layouts and says when it leaves some
// lora_down tensors out.
func TestInfoKohyaOddLayout(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	f := filepath.Join(dir, "k.safetensors")
	writeST(t, f, nil,
		tensor{name: "lora_unet_a.lora_down.weight", dt: safetensors.F32, shape: []int{2, 4}, vals: randn(rng, 8)},
		tensor{name: "lora_unet_a.lora_up.weight", dt: safetensors.F32, shape: []int{4, 2}, vals: randn(rng, 8)},
		tensor{name: "lora_unet_b.lora_down.weight", dt: safetensors.F32, shape: []int{2, 4, 3}, vals: randn(rng, 24)},
		tensor{name: "lora_unet_b.lora_up.weight", dt: safetensors.F32, shape: []int{4, 2}, vals: randn(rng, 8)})
	out := mustCLI(t, "info", f)
	if !strings.Contains(out, "lora_unet_a  linear") || !strings.Contains(out, "(1 lora_down tensors neither 2-D (Linear) nor 4-D (Conv2d) not listed") {
		t.Errorf("info:\n%s", out)
	}
}

// Issue 13 point 1 ("info leaves those modules out of its table without a
// word"): a LyCORIS LoCon file whose 3×3 conv module is stored with a
// Tucker core (lora_down r×in×1×1, lora_mid r×r×3×3, lora_up) was listed by
// info as a plain "conv 1×1" LoRA, lora_mid ignored in silence. info now
// says which tensors are no part of the modules it lists, in the table and
// in --json.
func TestInfoNamesKohyaTensorsItDoesNotRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "locon.safetensors")
	n := "lora_unet_down_blocks_0_resnets_0_conv1"
	writeST(t, p, nil,
		tensor{name: n + ".lora_down.weight", dt: safetensors.F32, shape: []int{2, 4, 1, 1}, vals: make([]float64, 8)},
		tensor{name: n + ".lora_mid.weight", dt: safetensors.F32, shape: []int{2, 2, 3, 3}, vals: make([]float64, 36)},
		tensor{name: n + ".lora_up.weight", dt: safetensors.F32, shape: []int{3, 2, 1, 1}, vals: make([]float64, 6)},
		tensor{name: n + ".alpha", dt: safetensors.F32, shape: []int{}, vals: []float64{2}},
	)
	out := mustCLI(t, "info", p)
	if !strings.Contains(out, n+".lora_mid.weight") || !strings.Contains(out, "1 tensors are no part of a LoRA module above") {
		t.Errorf("info does not say that lora_mid is not read:\n%s", out)
	}
	js := mustCLI(t, "info", "--json", p)
	var d []map[string]any
	if err := json.Unmarshal([]byte(js), &d); err != nil || len(d) != 1 {
		t.Fatalf("info --json: %v\n%s", err, js)
	}
	file, _ := d[0]["file"].(map[string]any)
	if other, _ := file["kohya_other_tensors"].([]any); len(other) != 1 || other[0] != n+".lora_mid.weight" {
		t.Errorf("info --json: kohya_other_tensors = %v; want [%s.lora_mid.weight]", file["kohya_other_tensors"], n)
	}
}

// Issue 13 point 1, kohya names against an LDM-style (SGM) SDXL
// checkpoint: its first text encoder is under
// conditioner.embedders.0.transformer. in Hugging Face CLIP naming, which
// kohya calls lora_te1_…; those LoRAs were "not in the base". They now
// map (only under lora_te1: a lora_te2 LoRA of the same layer never lands
// in the first encoder), and the second encoder, in OpenCLIP naming (q, k,
// v fused in in_proj_weight), is refused with a message that names that
// mapping problem.
func TestKohyaSDXLTextEncoders(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	te1 := "conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight"
	w := gauss(rng, 8*6, 1)
	base := filepath.Join(dir, "sdxl.safetensors")
	writeST(t, base, nil,
		tensor{name: te1, dt: safetensors.F32, shape: []int{8, 6}, vals: w},
		tensor{name: "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight", dt: safetensors.F32, shape: []int{24, 8}, vals: gauss(rng, 24*8, 1)},
		tensor{name: "conditioner.embedders.1.model.transformer.resblocks.0.mlp.c_fc.weight", dt: safetensors.F32, shape: []int{32, 8}, vals: gauss(rng, 32*8, 1)},
	)
	down, up := gauss(rng, 2*6, 1), gauss(rng, 8*2, 1)
	n1 := "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"
	l1 := filepath.Join(dir, "te1.safetensors")
	writeST(t, l1, nil,
		tensor{name: n1 + ".lora_down.weight", dt: safetensors.F32, shape: []int{2, 6}, vals: down},
		tensor{name: n1 + ".lora_up.weight", dt: safetensors.F32, shape: []int{8, 2}, vals: up},
		tensor{name: n1 + ".alpha", dt: safetensors.F32, shape: []int{}, vals: []float64{1}},
	)
	out := filepath.Join(dir, "merged.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", l1, "-o", out, "--quiet")
	got, _, _ := readST(t, out)
	want := matmul(up, down, 8, 2, 6)
	for i := range want {
		want[i] = w[i] + 0.5*want[i] // alpha 1 / rank 2
	}
	if d := relDiff(got[te1], want); d > 1e-6 {
		t.Errorf("lora_te1 into the SDXL checkpoint's first text encoder: relative difference %.3g from W + (α/r)·up·down", d)
	}
	// The same layer under lora_te2: not the first encoder's.
	n2 := "lora_te2_text_model_encoder_layers_0_self_attn_q_proj"
	l2 := filepath.Join(dir, "te2.safetensors")
	writeST(t, l2, nil,
		tensor{name: n2 + ".lora_down.weight", dt: safetensors.F32, shape: []int{2, 6}, vals: down},
		tensor{name: n2 + ".lora_up.weight", dt: safetensors.F32, shape: []int{8, 2}, vals: up},
	)
	assertFails(t, dir, nil, []string{"merge", "--base", base, "--adapter", l2, "-o", filepath.Join(dir, "m2.safetensors"), "--quiet"},
		n2, "OpenCLIP naming", `"conditioner.embedders.1.model."`, "in_proj_weight", "no one-to-one mapping")
}

// extract --format kohya of a full Stable Diffusion checkpoint named every
// module with one prefix: the text encoder's layers came out as
// lora_text_model_… (or lora_unet_text_model_… with --kohya-prefix
// lora_unet), names no kohya reader takes for a text encoder, and an
// SDXL checkpoint's first encoder as lora_conditioner_embedders_0_…. A
// text encoder now gets kohya's prefix for it (lora_te, SDXL's lora_te1),
// the UNet of a full checkpoint lora_unet unless --kohya-prefix says
// otherwise, and merge maps every name back (the prefixes used are
// recorded).
func TestKohyaExtractPrefixByComponent(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 8))
	names := []string{
		"model.diffusion_model.input_blocks.1.1.proj_in.weight",
		"cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
		"conditioner.embedders.0.transformer.text_model.encoder.layers.0.mlp.fc1.weight",
	}
	var bts, tts []tensor
	for _, n := range names {
		w := gauss(rng, 8*6, 1)
		d := lowRankMat(rng, 8, 6, 1, 1)
		tw := make([]float64, len(w))
		for i := range w {
			tw[i] = w[i] + d[i]
		}
		bts = append(bts, tensor{name: n, dt: safetensors.F32, shape: []int{8, 6}, vals: w})
		tts = append(tts, tensor{name: n, dt: safetensors.F32, shape: []int{8, 6}, vals: tw})
	}
	base, tuned := filepath.Join(dir, "base.safetensors"), filepath.Join(dir, "tuned.safetensors")
	writeST(t, base, nil, bts...)
	writeST(t, tuned, nil, tts...)
	// A diffusers UNet file (diffusion_pytorch_model.safetensors): its
	// modules are the UNet's, lora_unet_… by default too.
	ub, ut := filepath.Join(dir, "unet-base.safetensors"), filepath.Join(dir, "unet-tuned.safetensors")
	writeST(t, ub, nil, tensor{name: "down_blocks.0.attentions.0.proj_in.weight", dt: safetensors.F32, shape: []int{8, 6}, vals: bts[0].vals})
	writeST(t, ut, nil, tensor{name: "down_blocks.0.attentions.0.proj_in.weight", dt: safetensors.F32, shape: []int{8, 6}, vals: tts[0].vals})
	uk := filepath.Join(dir, "unet-k.safetensors")
	mustCLI(t, "extract", "--base", ub, "--tuned", ut, "-o", uk, "--format", "kohya", "--rank", "1", "--quiet")
	if _, shapes, _ := readST(t, uk); shapes["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"] == nil {
		t.Errorf("a diffusers UNet's module: %v; want lora_unet_down_blocks_0_attentions_0_proj_in", shapes)
	}
	for _, c := range []struct {
		flags []string
		unet  string
	}{
		{nil, "lora_unet_input_blocks_1_1_proj_in"},
		{[]string{"--kohya-prefix", "lora_unet"}, "lora_unet_input_blocks_1_1_proj_in"},
		{[]string{"--kohya-prefix", "mine"}, "mine_input_blocks_1_1_proj_in"},
	} {
		k := filepath.Join(dir, "k.safetensors")
		os.Remove(k)
		mustCLI(t, append([]string{"extract", "--base", base, "--tuned", tuned, "-o", k, "--format", "kohya", "--rank", "1", "--quiet"}, c.flags...)...)
		_, shapes, _ := readST(t, k)
		for _, want := range []string{c.unet, "lora_te_text_model_encoder_layers_0_self_attn_q_proj", "lora_te1_text_model_encoder_layers_0_mlp_fc1"} {
			if _, ok := shapes[want+".lora_down.weight"]; !ok {
				t.Errorf("extract %v: no %s.lora_down.weight; have %v", c.flags, want, shapes)
			}
		}
		m := filepath.Join(dir, "m.safetensors")
		os.Remove(m)
		mustCLI(t, "merge", "--base", base, "--adapter", k, "-o", m, "--quiet")
		got, _, _ := readST(t, m)
		for _, tt := range tts {
			if d := relDiff(got[tt.name], tt.vals); d > 1e-5 {
				t.Errorf("extract %v then merge: %s differs from the tuned model by %.3g", c.flags, tt.name, d)
			}
		}
	}
}
