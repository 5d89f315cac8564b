package main

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// The library writes what lowrank factorize writes: the same factors
// written through model.Create, in the command's order (decreasing
// element size, file order within a size) with the source's metadata,
// give a byte-identical file, metadata JSON included.
func TestFactorizeBytesEqualLibrary(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(21, 22))
	in := filepath.Join(dir, "in.safetensors")
	writeST(t, in, map[string]string{"format": "pt", "source": "test"},
		tensor{name: "a.bias", dt: safetensors.F32, shape: []int{30}, vals: gauss(rng, 30, 1)},
		tensor{name: "a.weight", dt: safetensors.F32, shape: []int{30, 20}, vals: decaying(rng, 30, 20)},
		tensor{name: "tiny.weight", dt: safetensors.F32, shape: []int{4, 4}, vals: gauss(rng, 16, 1)},
		tensor{name: "b.weight", dt: safetensors.F64, shape: []int{16, 24}, vals: decaying(rng, 16, 24)},
		tensor{name: "ids", dt: safetensors.I64, shape: []int{2}, raw: make([]byte, 16)})
	cliOut := filepath.Join(dir, "cli.safetensors")
	mustCLI(t, "factorize", in, "-o", cliOut, "--rank", "4", "--method", "exact", "--quiet")

	src, err := safetensors.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	libOut := filepath.Join(dir, "lib.safetensors")
	w, err := model.CreateWith(libOut, model.WriterOptions{Metadata: src.Metadata()})
	if err != nil {
		t.Fatal(err)
	}
	add := func(name string) {
		ti, _ := src.Tensor(name)
		if _, _, ok := ti.Matrix(); !ok {
			sec, _ := src.Section(name)
			if err := w.CopyFrom(name, ti.DType, ti.Shape, sec); err != nil {
				t.Fatal(err)
			}
			return
		}
		if ti.DType == safetensors.F64 {
			v, _ := src.Float64s(name)
			W, _ := lowrank.NewMatrix(ti.Shape[0], ti.Shape[1], v)
			f, err := lowrank.Factorize(W, lowrank.Rank(4), lowrank.WithMethod(lowrank.Exact))
			if err != nil {
				t.Fatal(err)
			}
			if err := model.AddFactors(w, name, f, ti.DType); err != nil {
				t.Fatal(err)
			}
			return
		}
		v, _ := src.Float32s(name)
		W, _ := lowrank.NewMatrix(ti.Shape[0], ti.Shape[1], v)
		f, err := lowrank.Factorize(W, lowrank.Rank(4), lowrank.WithMethod(lowrank.Exact))
		if err != nil {
			t.Fatal(err)
		}
		if !f.Saves() { // 4×4 at rank 4: kept dense, as the command keeps it
			sec, _ := src.Section(name)
			w.MarkDense(name, "break-even at rank 4: r·(d+k) ≥ d·k")
			if err := w.CopyFrom(name, ti.DType, ti.Shape, sec); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := model.AddFactors(w, name, f, ti.DType); err != nil {
			t.Fatal(err)
		}
	}
	// F64 first, then the 8-byte I64, then F32, each in file order.
	for _, name := range []string{"b.weight", "ids", "a.bias", "a.weight", "tiny.weight"} {
		add(name)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(cliOut)
	b, _ := os.ReadFile(libOut)
	if !bytes.Equal(a, b) {
		_, _, ma := readST(t, cliOut)
		_, _, mb := readST(t, libOut)
		t.Errorf("lowrank factorize wrote %d bytes, the library %d; they differ\ncommand metadata: %s\nlibrary metadata: %s", len(a), len(b), ma[metaKey], mb[metaKey])
	}
}

// An adapter applied unmerged by the library gives what lowrank merge's
// merged model gives, on the same inputs, within rounding: PEFT with
// rank_pattern/alpha_pattern and ".default" keys, use_rslora,
// fan_in_fan_out (a Conv1D base, stored in×out), and kohya.
func TestUnmergedForwardMatchesMerge(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(31, 32))
	d, k := 12, 9
	W1, W2 := gauss(rng, d*k, 1), gauss(rng, d*k, 1)
	b1 := gauss(rng, d, 1)
	A1, B1 := gauss(rng, 2*k, 1), gauss(rng, d*2, 1)
	A2, B2 := gauss(rng, 3*k, 1), gauss(rng, d*3, 1)
	transpose := func(v []float64, r, c int) []float64 {
		o := make([]float64, len(v))
		for i := range r {
			for j := range c {
				o[j*r+i] = v[i*c+j]
			}
		}
		return o
	}
	base := filepath.Join(dir, "base.safetensors")
	writeST(t, base, nil,
		tensor{name: "m.q.weight", dt: safetensors.F32, shape: []int{d, k}, vals: W1},
		tensor{name: "m.q.bias", dt: safetensors.F32, shape: []int{d}, vals: b1},
		tensor{name: "q.weight", dt: safetensors.F32, shape: []int{d, k}, vals: W2})
	baseT := filepath.Join(dir, "baseT.safetensors")
	writeST(t, baseT, nil,
		tensor{name: "m.q.weight", dt: safetensors.F32, shape: []int{k, d}, vals: transpose(W1, d, k)},
		tensor{name: "m.q.bias", dt: safetensors.F32, shape: []int{d}, vals: b1},
		tensor{name: "q.weight", dt: safetensors.F32, shape: []int{k, d}, vals: transpose(W2, d, k)})
	peft := func(name, cfg, suffix string) string {
		ad := filepath.Join(dir, name)
		os.MkdirAll(ad, 0o755)
		os.WriteFile(filepath.Join(ad, peftConfigName), []byte(cfg), 0o644)
		writeST(t, filepath.Join(ad, peftWeightsName), nil,
			tensor{name: "base_model.model.m.q.lora_A" + suffix + ".weight", dt: safetensors.F32, shape: []int{2, k}, vals: A1},
			tensor{name: "base_model.model.m.q.lora_B" + suffix + ".weight", dt: safetensors.F32, shape: []int{d, 2}, vals: B1},
			tensor{name: "base_model.model.q.lora_A" + suffix + ".weight", dt: safetensors.F32, shape: []int{3, k}, vals: A2},
			tensor{name: "base_model.model.q.lora_B" + suffix + ".weight", dt: safetensors.F32, shape: []int{d, 3}, vals: B2})
		return ad
	}
	kohya := filepath.Join(dir, "kohya.safetensors")
	writeST(t, kohya, nil,
		tensor{name: "lora_m_q.alpha", dt: safetensors.F32, shape: []int{}, vals: []float64{1}},
		tensor{name: "lora_m_q.lora_down.weight", dt: safetensors.F16, shape: []int{2, k}, vals: A1},
		tensor{name: "lora_m_q.lora_up.weight", dt: safetensors.F16, shape: []int{d, 2}, vals: B1},
		tensor{name: "lora_q.lora_down.weight", dt: safetensors.F16, shape: []int{3, k}, vals: A2},
		tensor{name: "lora_q.lora_up.weight", dt: safetensors.F16, shape: []int{d, 3}, vals: B2})
	cases := []struct {
		name, adapter string
		fan           bool
	}{
		{"plain", peft("plain", `{"peft_type":"LORA","r":3,"lora_alpha":6,"rank_pattern":{"m.q":2}}`, ""), false},
		{"patterns", peft("patterns", `{"peft_type":"LORA","r":8,"lora_alpha":16,"rank_pattern":{"m.q":2,"q":3},"alpha_pattern":{"m.q":1,"q":9}}`, ".default"), false},
		{"rslora", peft("rslora", `{"peft_type":"LORA","r":3,"lora_alpha":4,"use_rslora":true,"rank_pattern":{"^m.q":2}}`, ""), false},
		{"fan_in_fan_out", peft("fan", `{"peft_type":"LORA","r":3,"lora_alpha":3,"fan_in_fan_out":true,"rank_pattern":{"m.q":2},"alpha_pattern":{"m.q":2}}`, ""), true},
		{"kohya", kohya, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base
			if c.fan {
				in = baseT
			}
			out := filepath.Join(dir, c.name+"-merged.safetensors")
			mustCLI(t, "merge", "--base", in, "--adapter", c.adapter, "-o", out, "--quiet")
			opts := model.Options{FanInFanOut: c.fan}
			mm, err := model.OpenWith(out, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer mm.Close()
			bm, err := model.OpenWith(in, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer bm.Close()
			ad, err := model.OpenAdapterWith(c.adapter, model.AdapterOptions{Base: bm})
			if err != nil {
				t.Fatal(err)
			}
			defer ad.Close()
			for _, mod := range []string{"m.q", "q"} {
				lm, err := mm.Linear(mod)
				if err != nil {
					t.Fatal(err)
				}
				lb, _ := bm.Linear(mod)
				lr, err := ad.LoRA(mod)
				if err != nil {
					t.Fatal(err)
				}
				const n = 6
				X, _ := lowrank.NewMatrix[float32](n, k, nil)
				for i := range X.Data {
					X.Data[i] = float32(rng.NormFloat64())
				}
				Ym, _ := lowrank.NewMatrix[float32](n, d, nil)
				Yu, _ := lowrank.NewMatrix[float32](n, d, nil)
				if err := lm.ForwardBatch(Ym, X); err != nil {
					t.Fatal(err)
				}
				if err := lb.ForwardBatchAdapters(Yu, X, []*model.LoRA{lr}); err != nil {
					t.Fatal(err)
				}
				// The merged weights are rounded to F32 once more than the
				// unmerged sum: agreement to a few float32 ulps.
				var num, den float64
				for i := range Ym.Data {
					e := float64(Ym.Data[i]) - float64(Yu.Data[i])
					num, den = num+e*e, den+float64(Yu.Data[i])*float64(Yu.Data[i])
				}
				if e := math.Sqrt(num / den); e > 1e-6 {
					t.Errorf("%s: merged W·x off by %.3g from base + adapter unmerged", mod, e)
				}
				y := make([]float32, d)
				if err := lb.ForwardAdapter(y, X.Row(0), lr); err != nil {
					t.Fatal(err)
				}
				if e := relDiff32(y, Ym.Row(0)); e > 1e-6 {
					t.Errorf("%s: ForwardAdapter off by %.3g from the merged layer", mod, e)
				}
			}
		})
	}
}

func relDiff32(x, y []float32) float64 {
	var num, den float64
	for i := range x {
		e := float64(x[i]) - float64(y[i])
		num, den = num+e*e, den+float64(y[i])*float64(y[i])
	}
	return math.Sqrt(num / den)
}
