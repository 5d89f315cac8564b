package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// llamaLike writes a small Llama-shaped model: an embedding table (96 ×
// 16), an MLP weight, the output head, and a classifier named like neither
// but of the vocabulary's shape (16 × 96).
func llamaLike(t *testing.T, path string, dt safetensors.DType) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	writeST(t, path, nil,
		tensor{name: "model.embed_tokens.weight", dt: dt, shape: []int{96, 16}, vals: randn(rng, 96*16)},
		tensor{name: "model.layers.0.mlp.up_proj.weight", dt: dt, shape: []int{64, 48}, vals: randn(rng, 64*48)},
		tensor{name: "lm_head.weight", dt: dt, shape: []int{96, 16}, vals: randn(rng, 96*16)},
		tensor{name: "score.weight", dt: dt, shape: []int{16, 96}, vals: randn(rng, 16*96)},
	)
}

// rowOf returns the table line of tensor name.
func rowOf(table, name string) string {
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}

// Point 2: embeddings and output heads stay dense by default, recognised
// by name and by the vocabulary's shape (from the names, or config.json),
// with the reason in the table; --include selects them.
func TestEmbeddingsDenseByDefault(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.safetensors"), filepath.Join(dir, "f.safetensors")
	llamaLike(t, in, safetensors.F32)
	table := mustCLI(t, "factorize", in, "-o", out, "--rank", "4")
	for name, why := range map[string]string{
		"model.embed_tokens.weight": "dense: embedding (by name)",
		"lm_head.weight":            "dense: output head (by name)",
		"score.weight":              `dense: vocabulary × hidden (the shape of "model.embed_tokens.weight")`,
	} {
		if l := rowOf(table, name); !strings.Contains(l, why) || !strings.Contains(l, "--include it to factorize") {
			t.Errorf("%s: %q; want %q", name, l, why)
		}
	}
	if !strings.Contains(rowOf(table, "model.layers.0.mlp.up_proj.weight"), "factorized") {
		t.Errorf("the MLP weight was not factorized:\n%s", table)
	}
	_, shapes, _ := readST(t, out)
	for _, n := range []string{"model.embed_tokens.weight", "lm_head.weight", "score.weight", "model.layers.0.mlp.up_proj.weight.A"} {
		if _, ok := shapes[n]; !ok {
			t.Errorf("%s is not in the output (tensors %v)", n, shapes)
		}
	}
	// --include names them: factorized.
	table = mustCLI(t, "factorize", in, "-o", out, "--rank", "4", "--force", "--include", "embed|lm_head")
	for _, n := range []string{"model.embed_tokens.weight", "lm_head.weight"} {
		if !strings.Contains(rowOf(table, n), "factorized") {
			t.Errorf("--include: %s not factorized:\n%s", n, table)
		}
	}
	// By shape from config.json, without any embedding named as such.
	dir2 := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	in2 := filepath.Join(dir2, "model.safetensors")
	writeST(t, in2, nil,
		tensor{name: "transformer.vocab_proj.weight", dt: safetensors.F32, shape: []int{80, 24}, vals: randn(rng, 80*24)},
		tensor{name: "transformer.h.0.fc.weight", dt: safetensors.F32, shape: []int{64, 24}, vals: randn(rng, 64*24)})
	os.WriteFile(filepath.Join(dir2, "config.json"), []byte(`{"vocab_size": 80, "hidden_size": 24, "architectures": ["X"]}`), 0o644)
	table = mustCLI(t, "factorize", in2, "-o", filepath.Join(dir2, "f.safetensors"), "--rank", "2")
	if l := rowOf(table, "transformer.vocab_proj.weight"); !strings.Contains(l, "vocab_size 80 × hidden 24 from") {
		t.Errorf("config.json's vocabulary shape not recognised: %q", l)
	}
	if !strings.Contains(rowOf(table, "transformer.h.0.fc.weight"), "factorized") {
		t.Errorf("a 64×24 layer was kept dense:\n%s", table)
	}
}

