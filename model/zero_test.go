package model_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// TestZeroValues: the zero Layer, LoRA layer and Adapter (declared, never
// obtained from Model.Linear, Adapter.LoRA or OpenAdapter) answer with an
// error starting "lowrank:", or harmlessly, never with a panic.
func TestZeroValues(t *testing.T) {
	call := func(name string, f func() error) error {
		t.Helper()
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s panicked: %v", name, r)
				}
			}()
			err = f()
		}()
		return err
	}
	wantErr := func(name string, f func() error) {
		t.Helper()
		if err := call(name, f); err == nil || !strings.HasPrefix(err.Error(), "lowrank:") || !errors.Is(err, model.ErrNotFound) {
			t.Errorf("%s: %v; want a lowrank: error wrapping ErrNotFound", name, err)
		}
	}
	var l model.Linear
	var lo model.LoRA
	y, x := make([]float32, 3), make([]float32, 3)
	X, _ := lowrank.NewMatrix(1, 3, x)
	Y, _ := lowrank.NewMatrix(1, 3, y)
	wantErr("zero Layer.Forward", func() error { return l.Forward(y, x) })
	wantErr("zero Layer.ForwardBatch", func() error { return l.ForwardBatch(Y, X) })
	wantErr("zero Layer.ForwardAdapter", func() error { return l.ForwardAdapter(y, x, nil) })
	wantErr("zero Layer.ForwardBatchAdapters", func() error { return l.ForwardBatchAdapters(Y, X, []*model.LoRA{nil}) })
	_ = call("zero Layer.Close", l.Close)
	_ = call("zero LoRA.Rank", func() error { _ = lo.Rank(); _, _ = lo.Dims(); return nil })
	var ad model.Adapter
	_ = call("zero Adapter.Close", ad.Close)
	wantErr("FromFiles(nil)", func() error { _, err := model.FromFiles(model.Options{}, nil); return err })

	// A real layer with a zero LoRA layer.
	path := filepath.Join(t.TempDir(), "m.safetensors")
	writeST(t, path, nil, tensor{name: "fc.weight", dt: safetensors.F32, shape: []int{2, 3}, vals: []float64{1, 2, 3, 4, 5, 6}})
	m, err := model.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fc, err := m.Linear("fc")
	if err != nil {
		t.Fatal(err)
	}
	d, k := fc.Dims()
	wantErr("ForwardAdapter(zero LoRA)", func() error { return fc.ForwardAdapter(make([]float32, d), make([]float32, k), &lo) })
	Xk, _ := lowrank.NewMatrix(1, k, make([]float32, k))
	Yd, _ := lowrank.NewMatrix(1, d, make([]float32, d))
	wantErr("ForwardBatchAdapters(zero LoRA)", func() error { return fc.ForwardBatchAdapters(Yd, Xk, []*model.LoRA{&lo}) })
}

