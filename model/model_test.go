package model_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// fixture is a small dense model and its factorized copy, written by the
// library's Writer as lowrank factorize writes one.
type fixture struct {
	dense, fact string
	// W, bias and shapes of the dense model, by module.
	w, b map[string][]float64
	d, k map[string]int
	// the factors written for fc, in float64 as stored (F32).
	fcB, fcA       []float64
	fcRank         int
	fcErr, fcEnerg float64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	fx := &fixture{dense: dir + "/dense.safetensors", fact: dir + "/fact.safetensors",
		w: map[string][]float64{}, b: map[string][]float64{}, d: map[string]int{}, k: map[string]int{}}
	// blocks.0.fc: 12×10 of rank 3 plus noise, with a bias; blocks.1.proj:
	// 5×12, no bias (kept dense); head: a bare 2-D tensor 3×5.
	mk := func(mod string, d, k int) {
		fx.d[mod], fx.k[mod] = d, k
		fx.w[mod] = stored(gauss(rng, d*k, 1), safetensors.F32)
	}
	mk("blocks.0.fc", 12, 10)
	lr := matmul(gauss(rng, 12*3, 1), gauss(rng, 3*10, 1), 12, 3, 10)
	for i := range lr {
		fx.w["blocks.0.fc"][i] = float64(float32(lr[i] + 0.01*fx.w["blocks.0.fc"][i]))
	}
	fx.b["blocks.0.fc"] = stored(gauss(rng, 12, 1), safetensors.F32)
	mk("blocks.1.proj", 5, 12)
	mk("head", 3, 5)
	norm := gauss(rng, 12, 1)
	writeST(t, fx.dense, map[string]string{"format": "pt"},
		tensor{name: "blocks.0.fc.weight", dt: safetensors.F32, shape: []int{12, 10}, vals: fx.w["blocks.0.fc"]},
		tensor{name: "blocks.0.fc.bias", dt: safetensors.F32, shape: []int{12}, vals: fx.b["blocks.0.fc"]},
		tensor{name: "blocks.0.norm.weight", dt: safetensors.F32, shape: []int{12}, vals: norm},
		tensor{name: "blocks.1.proj.weight", dt: safetensors.F32, shape: []int{5, 12}, vals: fx.w["blocks.1.proj"]},
		tensor{name: "head", dt: safetensors.F32, shape: []int{3, 5}, vals: fx.w["head"]},
	)
	// The factorized copy: fc at rank 3, proj kept dense, the rest copied.
	src, err := safetensors.Open(fx.dense)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	w, err := model.CreateWith(fx.fact, model.WriterOptions{Metadata: src.Metadata()})
	if err != nil {
		t.Fatal(err)
	}
	W, _ := lowrank.NewMatrix(12, 10, to32(fx.w["blocks.0.fc"]))
	f, err := lowrank.Factorize(W, lowrank.Rank(3), lowrank.WithMethod(lowrank.Exact))
	if err != nil {
		t.Fatal(err)
	}
	fx.fcRank, fx.fcErr, fx.fcEnerg = f.Rank, f.RelError, f.Energy
	for _, v := range f.B.Data {
		fx.fcB = append(fx.fcB, float64(v))
	}
	for _, v := range f.A.Data {
		fx.fcA = append(fx.fcA, float64(v))
	}
	if err := model.AddFactors(w, "blocks.0.fc.weight", f, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	P, _ := lowrank.NewMatrix(5, 12, to32(fx.w["blocks.1.proj"]))
	if err := model.AddDense(w, "blocks.1.proj.weight", P, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	w.MarkDense("blocks.1.proj.weight", "break-even at rank 5: r·(d+k) ≥ d·k")
	for _, name := range []string{"blocks.0.fc.bias", "blocks.0.norm.weight", "head"} {
		ti, _ := src.Tensor(name)
		sec, _ := src.Section(name)
		if err := w.CopyFrom(name, ti.DType, ti.Shape, sec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return fx
}

// Open, Names, Linear, Forward, ForwardBatch, Linear64, Info on a
// factorized model and on its dense source: every layer computes what its
// stored tensors say, the recorded rank, error and energy come back.
func TestOpenAndForward(t *testing.T) {
	fx := newFixture(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, path := range []string{fx.fact, fx.dense} {
		m, err := model.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.Names(), []string{"blocks.0.fc", "blocks.1.proj", "head"}; !slices.Equal(got, want) {
			t.Errorf("%s: Names() = %q; want %q", path, got, want)
		}
		factorized := path == fx.fact
		for _, mod := range m.Names() {
			d, k := fx.d[mod], fx.k[mod]
			W := fx.w[mod]
			if factorized && mod == "blocks.0.fc" {
				W = matmul(fx.fcB, fx.fcA, d, fx.fcRank, k)
			}
			x := gauss(rng, k, 1)
			want := matvec(W, d, k, x, fx.b[mod])
			l, err := m.Linear(mod)
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := m.Linear(mod); again != l {
				t.Errorf("%s: a second Linear(%q) made a new layer", path, mod)
			}
			if ld, lk := l.Dims(); ld != d || lk != k || l.Name() != mod {
				t.Errorf("%s: %q Dims %d×%d Name %q", path, mod, ld, lk, l.Name())
			}
			y := make([]float32, d)
			if err := l.Forward(y, to32(x)); err != nil {
				t.Fatal(err)
			}
			if e := relDiff(y, want); e > 1e-5 {
				t.Errorf("%s: %q Forward off by %.3g", path, mod, e)
			}
			l64, err := m.Linear64(mod)
			if err != nil {
				t.Fatal(err)
			}
			y64 := make([]float64, d)
			if err := l64.Forward(y64, x); err != nil {
				t.Fatal(err)
			}
			if e := relDiff(y64, want); e > 1e-12 {
				t.Errorf("%s: %q Forward64 off by %.3g", path, mod, e)
			}
			// A batch of 4: each row is Forward of that row.
			const n = 4
			X, _ := lowrank.NewMatrix(n, k, to32(gauss(rng, n*k, 1)))
			Y, _ := lowrank.NewMatrix[float32](n, d, nil)
			if err := l.ForwardBatch(Y, X); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				yi := make([]float32, d)
				l.Forward(yi, X.Row(i))
				if e := relDiff(Y.Row(i), yi); e > 1e-6 {
					t.Errorf("%s: %q ForwardBatch row %d off by %.3g from Forward", path, mod, i, e)
				}
			}
			li, err := m.Info(mod)
			if err != nil {
				t.Fatal(err)
			}
			if li.D != d || li.K != k || (li.Bias != "") != (fx.b[mod] != nil) {
				t.Errorf("%s: Info(%q) = %+v", path, mod, li)
			}
		}
		fc, _ := m.Linear("blocks.0.fc")
		proj, _ := m.Linear("blocks.1.proj")
		if factorized {
			f := fc.Factors()
			if f == nil || fc.Rank() != 3 || f.RelError != fx.fcErr || f.Energy != fx.fcEnerg {
				t.Errorf("factorized fc: rank %d, factors %v; want rank 3 with the recorded error %v and energy %v", fc.Rank(), f != nil, fx.fcErr, fx.fcEnerg)
			} else if f.RelError != fx.fcErr {
				t.Errorf("recorded error %v; want %v", f.RelError, fx.fcErr)
			}
			li, _ := m.Info("blocks.1.proj")
			if proj.Dense() == nil || proj.Rank() != 0 || !strings.Contains(li.DenseReason, "break-even") {
				t.Errorf("proj kept dense: Dense %v rank %d reason %q", proj.Dense() != nil, proj.Rank(), li.DenseReason)
			}
			if md := m.Recorded(); md == nil || md.Policy != "rank=3" || md.Split != "us" {
				t.Errorf("Recorded() = %+v", md)
			}
			if m.Metadata()["format"] != "pt" {
				t.Errorf("source metadata lost: %v", m.Metadata())
			}
		} else if fc.Factors() != nil || fc.Dense() == nil || len(fc.Bias()) != 12 {
			t.Errorf("dense fc: factors %v dense %v bias %d", fc.Factors() != nil, fc.Dense() != nil, len(fc.Bias()))
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Linear("head"); !errors.Is(err, model.ErrClosed) {
			t.Errorf("Linear after Close: %v; want ErrClosed", err)
		}
		if err := fc.Forward(make([]float32, 12), make([]float32, 10)); !errors.Is(err, model.ErrClosed) {
			t.Errorf("Forward after Close: %v; want ErrClosed", err)
		}
	}
}

// Every float dtype: Linear computes in float32 with the stored values
// widened exactly (F64 rounded), Linear64 in float64; an F64 value beyond
// the float32 range is refused by Linear and read by Linear64.
func TestDTypes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	d, k := 7, 9
	for _, dt := range []safetensors.DType{safetensors.F16, safetensors.BF16, safetensors.F32, safetensors.F64} {
		w, b, x := gauss(rng, d*k, 1), gauss(rng, d, 1), gauss(rng, k, 1)
		path := tmp(t, "m.safetensors")
		writeST(t, path, nil, tensor{name: "l.weight", dt: dt, shape: []int{d, k}, vals: w}, tensor{name: "l.bias", dt: dt, shape: []int{d}, vals: b})
		m, err := model.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		ws, bs := stored(w, dt), stored(b, dt)
		want := matvec(ws, d, k, x, bs)
		l, _ := m.Linear("l")
		y := make([]float32, d)
		if err := l.Forward(y, to32(x)); err != nil {
			t.Fatal(err)
		}
		if e := relDiff(y, want); e > 1e-6 {
			t.Errorf("%s: Linear off by %.3g", dt, e)
		}
		l64, _ := m.Linear64("l")
		y64 := make([]float64, d)
		if err := l64.Forward(y64, x); err != nil {
			t.Fatal(err)
		}
		if e := relDiff(y64, want); e > 1e-13 {
			t.Errorf("%s: Linear64 off by %.3g", dt, e)
		}
		m.Close()
	}
	path := tmp(t, "big.safetensors")
	big := []float64{1e300, 1, 2, 3}
	writeST(t, path, nil, tensor{name: "l.weight", dt: safetensors.F64, shape: []int{2, 2}, vals: big})
	m, _ := model.Open(path)
	defer m.Close()
	if _, err := m.Linear("l"); !errors.Is(err, lowrank.ErrNonFinite) || !strings.Contains(err.Error(), `tensor "l.weight"`) || !strings.Contains(err.Error(), "Linear64") {
		t.Errorf("F64 1e300 as float32: %v", err)
	}
	l64, err := m.Linear64("l")
	if err != nil {
		t.Fatal(err)
	}
	y := make([]float64, 2)
	if err := l64.Forward(y, []float64{1, 0}); err != nil || y[0] != 1e300 {
		t.Errorf("Linear64: %v, y = %v", err, y)
	}
}

// Options.FanInFanOut: weights stored in×out (GPT-2's Conv1D), dense or
// as factors of the stored matrix, compute W·x with W out×in.
func TestFanInFanOut(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	d, k, r := 6, 4, 2
	w := gauss(rng, d*k, 1)                        // out×in
	B, A := gauss(rng, k*r, 1), gauss(rng, r*d, 1) // stored Wᵀ ≈ B·A (in×out)
	path := tmp(t, "conv1d.safetensors")
	writeST(t, path, nil,
		tensor{name: "c_fc.weight", dt: safetensors.F64, shape: []int{k, d}, vals: transpose(w, d, k)},
		tensor{name: "c_fc.bias", dt: safetensors.F64, shape: []int{d}, vals: gauss(rng, d, 1)},
		tensor{name: "c_proj.weight.A", dt: safetensors.F64, shape: []int{r, d}, vals: A},
		tensor{name: "c_proj.weight.B", dt: safetensors.F64, shape: []int{k, r}, vals: B})
	m, err := model.OpenWith(path, model.Options{FanInFanOut: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	x := gauss(rng, k, 1)
	l, _ := m.Linear64("c_fc")
	y := make([]float64, d)
	if err := l.Forward(y, x); err != nil {
		t.Fatal(err)
	}
	if e := relDiff(y, matvec(w, d, k, x, l.Bias())); e > 1e-13 {
		t.Errorf("dense Conv1D off by %.3g", e)
	}
	p, _ := m.Linear64("c_proj")
	if pd, pk := p.Dims(); pd != d || pk != k {
		t.Fatalf("factored Conv1D Dims %d×%d; want %d×%d", pd, pk, d, k)
	}
	if err := p.Forward(y, x); err != nil {
		t.Fatal(err)
	}
	if e := relDiff(y, matvec(transpose(matmul(B, A, k, r, d), k, d), d, k, x, nil)); e > 1e-13 {
		t.Errorf("factored Conv1D off by %.3g", e)
	}
	if li, _ := m.Info("c_proj"); li.D != d || li.K != k || li.Rank != r {
		t.Errorf("Info(c_proj) = %+v", li)
	}
}

// Inputs a file should not hold, through the library: every one is an
// error that starts "lowrank: ", names the file and the tensor, and wraps
// the sentinel; metadata that lies is refused at Open.
func TestHostileModels(t *testing.T) {
	f32 := safetensors.F32
	W := []float64{1, 2, 3, 4, 5, 6} // 2×3
	A := []float64{1, 2, 3}          // 1×3
	B := []float64{1, 2}             // 2×1
	fact := []tensor{{name: "w.weight.A", dt: f32, shape: []int{1, 3}, vals: A}, {name: "w.weight.B", dt: f32, shape: []int{2, 1}, vals: B}}
	meta := func(js string) map[string]string { return map[string]string{"lowrank": js} }
	good := `{"version":1,"policy":"rank=1","split":"us","tensors":{"w.weight":{"shape":[2,3],"rank":1,"rel_error":0.5,"energy":0.75,"dtype":"F32"}}}`
	cases := []struct {
		name  string
		meta  map[string]string
		ts    []tensor
		open  error  // the error of Open, or nil
		load  error  // of Linear("w"), when Open succeeds
		wants string // in the message
	}{
		{"good", meta(good), fact, nil, nil, ""},
		{"lying shape", meta(strings.Replace(good, "[2,3]", "[3,2]", 1)), fact, model.ErrMetadata, nil, `tensor "w.weight": the "lowrank" metadata claims shape 3×2`},
		{"lying rank", meta(strings.Replace(good, `"rank":1`, `"rank":2`, 1)), fact, model.ErrMetadata, nil, "claims rank 2 but its factors have rank 1"},
		{"lying dtype", meta(strings.Replace(good, `"F32"`, `"F16"`, 1)), fact, model.ErrMetadata, nil, `claims dtype "F16"`},
		{"lying energy", meta(strings.Replace(good, `"energy":0.75`, `"energy":1.5`, 1)), fact, model.ErrMetadata, nil, "energy 1.5; expected a value in [0, 1]"},
		{"lying error", meta(strings.Replace(good, `"rel_error":0.5`, `"rel_error":-1`, 1)), fact, model.ErrMetadata, nil, "relative error -1"},
		{"claims a missing pair", meta(strings.Replace(good, `"w.weight":{`, `"v.weight":{`, 1)), fact, model.ErrMetadata, nil, `tensor "v.weight": the "lowrank" metadata claims factors "v.weight.A" and "v.weight.B" but the file has no such tensor`},
		{"claims factors of a dense tensor", meta(good), []tensor{{name: "w.weight", dt: f32, shape: []int{2, 3}, vals: W}}, model.ErrMetadata, nil, "but the file has a dense 2×3 tensor"},
		{"claims a dense tensor that is factored", meta(`{"version":1,"tensors":{},"dense":{"w.weight":"break-even"}}`), fact, model.ErrMetadata, nil, "claims it is kept dense but the file has its factors"},
		{"claims a dense tensor that is missing", meta(`{"version":1,"tensors":{},"dense":{"x.weight":"break-even"}}`), fact, model.ErrMetadata, nil, `tensor "x.weight"`},
		{"not JSON", meta(`{"version":1,`), fact, model.ErrMetadata, nil, `metadata "lowrank" is not lowrank's JSON`},
		{"NaN in JSON", meta(strings.Replace(good, "0.5", "NaN", 1)), fact, model.ErrMetadata, nil, "not lowrank's JSON"},
		{"duplicate key", meta(strings.Replace(good, `"rank":1,`, `"rank":1,"rank":1,`, 1)), fact, model.ErrMetadata, nil, "appears twice"},
		{"newer version", meta(strings.Replace(good, `"version":1`, `"version":2`, 1)), fact, model.ErrMetadata, nil, "version 2; expected 1"},
		{"factor shapes", nil, []tensor{{name: "w.weight.A", dt: f32, shape: []int{2, 3}, vals: W}, {name: "w.weight.B", dt: f32, shape: []int{2, 1}, vals: B}}, model.ErrFormat, nil, "are not factors B (d×r) and A (r×k) of one matrix"},
		{"factors beside dense", nil, append([]tensor{{name: "w.weight", dt: f32, shape: []int{2, 3}, vals: W}}, fact...), model.ErrFormat, nil, `tensor "w.weight" exists beside its factors`},
		{"NaN in a factor", nil, []tensor{{name: "w.weight.A", dt: f32, shape: []int{1, 3}, vals: []float64{1, math.NaN(), 3}}, fact[1]}, nil, lowrank.ErrNonFinite, `tensor "w.weight.A": element [0, 1] is NaN; expected finite values`},
		{"Inf in a dense weight", nil, []tensor{{name: "w.weight", dt: f32, shape: []int{2, 3}, vals: []float64{1, 2, 3, 4, math.Inf(-1), 6}}}, nil, lowrank.ErrNonFinite, `tensor "w.weight": element [1, 1] is -Inf`},
		{"bias of the wrong length", nil, append(fact, tensor{name: "w.bias", dt: f32, shape: []int{3}, vals: A}), nil, model.ErrFormat, `tensor "w.bias": is F32 3; expected a 1-D float vector of length 2`},
		{"2-D bias", nil, append(fact, tensor{name: "w.bias", dt: f32, shape: []int{2, 1}, vals: B}), nil, model.ErrFormat, `tensor "w.bias": is F32 2×1`},
		{"integer bias", nil, append(fact, tensor{name: "w.bias", dt: safetensors.I32, shape: []int{2}, raw: make([]byte, 8)}), nil, model.ErrFormat, `tensor "w.bias": is I32 2`},
		{"NaN in the bias", nil, append(fact, tensor{name: "w.bias", dt: f32, shape: []int{2}, vals: []float64{0, math.NaN()}}), nil, lowrank.ErrNonFinite, `tensor "w.bias": element [1] is NaN`},
		{"ambiguous module", nil, append(fact, tensor{name: "w", dt: f32, shape: []int{2, 3}, vals: W}), nil, model.ErrFormat, `module "w" names both "w" and "w.weight"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := tmp(t, "m.safetensors")
			writeST(t, path, c.meta, c.ts...)
			m, err := model.Open(path)
			check := func(err, want error) {
				t.Helper()
				if !errors.Is(err, want) || !strings.HasPrefix(err.Error(), "lowrank: "+path+": ") || !strings.Contains(err.Error(), c.wants) {
					t.Errorf("got %v; want an error wrapping %v, starting %q, containing %q", err, want, "lowrank: "+path+": ", c.wants)
				}
			}
			if c.open != nil {
				check(err, c.open)
				if c.open == model.ErrMetadata { // the claim is not read at all
					m, err := model.OpenWith(path, model.Options{IgnoreMetadata: true})
					if err != nil {
						t.Errorf("IgnoreMetadata: %v", err)
					} else {
						m.Close()
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			_, err = m.Linear("w")
			if c.load != nil {
				check(err, c.load)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Forward refuses bad vectors, naming the module; Linear refuses unknown
// names; a module without a bias computes W·x.
func TestForwardErrors(t *testing.T) {
	path := tmp(t, "m.safetensors")
	writeST(t, path, nil, tensor{name: "w.weight", dt: safetensors.F32, shape: []int{2, 3}, vals: []float64{1, 2, 3, 4, 5, 6}})
	m, err := model.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Linear("v"); !errors.Is(err, model.ErrNotFound) || !strings.Contains(err.Error(), `no module "v"; expected "v.weight"`) {
		t.Errorf("unknown module: %v", err)
	}
	if _, err := m.Info("v"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("Info of an unknown module: %v", err)
	}
	l, err := m.Linear("w")
	if err != nil {
		t.Fatal(err)
	}
	y := make([]float32, 2)
	if err := l.Forward(y, []float32{1, 1, 1}); err != nil || y[0] != 6 || y[1] != 15 {
		t.Errorf("W·x without a bias: %v %v", y, err)
	}
	for name, c := range map[string]struct {
		err  error
		want error
	}{
		"short x":  {l.Forward(y, []float32{1, 2}), lowrank.ErrShape},
		"long y":   {l.Forward(make([]float32, 3), []float32{1, 2, 3}), lowrank.ErrShape},
		"NaN in x": {l.Forward(y, []float32{1, float32(math.NaN()), 3}), lowrank.ErrNonFinite},
		"batch":    {l.ForwardBatch(lowrank.Matrix[float32]{Rows: 1, Cols: 2, Data: y}, lowrank.Matrix[float32]{Rows: 1, Cols: 2, Data: y}), lowrank.ErrShape},
	} {
		if !errors.Is(c.err, c.want) || !strings.HasPrefix(c.err.Error(), `lowrank: module "w": `) {
			t.Errorf("%s: %v; want %v naming the module", name, c.err, c.want)
		}
	}
	if _, err := model.Open(t.TempDir()); !errors.Is(err, model.ErrNotFound) || !strings.Contains(err.Error(), "folder without model.safetensors") {
		t.Errorf("an empty folder: %v", err)
	}
	if _, err := model.Open(tmp(t, "missing.safetensors")); err == nil || !strings.HasPrefix(err.Error(), "lowrank: ") {
		t.Errorf("a missing file: %v", err)
	}
}
