package main

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// pair writes a base model and a tuned copy whose modules differ by deltas
// of known rank, and returns the tensors of both.
type modelPair struct {
	base, tuned   string
	bt, tt        map[string][]float64
	shapes        map[string][]int
	trueRank      map[string]int // modules (no ".weight") with a delta
	changedVector string         // a 1-D tensor that changed
}

func makePair(t *testing.T, dir string, dt safetensors.DType) *modelPair {
	rng := rand.New(rand.NewPCG(11, 12))
	p := &modelPair{base: filepath.Join(dir, "base.safetensors"), tuned: filepath.Join(dir, "tuned.safetensors"),
		bt: map[string][]float64{}, tt: map[string][]float64{}, shapes: map[string][]int{},
		trueRank: map[string]int{"fc1": 3, "encoder.fc1": 5, "encoder.layers.0.proj": 2}, changedVector: "encoder.norm.weight"}
	spec := []struct {
		name string
		d, k int
	}{{"fc1.weight", 48, 32}, {"encoder.fc1.weight", 40, 64}, {"encoder.layers.0.proj.weight", 32, 32}, {"head.weight", 16, 40}}
	var bts, tts []tensor
	for _, s := range spec {
		w := gauss(rng, s.d*s.k, 0.5)
		tw := append([]float64(nil), w...)
		if r, ok := p.trueRank[strings.TrimSuffix(s.name, ".weight")]; ok {
			for i, v := range lowRankMat(rng, s.d, s.k, r, 0.5) {
				tw[i] += v
			}
		}
		shape := []int{s.d, s.k}
		bts = append(bts, tensor{name: s.name, dt: dt, shape: shape, vals: w})
		tts = append(tts, tensor{name: s.name, dt: dt, shape: shape, vals: tw})
		p.shapes[s.name] = shape
	}
	nb := gauss(rng, 32, 1)
	nt := append([]float64(nil), nb...)
	nt[3] += 1
	bts = append(bts, tensor{name: p.changedVector, dt: dt, shape: []int{32}, vals: nb})
	tts = append(tts, tensor{name: p.changedVector, dt: dt, shape: []int{32}, vals: nt})
	writeST(t, p.base, map[string]string{"format": "pt"}, bts...)
	writeST(t, p.tuned, map[string]string{"format": "pt"}, tts...)
	p.bt, _, _ = readST(t, p.base)
	p.tt, _, _ = readST(t, p.tuned)
	return p
}