// Point 2: extract writes a changed embedding as PEFT's embedding LoRA
// (lora_embedding_A r × vocab, lora_embedding_B hidden × r), lists it in
// target_modules, and merge puts it back.
func TestExtractEmbeddingLoRA(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(8, 9))
	e := randn(rng, 96*16)
	q := randn(rng, 16*16)
	base, tuned := filepath.Join(dir, "b.safetensors"), filepath.Join(dir, "t.safetensors")
	writeST(t, base, nil, tensor{name: "model.embed_tokens.weight", dt: safetensors.F32, shape: []int{96, 16}, vals: e},
		tensor{name: "model.layers.0.self_attn.q_proj.weight", dt: safetensors.F32, shape: []int{16, 16}, vals: q})
	writeST(t, tuned, nil, tensor{name: "model.embed_tokens.weight", dt: safetensors.F32, shape: []int{96, 16}, vals: addTo(e, lowRank(rng, 96, 16, 3, 0.05))},
		tensor{name: "model.layers.0.self_attn.q_proj.weight", dt: safetensors.F32, shape: []int{16, 16}, vals: addTo(q, lowRank(rng, 16, 16, 2, 0.05))})
	ad := filepath.Join(dir, "adapter")
	mustCLI(t, "extract", "--base", base, "--tuned", tuned, "-o", ad, "--tol", "1e-5", "--quiet")
	_, shapes, _ := readST(t, filepath.Join(ad, peftWeightsName))
	for name, want := range map[string][]int{
		"base_model.model.model.embed_tokens.lora_embedding_A":           {3, 96},
		"base_model.model.model.embed_tokens.lora_embedding_B":           {16, 3},
		"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": {2, 16},
	} {
		if got, ok := shapes[name]; !ok || !equalShape(got, want) {
			t.Errorf("%s: %v (present %v); want %v; keys %v", name, got, ok, want, shapes)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(ad, peftConfigName))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Targets []string `json:"target_modules"`
	}
	json.Unmarshal(cfg, &c)
	if !slices.Contains(c.Targets, "model.embed_tokens") || !slices.Contains(c.Targets, "model.layers.0.self_attn.q_proj") {
		t.Errorf("target_modules %v lacks the embedding or q_proj", c.Targets)
	}
	if info := mustCLI(t, "info", ad); !strings.Contains(info, "embedding") {
		t.Errorf("info does not show the embedding module:\n%s", info)
	}
	merged := filepath.Join(dir, "m.safetensors")
	mustCLI(t, "merge", "--base", base, "--adapter", ad, "-o", merged, "--quiet")
	closeTo(t, "embedding merge", merged, tuned, 1e-5)
	py := pythonWithNumpy(t)
	script, _ := filepath.Abs("../../scripts/lora_conv_check.py")
	for _, args := range [][]string{{"extracted", base, tuned, ad}, {"merged", base, ad, merged}} {
		out, err := exec.Command(py, append([]string{script}, args...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK: 1 modules checked") {
			t.Errorf("lora_conv_check.py %v: %v\n%s", args, err, out)
		}
	}
}

// Point 3: --exclude after --include; a lookahead is refused with the
// hint to use --exclude.
func TestExclude(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.safetensors"), filepath.Join(dir, "f.safetensors")
	modelFile(t, in)
	assertFails(t, dir, []string{"m.safetensors"}, []string{"factorize", in, "-o", out, "--rank", "2", "--include", "(?!mlp)"},
		"--include", "unsupported Perl syntax", "use --exclude REGEX")
	table := mustCLI(t, "factorize", in, "-o", out, "--rank", "2", "--include", "layers", "--exclude", "mlp")
	if !strings.Contains(table, "layers.0.attn.weight") || strings.Contains(table, "mlp") || strings.Contains(table, "head.weight") {
		t.Errorf("--include layers --exclude mlp:\n%s", table)
	}
}

