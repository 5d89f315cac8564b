package main

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
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
	same := tensor{name: "same.weight", dt: safetensors.F32, shape: []int{3, 16}, vals: gauss(rng, 48, 1)} // unchanged: no note
	writeST(t, base, nil, tensor{name: "fc.weight", dt: safetensors.F32, shape: []int{24, 16}, vals: bw}, tensor{name: "score.weight", dt: safetensors.F32, shape: []int{2, 16}, vals: hw}, same)
	writeST(t, tuned, nil, tensor{name: "fc.weight", dt: safetensors.F32, shape: []int{24, 16}, vals: tw}, tensor{name: "score.weight", dt: safetensors.F32, shape: []int{2, 16}, vals: th}, same)
	ad, merged := filepath.Join(dir, "ad"), filepath.Join(dir, "m.safetensors")
	code, _, errs := cli("extract", "--base", base, "--tuned", tuned, "-o", ad, "--rank", "4")
	if code != 0 {
		t.Fatalf("extract: exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, `note: score.weight is 2×16: --rank 4 is above min(d,k) = 2, so its adapter has rank 2`) {
		t.Errorf("no note of the rank used:\n%s", errs)
	}
	if strings.Count(errs, "note:") != 1 {
		t.Errorf("want one note (same.weight is unchanged):\n%s", errs)
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

// Densifying factors of different dtypes (A F16, B F32: a file factorize
// did not write) wrote the product as A's F16 and counted the bytes before
// as r·(d+k) F16 elements; the product is now written in the wider dtype
// and the bytes are the factors' own.
func TestDensifyMixedFactorDTypes(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	in, out, rep := filepath.Join(dir, "f.safetensors"), filepath.Join(dir, "d.safetensors"), filepath.Join(dir, "r.json")
	a, b := gauss(rng, 3*10, 1), gauss(rng, 7*3, 1)
	writeST(t, in, nil, tensor{name: "w.A", dt: safetensors.F16, shape: []int{3, 10}, vals: a}, tensor{name: "w.B", dt: safetensors.F32, shape: []int{7, 3}, vals: b})
	mustCLI(t, "merge", in, "-o", out, "--report", rep, "--quiet")
	f, err := safetensors.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ti, _ := f.Tensor("w"); ti.DType != safetensors.F32 {
		t.Errorf("w written as %s; want F32, the wider of the factors' F16 and F32", ti.DType)
	}
	fa, _, _ := readST(t, in)
	got, _ := f.Float64s("w")
	for i := range 7 {
		for j := range 10 {
			var s float64
			for l := range 3 {
				s += fa["w.B"][i*3+l] * fa["w.A"][l*10+j]
			}
			if math.Abs(got[i*10+j]-s) > 1e-5*(1+math.Abs(s)) {
				t.Fatalf("w[%d,%d] = %g; want B·A = %g", i, j, got[i*10+j], s)
			}
		}
	}
	raw, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Tensors []struct {
			Name        string `json:"name"`
			BytesBefore int64  `json:"bytes_before"`
			BytesAfter  int64  `json:"bytes_after"`
		} `json:"tensors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Tensors) != 1 || r.Tensors[0].BytesBefore != 3*10*2+7*3*4 || r.Tensors[0].BytesAfter != 7*10*4 {
		t.Errorf("report %+v; want bytes 144 → 280", r.Tensors)
	}
}