// TestLinearTensorNameHint: asking Linear for a tensor's name instead of
// its module's ("fc.weight", "fc.weight.A") gets an error that names the
// module to ask for.
func TestLinearTensorNameHint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	writeST(t, path, nil,
		tensor{name: "fc.weight.A", dt: safetensors.F32, shape: []int{1, 3}, vals: []float64{1, 2, 3}},
		tensor{name: "fc.weight.B", dt: safetensors.F32, shape: []int{2, 1}, vals: []float64{1, 2}},
		tensor{name: "fc.bias", dt: safetensors.F32, shape: []int{2}, vals: []float64{1, 2}})
	m, err := model.OpenWith(path, model.Options{IgnoreMetadata: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, name := range []string{"fc.weight", "fc.weight.A", "fc.weight.B", "fc.bias"} {
		_, err := m.Linear(name)
		if !errors.Is(err, model.ErrNotFound) || !strings.Contains(err.Error(), `expected a module name: "fc"`) {
			t.Errorf("Linear(%q): %v; want ErrNotFound naming the module \"fc\"", name, err)
		}
	}
}

// TestForwardAdapterInPlace: y may be x itself for a square layer
// (h = layer(h)): ForwardAdapter and ForwardBatchAdapters give what they
// give into a separate buffer. Before, the base wrote y and the adapter
// then read it as its input, with no error.
func TestForwardAdapterInPlace(t *testing.T) {
	p := newPEFTFixture(t)
	// A square base and adapter: d = k = 5.
	const n, r = 5, 2
	rng := rand.New(rand.NewPCG(1, 1))
	base := filepath.Join(p.dir, "square.safetensors")
	writeST(t, base, nil, tensor{name: "sq.weight", dt: safetensors.F32, shape: []int{n, n}, vals: gauss(rng, n*n, 1)},
		tensor{name: "sq.bias", dt: safetensors.F32, shape: []int{n}, vals: gauss(rng, n, 1)})
	ad := filepath.Join(p.dir, "sqad")
	os.MkdirAll(ad, 0o755)
	os.WriteFile(filepath.Join(ad, model.PEFTConfigName), []byte(`{"peft_type":"LORA","r":2,"lora_alpha":4}`), 0o644)
	writeST(t, filepath.Join(ad, model.PEFTWeightsName), nil,
		tensor{name: "base_model.model.sq.lora_A.weight", dt: safetensors.F32, shape: []int{r, n}, vals: gauss(rng, r*n, 1)},
		tensor{name: "base_model.model.sq.lora_B.weight", dt: safetensors.F32, shape: []int{n, r}, vals: gauss(rng, n*r, 1)})
	m, err := model.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, err := model.OpenAdapterWith(ad, model.AdapterOptions{Base: m})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	l, _ := m.Linear("sq")
	lo, err := a.LoRA("sq")
	if err != nil {
		t.Fatal(err)
	}
	x := to32(gauss(rng, 2*n, 1))
	want := make([]float32, 2*n)
	for i := range 2 {
		if err := l.ForwardAdapter(want[i*n:(i+1)*n], x[i*n:(i+1)*n], lo); err != nil {
			t.Fatal(err)
		}
	}
	buf := append([]float32(nil), x[:n]...)
	if err := l.ForwardAdapter(buf, buf, lo); err != nil {
		t.Fatal(err)
	}
	if e := relDiff(buf, want[:n]); e > 1e-6 {
		t.Errorf("ForwardAdapter(x, x): off by %g", e)
	}
	xb, _ := lowrank.NewMatrix(2, n, append([]float32(nil), x...))
	if err := l.ForwardBatchAdapters(xb, xb, []*model.LoRA{lo, lo}); err != nil {
		t.Fatal(err)
	}
	if e := relDiff(xb.Data, want); e > 1e-6 {
		t.Errorf("ForwardBatchAdapters(X, X): off by %g", e)
	}
}

// TestRecordedOutputError: a layer of a file factorize wrote with
// --calibration has the recorded output error, its energy, the ridge and
// the weighting restored into its Factors (they were NaN and 0); a plain
// file's output error is its weight error (the inputs taken as
// isotropic). A recorded output error outside [0, 1] or a negative ridge
// is a lie, refused at Open.
func TestRecordedOutputError(t *testing.T) {
	dir := t.TempDir()
	write := func(name, rec string) string {
		path := filepath.Join(dir, name)
		writeST(t, path, map[string]string{"lowrank": `{"version":1,"policy":"rank=1","split":"us","tensors":{"fc.weight":` + rec + `}}`},
			tensor{name: "fc.weight.A", dt: safetensors.F32, shape: []int{1, 3}, vals: []float64{1, 2, 3}},
			tensor{name: "fc.weight.B", dt: safetensors.F32, shape: []int{2, 1}, vals: []float64{1, 2}})
		return path
	}
	layer := func(path string) *lowrank.Factors[float32] {
		t.Helper()
		m, err := model.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		l, err := m.Linear("fc")
		if err != nil {
			t.Fatal(err)
		}
		return l.Factors()
	}
	f := layer(write("cal.safetensors", `{"shape":[2,3],"rank":1,"rel_error":0.5,"energy":0.75,"dtype":"F32","calibrated":true,"output_rel_error":0.2,"ridge":0.001}`))
	if f.RelError != 0.5 || f.OutputRelError != 0.2 || math.Abs(f.OutputEnergy-0.96) > 1e-15 || f.Ridge != 0.001 || f.Weighting != lowrank.WeightCovariance {
		t.Errorf("calibrated: RelError %v OutputRelError %v OutputEnergy %v Ridge %v Weighting %v; want 0.5 0.2 0.96 0.001 WeightCovariance",
			f.RelError, f.OutputRelError, f.OutputEnergy, f.Ridge, f.Weighting)
	}
	f = layer(write("plain.safetensors", `{"shape":[2,3],"rank":1,"rel_error":0.5,"energy":0.75,"dtype":"F32"}`))
	if f.OutputRelError != 0.5 || f.OutputEnergy != 0.75 || f.Weighting != lowrank.WeightNone {
		t.Errorf("plain: OutputRelError %v OutputEnergy %v Weighting %v; want 0.5 0.75 WeightNone", f.OutputRelError, f.OutputEnergy, f.Weighting)
	}
	for name, rec := range map[string]string{
		"big.safetensors":   `{"shape":[2,3],"rank":1,"rel_error":0.5,"energy":0.75,"dtype":"F32","calibrated":true,"output_rel_error":1.5,"ridge":0}`,
		"neg.safetensors":   `{"shape":[2,3],"rank":1,"rel_error":0.5,"energy":0.75,"dtype":"F32","calibrated":true,"output_rel_error":-0.1,"ridge":0}`,
		"ridge.safetensors": `{"shape":[2,3],"rank":1,"rel_error":0.5,"energy":0.75,"dtype":"F32","calibrated":true,"output_rel_error":0.1,"ridge":-1}`,
	} {
		if _, err := model.Open(write(name, rec)); !errors.Is(err, model.ErrMetadata) {
			t.Errorf("%s: %v; want ErrMetadata", name, err)
		}
	}
}

// TestWriterCalibratedRoundTrip: factors computed with input statistics,
// written by AddFactors and read back by Open, keep their output error,
// ridge and weighting (AddFactors recorded only the weight error, and the
// layer then reported it as the output error).
func TestWriterCalibratedRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const d, k = 8, 6
	w, _ := lowrank.NewMatrix(d, k, gauss(rng, d*k, 1))
	x := gauss(rng, 20*k, 1)
	c := make([]float64, k*k)
	for s := range 20 {
		for i := range k {
			for j := range k {
				c[i*k+j] += x[s*k+i] * x[s*k+j] * float64(i+1) * float64(j+1) / 20
			}
		}
	}
	cm, _ := lowrank.NewMatrix(k, k, c)
	f, err := lowrank.Factorize(w, lowrank.Rank(2), lowrank.WithInputCovariance(cm))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "out.safetensors")
	mw, err := model.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.AddFactors(mw, "fc.weight", f, safetensors.F64); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := model.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, err := m.Linear64("fc")
	if err != nil {
		t.Fatal(err)
	}
	g := l.Factors()
	if g.OutputRelError != f.OutputRelError || g.Ridge != f.Ridge || g.Weighting != lowrank.WeightCovariance || g.RelError != f.RelError {
		t.Errorf("read back: output error %v ridge %v weighting %v error %v; wrote %v %v %v %v",
			g.OutputRelError, g.Ridge, g.Weighting, g.RelError, f.OutputRelError, f.Ridge, f.Weighting, f.RelError)
	}
}
