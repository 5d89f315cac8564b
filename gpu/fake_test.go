//go:build cgo

package gpu_test

// Tests of the cuda backend over the functional fake of
// internal/testkit/fakecuda: the whole engine runs on the host through the
// real trampolines, so these run on CI without a GPU.

import (
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/gpu"
	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/internal/testkit/fakecuda"
	"github.com/lowrank-go/lowrank/internal/testkit/testla"
	"github.com/lowrank-go/lowrank/internal/testkit/testlowrank"
)

const fakeDir = "/fake/cuda/lib"

// fakeGPU returns a cuda backend with its own device over a fresh fake
// installation f (a complete CUDA 13 one when f has no Files). At the end
// of the test it closes the device and checks that the fake saw no
// violation of the CUDA contract and that nothing is left: no device or
// pinned memory, no event, handle or context reference.
func fakeGPU(t *testing.T, f *fakecuda.Fake) *gpu.Backend {
	t.Helper()
	if f.Files == nil {
		f.Files = fakecuda.CUDA13(fakeDir)
	}
	t.Setenv(cuda.LibDirEnv, fakeDir)
	t.Setenv(gpu.SolverEnv, "")
	t.Setenv(gpu.FusedEnv, "")
	f.Install()
	b := gpu.NewWithLoader(f)
	if err := b.Init(); err != nil {
		t.Fatalf("Init over the fake: %v", err)
	}
	base := cuda.LiveAllocations()
	t.Cleanup(func() {
		fakecuda.ClearFaults()
		if got := cuda.LiveAllocations(); got != base {
			t.Errorf("cuda.LiveAllocations = %d at the end; want %d", got, base)
		}
		b.CloseDevice()
		checkClean(t)
	})
	return b
}

// checkClean fails t if the fake recorded a violation or holds anything
// after the device was closed.
func checkClean(t *testing.T) {
	t.Helper()
	if v := fakecuda.Violations(); len(v) > 0 {
		t.Errorf("the fake saw %d violations of the CUDA contract:\n%s", len(v), strings.Join(v, "\n"))
	}
	if n, p, e, h, r := fakecuda.LiveAllocations(), fakecuda.PinnedAllocations(), fakecuda.Events(), fakecuda.Handles(), fakecuda.Retained(); n+p+e+h+r != 0 {
		t.Errorf("after Close: %d allocations, %d pinned buffers, %d events, %d handles, %d context references; want none", n, p, e, h, r)
	}
}

// TestFakeConformance runs the conformance suite on the cuda backend over
// the fake: every engine call's row-major/column-major mapping, the
// solvers' layouts and the whole library on top of them.
// With -short only the engine part runs (every primitive, both types);
// the library part takes about 20 s of reference loops.
func TestFakeConformance(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	if testing.Short() {
		t.Run("engine/float64", func(t *testing.T) { testla.EngineTest(t, b.Float64()) })
		t.Run("engine/float32", func(t *testing.T) { testla.EngineTest(t, b.Float32()) })
		return
	}
	testlowrank.Run(t, b)
}

// TestFakeApplyBatchBiasStaging is the regression test of a race in the
// batched Apply with a bias: the first call copied the column of ones
// through the pinned staging buffer while the inputs staged there were
// still being copied to the device, so on a GPU x could arrive as ones.
// The fake checks that no host buffer changes while a copy from it is in
// flight (checkClean fails the test otherwise).
func TestFakeApplyBatchBiasStaging(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	const d, r, k, n = 9, 3, 7, 4
	bm, am := randMatrix[float64](d, r, 1), randMatrix[float64](r, k, 2)
	app, err := b.Float64().NewApplier(d, r, k, bm.Data, am.Data)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	x := randMatrix[float64](n, k, 3).Data
	bias := randMatrix[float64](1, d, 4).Data
	y := make([]float64, n*d)
	if err := app.Apply(y, x, n, bias); err != nil {
		t.Fatal(err)
	}
	want := denseApply(bm.Data, am.Data, x, bias, d, r, k, n)
	if dd := relDiff(y, want); dd > 1e-12 {
		t.Errorf("first batched Apply with a bias differs from B·A·x + bias by %.3g", dd)
	}
	if v := fakecuda.Violations(); len(v) > 0 {
		t.Errorf("violations: %q", v)
	}
}