// Point 3: --min-saving: factors that save less than the fraction stay
// dense, reported as such.
func TestMinSaving(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.safetensors"), filepath.Join(dir, "f.safetensors")
	modelFile(t, in) // layers.0.attn.weight is 64×48: rank 25 saves 8.9%
	table := mustCLI(t, "factorize", in, "-o", out, "--rank", "25")
	if l := rowOf(table, "layers.0.attn.weight"); !strings.Contains(l, "dense: rank 25 saves 8.9% of the parameters, below --min-saving 0.1") {
		t.Errorf("default --min-saving 0.1: %q", l)
	}
	table = mustCLI(t, "factorize", in, "-o", out, "--rank", "25", "--min-saving", "0.05", "--force")
	if l := rowOf(table, "layers.0.attn.weight"); !strings.Contains(l, "factorized") {
		t.Errorf("--min-saving 0.05: %q", l)
	}
	for _, bad := range []string{"1", "-0.1", "NaN"} {
		assertFails(t, dir, []string{"m.safetensors", "f.safetensors"}, []string{"factorize", in, "-o", filepath.Join(dir, "g.safetensors"), "--rank", "2", "--min-saving", bad},
			"--min-saving", "expected a fraction in [0, 1)")
	}
}

// Point 3: factors lowrank wrote are not factorized again unless
// --force-refactorize; --exclude leaves them out and keeps their records.
func TestRefactorizeRefused(t *testing.T) {
	dir := t.TempDir()
	in, f1 := filepath.Join(dir, "m.safetensors"), filepath.Join(dir, "f1.safetensors")
	llamaLike(t, in, safetensors.F32)
	mustCLI(t, "factorize", in, "-o", f1, "--rank", "4", "--quiet")
	assertFails(t, dir, []string{"m.safetensors", "f1.safetensors"}, []string{"factorize", f1, "-o", filepath.Join(dir, "f2.safetensors"), "--rank", "2"},
		`"model.layers.0.mlp.up_proj.weight.A"`, "are factors lowrank factorize wrote", "--force-refactorize", "--exclude")
	// --exclude the factors: the rest is worked on, the records kept.
	f2 := filepath.Join(dir, "f2.safetensors")
	mustCLI(t, "factorize", f1, "-o", f2, "--rank", "2", "--exclude", `\.[AB]$`, "--include", "lm_head", "--quiet")
	_, _, meta := readST(t, f2)
	md, err := model.ParseMetadata(meta[metaKey])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := md.Tensors["model.layers.0.mlp.up_proj.weight"]; !ok {
		t.Errorf("the earlier factors' record was lost: %v", meta[metaKey])
	}
	if _, ok := md.Tensors["lm_head.weight"]; !ok {
		t.Errorf("lm_head was not factorized: %v", meta[metaKey])
	}
	// The file opens through the model package and densifies.
	mustCLI(t, "merge", f2, "-o", filepath.Join(dir, "d.safetensors"), "--quiet")
	// --force-refactorize: done, NAME.A.A written.
	mustCLI(t, "factorize", f1, "-o", filepath.Join(dir, "f3.safetensors"), "--rank", "2", "--force-refactorize", "--quiet")
	_, shapes, _ := readST(t, filepath.Join(dir, "f3.safetensors"))
	if _, ok := shapes["model.layers.0.mlp.up_proj.weight.A.A"]; !ok {
		t.Errorf("--force-refactorize wrote %v", shapes)
	}
}

// Point 3: a PEFT adapter is a folder: -o X.safetensors is an error
// naming --format kohya.
func TestPEFTOutputSuffix(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, safetensors.F32)
	assertFails(t, dir, []string{"base.safetensors", "tuned.safetensors"}, []string{"extract", "--base", p.base, "--tuned", p.tuned, "-o", filepath.Join(dir, "ad.safetensors"), "--rank", "2"},
		"a PEFT adapter is a folder", "--format kohya")
}