func TestExtractPEFTRecoversDelta(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, safetensors.F32)
	ad := filepath.Join(dir, "adapter")
	rep := filepath.Join(dir, "extract.json")
	out := mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--tol", "1e-5", "--base-model", "tiny/test", "--report", rep)
	if !strings.Contains(out, "CHANGED but not a selected weight") {
		t.Errorf("the changed 1-D tensor is not reported:\n%s", out)
	}
	vals, shapes, meta := readST(t, filepath.Join(ad, peftWeightsName))
	if meta["format"] != "pt" {
		t.Errorf("adapter metadata %v lacks format=pt", meta)
	}
	// Keys: exactly PEFT's, for the changed modules only.
	var keys []string
	for k := range shapes {
		keys = append(keys, k)
	}
	var want []string
	for m := range p.trueRank {
		want = append(want, peftKey(m, "A"), peftKey(m, "B"))
	}
	sortStrings(keys)
	sortStrings(want)
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("adapter keys %v; want %v", keys, want)
	}
	for m, r := range p.trueRank {
		ws := p.shapes[m+".weight"]
		d, k := ws[0], ws[1]
		a, b := shapes[peftKey(m, "A")], shapes[peftKey(m, "B")]
		if !reflect.DeepEqual(a, []int{r, k}) || !reflect.DeepEqual(b, []int{d, r}) {
			t.Errorf("%s: lora_A %v, lora_B %v; want [%d %d] and [%d %d] (true rank)", m, a, b, r, k, d, r)
		}
		// base + (alpha/r)·B·A = tuned, with alpha = r.
		delta := matmul(vals[peftKey(m, "B")], vals[peftKey(m, "A")], d, r, k)
		trueDelta := make([]float64, d*k)
		for i := range trueDelta {
			trueDelta[i] = p.tt[m+".weight"][i] - p.bt[m+".weight"][i]
		}
		if e := relDiff(delta, trueDelta); e > 1e-5 {
			t.Errorf("%s: recovered delta error %v > 1e-5", m, e)
		}
	}
	// adapter_config.json as PEFT writes and reads it.
	cfg := readJSON(t, filepath.Join(ad, peftConfigName))
	for k, v := range map[string]any{
		"peft_type": "LORA", "task_type": nil, "bias": "none", "lora_dropout": 0.0, "fan_in_fan_out": false,
		"use_rslora": false, "init_lora_weights": true, "inference_mode": true, "modules_to_save": nil,
		"base_model_name_or_path": "tiny/test", "r": 5.0, "lora_alpha": 5.0,
	} {
		if got, ok := cfg[k]; !ok || !reflect.DeepEqual(got, v) {
			t.Errorf("adapter_config.json %s = %v (present %v); want %v", k, got, ok, v)
		}
	}
	if tm := cfg["target_modules"].([]any); len(tm) != 3 || tm[0] != "encoder.fc1" || tm[1] != "encoder.layers.0.proj" || tm[2] != "fc1" {
		t.Errorf("target_modules = %v", tm)
	}
	for _, pat := range []string{"rank_pattern", "alpha_pattern"} {
		m := cfg[pat].(map[string]any)
		for mod, r := range p.trueRank {
			if m[mod] != float64(r) {
				t.Errorf("%s[%s] = %v; want %d", pat, mod, m[mod], r)
			}
		}
	}
	// The most specific key comes first, so PEFT's first-match lookup
	// gives encoder.fc1 its own rank rather than fc1's.
	raw, _ := os.ReadFile(filepath.Join(ad, peftConfigName))
	if i, j := strings.Index(string(raw), `"encoder.fc1": 5`), strings.Index(string(raw), `"fc1": 3`); i < 0 || j < 0 || i > j {
		t.Errorf("rank_pattern order: encoder.fc1 at %d, fc1 at %d:\n%s", i, j, raw)
	}
	pc, err := model.ParsePEFTConfig(raw, "cfg", testBudget())
	if err != nil {
		t.Fatal(err)
	}
	for mod, r := range p.trueRank {
		if gr, sc, err := pc.Scaling(mod); err != nil || gr != r || sc != 1 {
			t.Errorf("%s: config gives rank %d scaling %v; want %d and 1", mod, gr, sc, r)
		}
	}
	// Merge the adapter into base: ≈ tuned; unmerge: ≈ base.
	merged := filepath.Join(dir, "merged.safetensors")
	mustCLI(t, "merge", "--base", p.base, "--adapter", ad, "-o", merged, "--quiet")
	mv, _, _ := readST(t, merged)
	for name := range p.shapes {
		if e := relDiff(mv[name], p.tt[name]); e > 1e-6 && p.trueRank[strings.TrimSuffix(name, ".weight")] > 0 {
			t.Errorf("merged %s differs from tuned by %v", name, e)
		}
	}
	if relDiff(mv["head.weight"], p.bt["head.weight"]) != 0 {
		t.Error("merge changed a module not in the adapter")
	}
	un := filepath.Join(dir, "unmerged.safetensors")
	mustCLI(t, "merge", "--base", merged, "--adapter", ad, "-o", un, "--unmerge", "--quiet")
	uv, _, _ := readST(t, un)
	for name := range p.shapes {
		if e := relDiff(uv[name], p.bt[name]); e > 1e-6 {
			t.Errorf("unmerged %s differs from base by %v", name, e)
		}
	}
	// info shows the config and the modules.
	info := mustCLI(t, "info", ad)
	for _, w := range []string{`"peft_type": "LORA"`, "encoder.layers.0.proj", "rank", "scaling"} {
		if !strings.Contains(info, w) {
			t.Errorf("info lacks %q:\n%s", w, info)
		}
	}
	if r := readJSON(t, rep); r["command"] != "extract" {
		t.Errorf("report %v", r)
	}
}

