package model_test

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
)

// 64 goroutines call Forward, ForwardAdapter and ForwardBatchAdapters on
// shared layers (factorized and dense) with different adapters, and the
// first calls to Linear and LoRA race each other: every answer equals the
// one the same call gave sequentially (to float32 rounding), and every
// goroutine got the same layer.
func TestConcurrentForward(t *testing.T) {
	fx := newFixture(t)
	p := newPEFTFixture(t)
	m, err := model.Open(fx.fact)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
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
	const G, calls = 64, 20
	type call struct {
		mod string
		x   []float32
		ad  int // -1: none
	}
	rng := rand.New(rand.NewPCG(1, 9))
	plan := make([][]call, G)
	for g := range plan {
		for range calls {
			mod := []string{"blocks.0.fc", "blocks.1.proj", "m.q", "q"}[rng.IntN(4)]
			k := fx.k[mod]
			if k == 0 {
				k = p.k
			}
			plan[g] = append(plan[g], call{mod, to32(gauss(rng, k, 1)), rng.IntN(4) - 1})
		}
	}
	do := func(c call) ([]float32, *model.Linear, error) {
		mm := m
		if c.mod == "m.q" || c.mod == "q" {
			mm = base
		}
		l, err := mm.Linear(c.mod)
		if err != nil {
			return nil, nil, err
		}
		d, _ := l.Dims()
		y := make([]float32, d)
		if mm == base && c.ad >= 0 {
			lr, err := ads[c.ad].LoRA(c.mod)
			if err != nil {
				return nil, nil, err
			}
			return y, l, l.ForwardAdapter(y, c.x, lr)
		}
		return y, l, l.Forward(y, c.x)
	}
	// Concurrently first (so that the first Linear and LoRA calls race),
	// then sequentially.
	got := make([][][]float32, G)
	layers := make([][]*model.Linear, G)
	var wg sync.WaitGroup
	for g := range G {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range plan[g] {
				y, l, err := do(c)
				if err != nil {
					t.Error(err)
					return
				}
				got[g] = append(got[g], y)
				layers[g] = append(layers[g], l)
			}
		}()
	}
	// A batch with an adapter per row, concurrently with the rest.
	wg.Add(1)
	go func() {
		defer wg.Done()
		l, _ := base.Linear("q")
		X, _ := lowrank.NewMatrix(8, p.k, to32(gauss(rand.New(rand.NewPCG(2, 2)), 8*p.k, 1)))
		per := make([]*model.LoRA, 8)
		for i := range per {
			per[i], _ = ads[i%3].LoRA("q")
		}
		for range 20 {
			Y, _ := lowrank.NewMatrix[float32](8, p.d, nil)
			if err := l.ForwardBatchAdapters(Y, X, per); err != nil {
				t.Error(err)
				return
			}
			for i := range 8 {
				y := make([]float32, p.d)
				l.ForwardAdapter(y, X.Row(i), per[i])
				if e := relDiff(Y.Row(i), y); e > 1e-6 {
					t.Errorf("batch row %d off by %.3g", i, e)
				}
			}
		}
	}()
	wg.Wait()
	if t.Failed() {
		return
	}
	for g := range G {
		for i, c := range plan[g] {
			y, l, err := do(c)
			if err != nil {
				t.Fatal(err)
			}
			if l != layers[g][i] {
				t.Errorf("goroutine %d call %d: a different layer for %q", g, i, c.mod)
			}
			if e := relDiff(got[g][i], y); e > 1e-6 {
				t.Errorf("goroutine %d call %d (%s, adapter %d): concurrent answer off by %.3g from the sequential one", g, i, c.mod, c.ad, e)
			}
		}
	}
}
