package main

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// rawST writes a safetensors file from a header string and data bytes.
func rawST(t *testing.T, path, header string, data []byte) {
	t.Helper()
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(append(b, header...), data...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Every bad input fails with exit ≠ 0, one "lowrank:" line naming the file
// (and the tensor when one is at fault), and leaves no output behind.
func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	writeST(t, good, nil, tensor{name: "w.weight", dt: safetensors.F32, shape: []int{8, 6}, vals: make([]float64, 48)})
	goodBytes, _ := os.ReadFile(good)
	out := filepath.Join(dir, "out.safetensors")
	f32 := `"dtype":"F32","shape":[2,2]`

	truncated := filepath.Join(dir, "truncated.safetensors")
	os.WriteFile(truncated, goodBytes[:len(goodBytes)-10], 0o644)
	long := filepath.Join(dir, "long.safetensors")
	lb := append([]byte(nil), goodBytes...)
	binary.LittleEndian.PutUint64(lb, uint64(len(lb)))
	os.WriteFile(long, lb, 0o644)
	overlap := filepath.Join(dir, "overlap.safetensors")
	rawST(t, overlap, `{"a.weight":{`+f32+`,"data_offsets":[0,16]},"b.weight":{`+f32+`,"data_offsets":[8,24]}}`, make([]byte, 24))
	outOfRange := filepath.Join(dir, "range.safetensors")
	rawST(t, outOfRange, `{"a.weight":{`+f32+`,"data_offsets":[0,16]}}`, make([]byte, 8))
	unknown := filepath.Join(dir, "dtype.safetensors")
	rawST(t, unknown, `{"a.weight":{"dtype":"Q4","shape":[2,2],"data_offsets":[0,16]}}`, make([]byte, 16))
	nan := filepath.Join(dir, "nan.safetensors")
	vals := make([]float64, 48)
	vals[13] = math.NaN()
	writeST(t, nan, nil, tensor{name: "layer.weight", dt: safetensors.F32, shape: []int{8, 6}, vals: vals})
	nanBase := filepath.Join(dir, "nanbase.safetensors")
	writeST(t, nanBase, nil, tensor{name: "layer.weight", dt: safetensors.F32, shape: []int{8, 6}, vals: make([]float64, 48)})
	oldReport := filepath.Join(dir, "old.json")
	os.WriteFile(oldReport, []byte("{}"), 0o644)
	inf := filepath.Join(dir, "inf.safetensors")
	vals[13] = math.Inf(-1)
	writeST(t, inf, nil, tensor{name: "layer.weight", dt: safetensors.F16, shape: []int{8, 6}, vals: vals})
	other := filepath.Join(dir, "other.safetensors")
	writeST(t, other, nil, tensor{name: "w.weight", dt: safetensors.F32, shape: []int{6, 8}, vals: make([]float64, 48)})
	noConfig := filepath.Join(dir, "noconfig")
	os.Mkdir(noConfig, 0o755)
	writeST(t, filepath.Join(noConfig, peftWeightsName), nil, tensor{name: peftKey("w", "A"), dt: safetensors.F32, shape: []int{1, 6}, vals: make([]float64, 6)})
	foreign := filepath.Join(dir, "foreign")
	os.Mkdir(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, peftConfigName), []byte(`{"peft_type":"LORA","r":1,"lora_alpha":1}`), 0o644)
	writeST(t, filepath.Join(foreign, peftWeightsName), nil,
		tensor{name: peftKey("w", "A"), dt: safetensors.F32, shape: []int{1, 6}, vals: make([]float64, 6)},
		tensor{name: peftKey("w", "B"), dt: safetensors.F32, shape: []int{8, 1}, vals: make([]float64, 8)},
		tensor{name: peftKey("decoder.missing", "A"), dt: safetensors.F32, shape: []int{1, 6}, vals: make([]float64, 6)},
		tensor{name: peftKey("decoder.missing", "B"), dt: safetensors.F32, shape: []int{8, 1}, vals: make([]float64, 8)})
	notDir := filepath.Join(dir, "plainfile")
	os.WriteFile(notDir, []byte("x"), 0o644)

	keep := []string{"truncated.safetensors", "long.safetensors", "overlap.safetensors", "range.safetensors", "dtype.safetensors",
		"nan.safetensors", "inf.safetensors", "other.safetensors", "good.safetensors", "plainfile", "nanbase.safetensors", "old.json"}
	cases := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"truncated", []string{"factorize", truncated, "-o", out}, []string{truncated, "beyond the data section"}},
		{"header longer than file", []string{"factorize", long, "-o", out}, []string{long, "header length"}},
		{"overlapping offsets", []string{"factorize", overlap, "-o", out}, []string{overlap, `tensor "b.weight"`, "overlap"}},
		{"out-of-range offsets", []string{"info", outOfRange}, []string{outOfRange, `tensor "a.weight"`, "beyond the data section"}},
		{"unknown dtype", []string{"factorize", unknown, "-o", out}, []string{unknown, `tensor "a.weight"`, `dtype "Q4"`}},
		{"NaN", []string{"factorize", nan, "-o", out}, []string{nan, `tensor "layer.weight"`, "element [2, 1] is NaN"}},
		{"Inf", []string{"factorize", inf, "-o", out, "--jobs", "2"}, []string{inf, `tensor "layer.weight"`, "-Inf"}},
		{"NaN in tuned", []string{"extract", "--base", nanBase, "--tuned", nan, "-o", filepath.Join(dir, "ad")}, []string{nan, `tensor "layer.weight"`, "NaN"}},
		{"shape mismatch", []string{"extract", "--base", good, "--tuned", other, "-o", filepath.Join(dir, "ad")}, []string{other, good, `"w.weight"`, "6×8", "8×6", "equal shapes"}},
		{"missing adapter_config.json", []string{"merge", "--base", good, "--adapter", noConfig, "-o", out}, []string{noConfig, "adapter_config.json not found"}},
		{"adapter module not in base", []string{"merge", "--base", good, "--adapter", foreign, "-o", out}, []string{foreign, good, "decoder.missing"}},
		{"output not writable", []string{"factorize", good, "-o", filepath.Join(notDir, "out.safetensors")}, []string{filepath.Join(notDir, "out.safetensors"), "cannot create"}},
		{"adapter dir not writable", []string{"extract", "--base", good, "--tuned", good, "-o", filepath.Join(notDir, "ad")}, []string{filepath.Join(notDir, "ad")}},
		{"existing output", []string{"factorize", good, "-o", other}, []string{other, "exists", "--force"}},
		{"existing report", []string{"factorize", good, "-o", out, "--report", oldReport}, []string{oldReport, "exists"}},
		{"unchanged model", []string{"extract", "--base", good, "--tuned", good, "-o", filepath.Join(dir, "ad")}, []string{good, "no adapter written"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assertFails(t, dir, keep, c.args, c.wants...)
		})
	}
	// The existing output is untouched without --force, replaced with it.
	if f, err := safetensors.Open(other); err != nil {
		t.Fatal(err)
	} else if ti, _ := f.Tensor("w.weight"); ti.Shape[0] != 6 {
		t.Error("existing output was clobbered")
	} else {
		f.Close()
	}
	mustCLI(t, "factorize", good, "-o", other, "--force", "--quiet")
	if f, err := safetensors.Open(other); err != nil {
		t.Fatal(err)
	} else {
		if _, ok := f.Tensor("w.weight.A"); !ok {
			if _, ok := f.Tensor("w.weight"); !ok {
				t.Error("--force did not write the output")
			}
		}
		f.Close()
	}
	// An existing adapter folder: refused, then replaced with --force.
	ad := filepath.Join(dir, "existing")
	os.Mkdir(ad, 0o755)
	os.WriteFile(filepath.Join(ad, "keep.txt"), []byte("x"), 0o644)
	assertFails(t, dir, keep, []string{"extract", "--base", good, "--tuned", other, "-o", ad}, ad, "exists")
	if _, err := os.Stat(filepath.Join(ad, "keep.txt")); err != nil {
		t.Error("existing adapter folder was clobbered")
	}
}

