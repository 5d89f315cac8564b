package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// layer is the float64 reference of one module: W (d×k) and bias.
type layer struct {
	w, b []float64
	d, k int
}

// fixture writes a factorized model (two factorized modules with biases,
// one kept dense) and two PEFT adapters, and returns the paths and the
// float64 reference of every module with each adapter ("" for none).
func fixture(t *testing.T) (string, map[string]string, map[string]map[string]layer) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(8, 1))
	g := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(float32(rng.NormFloat64()))
		}
		return v
	}
	mat := func(d, k int, v []float64) lowrank.Matrix[float32] {
		m, _ := lowrank.NewMatrix[float32](d, k, nil)
		for i, x := range v {
			m.Data[i] = float32(x)
		}
		return m
	}
	mul := func(b, a []float64, d, r, k int) []float64 {
		o := make([]float64, d*k)
		for i := range d {
			for l := range r {
				for j := range k {
					o[i*k+j] += b[i*r+l] * a[l*k+j]
				}
			}
		}
		return o
	}
	ref := map[string]map[string]layer{"": {}}
	path := filepath.Join(dir, "small.safetensors")
	w, err := model.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		name    string
		d, k, r int
	}{{"blocks.0.fc", 48, 32, 4}, {"blocks.1.fc", 32, 48, 6}, {"head", 10, 32, 0}} {
		var W []float64
		if s.r > 0 {
			B, A := g(s.d*s.r), g(s.r*s.k)
			f, _ := lowrank.NewFactors(mat(s.d, s.r, B), mat(s.r, s.k, A))
			f.SetRecorded(0.1, 0.99)
			if err := model.AddFactors(w, s.name+".weight", f, safetensors.F32); err != nil {
				t.Fatal(err)
			}
			W = mul(B, A, s.d, s.r, s.k)
		} else {
			W = g(s.d * s.k)
			if err := model.AddDense(w, s.name+".weight", mat(s.d, s.k, W), safetensors.F32); err != nil {
				t.Fatal(err)
			}
		}
		b := g(s.d)
		var raw bytes.Buffer
		for _, x := range b {
			var u [4]byte
			bits := math.Float32bits(float32(x))
			u[0], u[1], u[2], u[3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
			raw.Write(u[:])
		}
		if err := w.CopyFrom(s.name+".bias", safetensors.F32, []int{s.d}, &raw); err != nil {
			t.Fatal(err)
		}
		ref[""][s.name] = layer{W, b, s.d, s.k}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	adapters := map[string]string{}
	for ai, cfg := range []string{`{"peft_type":"LORA","r":2,"lora_alpha":4}`, `{"peft_type":"LORA","r":3,"lora_alpha":3,"use_rslora":true}`} {
		name := fmt.Sprintf("a%d", ai)
		ad := filepath.Join(dir, name)
		os.Mkdir(ad, 0o755)
		os.WriteFile(filepath.Join(ad, model.PEFTConfigName), []byte(cfg), 0o644)
		r := 2 + ai
		scale := 2.0
		if ai == 1 {
			scale = 3 / math.Sqrt(3)
		}
		aw, err := safetensors.Create(filepath.Join(ad, model.PEFTWeightsName), safetensors.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ref[name] = map[string]layer{}
		for _, mod := range []string{"blocks.0.fc", "blocks.1.fc"} { // not head
			base := ref[""][mod]
			A, B := g(r*base.k), g(base.d*r)
			aw.WriteFloat64(model.PEFTKey(mod, "A"), safetensors.F32, []int{r, base.k}, A)
			aw.WriteFloat64(model.PEFTKey(mod, "B"), safetensors.F32, []int{base.d, r}, B)
			W := append([]float64(nil), base.w...)
			for i, v := range mul(B, A, base.d, r, base.k) {
				W[i] += scale * v
			}
			ref[name][mod] = layer{W, base.b, base.d, base.k}
		}
		ref[name]["head"] = ref[""]["head"]
		if err := aw.Close(); err != nil {
			t.Fatal(err)
		}
		adapters[name] = ad
	}
	return path, adapters, ref
}

func (l layer) apply(x []float32) []float64 {
	y := make([]float64, l.d)
	for i := range l.d {
		s := l.b[i]
		for j := range l.k {
			s += l.w[i*l.k+j] * float64(x[j])
		}
		y[i] = s
	}
	return y
}

func post(t *testing.T, url string, body any) (int, map[string]any) {
	b, _ := json.Marshal(body)
	resp, err := http.Post(url+"/forward", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func floats(v any) []float64 {
	a, _ := v.([]any)
	o := make([]float64, len(a))
	for i, x := range a {
		o[i], _ = x.(float64)
	}
	return o
}

func relDiff(x, y []float64) float64 {
	var num, den float64
	for i := range y {
		e := x[i] - y[i]
		num, den = num+e*e, den+y[i]*y[i]
	}
	return math.Sqrt(num / den)
}

// The server on an httptest server, hammered by 64 goroutines asking for
// every module with every adapter (or none), one vector or a batch: every
// answer equals the float64 computation from the files' tensors.
func TestServeConcurrent(t *testing.T) {
	path, adapters, ref := fixture(t)
	s, err := NewServer(path, adapters)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	mods := []string{"blocks.0.fc", "blocks.1.fc", "head"}
	ads := []string{"", "a0", "a1"}
	const G, N = 64, 8
	var wg sync.WaitGroup
	for g := range G {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for range N {
				mod, ad := mods[rng.IntN(3)], ads[rng.IntN(3)]
				l := ref[ad][mod]
				x := make([]float32, l.k)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				if rng.IntN(4) == 0 { // a batch of two
					x2 := make([]float32, l.k)
					for i := range x2 {
						x2[i] = float32(rng.NormFloat64())
					}
					code, out := post(t, ts.URL, Request{Module: mod, Inputs: [][]float32{x, x2}, Adapter: ad})
					rows, _ := out["outputs"].([]any)
					if code != 200 || len(rows) != 2 {
						t.Errorf("%s with %q, batch: %d %v", mod, ad, code, out)
						return
					}
					for i, xi := range [][]float32{x, x2} {
						if e := relDiff(floats(rows[i]), l.apply(xi)); e > 1e-5 {
							t.Errorf("%s with %q, batch row %d: off by %.3g", mod, ad, i, e)
						}
					}
					continue
				}
				code, out := post(t, ts.URL, Request{Module: mod, Input: x, Adapter: ad})
				if code != 200 {
					t.Errorf("%s with %q: %d %v", mod, ad, code, out)
					return
				}
				if e := relDiff(floats(out["output"]), l.apply(x)); e > 1e-5 {
					t.Errorf("%s with %q: off by %.3g", mod, ad, e)
				}
			}
		}()
	}
	wg.Wait()
}

// Bad requests get a "lowrank:" error and the right status.
func TestServeErrors(t *testing.T) {
	path, adapters, _ := fixture(t)
	s, err := NewServer(path, adapters)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for _, c := range []struct {
		body any
		code int
		want string
	}{
		{Request{Module: "nope", Input: []float32{1}}, 404, `no module "nope"`},
		{Request{Module: "head", Input: make([]float32, 32), Adapter: "nope"}, 404, `no adapter "nope"`},
		{Request{Module: "head", Input: []float32{1, 2}}, 400, "x has length 2; expected 32"},
		{Request{Module: "head", Inputs: [][]float32{make([]float32, 32), {1}}}, 400, "inputs[1] has length 1; expected 32"},
		{Request{Module: "head"}, 400, `expected one of "input"`},
		{map[string]any{"module": "head", "input": make([]float32, 32), "extra": 1}, 400, "unknown field"},
	} {
		code, out := post(t, ts.URL, c.body)
		msg, _ := out["error"].(string)
		if code != c.code || !strings.HasPrefix(msg, "lowrank: ") || !strings.Contains(msg, c.want) {
			t.Errorf("%+v: %d %q; want %d with %q", c.body, code, msg, c.code, c.want)
		}
	}
	resp, err := http.Get(ts.URL + "/modules")
	if err != nil {
		t.Fatal(err)
	}
	var mods map[string][]string
	json.NewDecoder(resp.Body).Decode(&mods)
	resp.Body.Close()
	if fmt.Sprint(mods["modules"]) != "[blocks.0.fc blocks.1.fc head]" || fmt.Sprint(mods["adapters"]) != "[a0 a1]" {
		t.Errorf("/modules = %v", mods)
	}
	if _, err := NewServer(path, map[string]string{"x": filepath.Join(t.TempDir(), "none")}); err == nil || !strings.Contains(err.Error(), `adapter "x"`) {
		t.Errorf("a missing adapter: %v", err)
	}
}
