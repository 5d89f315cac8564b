package model_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// peftFixture is a base of two modules m.q and q (6×5) and adapters for
// them in PEFT's variants.
type peftFixture struct {
	dir, base, baseT string
	W1, W2           []float64
	A1, B1, A2, B2   []float64 // rank 2 for m.q, 3 for q
	d, k             int
}

func newPEFTFixture(t *testing.T) *peftFixture {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	p := &peftFixture{dir: t.TempDir(), d: 6, k: 5}
	d, k := p.d, p.k
	p.W1, p.W2 = gauss(rng, d*k, 1), gauss(rng, d*k, 1)
	p.A1, p.B1 = stored(gauss(rng, 2*k, 1), safetensors.F32), stored(gauss(rng, d*2, 1), safetensors.F32)
	p.A2, p.B2 = stored(gauss(rng, 3*k, 1), safetensors.F32), stored(gauss(rng, d*3, 1), safetensors.F32)
	p.base = filepath.Join(p.dir, "base.safetensors")
	writeST(t, p.base, nil,
		tensor{name: "m.q.weight", dt: safetensors.F64, shape: []int{d, k}, vals: p.W1},
		tensor{name: "q.weight", dt: safetensors.F64, shape: []int{d, k}, vals: p.W2})
	p.baseT = filepath.Join(p.dir, "baseT.safetensors")
	writeST(t, p.baseT, nil,
		tensor{name: "m.q.weight", dt: safetensors.F64, shape: []int{k, d}, vals: transpose(p.W1, d, k)},
		tensor{name: "q.weight", dt: safetensors.F64, shape: []int{k, d}, vals: transpose(p.W2, d, k)})
	return p
}

// adapter writes a PEFT folder with config cfg and keys ending in suffix
// (".default" for PEFT's adapter name).
func (p *peftFixture) adapter(t *testing.T, name, cfg, suffix string) string {
	t.Helper()
	ad := filepath.Join(p.dir, name)
	os.MkdirAll(ad, 0o755)
	os.WriteFile(filepath.Join(ad, model.PEFTConfigName), []byte(cfg), 0o644)
	d, k := p.d, p.k
	writeST(t, filepath.Join(ad, model.PEFTWeightsName), nil,
		tensor{name: "base_model.model.m.q.lora_A" + suffix + ".weight", dt: safetensors.F32, shape: []int{2, k}, vals: p.A1},
		tensor{name: "base_model.model.m.q.lora_B" + suffix + ".weight", dt: safetensors.F32, shape: []int{d, 2}, vals: p.B1},
		tensor{name: "base_model.model.q.lora_A" + suffix + ".weight", dt: safetensors.F32, shape: []int{3, k}, vals: p.A2},
		tensor{name: "base_model.model.q.lora_B" + suffix + ".weight", dt: safetensors.F32, shape: []int{d, 3}, vals: p.B2})
	return ad
}

// merged returns W + s·B·A.
func merged(w, b, a []float64, d, r, k int, s float64) []float64 {
	p := matmul(b, a, d, r, k)
	o := make([]float64, len(w))
	for i := range w {
		o[i] = w[i] + s*p[i]
	}
	return o
}

var peftCases = []struct {
	name, cfg, suffix string
	s1, s2            float64 // scaling of m.q and q
	fan               bool
}{
	{"plain", `{"peft_type":"LORA","r":3,"lora_alpha":6,"rank_pattern":{"m.q":2}}`, "", 6.0 / 2, 6.0 / 3, false},
	// "q" would also match "m.q"; PEFT takes the first key that matches.
	{"patterns", `{"peft_type":"LORA","r":8,"lora_alpha":16,"rank_pattern":{"m.q":2,"q":3},"alpha_pattern":{"m.q":1,"q":9}}`, ".default", 1.0 / 2, 9.0 / 3, false},
	{"rslora", `{"peft_type":"LORA","r":3,"lora_alpha":4,"use_rslora":true,"rank_pattern":{"^m.q":2}}`, "", 4 / math.Sqrt(2), 4 / math.Sqrt(3), false},
	{"fan_in_fan_out", `{"peft_type":"LORA","r":3,"lora_alpha":3,"fan_in_fan_out":true,"rank_pattern":{"m.q":2},"alpha_pattern":{"m.q":2}}`, "", 1, 1, true},
}