// An interrupt (SIGINT/SIGTERM cancel cmdContext) stops the work, reports
// it on one line and leaves no output or temporary file.
func TestInterruptLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	modelFile(t, in)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	saved := cmdContext
	cmdContext = ctx
	defer func() { cmdContext = saved }()
	assertFails(t, dir, nil, []string{"factorize", in, "-o", filepath.Join(dir, "out.safetensors")}, "interrupted")
	p := makePair(t, t.TempDir(), safetensors.F32)
	adDir := filepath.Dir(p.base)
	assertFails(t, adDir, nil, []string{"extract", "--base", p.base, "--tuned", p.tuned, "-o", filepath.Join(adDir, "ad")}, "interrupted")
}

// The factorization of a tensor itself runs under cmdContext
// (lowrank.FactorizeContext): once SIGINT or SIGTERM has cancelled it, a
// factorization does no more work and says why.
func TestFactorizationStopsWithCmdContext(t *testing.T) {
	in := filepath.Join(t.TempDir(), "m.safetensors")
	modelFile(t, in)
	f, err := safetensors.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ti, ok := f.Tensor("layers.0.attn.weight")
	if !ok {
		t.Fatal("no layers.0.attn.weight")
	}
	ctx, cancel := context.WithCancel(context.Background())
	saved := cmdContext
	cmdContext = ctx
	defer func() { cmdContext = saved }()
	s := &settings{policy: lowrank.Rank(4)}
	sw, err := safetensors.Create(filepath.Join(t.TempDir(), "out.safetensors"), safetensors.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Abort()
	mw := model.NewWriter(sw, model.WriterOptions{})
	if _, err := factorizeOne[float32](f, ti, safetensors.F32, s, factorPlan{}, func() *model.Writer { return mw }); err != nil {
		t.Fatalf("before the interrupt: %v", err)
	}
	cancel()
	_, err = factorizeOne[float32](f, ti, safetensors.F32, s, factorPlan{}, func() *model.Writer { return mw })
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("after the interrupt: %v, want the factorization stopped by the context", err)
	}
}
