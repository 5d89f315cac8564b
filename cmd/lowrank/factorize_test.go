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

// unitRoundoff is the relative rounding of a dtype.
var unitRoundoff = map[safetensors.DType]float64{
	safetensors.F64: 1.2e-16, safetensors.F32: 6e-8, safetensors.F16: 4.9e-4, safetensors.BF16: 3.9e-3,
}

// modelFile writes a small model with one matrix per float dtype, a bias,
// an integer tensor and metadata.
func modelFile(t *testing.T, path string) []tensor {
	rng := rand.New(rand.NewPCG(7, 8))
	ts := []tensor{
		{name: "layers.0.attn.weight", dt: safetensors.F32, shape: []int{64, 48}, vals: decaying(rng, 64, 48)},
		{name: "layers.0.attn.bias", dt: safetensors.F32, shape: []int{64}, vals: gauss(rng, 64, 1)},
		{name: "layers.0.mlp.weight", dt: safetensors.F16, shape: []int{40, 56}, vals: decaying(rng, 40, 56)},
		{name: "layers.1.mlp.weight", dt: safetensors.BF16, shape: []int{32, 32}, vals: decaying(rng, 32, 32)},
		{name: "head.weight", dt: safetensors.F64, shape: []int{24, 50}, vals: decaying(rng, 24, 50)},
		{name: "position_ids", dt: safetensors.I64, shape: []int{2}, raw: []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}},
		{name: "tiny.weight", dt: safetensors.F32, shape: []int{4, 4}, vals: gauss(rng, 16, 1)},
	}
	// Round the stored values so that comparisons use what is in the file.
	writeST(t, path, map[string]string{"format": "pt", "source": "test"}, ts...)
	vals, _, _ := readST(t, path)
	for i := range ts {
		if v, ok := vals[ts[i].name]; ok {
			ts[i].vals = v
		}
	}
	return ts
}

func TestFactorizeThenMergeBack(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "model.safetensors")
	out := filepath.Join(dir, "fact.safetensors")
	dense := filepath.Join(dir, "dense.safetensors")
	rep := filepath.Join(dir, "report.json")
	ts := modelFile(t, in)
	stdout := mustCLI(t, "factorize", in, "-o", out, "--energy", "0.9", "--report", rep)
	if !strings.Contains(stdout, "layers.0.attn.weight") || !strings.Contains(stdout, "total:") {
		t.Errorf("table lacks rows or totals:\n%s", stdout)
	}
	vals, shapes, meta := readST(t, out)
	if meta["format"] != "pt" || meta["source"] != "test" {
		t.Errorf("source metadata not kept: %v", meta)
	}
	var fm factMeta
	if err := json.Unmarshal([]byte(meta[metaKey]), &fm); err != nil {
		t.Fatalf("metadata %q: %v", meta[metaKey], err)
	}
	if fm.Policy != "energy=0.9" {
		t.Errorf("policy %q", fm.Policy)
	}
	for _, x := range ts {
		switch {
		case x.name == "tiny.weight":
			// 4×4 at energy 0.9 needs rank ≥ 2: 2·8 ≥ 16, break-even.
			if _, ok := vals[x.name]; !ok || !strings.Contains(fm.Dense[x.name], "break-even") {
				t.Errorf("tiny.weight: want dense (break-even), got meta %v", fm.Dense)
			}
		case len(x.shape) == 2 && x.dt.IsFloat():
			tm, ok := fm.Tensors[x.name]
			if !ok {
				t.Fatalf("%s not factorized; metadata %v", x.name, fm)
			}
			d, k, r := x.shape[0], x.shape[1], tm.Rank
			if got := shapes[x.name+".A"]; len(got) != 2 || got[0] != r || got[1] != k {
				t.Errorf("%s.A shape %v; want [%d %d]", x.name, got, r, k)
			}
			if got := shapes[x.name+".B"]; len(got) != 2 || got[0] != d || got[1] != r {
				t.Errorf("%s.B shape %v; want [%d %d]", x.name, got, d, r)
			}
			if tm.Energy < 0.9-1e-9 {
				t.Errorf("%s energy %v < 0.9", x.name, tm.Energy)
			}
			// B·A from the file is within the recorded error of W.
			got := relDiff(matmul(vals[x.name+".B"], vals[x.name+".A"], d, r, k), x.vals)
			if math.Abs(got-tm.RelError) > 1e-4*tm.RelError+1e-6 {
				t.Errorf("%s: ‖W − B·A‖/‖W‖ = %v; recorded %v", x.name, got, tm.RelError)
			}
		default:
			// Copied unchanged.
			if x.dt.IsFloat() && relDiff(vals[x.name], x.vals) != 0 {
				t.Errorf("%s changed", x.name)
			}
		}
	}
	if info := mustCLI(t, "info", out); !strings.Contains(info, "factorized tensor") || !strings.Contains(info, "layers.0.attn.weight.A") || !strings.Contains(info, "break-even") {
		t.Errorf("info of a factorized file:\n%s", info)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("output mode %v, %v; want 0644", st.Mode(), err)
	}
	// Merge back: densify and compare with the original.
	mustCLI(t, "merge", out, "-o", dense, "--quiet")
	dvals, _, dmeta := readST(t, dense)
	if _, ok := dmeta[metaKey]; ok {
		t.Error("densified file keeps the factorization metadata")
	}
	for _, x := range ts {
		tm, ok := fm.Tensors[x.name]
		if !ok {
			continue
		}
		got := relDiff(dvals[x.name], x.vals)
		if tol := tm.RelError + 2*unitRoundoff[x.dt]; got > tol {
			t.Errorf("%s merged back: error %v > recorded %v + rounding", x.name, got, tm.RelError)
		}
	}
	// The report has every tensor and totals.
	r := readJSON(t, rep)
	if n := len(r["tensors"].([]any)); n != len(ts) {
		t.Errorf("report lists %d tensors; want %d", n, len(ts))
	}
	if tot := r["totals"].(map[string]any); tot["params_after"].(float64) >= tot["params_before"].(float64) {
		t.Errorf("totals %v show no saving", tot)
	}
}

