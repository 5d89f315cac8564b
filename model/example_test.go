package model_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// exampleDir writes what the examples read: small.safetensors, a model
// whose blocks.0.fc is stored as rank-1 factors (with a bias) and whose
// head is dense, as lowrank factorize writes one; and my-adapter, a PEFT
// adapter for blocks.0.fc.
func exampleDir() string {
	dir, err := os.MkdirTemp("", "lowrank-example")
	if err != nil {
		log.Fatal(err)
	}
	w, err := model.Create(filepath.Join(dir, "small.safetensors"))
	if err != nil {
		log.Fatal(err)
	}
	// blocks.0.fc.weight = B·A = [1 2; 2 4; 3 6], exactly rank 1.
	b, _ := lowrank.NewMatrix(3, 1, []float32{1, 2, 3})
	a, _ := lowrank.NewMatrix(1, 2, []float32{1, 2})
	f, _ := lowrank.NewFactors(b, a)
	f.SetRecorded(0, 1)
	f.Policy = lowrank.Rank(1)
	must(model.AddFactors(w, "blocks.0.fc.weight", f, safetensors.F32))
	head, _ := lowrank.NewMatrix(2, 3, []float32{1, 0, 0, 0, 1, 1})
	must(model.AddDense(w, "head.weight", head, safetensors.F32))
	must(w.CopyFrom("blocks.0.fc.bias", safetensors.F32, []int{3}, f32bytes(0.5, 0.5, 0.5)))
	must(w.Close())

	ad := filepath.Join(dir, "my-adapter")
	must(os.Mkdir(ad, 0o755))
	must(os.WriteFile(filepath.Join(ad, model.PEFTConfigName), []byte(`{"peft_type":"LORA","r":1,"lora_alpha":2}`), 0o644))
	aw, err := safetensors.Create(filepath.Join(ad, model.PEFTWeightsName), safetensors.WriterOptions{})
	must(err)
	must(aw.WriteFloat32(model.PEFTKey("blocks.0.fc", "A"), safetensors.F32, []int{1, 2}, []float32{1, 0}))
	must(aw.WriteFloat32(model.PEFTKey("blocks.0.fc", "B"), safetensors.F32, []int{3, 1}, []float32{0, 0, 1}))
	must(aw.Close())
	return dir
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// f32bytes returns the raw F32 bytes of v.
func f32bytes(v ...float32) *bytes.Reader {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return bytes.NewReader(b)
}

// Open reads the header only; Names lists the modules, dense or
// factorized, and Info what the header says of each.
func ExampleOpen() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	m, err := model.Open(filepath.Join(dir, "small.safetensors"))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	for _, name := range m.Names() {
		li, _ := m.Info(name)
		fmt.Printf("%s: %d×%d rank %d bias %q\n", name, li.D, li.K, li.Rank, li.Bias)
	}
	// Output:
	// blocks.0.fc: 3×2 rank 1 bias "blocks.0.fc.bias"
	// head: 2×3 rank 0 bias ""
}

// Linear reads a module's tensors (once); Forward computes y = W·x + b,
// here with W stored as factors: y = B·(A·x) + b.
func ExampleLayer_Forward() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	m, err := model.Open(filepath.Join(dir, "small.safetensors"))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fc, err := m.Linear("blocks.0.fc")
	if err != nil {
		log.Fatal(err)
	}
	y := make([]float32, 3)
	if err := fc.Forward(y, []float32{1, 1}); err != nil {
		log.Fatal(err)
	}
	f := fc.Factors()
	fmt.Println(y)
	fmt.Printf("rank %d, recorded error %g, energy %g\n", fc.Rank(), f.RelError, f.Energy)
	// Output:
	// [3.5 6.5 9.5]
	// rank 1, recorded error 0, energy 1
}

// ForwardBatch takes one input per row of X, as PyTorch's Linear does;
// Linear64 computes in float64.
func ExampleLayer_ForwardBatch() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	m, err := model.Open(filepath.Join(dir, "small.safetensors"))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	head, err := m.Linear64("head")
	if err != nil {
		log.Fatal(err)
	}
	X, _ := lowrank.NewMatrix(2, 3, []float64{
		1, 2, 3,
		4, 5, 6,
	})
	Y, _ := lowrank.NewMatrix[float64](2, 2, nil)
	if err := head.ForwardBatch(Y, X); err != nil {
		log.Fatal(err)
	}
	fmt.Println(Y.Row(0), Y.Row(1))
	// Output:
	// [1 5] [4 11]
}