// PEFT adapters applied unmerged give (W + scale·B·A)·x: rank_pattern,
// alpha_pattern, use_rslora, fan_in_fan_out, ".default" keys; in float64
// and float32.
func TestPEFTForwardAdapter(t *testing.T) {
	p := newPEFTFixture(t)
	rng := rand.New(rand.NewPCG(9, 9))
	for _, c := range peftCases {
		t.Run(c.name, func(t *testing.T) {
			path := p.adapter(t, c.name, c.cfg, c.suffix)
			basePath := p.base
			if c.fan {
				basePath = p.baseT
			}
			base, err := model.OpenWith(basePath, model.Options{FanInFanOut: c.fan})
			if err != nil {
				t.Fatal(err)
			}
			defer base.Close()
			ad, err := model.OpenAdapterWith(path, model.AdapterOptions{Base: base})
			if err != nil {
				t.Fatal(err)
			}
			defer ad.Close()
			if ad.Format() != "peft" || ad.FanInFanOut() != c.fan || !slices.Equal(ad.Names(), []string{"m.q", "q"}) || ad.PEFT() == nil {
				t.Errorf("format %q fan %v names %q", ad.Format(), ad.FanInFanOut(), ad.Names())
			}
			for _, mc := range []struct {
				module string
				w      []float64
				b, a   []float64
				r      int
				s      float64
			}{{"m.q", p.W1, p.B1, p.A1, 2, c.s1}, {"q", p.W2, p.B2, p.A2, 3, c.s2}} {
				lora, err := ad.LoRA64(mc.module)
				if err != nil {
					t.Fatal(err)
				}
				if lora.Rank() != mc.r || math.Abs(lora.Scale()-mc.s) > 1e-15 || lora.Module().Module != mc.module {
					t.Errorf("%s: rank %d scale %v; want %d and %v", mc.module, lora.Rank(), lora.Scale(), mc.r, mc.s)
				}
				l, _ := base.Linear64(mc.module)
				x := gauss(rng, p.k, 1)
				want := matvec(merged(mc.w, mc.b, mc.a, p.d, mc.r, p.k, mc.s), p.d, p.k, x, nil)
				y := make([]float64, p.d)
				if err := l.ForwardAdapter(y, x, lora); err != nil {
					t.Fatal(err)
				}
				if e := relDiff(y, want); e > 1e-13 {
					t.Errorf("%s: unmerged forward off by %.3g from (W + s·B·A)·x", mc.module, e)
				}
				l32, _ := base.Linear(mc.module)
				lora32, err := ad.LoRA(mc.module)
				if err != nil {
					t.Fatal(err)
				}
				y32 := make([]float32, p.d)
				if err := l32.ForwardAdapter(y32, to32(x), lora32); err != nil {
					t.Fatal(err)
				}
				if e := relDiff(y32, want); e > 1e-5 {
					t.Errorf("%s: float32 unmerged forward off by %.3g", mc.module, e)
				}
				// nil: the base alone.
				if err := l.ForwardAdapter(y, x, nil); err != nil || relDiff(y, matvec(mc.w, p.d, p.k, x, nil)) > 1e-13 {
					t.Errorf("%s: ForwardAdapter(nil) is not the base: %v", mc.module, err)
				}
			}
		})
	}
}

// A batch whose rows name their own adapters (or none) gives, row by row,
// what ForwardAdapter gives; one adapter for all rows too.
func TestForwardBatchAdapters(t *testing.T) {
	p := newPEFTFixture(t)
	base, _ := model.Open(p.base)
	defer base.Close()
	var ads []*model.Adapter
	for _, c := range peftCases[:3] {
		ad, err := model.OpenAdapterWith(p.adapter(t, c.name, c.cfg, c.suffix), model.AdapterOptions{Base: base})
		if err != nil {
			t.Fatal(err)
		}
		defer ad.Close()
		ads = append(ads, ad)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, mod := range []string{"m.q", "q"} {
		l, _ := base.Linear(mod)
		const n = 11
		X, _ := lowrank.NewMatrix(n, p.k, to32(gauss(rng, n*p.k, 1)))
		per := make([]*model.LoRA, n)
		for i := range n {
			if i%4 != 3 { // every fourth row: no adapter
				per[i], _ = ads[i%3].LoRA(mod)
			}
		}
		Y, _ := lowrank.NewMatrix[float32](n, p.d, nil)
		if err := l.ForwardBatchAdapters(Y, X, per); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			y := make([]float32, p.d)
			if err := l.ForwardAdapter(y, X.Row(i), per[i]); err != nil {
				t.Fatal(err)
			}
			if e := relDiff(Y.Row(i), y); e > 1e-6 {
				t.Errorf("%s row %d: batch off by %.3g from ForwardAdapter", mod, i, e)
			}
		}
		if err := l.ForwardBatchAdapters(Y, X, per[:1]); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			y := make([]float32, p.d)
			l.ForwardAdapter(y, X.Row(i), per[0])
			if e := relDiff(Y.Row(i), y); e > 1e-6 {
				t.Errorf("%s row %d: one adapter for all off by %.3g", mod, i, e)
			}
		}
		if err := l.ForwardBatchAdapters(Y, X, per[:2]); !errors.Is(err, lowrank.ErrShape) {
			t.Errorf("2 adapters for %d rows: %v", n, err)
		}
	}
}