func sortStrings(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

// One rank for every module: no patterns; r = lora_alpha = that rank.
func TestExtractUniformRank(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, safetensors.F32)
	ad := filepath.Join(dir, "a")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--rank", "4", "--quiet", "--dtype", "bf16")
	cfg := readJSON(t, filepath.Join(ad, peftConfigName))
	if cfg["r"] != 4.0 || cfg["lora_alpha"] != 4.0 || len(cfg["rank_pattern"].(map[string]any)) != 0 || len(cfg["alpha_pattern"].(map[string]any)) != 0 {
		t.Errorf("config r=%v alpha=%v rank_pattern=%v alpha_pattern=%v", cfg["r"], cfg["lora_alpha"], cfg["rank_pattern"], cfg["alpha_pattern"])
	}
	f, err := safetensors.Open(filepath.Join(ad, peftWeightsName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ti, _ := f.Tensor(peftKey("fc1", "A")); ti.DType != safetensors.BF16 {
		t.Errorf("--dtype bf16 wrote %s", ti.DType)
	}
}

func TestExtractKohyaAndMergeBack(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, safetensors.F16)
	out := filepath.Join(dir, "lora.safetensors")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", out, "--format", "kohya", "--kohya-prefix", "lora_unet", "--tol", "1e-3", "--quiet")
	vals, shapes, _ := readST(t, out)
	for m, r := range p.trueRank {
		k := kohyaName("lora_unet", m)
		if !strings.HasPrefix(k, "lora_unet_") || strings.Contains(k, ".") {
			t.Errorf("kohya name %q", k)
		}
		ws := p.shapes[m+".weight"]
		if got := shapes[k+".lora_down.weight"]; !reflect.DeepEqual(got, []int{r, ws[1]}) {
			t.Errorf("%s lora_down %v; want [%d %d]", k, got, r, ws[1])
		}
		if got := shapes[k+".lora_up.weight"]; !reflect.DeepEqual(got, []int{ws[0], r}) {
			t.Errorf("%s lora_up %v; want [%d %d]", k, got, ws[0], r)
		}
		if a := vals[k+".alpha"]; len(a) != 1 || a[0] != float64(r) {
			t.Errorf("%s alpha %v; want %d", k, a, r)
		}
	}
	merged := filepath.Join(dir, "merged.safetensors")
	mustCLI(t, "merge", "--base", p.base, "--adapter", out, "-o", merged, "--quiet")
	mv, _, _ := readST(t, merged)
	for m := range p.trueRank {
		name := m + ".weight"
		// F16 files: the merge is as good as F16 rounding allows.
		if e := relDiff(mv[name], p.tt[name]); e > 2e-3 {
			t.Errorf("merged %s differs from tuned by %v", name, e)
		}
	}
	if info := mustCLI(t, "info", out); !strings.Contains(info, "kohya LoRA modules") || !strings.Contains(info, "lora_unet_encoder_fc1") {
		t.Errorf("info of a kohya file:\n%s", info)
	}
}

// merge follows PEFT's scaling rules: lora_alpha/r, lora_alpha/√r with
// use_rslora, per-module r and alpha from the patterns, keys with the
// adapter name, and fan_in_fan_out (base weights stored in×out).
func TestMergePEFTVariants(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	d, k := 6, 5
	W1, W2 := gauss(rng, d*k, 1), gauss(rng, d*k, 1)
	A1, B1 := gauss(rng, 2*k, 1), gauss(rng, d*2, 1) // rank 2
	A2, B2 := gauss(rng, 3*k, 1), gauss(rng, d*3, 1) // rank 3
	base := filepath.Join(dir, "base.safetensors")
	writeST(t, base, nil,
		tensor{name: "m.q.weight", dt: safetensors.F64, shape: []int{d, k}, vals: W1},
		tensor{name: "q.weight", dt: safetensors.F64, shape: []int{d, k}, vals: W2})
	transpose := func(v []float64, r, c int) []float64 {
		o := make([]float64, len(v))
		for i := range r {
			for j := range c {
				o[j*r+i] = v[i*c+j]
			}
		}
		return o
	}
	baseT := filepath.Join(dir, "baseT.safetensors")
	writeST(t, baseT, nil,
		tensor{name: "m.q.weight", dt: safetensors.F64, shape: []int{k, d}, vals: transpose(W1, d, k)},
		tensor{name: "q.weight", dt: safetensors.F64, shape: []int{k, d}, vals: transpose(W2, d, k)})

	adapter := func(name, cfg string, keySuffix string) string {
		ad := filepath.Join(dir, name)
		os.MkdirAll(ad, 0o755)
		os.WriteFile(filepath.Join(ad, peftConfigName), []byte(cfg), 0o644)
		writeST(t, filepath.Join(ad, peftWeightsName), nil,
			tensor{name: "base_model.model.m.q.lora_A" + keySuffix + ".weight", dt: safetensors.F32, shape: []int{2, k}, vals: A1},
			tensor{name: "base_model.model.m.q.lora_B" + keySuffix + ".weight", dt: safetensors.F32, shape: []int{d, 2}, vals: B1},
			tensor{name: "base_model.model.q.lora_A" + keySuffix + ".weight", dt: safetensors.F32, shape: []int{3, k}, vals: A2},
			tensor{name: "base_model.model.q.lora_B" + keySuffix + ".weight", dt: safetensors.F32, shape: []int{d, 3}, vals: B2})
		return ad
	}
	f32 := func(v []float64) []float64 {
		o := make([]float64, len(v))
		for i, x := range v {
			o[i] = float64(float32(x))
		}
		return o
	}
	expect := func(W, B, A []float64, r int, s float64) []float64 {
		p := matmul(f32(B), f32(A), d, r, k)
		o := make([]float64, len(W))
		for i := range W {
			o[i] = W[i] + s*p[i]
		}
		return o
	}
	cases := []struct {
		name, cfg, suffix string
		base              string
		s1, s2            float64 // scaling of m.q and q
		transposed        bool
	}{
		{"plain", `{"peft_type":"LORA","r":3,"lora_alpha":6,"rank_pattern":{"m.q":2}}`, "", base, 6.0 / 2, 6.0 / 3, false},
		// "q" would also match "m.q" as a suffix; PEFT takes the first key
		// that matches, so "m.q" listed first keeps its own values.
		{"patterns", `{"peft_type":"LORA","r":8,"lora_alpha":16,"rank_pattern":{"m.q":2,"q":3},"alpha_pattern":{"m.q":1,"q":9}}`, ".default", base, 1.0 / 2, 9.0 / 3, false},
		{"rslora", `{"peft_type":"LORA","r":3,"lora_alpha":4,"use_rslora":true,"rank_pattern":{"^m.q":2}}`, "", base, 4 / math.Sqrt(2), 4 / math.Sqrt(3), false},
		{"fan_in_fan_out", `{"peft_type":"LORA","r":3,"lora_alpha":3,"fan_in_fan_out":true,"rank_pattern":{"m.q":2},"alpha_pattern":{"m.q":2}}`, "", baseT, 1, 1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ad := adapter(c.name, c.cfg, c.suffix)
			out := filepath.Join(dir, c.name+".safetensors")
			mustCLI(t, "merge", "--base", c.base, "--adapter", ad, "-o", out, "--quiet")
			got, _, _ := readST(t, out)
			w1, w2 := expect(W1, B1, A1, 2, c.s1), expect(W2, B2, A2, 3, c.s2)
			if c.transposed {
				w1, w2 = transpose(w1, d, k), transpose(w2, d, k)
			}
			if e := relDiff(got["m.q.weight"], w1); e > 1e-12 {
				t.Errorf("m.q.weight off by %v", e)
			}
			if e := relDiff(got["q.weight"], w2); e > 1e-12 {
				t.Errorf("q.weight off by %v", e)
			}
		})
	}
}

// A user points --adapter at a file of a PEFT adapter folder rather than
// the folder: adapter_model.safetensors was said to have "no
// adapter_config.json beside it" (it has), adapter_config.json was read as
// a safetensors file ("header length is 8385549014324486779 bytes"). Both
// now name the folder to give.
func TestAdapterFileOfAFolder(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, safetensors.F32)
	ad := filepath.Join(dir, "ad")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--rank", "2", "--quiet")
	keep := []string{"base.safetensors", "tuned.safetensors", "ad"}
	for _, f := range []string{peftWeightsName, peftConfigName} {
		for _, cmd := range [][]string{
			{"merge", "--base", p.base, "--adapter", filepath.Join(ad, f), "-o", filepath.Join(dir, "m.safetensors")},
			{"info", filepath.Join(ad, f)},
		} {
			if cmd[0] == "info" && f == peftWeightsName {
				continue // info shows the weights file as a safetensors file
			}
			assertFails(t, dir, keep, cmd, "PEFT adapter folder "+ad, "expected that folder as the adapter")
		}
	}
}