// Point 3: merge writes by default the dtype factorize recorded for the
// source; --dtype keep the factors' own, --dtype X that dtype.
func TestMergeDType(t *testing.T) {
	dir := t.TempDir()
	in, f := filepath.Join(dir, "m.safetensors"), filepath.Join(dir, "f.safetensors")
	llamaLike(t, in, safetensors.F32)
	table := mustCLI(t, "factorize", in, "-o", f, "--rank", "4", "--dtype", "bf16")
	if l := rowOf(table, "model.layers.0.mlp.up_proj.weight"); !strings.Contains(l, "F32→BF16") {
		t.Errorf("the table does not show the dtype written: %q", l)
	}
	dtypes := func(path string) map[string]safetensors.DType {
		sf, err := safetensors.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer sf.Close()
		out := map[string]safetensors.DType{}
		for _, ti := range sf.Tensors() {
			out[ti.Name] = ti.DType
		}
		return out
	}
	if got := dtypes(f); got["model.layers.0.mlp.up_proj.weight.A"] != safetensors.BF16 || got["model.embed_tokens.weight"] != safetensors.BF16 {
		t.Fatalf("factorize --dtype bf16 wrote %v", got)
	}
	for flag, want := range map[string]safetensors.DType{"": safetensors.F32, "keep": safetensors.BF16, "f16": safetensors.F16} {
		d := filepath.Join(dir, "d"+flag+".safetensors")
		args := []string{"merge", f, "-o", d, "--quiet"}
		if flag != "" {
			args = append(args, "--dtype", flag)
		}
		mustCLI(t, args...)
		got := dtypes(d)
		for _, n := range []string{"model.layers.0.mlp.up_proj.weight", "model.embed_tokens.weight", "lm_head.weight"} {
			if got[n] != want {
				t.Errorf("merge --dtype %q: %s is %s; want %s", flag, n, got[n], want)
			}
		}
	}
	// merge --adapter --dtype f32 into an F16 base: the merged tensors are
	// F32, the others F16, written F32 first (aligned data).
	pdir := t.TempDir()
	p := makePair(t, pdir, safetensors.F16)
	ad, m32 := filepath.Join(pdir, "ad"), filepath.Join(pdir, "m32.safetensors")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--rank", "2", "--quiet")
	mustCLI(t, "merge", "--base", p.base, "--adapter", ad, "-o", m32, "--dtype", "f32", "--quiet")
	sf, err := safetensors.Open(m32)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	last, n32 := 8, 0
	for _, ti := range sf.Tensors() {
		if ti.DType.Size() > last {
			t.Errorf("%s (%s) written after a narrower tensor: data not aligned", ti.Name, ti.DType)
		}
		last = ti.DType.Size()
		if ti.DType == safetensors.F32 {
			n32++
		}
	}
	if n32 != 3 {
		t.Errorf("merge --dtype f32 wrote %d F32 tensors; want the 3 merged", n32)
	}
	assertFails(t, dir, []string{"m.safetensors", "f.safetensors", "d.safetensors", "dkeep.safetensors", "df16.safetensors"},
		[]string{"merge", f, "-o", filepath.Join(dir, "x.safetensors"), "--dtype", "i8"}, "--dtype", "expected auto, keep, f32, f16 or bf16")
}

