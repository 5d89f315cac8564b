package model

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// testBudget is a 256 MiB budget.
func testBudget() Budget { return &limit{avail: 256 << 20} }

// FuzzAdapterConfig feeds arbitrary adapter_config.json contents, and a
// module name, to the config reader and to the rank and scaling lookup
// merge uses (moved here from cmd/lowrank with the code it fuzzes). Whatever the input: no panic; an error starts with
// "lowrank: <path>: "; an accepted config has 1 ≤ r ≤ maxRank and a finite
// lora_alpha, and gives every module a rank in [1, maxRank] and a finite
// scaling.
func FuzzAdapterConfig(f *testing.F) {
	for _, s := range []string{
		`{"peft_type":"LORA","r":8,"lora_alpha":16}`,
		`{"peft_type":"LORA","r":3,"lora_alpha":4,"use_rslora":true,"rank_pattern":{"^m.q":2},"alpha_pattern":{"q":9}}`,
		`{"peft_type":"LORA","r":8,"lora_alpha":16,"rank_pattern":{"m.q":2,"q":3},"alpha_pattern":{"m.q":1,"q":9},"fan_in_fan_out":true}`,
		`{"peft_type":"LORA","r":0}`,
		`{"peft_type":"LORA","r":-4}`,
		`{"peft_type":"LORA","r":1e300}`,
		`{"peft_type":"LORA","r":2.5}`,
		`{"peft_type":"LORA","r":4,"lora_alpha":1e999}`,
		`{"peft_type":"LORA","r":4,"rank_pattern":{"(":2}}`,
		`{"peft_type":"LORA","r":4,"rank_pattern":{"a":0.5}}`,
		`{"peft_type":"LORA","r":4,"rank_pattern":[1,2]}`,
		`{"peft_type":"LORA","r":4,"use_dora":true}`,
		`{"peft_type":"IA3"}`,
		`{"peft_type":"LORA","r":"8"}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		"{\"peft_type\":\"LORA\",\"r\":4,\"rank_pattern\":{\"\xff\xfe\":2}}",
		``,
	} {
		f.Add([]byte(s), "model.layers.0.self_attn.q_proj")
	}
	if paths, _ := filepath.Glob(filepath.Join("..", "testdata", "hostile", "*", PEFTConfigName)); len(paths) > 0 {
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b, "fc1")
			}
		}
	}
	const path = "ad/adapter_config.json"
	f.Fuzz(func(t *testing.T, raw []byte, module string) {
		c, err := ParsePEFTConfig(raw, path, testBudget())
		if err != nil {
			if !strings.HasPrefix(err.Error(), "lowrank: "+path+": ") {
				t.Fatalf("error %q does not start with \"lowrank: %s: \"", err, path)
			}
			return
		}
		if c.R < 1 || c.R > maxRank || math.IsNaN(c.LoraAlpha) || math.IsInf(c.LoraAlpha, 0) {
			t.Fatalf("accepted r = %d, lora_alpha = %v", c.R, c.LoraAlpha)
		}
		for _, m := range []string{module, "q", "m.q", "base_model.model." + module} {
			r, sc, err := c.Scaling(m)
			if err != nil {
				continue // a budget or work limit
			}
			if r < 1 || r > maxRank || math.IsNaN(sc) || math.IsInf(sc, 0) {
				t.Fatalf("module %q: rank %d, scaling %v", m, r, sc)
			}
			// The trie and the lazy compilation pick the key PEFT's
			// loop of regular expressions picks.
			for _, p := range []*patterns{c.rankPattern, c.alphaPattern} {
				if p == nil {
					continue
				}
				want := -1
				for i, k := range p.keys {
					if regexp.MustCompile(`^(?:.*\.)?(?:` + k + `)$`).MatchString(m) {
						want = i
						break
					}
				}
				v, ok, err := p.match(m)
				if err != nil {
					continue
				}
				if ok != (want >= 0) || ok && v != p.values[want] {
					t.Fatalf("%s: module %q matched %v (%v); PEFT's first key is %d", p.name, m, v, ok, want)
				}
			}
		}
		// The LoRA key helpers never panic, and split what they build.
		if module != "" {
			for _, ab := range []string{"A", "B"} {
				mod, got, emb, ok := splitLoraKey(strings.TrimPrefix(PEFTKey(module, ab), PEFTPrefix))
				if ok && !emb && (got != ab || !strings.HasPrefix(module, mod)) {
					t.Fatalf("splitLoraKey(%q) = %q, %q", PEFTKey(module, ab), mod, got)
				}
				mod, got, emb, ok = splitLoraKey(strings.TrimPrefix(PEFTEmbeddingKey(module, ab), PEFTPrefix))
				if ok && emb && (got != ab || !strings.HasPrefix(module, mod)) {
					t.Fatalf("splitLoraKey(%q) = %q, %q (embedding)", PEFTEmbeddingKey(module, ab), mod, got)
				}
			}
		}
		_ = KohyaName("lora", module)
	})
}
