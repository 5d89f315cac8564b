package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// GPT-2's checkpoints store Conv1D weights in × out. extract then writes
// the adapter as PEFT expects for them (fan_in_fan_out true, lora_A r × in,
// lora_B out × r, (B·A)ᵀ the change), told by the base's config.json or
// by --fan-in-fan-out; merge puts the change back.
func TestExtractGPT2Conv1D(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(21, 22))
	const in, out, r = 8, 24, 2
	base := gauss(rng, in*out, 1)
	delta := lowRankMat(rng, in, out, r, 0.5) // stored layout: in × out
	tuned := make([]float64, len(base))
	for i := range base {
		tuned[i] = base[i] + delta[i]
	}
	bias := gauss(rng, out, 1)
	mk := func(name string, w []float64) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		writeST(t, filepath.Join(p, "model.safetensors"), nil,
			tensor{name: "h.0.attn.c_attn.weight", dt: safetensors.F32, shape: []int{in, out}, vals: w},
			tensor{name: "h.0.attn.c_attn.bias", dt: safetensors.F32, shape: []int{out}, vals: bias})
		cfg := `{"model_type": "gpt2", "n_embd": 8, "vocab_size": 50}`
		if err := os.WriteFile(filepath.Join(p, "config.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bdir, tdir := mk("gpt2", base), mk("tuned", tuned)

	check := func(ad string, wantFanIn bool) {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(ad, "adapter_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			FanIn bool    `json:"fan_in_fan_out"`
			R     int     `json:"r"`
			Alpha float64 `json:"lora_alpha"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		vals, shapes, _ := readST(t, filepath.Join(ad, "adapter_model.safetensors"))
		a, b := "base_model.model.h.0.attn.c_attn.lora_A.weight", "base_model.model.h.0.attn.c_attn.lora_B.weight"
		sa, sb := shapes[a], shapes[b]
		if cfg.FanIn != wantFanIn || cfg.R != r {
			t.Fatalf("adapter_config.json: fan_in_fan_out %v r %d; want %v and %d", cfg.FanIn, cfg.R, wantFanIn, r)
		}
		// PEFT's change: B·A (out × in for fan_in_fan_out, stored
		// transposed), times lora_alpha/r.
		got := matmul(vals[b], vals[a], sb[0], sb[1], sa[1])
		want := delta
		if wantFanIn {
			if sa[0] != r || sa[1] != in || sb[0] != out || sb[1] != r {
				t.Fatalf("lora_A %v, lora_B %v; want [%d %d] and [%d %d] (PEFT's layout for in × out weights)", sa, sb, r, in, out, r)
			}
			want = make([]float64, len(delta))
			for i := range in {
				for j := range out {
					want[j*in+i] = delta[i*out+j]
				}
			}
		} else if sa[0] != r || sa[1] != out || sb[0] != in || sb[1] != r {
			t.Fatalf("lora_A %v, lora_B %v; want [%d %d] and [%d %d]", sa, sb, r, out, in, r)
		}
		for i := range got {
			got[i] *= cfg.Alpha / float64(cfg.R)
		}
		if e := relDiff(got, want); e > 1e-5 {
			t.Errorf("PEFT's reading of the adapter is %g off the change", e)
		}
	}

	// From config.json: on, with a note.
	ad := filepath.Join(dir, "ad")
	code, _, errs := cli("extract", "--base", bdir, "--tuned", tdir, "-o", ad, "--rank", "2")
	if code != 0 {
		t.Fatal(errs)
	}
	if !strings.Contains(errs, `model_type "gpt2"`) || !strings.Contains(errs, "fan_in_fan_out true") {
		t.Errorf("no note on the layout chosen:\n%s", errs)
	}
	check(ad, true)
	merged := filepath.Join(dir, "merged.safetensors")
	mustCLI(t, "merge", filepath.Join(bdir, "model.safetensors"), "--adapter", ad, "-o", merged, "--quiet")
	vals, _, _ := readST(t, merged)
	if e := relDiff(vals["h.0.attn.c_attn.weight"], tuned); e > 1e-6 {
		t.Errorf("merged weight %g off the tuned one", e)
	}

	// Told off explicitly: the out × in layout, as before.
	ad2 := filepath.Join(dir, "ad2")
	mustCLI(t, "extract", "--base", bdir, "--tuned", tdir, "-o", ad2, "--rank", "2", "--fan-in-fan-out=false", "--quiet")
	check(ad2, false)

	// Kohya files hold out × in weights: refused.
	assertFails(t, dir, nil, []string{"extract", "--base", bdir, "--tuned", tdir, "-o", filepath.Join(dir, "k.safetensors"), "--rank", "2", "--format", "kohya", "--fan-in-fan-out"},
		"--fan-in-fan-out", "expected --format peft")
}