// denseApply returns the n×d rows B·(A·xᵢ) + bias computed on the host.
func denseApply(b, a, x, bias []float64, d, r, k, n int) []float64 {
	y := make([]float64, n*d)
	for v := range n {
		t := make([]float64, r)
		for i := range r {
			for j := range k {
				t[i] += a[i*k+j] * x[v*k+j]
			}
		}
		for i := range d {
			s := 0.0
			if bias != nil {
				s = bias[i]
			}
			for j := range r {
				s += b[i*r+j] * t[j]
			}
			y[v*d+i] = s
		}
	}
	return y
}

// TestFakeCrossCheckCPU compares the cuda backend over the fake with the
// CPU backend: same seed, same factors up to rounding.
func TestFakeCrossCheckCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the cross-check factorizes 400×300 matrices with reference loops")
	}
	b := fakeGPU(t, &fakecuda.Fake{})
	testlowrank.CrossCheck(t, b, cpu.New())
}

// TestFakeLargeTransfers moves more than one pinned staging buffer
// (cuda.StageBytes) each way, so that the double-buffered pipeline of
// CopyHtoD and CopyDtoH runs over several chunks under the fake's
// asynchronous-copy checks, and applies a batch too large to stage.
func TestFakeLargeTransfers(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	e := b.Float64()
	const rows, cols = 1100, 2001 // 17.6 MB: three chunks, the last partial
	w := randMatrix[float64](rows, cols, 21)
	m, err := e.Upload(rows, cols, w.Data)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free(m)
	got := make([]float64, rows*cols)
	if err := e.Download(got, m); err != nil {
		t.Fatal(err)
	}
	if relDiff(got, w.Data) != 0 {
		t.Errorf("round trip of %d×%d changed the data", rows, cols)
	}
	v, err := e.View(m, 3, rows-2, 5, cols-7) // not contiguous: packed on the device first
	if err != nil {
		t.Fatal(err)
	}
	vr, vc := v.Dims()
	part := make([]float64, vr*vc)
	if err := e.Download(part, v); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < vr; i += 97 {
		for j := 0; j < vc; j += 89 {
			if part[i*vc+j] != w.Data[(i+3)*cols+j+5] {
				t.Fatalf("view [%d,%d] = %v, want %v", i, j, part[i*vc+j], w.Data[(i+3)*cols+j+5])
			}
		}
	}

	const d, r, k, n = 1000, 4, 900, 600 // n·(k+d)·8 bytes > StageBytes
	bm, am := randMatrix[float64](d, r, 22), randMatrix[float64](r, k, 23)
	app, err := e.NewApplier(d, r, k, bm.Data, am.Data)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	x := randMatrix[float64](n, k, 24).Data
	bias := randMatrix[float64](1, d, 25).Data
	y := make([]float64, n*d)
	if err := app.Apply(y, x, n, bias); err != nil {
		t.Fatal(err)
	}
	if dd := relDiff(y, denseApply(bm.Data, am.Data, x, bias, d, r, k, n)); dd > 1e-12 {
		t.Errorf("unstaged batch differs from B·A·x + bias by %.3g", dd)
	}
}

// TestFakeApplyAllocationFree checks on the fake what TestApplyAllocationFree
// checks on a GPU: a warm Apply allocates nothing on the Go heap.
func TestFakeApplyAllocationFree(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	app, err := b.Float32().NewApplier(64, 8, 48, randMatrix[float32](64, 8, 1).Data, randMatrix[float32](8, 48, 2).Data)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	for _, n := range []int{1, 16} {
		x, y, bias := make([]float32, n*48), make([]float32, n*64), make([]float32, 64)
		if err := app.Apply(y, x, n, bias); err != nil {
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(50, func() { _ = app.Apply(y, x, n, bias) }); a != 0 {
			t.Errorf("n=%d: Apply allocates %v times per call", n, a)
		}
	}
}

// TestFakeCrossCheckShapes and TestFakeOutOfMemory run the GPU tests
// TestCrossCheckShapes and TestOutOfMemoryReal over the fake, so that
// their own logic is checked on CI before a GPU runs them.
func TestFakeCrossCheckShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: reference loops on 400×90 matrices")
	}
	b := fakeGPU(t, &fakecuda.Fake{})
	crossCheckShapes[float64](t, b, 1e-9)
	crossCheckShapes[float32](t, b, 2e-3)
}

func TestFakeOutOfMemory(t *testing.T) {
	testOutOfMemory(t, fakeGPU(t, &fakecuda.Fake{MemLimit: 256 << 20}))
}