// A Writer writes factors as lowrank factorize does: NAME.A, NAME.B and
// their record in the "lowrank" metadata.
func ExampleCreate() {
	dir, _ := os.MkdirTemp("", "lowrank-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "small.safetensors")

	W, _ := lowrank.NewMatrix(4, 3, []float32{
		1, 2, 3,
		2, 4, 6,
		3, 6, 9,
		4, 8, 12,
	})
	f, err := lowrank.Factorize(W, lowrank.Rank(1))
	if err != nil {
		log.Fatal(err)
	}
	w, err := model.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := model.AddFactors(w, "layer.weight", f, safetensors.F32); err != nil {
		w.Abort()
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	m, err := model.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	rec := m.Recorded()
	fmt.Println(rec.Policy, rec.Tensors["layer.weight"].Shape, rec.Tensors["layer.weight"].Rank)
	// Output:
	// rank=1 [4 3] 1
}

// OpenAdapter reads a PEFT folder's config and keys; each module has its
// rank and scaling (lora_alpha/r here).
func ExampleOpenAdapter() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	ad, err := model.OpenAdapter(filepath.Join(dir, "my-adapter"))
	if err != nil {
		log.Fatal(err)
	}
	defer ad.Close()
	for _, m := range ad.Modules() {
		fmt.Printf("%s: rank %d, scale %g\n", m.Module, m.Rank, m.Scale)
	}
	// Output:
	// blocks.0.fc: rank 1, scale 2
}

// ForwardAdapter applies an adapter without merging it: y = W·x + b +
// scale·B·(A·x). The adapter is chosen per call, so that one base serves
// many.
func ExampleLayer_ForwardAdapter() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	base, err := model.Open(filepath.Join(dir, "small.safetensors"))
	if err != nil {
		log.Fatal(err)
	}
	defer base.Close()
	ad, err := model.OpenAdapterWith(filepath.Join(dir, "my-adapter"), model.AdapterOptions{Base: base})
	if err != nil {
		log.Fatal(err)
	}
	defer ad.Close()
	fc, _ := base.Linear("blocks.0.fc")
	lora, err := ad.LoRA("blocks.0.fc")
	if err != nil {
		log.Fatal(err)
	}
	y := make([]float32, 3)
	if err := fc.ForwardAdapter(y, []float32{1, 1}, lora); err != nil {
		log.Fatal(err)
	}
	fmt.Println("with the adapter:", y)
	if err := fc.ForwardAdapter(y, []float32{1, 1}, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Println("base alone:      ", y)
	// Output:
	// with the adapter: [3.5 6.5 11.5]
	// base alone:       [3.5 6.5 9.5]
}

// ForwardBatchAdapters serves a batch whose rows name their own adapters
// (nil: none) in one pass over the base and one per adapter.
func ExampleLayer_ForwardBatchAdapters() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	base, _ := model.Open(filepath.Join(dir, "small.safetensors"))
	defer base.Close()
	ad, _ := model.OpenAdapterWith(filepath.Join(dir, "my-adapter"), model.AdapterOptions{Base: base})
	defer ad.Close()
	fc, _ := base.Linear("blocks.0.fc")
	lora, _ := ad.LoRA("blocks.0.fc")

	X, _ := lowrank.NewMatrix(3, 2, []float32{
		1, 1,
		1, 1,
		2, 0,
	})
	Y, _ := lowrank.NewMatrix[float32](3, 3, nil)
	if err := fc.ForwardBatchAdapters(Y, X, []*model.LoRA{lora, nil, lora}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(Y.Row(0), Y.Row(1), Y.Row(2))
	// Output:
	// [3.5 6.5 11.5] [3.5 6.5 9.5] [2.5 4.5 10.5]
}

// A kohya LoRA file names modules PREFIX_path_with_underscores: it is
// opened against its base, whose module names the names map to (exactly;
// a name two modules or two prefixes could claim is an error).
func ExampleOpenAdapterWith() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	lora := filepath.Join(dir, "lora.safetensors")
	w, _ := safetensors.Create(lora, safetensors.WriterOptions{})
	must(w.WriteFloat32("lora_unet_blocks_0_fc.alpha", safetensors.F16, []int{}, []float32{4}))
	must(w.WriteFloat32("lora_unet_blocks_0_fc.lora_down.weight", safetensors.F16, []int{2, 2}, []float32{1, 0, 0, 1}))
	must(w.WriteFloat32("lora_unet_blocks_0_fc.lora_up.weight", safetensors.F16, []int{3, 2}, []float32{0, 0, 0, 0, 1, 0}))
	must(w.Close())

	base, err := model.Open(filepath.Join(dir, "small.safetensors"))
	if err != nil {
		log.Fatal(err)
	}
	defer base.Close()
	ad, err := model.OpenAdapterWith(lora, model.AdapterOptions{Base: base, KohyaPrefixes: []string{"lora_unet"}})
	if err != nil {
		log.Fatal(err)
	}
	defer ad.Close()
	for _, m := range ad.Modules() {
		fmt.Printf("%s → %s: rank %d, scale %g (alpha/r)\n", m.A.Name, m.Module, m.Rank, m.Scale)
	}
	// Output:
	// lora_unet_blocks_0_fc.lora_down.weight → blocks.0.fc: rank 2, scale 2 (alpha/r)
}

// Save writes factors and the tensors beside them in one call.
func ExampleSave() {
	dir, _ := os.MkdirTemp("", "lowrank-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "saved.safetensors")

	W, _ := lowrank.NewMatrix(4, 3, []float32{
		1, 2, 3,
		2, 4, 6,
		3, 6, 9,
		4, 8, 12,
	})
	f, err := lowrank.Factorize(W, lowrank.Rank(1))
	if err != nil {
		log.Fatal(err)
	}
	err = model.Save(path, model.Tensors[float32]{
		Factors: map[string]*lowrank.Factors[float32]{"fc.weight": f},
		Vectors: map[string][]float32{"fc.bias": {1, 1, 1, 1}},
	}, safetensors.F32)
	if err != nil {
		log.Fatal(err)
	}

	m, err := model.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fc, err := m.Linear("fc")
	if err != nil {
		log.Fatal(err)
	}
	y := make([]float32, 4)
	if err := fc.Forward(y, []float32{1, 0, 0}); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%.0f\n", y)
	// Output:
	// [2 3 4 5]
}