// Point 4: the report's dtype is the one written, the CSV has the JSON's
// fields, and the totals add up (extract included).
func TestReportsFieldsAndTotals(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	modelFile(t, in)
	js, cs := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.csv")
	mustCLI(t, "factorize", in, "-o", filepath.Join(dir, "f.safetensors"), "--rank", "4", "--dtype", "f16", "--report", js, "--quiet")
	mustCLI(t, "factorize", in, "-o", filepath.Join(dir, "g.safetensors"), "--rank", "4", "--dtype", "f16", "--report", cs, "--quiet")
	b, _ := os.ReadFile(js)
	var rep struct {
		Tensors []map[string]any `json:"tensors"`
		Totals  map[string]any   `json:"totals"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	cb, _ := os.ReadFile(cs)
	recs, err := csv.NewReader(bytes.NewReader(cb)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	cols := recs[0]
	for _, r := range rep.Tensors {
		for k := range r {
			if !slices.Contains(cols, k) {
				t.Errorf("JSON field %q is not a CSV column (%v)", k, cols)
			}
		}
		if r["name"] == "layers.0.attn.weight" && (r["dtype"] != "F16" || r["source_dtype"] != "F32" || r["method"] == nil || r["backend"] == nil) {
			t.Errorf("JSON row %v: want dtype F16, source_dtype F32, method and backend", r)
		}
	}
	for _, rec := range recs[1:] {
		if rec[0] == "layers.0.attn.weight" {
			get := func(c string) string { return rec[slices.Index(cols, c)] }
			if get("dtype") != "F16" || get("source_dtype") != "F32" || get("method") == "" || get("backend") == "" {
				t.Errorf("CSV row %v (columns %v)", rec, cols)
			}
		}
	}
	var before, after, saved float64
	for _, r := range rep.Tensors {
		before += r["bytes_before"].(float64)
		after += r["bytes_after"].(float64)
		saved += r["bytes_saved"].(float64)
	}
	if before != rep.Totals["bytes_before"] || after != rep.Totals["bytes_after"] || saved != rep.Totals["bytes_saved"] || before-after != saved {
		t.Errorf("totals %v; rows add to %v → %v, saved %v", rep.Totals, before, after, saved)
	}

	// extract: the totals line adds up (before − after = saved).
	p := makePair(t, dir, safetensors.F32)
	ej := filepath.Join(dir, "e.json")
	table := mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", filepath.Join(dir, "ad"), "--rank", "2", "--report", ej)
	b, _ = os.ReadFile(ej)
	rep.Tensors, rep.Totals = nil, nil
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	tb, ta, ts := rep.Totals["bytes_before"].(float64), rep.Totals["bytes_after"].(float64), rep.Totals["bytes_saved"].(float64)
	if tb-ta != ts || ts <= 0 {
		t.Errorf("extract totals %v do not add up", rep.Totals)
	}
	if !strings.Contains(table, "bytes "+humanBytes(int64(tb))+" → "+humanBytes(int64(ta))+", saved "+humanBytes(int64(ts))) {
		t.Errorf("extract's totals line:\n%s", table)
	}
}

// Point 4: the progress bar counts bytes and shows a rate.
func TestProgressByBytes(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	modelFile(t, in)
	var buf bytes.Buffer
	progressTo, progressThrottle = &buf, 0
	defer func() { progressTo, progressThrottle = nil, 100*time.Millisecond }()
	mustCLI(t, "factorize", in, "-o", filepath.Join(dir, "f.safetensors"), "--rank", "4")
	st, _ := os.Stat(in)
	out := buf.String()
	// 29 kB in all, counted in bytes, with the rate once some are done.
	if !strings.Contains(out, "/29 kB") || !strings.Contains(out, "B/s") {
		t.Errorf("progress (input %d bytes) shows no bytes or rate: %q", st.Size(), out)
	}
}

// Point 4: --version from the build information.
func TestVersion(t *testing.T) {
	out := mustCLI(t, "--version")
	if !strings.HasPrefix(out, "lowrank ") || !strings.Contains(out, "go1.") {
		t.Errorf("--version: %q", out)
	}
	defer func(f func() (*debug.BuildInfo, bool)) { readBuildInfo = f }(readBuildInfo)
	readBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/lowrank-go/lowrank", Version: "v0.4.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}, true
	}
	if out := mustCLI(t, "--version"); out != "lowrank v0.4.0, revision 0123abcd (2026-12-01T10:00:00Z), with local changes, go1.26.8\n" {
		t.Errorf("--version: %q", out)
	}
	readBuildInfo = func() (*debug.BuildInfo, bool) { return nil, false }
	if out := mustCLI(t, "--version"); !strings.Contains(out, "no build information") {
		t.Errorf("--version without build info: %q", out)
	}
}

// Point 4: info on several paths, and --json.
func TestInfoSeveralAndJSON(t *testing.T) {
	dir := t.TempDir()
	in, f := filepath.Join(dir, "m.safetensors"), filepath.Join(dir, "f.safetensors")
	modelFile(t, in)
	mustCLI(t, "factorize", in, "-o", f, "--rank", "4", "--quiet")
	p := makePair(t, dir, safetensors.F32)
	ad := filepath.Join(dir, "ad")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--rank", "2", "--quiet")
	out := mustCLI(t, "info", in, f, ad)
	for _, want := range []string{in + ": ", f + ": ", ad + ": PEFT LoRA adapter", "factorized tensor"} {
		if !strings.Contains(out, want) {
			t.Errorf("info of three paths lacks %q:\n%s", want, out)
		}
	}
	out = mustCLI(t, "info", "--json", in, f, ad)
	var docs []struct {
		Path    string
		Kind    string
		Modules []struct{ Module, Kind string }
		File    struct {
			Tensors []struct{ Name string }
			Lowrank *struct{ Tensors map[string]any }
		}
	}
	if err := json.Unmarshal([]byte(out), &docs); err != nil {
		t.Fatalf("info --json: %v\n%s", err, out)
	}
	if len(docs) != 3 || docs[0].Kind != "safetensors" || docs[2].Kind != "peft" || len(docs[0].File.Tensors) == 0 ||
		docs[1].File.Lowrank == nil || len(docs[1].File.Lowrank.Tensors) == 0 || len(docs[2].Modules) == 0 || docs[2].Modules[0].Kind != "linear" {
		t.Errorf("info --json:\n%s", out)
	}
	assertFails(t, dir, nil, []string{"info", in, filepath.Join(dir, "missing.safetensors")}, "missing.safetensors")
}

// Point 4: factorize --dry-run prints the plan and writes nothing.
func TestDryRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	modelFile(t, in)
	before := listDir(t, dir)
	out := mustCLI(t, "factorize", in, "--dry-run", "--rank", "4")
	for _, want := range []string{"dry run: nothing written", "memory: at most ", "layers.0.attn.weight", "factorized", "saved"} {
		if !strings.Contains(out, want) {
			t.Errorf("--dry-run lacks %q:\n%s", want, out)
		}
	}
	if l := rowOf(out, "layers.0.attn.weight"); !strings.Contains(l, " 4 ") {
		t.Errorf("--dry-run: no rank in %q", l)
	}
	// With -o too: still nothing written.
	mustCLI(t, "factorize", in, "-o", filepath.Join(dir, "f.safetensors"), "--dry-run", "--rank", "4")
	if after := listDir(t, dir); len(after) != len(before) {
		t.Errorf("--dry-run wrote %v", after)
	}
	assertFails(t, dir, []string{"m.safetensors"}, []string{"factorize", in, "--rank", "4"}, "no output given; expected -o PATH (or --dry-run)")
}

// Point 4: --task-type and --base-model in adapter_config.json.
func TestExtractTaskType(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, safetensors.F32)
	ad := filepath.Join(dir, "ad")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--rank", "2", "--task-type", "CAUSAL_LM", "--base-model", "meta-llama/Llama-3.2-1B", "--quiet")
	cfg, err := os.ReadFile(filepath.Join(ad, peftConfigName))
	if err != nil {
		t.Fatal(err)
	}
	if jsonField(t, cfg, "task_type") != "CAUSAL_LM" || jsonField(t, cfg, "base_model_name_or_path") != "meta-llama/Llama-3.2-1B" {
		t.Errorf("adapter_config.json: %s", cfg)
	}
	keep := []string{"base.safetensors", "tuned.safetensors", "ad"}
	assertFails(t, dir, keep, []string{"extract", "--base", p.base, "--tuned", p.tuned, "-o", filepath.Join(dir, "ad2"), "--rank", "2", "--task-type", "causal"},
		"--task-type", "CAUSAL_LM", "SEQ_2_SEQ_LM")
	assertFails(t, dir, keep, []string{"extract", "--base", p.base, "--tuned", p.tuned, "-o", filepath.Join(dir, "k.safetensors"), "--format", "kohya", "--rank", "2", "--task-type", "CAUSAL_LM"},
		"--task-type", "--format kohya")
	// --base-model is written to adapter_config.json too: with --format
	// kohya it was silently dropped (exit 0).
	assertFails(t, dir, keep, []string{"extract", "--base", p.base, "--tuned", p.tuned, "-o", filepath.Join(dir, "k.safetensors"), "--format", "kohya", "--rank", "2", "--base-model", "meta-llama/Llama-3.2-1B"},
		"--base-model", "--format kohya")
}

// Point 4: merge -h speaks of merging, not of randomized SVD.
func TestMergeHelp(t *testing.T) {
	code, _, out := cli("merge", "-h")
	if code != 0 || strings.Contains(strings.ToLower(out), "randomized") || !strings.Contains(out, "--dtype") && !strings.Contains(out, "-dtype") {
		t.Errorf("merge -h: exit %d\n%s", code, out)
	}
}

// Point 2, real names: CLIP's text encoder (token_embedding,
// position_embedding), Mamba (backbone.embedding), RWKV (emb) and XLNet
// (word_embedding) name their nn.Embedding tables otherwise than Llama or
// GPT-2, and were factorized by default (a single file, no config.json
// beside it); and the output head's shape is the vocabulary's too, so a
// vocabulary-sized matrix beside lm_head alone is kept dense by shape.
func TestEmbeddingsOfOtherFamiliesDense(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	in := filepath.Join(dir, "m.safetensors")
	writeST(t, in, nil,
		tensor{name: "text_model.embeddings.token_embedding.weight", dt: safetensors.F32, shape: []int{96, 16}, vals: randn(rng, 96*16)},
		tensor{name: "text_model.embeddings.position_embedding.weight", dt: safetensors.F32, shape: []int{40, 16}, vals: randn(rng, 40*16)},
		tensor{name: "backbone.embedding.weight", dt: safetensors.F32, shape: []int{88, 16}, vals: randn(rng, 88*16)},
		tensor{name: "emb.weight", dt: safetensors.F32, shape: []int{72, 16}, vals: randn(rng, 72*16)},
		tensor{name: "transformer.word_embedding.weight", dt: safetensors.F32, shape: []int{64, 16}, vals: randn(rng, 64*16)},
		tensor{name: "text_model.encoder.layers.0.mlp.fc1.weight", dt: safetensors.F32, shape: []int{48, 16}, vals: randn(rng, 48*16)},
	)
	table := mustCLI(t, "factorize", in, "-o", filepath.Join(dir, "f.safetensors"), "--rank", "2", "--min-saving", "0")
	for _, n := range []string{"text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight", "backbone.embedding.weight", "emb.weight", "transformer.word_embedding.weight"} {
		if l := rowOf(table, n); !strings.Contains(l, "dense: embedding (by name)") {
			t.Errorf("%s: %q; want dense: embedding (by name)", n, l)
		}
	}
	if !strings.Contains(rowOf(table, "text_model.encoder.layers.0.mlp.fc1.weight"), "factorized") {
		t.Errorf("the MLP weight was not factorized:\n%s", table)
	}
	// Only the head names the vocabulary: its shape keeps the tied
	// decoder of the same shape dense.
	in2 := filepath.Join(dir, "h.safetensors")
	writeST(t, in2, nil,
		tensor{name: "lm_head.weight", dt: safetensors.F32, shape: []int{96, 16}, vals: randn(rng, 96*16)},
		tensor{name: "cls.predictions.decoder.weight", dt: safetensors.F32, shape: []int{96, 16}, vals: randn(rng, 96*16)},
		tensor{name: "h.0.fc.weight", dt: safetensors.F32, shape: []int{48, 16}, vals: randn(rng, 48*16)},
	)
	table = mustCLI(t, "factorize", in2, "-o", filepath.Join(dir, "f2.safetensors"), "--rank", "2", "--min-saving", "0")
	if l := rowOf(table, "cls.predictions.decoder.weight"); !strings.Contains(l, `dense: vocabulary × hidden (the shape of "lm_head.weight")`) {
		t.Errorf("cls.predictions.decoder.weight: %q; want dense by the shape of lm_head.weight", l)
	}
}
