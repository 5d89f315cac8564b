package main

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
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

// extract --rank N failed the whole run, after the work on the tensors
// before it, when one changed weight had min(d,k) < N (a 2×768 classifier
// head under --rank 8): that module now gets rank min(d,k), the whole ΔW,
// as kohya's extract script does, with a note; merge gives back tuned.
func TestExtractRankAboveMinOfAModule(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	base, tuned := filepath.Join(dir, "base.safetensors"), filepath.Join(dir, "tuned.safetensors")
	bw, hw := gauss(rng, 24*16, 1), gauss(rng, 2*16, 1)
	tw, th := append([]float64(nil), bw...), append([]float64(nil), hw...)
	for i, v := range lowRankMat(rng, 24, 16, 2, 0.5) {
		tw[i] += v
	}
	for i := range th {
		th[i] += 0.1 * float64(i%5)
	}
	writeST(t, base, nil, tensor{name: "fc.weight", dt: safetensors.F32, shape: []int{24, 16}, vals: bw}, tensor{name: "score.weight", dt: safetensors.F32, shape: []int{2, 16}, vals: hw})
	writeST(t, tuned, nil, tensor{name: "fc.weight", dt: safetensors.F32, shape: []int{24, 16}, vals: tw}, tensor{name: "score.weight", dt: safetensors.F32, shape: []int{2, 16}, vals: th})
	ad, merged := filepath.Join(dir, "ad"), filepath.Join(dir, "m.safetensors")
	code, _, errs := cli("extract", "--base", base, "--tuned", tuned, "-o", ad, "--rank", "4")
	if code != 0 {
		t.Fatalf("extract: exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, `note: score.weight is 2×16: --rank 4 is above min(d,k) = 2, so its adapter has rank 2`) {
		t.Errorf("no note of the rank used:\n%s", errs)
	}
	mustCLI(t, "merge", "--base", base, "--adapter", ad, "-o", merged, "--quiet")
	got, _, _ := readST(t, merged)
	for name, want := range map[string][]float64{"fc.weight": tw, "score.weight": th} {
		for i := range want {
			if math.Abs(got[name][i]-want[i]) > 1e-5 {
				t.Fatalf("%s[%d] = %g after merge; want tuned's %g", name, i, got[name][i], want[i])
			}
		}
	}
}