// kohya files: names mapped exactly to the base's modules, alpha/r, the
// prefix given or recorded; ambiguity and a missing base are errors.
func TestKohyaAdapter(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	d, k := 6, 5
	x, ux := gauss(rng, d*k, 1), gauss(rng, d*k, 1)
	base := filepath.Join(dir, "base.safetensors")
	writeST(t, base, nil, tensor{name: "x.weight", dt: safetensors.F64, shape: []int{d, k}, vals: x}, tensor{name: "unet_x.weight", dt: safetensors.F64, shape: []int{d, k}, vals: ux})
	down, up := stored(gauss(rng, 2*k, 1), safetensors.F16), stored(gauss(rng, d*2, 1), safetensors.F16)
	lora := filepath.Join(dir, "lora.safetensors")
	writeST(t, lora, nil,
		tensor{name: "lora_unet_x.alpha", dt: safetensors.F16, shape: []int{}, vals: []float64{3}},
		tensor{name: "lora_unet_x.lora_down.weight", dt: safetensors.F16, shape: []int{2, k}, vals: down},
		tensor{name: "lora_unet_x.lora_up.weight", dt: safetensors.F16, shape: []int{d, 2}, vals: up})
	m, _ := model.Open(base)
	defer m.Close()
	if _, err := model.OpenAdapter(lora); !errors.Is(err, model.ErrNeedBase) {
		t.Errorf("kohya without its base: %v", err)
	}
	// lora_unet_x is "lora_unet" + x and "lora" + unet_x.
	if _, err := model.OpenAdapterWith(lora, model.AdapterOptions{Base: m}); !errors.Is(err, model.ErrFormat) || !strings.Contains(err.Error(), `LoRA "lora_unet_x" names both "unet_x.weight" (prefix "lora") and "x.weight" (prefix "lora_unet")`) {
		t.Errorf("ambiguous kohya name: %v", err)
	}
	for _, pre := range []string{"lora_unet", "lora"} {
		ad, err := model.OpenAdapterWith(lora, model.AdapterOptions{Base: m, KohyaPrefixes: []string{pre}})
		if err != nil {
			t.Fatal(err)
		}
		want, w := "x", x
		if pre == "lora" {
			want, w = "unet_x", ux
		}
		if !slices.Equal(ad.Names(), []string{want}) || ad.Format() != "kohya" {
			t.Errorf("prefix %s: modules %q", pre, ad.Names())
		}
		lr, err := ad.LoRA64(want)
		if err != nil {
			t.Fatal(err)
		}
		if lr.Scale() != 1.5 || lr.Rank() != 2 {
			t.Errorf("kohya scale %v rank %d; want alpha/r = 1.5, 2", lr.Scale(), lr.Rank())
		}
		l, _ := m.Linear64(want)
		in := gauss(rng, k, 1)
		y := make([]float64, d)
		if err := l.ForwardAdapter(y, in, lr); err != nil {
			t.Fatal(err)
		}
		if e := relDiff(y, matvec(merged(w, up, down, d, 2, k, 1.5), d, k, in, nil)); e > 1e-13 {
			t.Errorf("prefix %s: kohya forward off by %.3g", pre, e)
		}
		ad.Close()
	}
	// The prefix extract records is used when none is given.
	rec := filepath.Join(dir, "rec.safetensors")
	f, _ := safetensors.Open(lora)
	var ts []tensor
	for _, ti := range f.Tensors() {
		v, _ := f.Float64s(ti.Name)
		ts = append(ts, tensor{name: ti.Name, dt: ti.DType, shape: ti.Shape, vals: v})
	}
	f.Close()
	writeST(t, rec, map[string]string{"lowrank": `{"version":1,"format":"kohya","kohya_prefix":"lora_unet","modules":{}}`}, ts...)
	ad, err := model.OpenAdapterWith(rec, model.AdapterOptions{Base: m})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ad.Names(), []string{"x"}) {
		t.Errorf("recorded prefix: modules %q", ad.Names())
	}
	ad.Close()
	// Two LoRAs for one module (lora_x and lora_unet_x both name x when
	// both prefixes are tried): refused, not one of them applied.
	two := filepath.Join(dir, "two.safetensors")
	xonly := filepath.Join(dir, "xonly.safetensors")
	writeST(t, xonly, nil, tensor{name: "x.weight", dt: safetensors.F64, shape: []int{d, k}, vals: x})
	writeST(t, two, nil,
		tensor{name: "lora_unet_x.lora_down.weight", dt: safetensors.F16, shape: []int{2, k}, vals: down},
		tensor{name: "lora_unet_x.lora_up.weight", dt: safetensors.F16, shape: []int{d, 2}, vals: up},
		tensor{name: "lora_x.lora_down.weight", dt: safetensors.F16, shape: []int{2, k}, vals: down},
		tensor{name: "lora_x.lora_up.weight", dt: safetensors.F16, shape: []int{d, 2}, vals: up})
	xm, _ := model.Open(xonly)
	defer xm.Close()
	if _, err := model.OpenAdapterWith(two, model.AdapterOptions{Base: xm}); !errors.Is(err, model.ErrFormat) || !strings.Contains(err.Error(), `two LoRAs for module "x"`) {
		t.Errorf("two LoRAs for one module: %v", err)
	}
	// BaseModules, as a command gives them.
	ad, err = model.OpenAdapterWith(lora, model.AdapterOptions{BaseModules: []string{"x"}, BaseName: "b", KohyaPrefixes: []string{"lora_unet"}})
	if err != nil || !slices.Equal(ad.Names(), []string{"x"}) {
		t.Fatalf("BaseModules: %v", err)
	}
	ad.Close()
}

