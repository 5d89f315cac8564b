package model_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// benchFiles writes a 1024×1024 layer stored as rank-64 factors with a
// bias, and a rank-8 PEFT adapter for it.
func benchFiles(b *testing.B) (string, string) {
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	const d, k, r, ra = 1024, 1024, 64, 8
	base := filepath.Join(dir, "base.safetensors")
	writeST(b, base, nil,
		tensor{name: "fc.weight.A", dt: safetensors.F32, shape: []int{r, k}, vals: gauss(rng, r*k, 0.03)},
		tensor{name: "fc.weight.B", dt: safetensors.F32, shape: []int{d, r}, vals: gauss(rng, d*r, 0.03)},
		tensor{name: "fc.bias", dt: safetensors.F32, shape: []int{d}, vals: gauss(rng, d, 1)})
	ad := filepath.Join(dir, "ad")
	os.Mkdir(ad, 0o755)
	os.WriteFile(filepath.Join(ad, model.PEFTConfigName), []byte(`{"peft_type":"LORA","r":8,"lora_alpha":16}`), 0o644)
	writeST(b, filepath.Join(ad, model.PEFTWeightsName), nil,
		tensor{name: model.PEFTKey("fc", "A"), dt: safetensors.F32, shape: []int{ra, k}, vals: gauss(rng, ra*k, 0.03)},
		tensor{name: model.PEFTKey("fc", "B"), dt: safetensors.F32, shape: []int{d, ra}, vals: gauss(rng, d*ra, 0.03)})
	return base, ad
}

// BenchmarkForward compares the factorized layer alone, with an adapter
// applied unmerged, and a batch of 32 rows with an adapter per row (four
// adapters' worth of rows, one adapter here), on the default backend.
func BenchmarkForward(b *testing.B) {
	basePath, adPath := benchFiles(b)
	m, err := model.Open(basePath)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ad, err := model.OpenAdapterWith(adPath, model.AdapterOptions{Base: m})
	if err != nil {
		b.Fatal(err)
	}
	defer ad.Close()
	l, _ := m.Linear("fc")
	lr, _ := ad.LoRA("fc")
	x, y := make([]float32, 1024), make([]float32, 1024)
	for i := range x {
		x[i] = float32(i%13) - 6
	}
	b.Run("base", func(b *testing.B) {
		for b.Loop() {
			if err := l.Forward(y, x); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("adapter", func(b *testing.B) {
		for b.Loop() {
			if err := l.ForwardAdapter(y, x, lr); err != nil {
				b.Fatal(err)
			}
		}
	})
	X, _ := lowrank.NewMatrix[float32](32, 1024, nil)
	for i := range X.Data {
		X.Data[i] = float32(i%11) - 5
	}
	Y, _ := lowrank.NewMatrix[float32](32, 1024, nil)
	per := make([]*model.LoRA, 32)
	for i := range per {
		if i%2 == 0 {
			per[i] = lr
		}
	}
	b.Run("batch32-per-row", func(b *testing.B) {
		for b.Loop() {
			if err := l.ForwardBatchAdapters(Y, X, per); err != nil {
				b.Fatal(err)
			}
		}
	})
}
