//go:build cgo

package gpu_test

// The model package on the cuda backend over the fake CUDA: layers of a
// factorized model (factors and tensors kept dense) and LoRA adapters
// applied unmerged compute on the device, stay resident between calls,
// agree with the CPU, and give their device memory back on Close; a dense
// layer that does not fit falls back to the CPU.

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/internal/testkit/fakecuda"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// modelFiles writes a factorized model (fc: factors with a bias; proj:
// dense) and a PEFT adapter for both, and returns their paths.
func modelFiles(t *testing.T) (base, adapter string) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(4, 2))
	g := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return v
	}
	base = filepath.Join(dir, "base.safetensors")
	w, err := safetensors.Create(base, safetensors.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		name  string
		shape []int
	}{{"fc.weight.A", []int{4, 24}}, {"fc.weight.B", []int{40, 4}}, {"fc.bias", []int{40}}, {"proj.weight", []int{24, 40}}, {"proj.bias", []int{24}}} {
		n := 1
		for _, d := range x.shape {
			n *= d
		}
		if err := w.WriteFloat64(x.name, safetensors.F32, x.shape, g(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	adapter = filepath.Join(dir, "ad")
	os.Mkdir(adapter, 0o755)
	os.WriteFile(filepath.Join(adapter, model.PEFTConfigName), []byte(`{"peft_type":"LORA","r":3,"lora_alpha":6}`), 0o644)
	aw, err := safetensors.Create(filepath.Join(adapter, model.PEFTWeightsName), safetensors.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		name  string
		shape []int
	}{{model.PEFTKey("fc", "A"), []int{3, 24}}, {model.PEFTKey("fc", "B"), []int{40, 3}}, {model.PEFTKey("proj", "A"), []int{3, 40}}, {model.PEFTKey("proj", "B"), []int{24, 3}}} {
		if err := aw.WriteFloat64(x.name, safetensors.F32, x.shape, g(x.shape[0]*x.shape[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return base, adapter
}

// forwardAll runs every layer with and without the adapter, one vector
// and a batch with an adapter per row, and returns the outputs.
func forwardAll(t *testing.T, m *model.Model, ad *model.Adapter) [][]float32 {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	var out [][]float32
	for _, name := range m.Names() {
		l, err := m.Linear(name)
		if err != nil {
			t.Fatal(err)
		}
		lr, err := ad.LoRA(name)
		if err != nil {
			t.Fatal(err)
		}
		d, k := l.Dims()
		x := make([]float32, k)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		y, ya := make([]float32, d), make([]float32, d)
		if err := l.Forward(y, x); err != nil {
			t.Fatal(err)
		}
		if err := l.ForwardAdapter(ya, x, lr); err != nil {
			t.Fatal(err)
		}
		X, _ := lowrank.NewMatrix[float32](5, k, nil)
		for i := range X.Data {
			X.Data[i] = float32(rng.NormFloat64())
		}
		Y, _ := lowrank.NewMatrix[float32](5, d, nil)
		if err := l.ForwardBatchAdapters(Y, X, []*model.LoRA{lr, nil, lr, lr, nil}); err != nil {
			t.Fatal(err)
		}
		out = append(out, y, ya, Y.Data)
	}
	return out
}

func TestFakeModelLayers(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	warm(t, b)
	basePath, adPath := modelFiles(t)
	open := func(be lowrank.Backend) (*model.Model, *model.Adapter) {
		m, err := model.OpenWith(basePath, model.Options{Backend: be})
		if err != nil {
			t.Fatal(err)
		}
		ad, err := model.OpenAdapterWith(adPath, model.AdapterOptions{Base: m})
		if err != nil {
			t.Fatal(err)
		}
		return m, ad
	}
	cm, cad := open(cpu.New())
	want := forwardAll(t, cm, cad)
	cm.Close()
	cad.Close()

	u := usageNow()
	m, ad := open(b)
	fakecuda.ResetCalls()
	got := forwardAll(t, m, ad)
	for i := range got {
		if e := relDiff(got[i], want[i]); e > 1e-5 {
			t.Errorf("output %d on the fake GPU off by %.3g from the CPU", i, e)
		}
	}
	if n := fakecuda.Calls("cublasS*"); n == 0 {
		t.Error("no cuBLAS call: the layers did not run on the device")
	}
	// Resident: the factors (fc, both adapters' B and A) and proj's W
	// stay on the device between calls; another round uploads none again.
	held := usageNow()
	if held.fake <= u.fake {
		t.Errorf("device allocations %d after Forward, %d before: nothing resident", held.fake, u.fake)
	}
	fakecuda.ResetCalls()
	forwardAll(t, m, ad)
	if now := usageNow(); now.fake != held.fake {
		t.Errorf("a second round changed the device allocations from %d to %d", held.fake, now.fake)
	}
	if err := ad.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	checkReleased(t, "after Close of the model and the adapter", u)
}

// A dense layer whose weight does not fit on the device runs on the CPU,
// with the same results, and says why in the log.
func TestFakeModelDenseFallback(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	warm(t, b)
	basePath, _ := modelFiles(t)
	cm, _ := model.OpenWith(basePath, model.Options{Backend: cpu.New()})
	defer cm.Close()
	cl, _ := cm.Linear("proj")
	x := make([]float32, 40)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	want := make([]float32, 24)
	cl.Forward(want, x)

	log := captureLog(t)
	m, err := model.OpenWith(basePath, model.Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, _ := m.Linear("proj")
	u := usageNow()
	fakecuda.SetFaults(fakecuda.Fault{Call: "cuMemAlloc_v2", Nth: 1, Status: fakecuda.CudaErrorOutOfMemory})
	y := make([]float32, 24)
	if err := l.Forward(y, x); err != nil {
		t.Fatal(err)
	}
	fakecuda.ClearFaults()
	if e := relDiff(y, want); e > 1e-6 {
		t.Errorf("fallback off by %.3g", e)
	}
	if !strings.Contains(log.String(), "24×40 dense") {
		t.Errorf("no fallback logged: %q", log.String())
	}
	if now := usageNow(); now.fake != u.fake {
		t.Errorf("device allocations %d after the fallback; want %d", now.fake, u.fake)
	}
}