// Adapters that do not fit, or are used wrongly: errors naming the module
// and wrapping the sentinels.
func TestAdapterErrors(t *testing.T) {
	p := newPEFTFixture(t)
	plain := p.adapter(t, "plain", peftCases[0].cfg, "")
	fan := p.adapter(t, "fan", peftCases[3].cfg, "")
	base, _ := model.Open(p.base)
	defer base.Close()
	baseT, _ := model.OpenWith(p.baseT, model.Options{FanInFanOut: true})
	defer baseT.Close()
	// Opened against a base that does not fit: refused at once.
	baseTT, _ := model.Open(p.baseT) // 5×6 weights, read as out×in
	defer baseTT.Close()
	if _, err := model.OpenAdapterWith(plain, model.AdapterOptions{Base: baseTT}); !errors.Is(err, model.ErrMismatch) || !errors.Is(err, lowrank.ErrShape) || !strings.Contains(err.Error(), `module "m.q": the adapter's B (6×2) · A (2×5) is 6×5 but the base's weight "m.q.weight" is 5×6`) {
		t.Errorf("shapes: %v", err)
	}
	// fan_in_fan_out against a base opened without it (square, so only
	// the flag can tell).
	sq := filepath.Join(p.dir, "square.safetensors")
	writeST(t, sq, nil, tensor{name: "q.weight", dt: safetensors.F32, shape: []int{6, 6}, vals: make([]float64, 36)})
	sqm, _ := model.Open(sq)
	defer sqm.Close()
	sqAd := filepath.Join(p.dir, "sqfan")
	os.MkdirAll(sqAd, 0o755)
	os.WriteFile(filepath.Join(sqAd, model.PEFTConfigName), []byte(`{"peft_type":"LORA","r":1,"fan_in_fan_out":true}`), 0o644)
	writeST(t, filepath.Join(sqAd, model.PEFTWeightsName), nil,
		tensor{name: model.PEFTKey("q", "A"), dt: safetensors.F32, shape: []int{1, 6}, vals: make([]float64, 6)},
		tensor{name: model.PEFTKey("q", "B"), dt: safetensors.F32, shape: []int{6, 1}, vals: make([]float64, 6)})
	if _, err := model.OpenAdapterWith(sqAd, model.AdapterOptions{Base: sqm}); !errors.Is(err, model.ErrMismatch) || !strings.Contains(err.Error(), "fan_in_fan_out") {
		t.Errorf("fan_in_fan_out against a plain base: %v", err)
	}
	// Without a base, the same is found by ForwardAdapter.
	ad, err := model.OpenAdapter(fan)
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	l, _ := base.Linear("q")
	lr, err := ad.LoRA("q")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ForwardAdapter(make([]float32, 6), make([]float32, 5), lr); !errors.Is(err, model.ErrMismatch) {
		t.Errorf("fan_in_fan_out adapter on a plain base: %v", err)
	}
	other, _ := model.OpenAdapter(plain)
	defer other.Close()
	lq, _ := other.LoRA("q")
	lt, _ := baseT.Linear("q")
	if err := lt.ForwardAdapter(make([]float32, 6), make([]float32, 5), lq); !errors.Is(err, model.ErrMismatch) {
		t.Errorf("plain adapter on a Conv1D base: %v", err)
	}
	if _, err := other.LoRA("nope"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("unknown module: %v", err)
	}
	// A module missing from the base.
	small := filepath.Join(p.dir, "small.safetensors")
	writeST(t, small, nil, tensor{name: "q.weight", dt: safetensors.F32, shape: []int{6, 5}, vals: make([]float64, 30)})
	sm, _ := model.Open(small)
	defer sm.Close()
	if _, err := model.OpenAdapterWith(plain, model.AdapterOptions{Base: sm}); !errors.Is(err, model.ErrNotFound) || !strings.Contains(err.Error(), `adapter modules not in `+small+`: "m.q"`) {
		t.Errorf("module not in the base: %v", err)
	}
	// NaN in lora_B: found when the layer is read.
	nan := p.adapter(t, "nan", peftCases[0].cfg, "")
	bad := append([]float64(nil), p.B2...)
	bad[7] = math.NaN()
	writeST(t, filepath.Join(nan, model.PEFTWeightsName), nil,
		tensor{name: model.PEFTKey("q", "A"), dt: safetensors.F32, shape: []int{3, 5}, vals: p.A2},
		tensor{name: model.PEFTKey("q", "B"), dt: safetensors.F32, shape: []int{6, 3}, vals: bad})
	nad, err := model.OpenAdapter(nan)
	if err != nil {
		t.Fatal(err)
	}
	defer nad.Close()
	if _, err := nad.LoRA("q"); !errors.Is(err, lowrank.ErrNonFinite) || !strings.Contains(err.Error(), `tensor "base_model.model.q.lora_B.weight": element [2, 1] is NaN`) {
		t.Errorf("NaN in lora_B: %v", err)
	}
	// InspectAdapter shows a config that disagrees with the weights, and
	// makes no layer.
	dis := p.adapter(t, "disagrees", `{"peft_type":"LORA","r":8}`, "")
	if _, err := model.OpenAdapter(dis); !errors.Is(err, model.ErrFormat) || !strings.Contains(err.Error(), "has rank 2 but") {
		t.Errorf("r disagrees: %v", err)
	}
	ia, err := model.InspectAdapter(dis, model.AdapterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mods := ia.Modules(); len(mods) != 2 || mods[0].Rank != 8 || mods[0].A.Shape[0] != 2 {
		t.Errorf("InspectAdapter modules %+v", mods)
	}
	if _, err := ia.LoRA("q"); !errors.Is(err, model.ErrUnsupported) {
		t.Errorf("LoRA of an inspected adapter: %v", err)
	}
	ia.Close()
	// Closed.
	other.Close()
	if _, err := other.LoRA("q"); !errors.Is(err, model.ErrClosed) {
		t.Errorf("LoRA after Close: %v", err)
	}
	if err := l.ForwardAdapter(make([]float32, 6), make([]float32, 5), lq); !errors.Is(err, model.ErrClosed) {
		t.Errorf("ForwardAdapter with a closed adapter: %v", err)
	}
	// MaxMemory bounds what opening holds.
	if _, err := model.OpenAdapterWith(plain, model.AdapterOptions{MaxMemory: 1000}); !errors.Is(err, model.ErrMemory) {
		t.Errorf("MaxMemory 1000: %v", err)
	}
}

// "lora_alpha": null is no number: PEFT's LoraConfig takes it as None and
// fails computing lora_alpha/r, as it does for "r": null. It was read as
// absent (LoraConfig's default 8), a scaling the file never stated; it is
// refused as "r": null is.
func TestPEFTConfigNullAlphaRefused(t *testing.T) {
	_, err := model.ParsePEFTConfig([]byte(`{"peft_type":"LORA","r":2,"lora_alpha":null}`), "adapter_config.json", nil)
	if err == nil || !errors.Is(err, model.ErrFormat) || !strings.HasPrefix(err.Error(), "lowrank: adapter_config.json: ") || !strings.Contains(err.Error(), `"lora_alpha" is null; expected a number`) {
		t.Errorf("lora_alpha null: %v; want a lowrank: error saying a number was expected", err)
	}
	// Absent, it is LoraConfig's default.
	c, err := model.ParsePEFTConfig([]byte(`{"peft_type":"LORA","r":2}`), "adapter_config.json", nil)
	if err != nil || c.LoraAlpha != 8 {
		t.Errorf("lora_alpha absent: %v, %v; want 8", c, err)
	}
}