// Narrower output dtypes: the recorded error is the error of the stored
// (rounded) factors.
func TestFactorizeDTypeRecordsStoredError(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	ts := modelFile(t, in)
	for _, dt := range []string{"f16", "bf16", "f32"} {
		out := filepath.Join(dir, dt+".safetensors")
		mustCLI(t, "factorize", in, "-o", out, "--rank", "6", "--dtype", dt, "--include", `attn|head`, "--quiet")
		f, err := safetensors.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		ti, _ := f.Tensor("head.weight.A")
		f.Close()
		if want, _ := parseOutDType(dt); ti.DType != want {
			t.Errorf("--dtype %s wrote %s", dt, ti.DType)
		}
		vals, _, meta := readST(t, out)
		var fm factMeta
		json.Unmarshal([]byte(meta[metaKey]), &fm)
		if _, ok := fm.Tensors["layers.0.mlp.weight"]; ok {
			t.Error("--include did not leave layers.0.mlp.weight out")
		}
		for _, x := range ts[:5] {
			tm, ok := fm.Tensors[x.name]
			if !ok {
				continue
			}
			got := relDiff(matmul(vals[x.name+".B"], vals[x.name+".A"], x.shape[0], tm.Rank, x.shape[1]), x.vals)
			if math.Abs(got-tm.RelError) > 1e-3*tm.RelError {
				t.Errorf("--dtype %s %s: stored error %v; recorded %v", dt, x.name, got, tm.RelError)
			}
		}
	}
}

// --jobs changes nothing in the output.
func TestFactorizeJobsDeterministic(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	modelFile(t, in)
	o1, o3 := filepath.Join(dir, "o1.safetensors"), filepath.Join(dir, "o3.safetensors")
	mustCLI(t, "factorize", in, "-o", o1, "--tol", "0.2", "--quiet", "--backend", "cpu")
	mustCLI(t, "factorize", in, "-o", o3, "--tol", "0.2", "--quiet", "--jobs", "3", "--backend", "cpu")
	b1, _ := os.ReadFile(o1)
	b3, _ := os.ReadFile(o3)
	if string(b1) != string(b3) {
		t.Error("--jobs 3 output differs from --jobs 1")
	}
	// Tensors are grouped by element size, so every one is aligned.
	f, err := safetensors.Open(o1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, ti := range f.Tensors() {
		if (8+f.HeaderSize()+ti.Begin)%int64(ti.DType.Size()) != 0 {
			t.Errorf("%s (%s) at data offset %d is not aligned", ti.Name, ti.DType, ti.Begin)
		}
	}
}

func TestFactorizeRankAndReportCSV(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	modelFile(t, in)
	out := filepath.Join(dir, "o.safetensors")
	rep := filepath.Join(dir, "r.csv")
	// Rank 25 exceeds min(d,k) of some tensors and saves nothing on
	// others: they stay dense, reported.
	// --min-saving 0: factors that save anything are kept.
	mustCLI(t, "factorize", in, "-o", out, "--rank", "25", "--report", rep, "--quiet", "--min-saving", "0")
	b, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	csv := string(b)
	for _, want := range []string{
		"name,shape,dtype,source_dtype,status,rank,rel_error,energy,scaling,method,calibration,output_rel_error,backend,params_before",
		"layers.0.attn.weight,64×48,F32,F32,factorized,25,",
		"layers.0.mlp.weight,40×56,F16,F16,dense: break-even at rank 25",
		"layers.1.mlp.weight,32×32,BF16,BF16,dense: break-even",
		`head.weight,24×50,F64,F64,"dense: rank above min(d,k) = 24"`,
		"position_ids,2,I64,I64,copied,",
		"TOTAL,,,,total,",
	} {
		if !strings.Contains(csv, want) {
			t.Errorf("CSV report lacks %q:\n%s", want, csv)
		}
	}
}

func TestFactorizeUsageErrors(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	modelFile(t, in)
	out := filepath.Join(dir, "o.safetensors")
	for _, args := range [][]string{
		{"factorize", in, "-o", out, "--rank", "4", "--energy", "0.9"},
		{"factorize", in, "-o", out, "--energy", "1.5"},
		{"factorize", in, "-o", out, "--rank", "0"},
		{"factorize", in, "-o", out, "--method", "magic"},
		{"factorize", in, "-o", out, "--split", "x"},
		{"factorize", in, "-o", out, "--dtype", "f8"},
		{"factorize", in, "-o", out, "--include", "("},
		{"factorize", in, "-o", out, "--report", "r.txt"},
		{"factorize", in, "-o", out, "--jobs", "0"},
		{"factorize", in},
		{"factorize", "-o", out},
	} {
		code, _, errs := cli(args...)
		if code != 2 || !strings.HasPrefix(errs, "lowrank: ") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and a lowrank: line", args, code, errs)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a usage error left an output")
	}
}
