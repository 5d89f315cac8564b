package main

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// extract of two models with no tensor name in common (the wrong base, or
// names under another prefix) said "no weight differs from BASE", which
// reads as "the fine-tuning changed nothing"; it now says that no name is
// shared, with an example of each, before any work.
func TestExtractNoNameInCommon(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	base, tuned := filepath.Join(dir, "base.safetensors"), filepath.Join(dir, "tuned.safetensors")
	writeST(t, base, nil, tensor{name: "fc.weight", dt: safetensors.F32, shape: []int{8, 6}, vals: gauss(rng, 48, 1)})
	writeST(t, tuned, nil, tensor{name: "model.fc.weight", dt: safetensors.F32, shape: []int{8, 6}, vals: gauss(rng, 48, 1)})
	for _, f := range []string{"peft", "kohya"} {
		out := filepath.Join(dir, "ad")
		if f == "kohya" {
			out += ".safetensors"
		}
		assertFails(t, dir, nil, []string{"extract", "--base", base, "--tuned", tuned, "-o", out, "--rank", "2", "--format", f, "--quiet"},
			"no tensor name in common", `"model.fc.weight"`, `"fc.weight"`, "expected")
	}
}

// merge --adapter PATH where nothing is at PATH said only "lowrank: stat
// PATH: no such file or directory": what was expected is now named.
func TestMergeMissingAdapter(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, safetensors.F32)
	for _, ad := range []string{"nothere", "nothere.safetensors"} {
		assertFails(t, dir, nil, []string{"merge", "--base", p.base, "--adapter", filepath.Join(dir, ad), "-o", filepath.Join(dir, "m.safetensors"), "--quiet"},
			ad+": no such file or directory", "expected a PEFT adapter folder or a kohya LoRA .safetensors file")
	}
}
