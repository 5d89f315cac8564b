//go:build cgo

package gpu_test

// Tests that need a GPU. Each starts with requireGPU, which skips with the
// reason when none is usable (and fails under LOWRANK_REQUIRE_GPU=1, as
// scripts/gpu-check.sh runs them).

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/gpu"
	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/internal/testkit/testlowrank"
	"github.com/lowrank-go/lowrank/la"
)

func TestDescribe(t *testing.T) {
	b := requireGPU(t)
	lines := strings.Join(b.Describe(), "\n")
	t.Logf("cuda backend:\n%s", lines)
	for _, w := range []string{"device 0: ", "compute capability", "memory: ", "driver: CUDA ", "cuBLAS ", "cuSOLVER ", "exact SVD: "} {
		if !strings.Contains(lines, w) {
			t.Errorf("Describe lacks %q", w)
		}
	}
	if !strings.Contains(lines, "NVRTC ") {
		t.Errorf("NVRTC is not loaded; the fused kernel cannot be tested")
	}
}

// TestConformance runs the whole conformance suite on the GPU.
func TestConformance(t *testing.T) {
	testlowrank.Run(t, requireGPU(t))
}

// TestCrossCheckCPU compares every result with the CPU backend: same seed,
// same randomized factors up to rounding.
func TestCrossCheckCPU(t *testing.T) {
	testlowrank.CrossCheck(t, requireGPU(t), cpu.New())
}

func randMatrix[T lowrank.Float](d, k int, seed uint64) lowrank.Matrix[T] {
	rng := rand.New(rand.NewPCG(seed, 7))
	m := lowrank.Matrix[T]{Rows: d, Cols: k, Data: make([]T, d*k)}
	for i := range m.Data {
		m.Data[i] = T(rng.NormFloat64())
	}
	return m
}

func relDiff[T lowrank.Float](a, b []T) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// TestSolvers checks each cuSOLVER routine, on wide, tall and square
// matrices in both types, against the CPU's SVD.
func TestSolvers(t *testing.T) {
	b := requireGPU(t)
	defer b.SetSolver(gpu.SolverAuto)
	for _, s := range []gpu.Solver{gpu.SolverGesvd, gpu.SolverGesvdj, gpu.SolverGesvdp} {
		for _, shape := range [][2]int{{60, 60}, {90, 40}, {40, 90}, {1, 17}, {17, 1}, {1300, 70}} {
			t.Run(fmt.Sprintf("%v/%dx%d", s, shape[0], shape[1]), func(t *testing.T) {
				b.SetSolver(s)
				checkSVDAgainstCPU[float64](t, b, shape[0], shape[1], 1e-10)
				checkSVDAgainstCPU[float32](t, b, shape[0], shape[1], 2e-4)
			})
		}
	}
}

func checkSVDAgainstCPU[T lowrank.Float](t *testing.T, b lowrank.Backend, d, k int, tol float64) {
	t.Helper()
	w := randMatrix[T](d, k, uint64(d*1000+k))
	g, err := lowrank.SVD(w, lowrank.WithBackend(b))
	if err != nil {
		t.Fatalf("%T: %v", w.Data, err)
	}
	c, err := lowrank.SVD(w, lowrank.WithBackend(cpu.New()))
	if err != nil {
		t.Fatal(err)
	}
	if dd := relDiff(g.S, c.S); dd > tol {
		t.Errorf("%T: singular values differ from the CPU's by %.3g", w.Data, dd)
	}
	// Reconstruction U·S·Vt = W.
	p := len(g.S)
	rec := make([]T, d*k)
	for i := range d {
		for j := range k {
			var s float64
			for l := range p {
				s += float64(g.U.Data[i*p+l]) * float64(g.S[l]) * float64(g.Vt.Data[l*k+j])
			}
			rec[i*k+j] = T(s)
		}
	}
	if dd := relDiff(rec, w.Data); dd > tol*10 {
		t.Errorf("%T: ‖U·S·Vt − W‖/‖W‖ = %.3g", w.Data, dd)
	}
	// Orthonormal columns of U and rows of Vt.
	for _, q := range []struct {
		name         string
		data         []T
		n, stride, e int // n vectors of length e: element l of vector i at i*stride... (see below)
	}{{"U", g.U.Data, p, 1, d}, {"Vt", g.Vt.Data, p, k, k}} {
		worst := 0.0
		for i := range q.n {
			for j := range q.n {
				var s float64
				for l := range q.e {
					var x, y T
					if q.name == "U" {
						x, y = q.data[l*p+i], q.data[l*p+j]
					} else {
						x, y = q.data[i*k+l], q.data[j*k+l]
					}
					s += float64(x) * float64(y)
				}
				if i == j {
					s--
				}
				worst = max(worst, math.Abs(s))
			}
		}
		if worst > tol*10 {
			t.Errorf("%T: %s is not orthonormal: %.3g", w.Data, q.name, worst)
		}
	}
}

// TestApplyPaths compares the cuBLAS path, the fused kernel and the CPU.
func TestApplyPaths(t *testing.T) {
	b := requireGPU(t)
	defer b.SetFusedApply(false)
	testApplyPaths[float32](t, b, 2e-5)
	testApplyPaths[float64](t, b, 1e-12)
}

func testApplyPaths[T lowrank.Float](t *testing.T, b *gpu.Backend, tol float64) {
	var e la.Engine[T]
	var z T
	if _, ok := any(z).(float32); ok {
		e = any(b.Float32()).(la.Engine[T])
	} else {
		e = any(b.Float64()).(la.Engine[T])
	}
	ce := cpu.New()
	var ref la.Engine[T]
	if _, ok := any(z).(float32); ok {
		ref = any(ce.Float32()).(la.Engine[T])
	} else {
		ref = any(ce.Float64()).(la.Engine[T])
	}
	for _, sh := range [][3]int{{300, 16, 200}, {4096, 64, 4096}, {1000, 700, 33}} {
		d, r, k := sh[0], sh[1], sh[2]
		bm := randMatrix[T](d, r, 1)
		am := randMatrix[T](r, k, 2)
		bias := randMatrix[T](1, d, 3).Data
		want, err := ref.NewApplier(d, r, k, bm.Data, am.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, fused := range []bool{false, true} {
			b.SetFusedApply(fused)
			app, err := e.NewApplier(d, r, k, bm.Data, am.Data)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 3, 64, 100} {
				for _, withBias := range []bool{false, true} {
					x := randMatrix[T](n, k, uint64(n)).Data
					var bs []T
					if withBias {
						bs = bias
					}
					got := make([]T, n*d)
					exp := make([]T, n*d)
					if err := app.Apply(got, x, n, bs); err != nil {
						t.Fatalf("%T d=%d r=%d k=%d n=%d fused=%v: %v", z, d, r, k, n, fused, err)
					}
					if err := want.Apply(exp, x, n, bs); err != nil {
						t.Fatal(err)
					}
					if dd := relDiff(got, exp); dd > tol*math.Sqrt(float64(k+r)) {
						t.Errorf("%T d=%d r=%d k=%d n=%d bias=%v fused=%v: differs from the CPU by %.3g", z, d, r, k, n, withBias, fused, dd)
					}
				}
			}
			if fused && n64Fits(r, z) {
				if err := gpu.FusedError(app); err != nil {
					t.Errorf("fused kernel unavailable: %v", err)
				}
			}
			if err := app.Close(); err != nil {
				t.Error(err)
			}
			if err := app.Apply(make([]T, d), make([]T, k), 1, nil); err == nil {
				t.Error("Apply after Close succeeded")
			}
		}
	}
}

// n64Fits reports whether the fused kernel takes a batch of 64 at rank r.
func n64Fits[T lowrank.Float](r int, z T) bool {
	size := 8
	if _, ok := any(z).(float32); ok {
		size = 4
	}
	return 64*r*size <= 48<<10
}

// TestNoLeaks repeats every operation and checks that device memory
// returns to where it started.
func TestNoLeaks(t *testing.T) {
	b := requireGPU(t)
	w := randMatrix[float32](300, 200, 9)
	run := func() {
		for _, m := range []lowrank.Method{lowrank.Exact, lowrank.Randomized} {
			f, err := lowrank.Factorize(w, lowrank.Rank(20), lowrank.WithBackend(b), lowrank.WithMethod(m))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Apply(make([]float32, 200), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := f.ApplyBatch(randMatrix[float32](8, 200, 1), nil); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := lowrank.Factorize(w, lowrank.Energy(0.9), lowrank.WithBackend(b)); err != nil {
			t.Fatal(err)
		}
	}
	run() // warm up: staging buffers, kernels
	base := gpu.LiveAllocations()
	for range 20 {
		run()
	}
	if got := gpu.LiveAllocations(); got != base {
		t.Errorf("%d device allocations leaked over 20 rounds", got-base)
	}
}

// TestOutOfMemoryFallsBack makes the workspace plan fail and checks that
// lowrank reruns on the CPU and says why.
func TestOutOfMemoryFallsBack(t *testing.T) {
	b := requireGPU(t)
	old := gpu.SetMemoryLimitForTest(1 << 20)
	defer gpu.SetMemoryLimitForTest(old)
	w := randMatrix[float64](200, 150, 4)
	_, _, _, err := b.Float64().SVD(mustUpload(t, b.Float64(), w))
	if !errors.Is(err, la.ErrDeviceMemory) {
		t.Fatalf("SVD with 1 MiB: %v; want la.ErrDeviceMemory", err)
	}
	f, err := lowrank.Factorize(w, lowrank.Rank(5), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Exact))
	if err != nil {
		t.Fatal(err)
	}
	if f.Backend.Name() != "cpu" || !strings.Contains(f.Fallback, "memory") {
		t.Errorf("backend %q, fallback %q; want cpu and the reason", f.Backend.Name(), f.Fallback)
	}
}

func mustUpload(t *testing.T, e la.Engine[float64], w lowrank.Matrix[float64]) la.Mat {
	t.Helper()
	m, err := e.Upload(w.Rows, w.Cols, w.Data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Free(m) })
	return m
}

// TestConcurrent applies and factorizes from many goroutines at once.
func TestConcurrent(t *testing.T) {
	b := requireGPU(t)
	w := randMatrix[float32](256, 128, 5)
	f, err := lowrank.Factorize(w, lowrank.Rank(16), lowrank.WithBackend(b))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	x := randMatrix[float32](1, 128, 6).Data
	want, err := f.Apply(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				got, err := f.Apply(x, nil)
				if err != nil {
					errs <- err
					return
				}
				if relDiff(got, want) != 0 {
					errs <- fmt.Errorf("goroutine %d: result changed", g)
					return
				}
			}
			if _, err := lowrank.Factorize(w, lowrank.Rank(4), lowrank.WithBackend(b)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestStridedViews checks Copy, Download and SumSquares on views whose
// rows are not contiguous, against the CPU engine.
func TestStridedViews(t *testing.T) {
	b := requireGPU(t)
	e, ref := b.Float32(), cpu.New().Float32()
	w := randMatrix[float32](50, 40, 8)
	for _, v := range [][4]int{{3, 47, 5, 33}, {0, 50, 39, 40}, {10, 11, 0, 40}, {0, 50, 0, 1}} {
		var outs [2][]float32
		var sums [2]float64
		for i, eng := range []la.Engine[float32]{e, ref} {
			m, err := eng.Upload(50, 40, w.Data)
			if err != nil {
				t.Fatal(err)
			}
			vw, err := eng.View(m, v[0], v[1], v[2], v[3])
			if err != nil {
				t.Fatal(err)
			}
			r, c := vw.Dims()
			dst, _ := eng.Zeros(r, c)
			if err := eng.Copy(dst, vw); err != nil {
				t.Fatal(err)
			}
			if err := eng.ScaleRows(dst, randMatrix[float32](1, r, 2).Data); err != nil {
				t.Fatal(err)
			}
			if err := eng.Copy(vw, dst); err != nil {
				t.Fatal(err)
			}
			outs[i] = make([]float32, 50*40)
			if err := eng.Download(outs[i], m); err != nil {
				t.Fatal(err)
			}
			if sums[i], err = eng.SumSquares(vw); err != nil {
				t.Fatal(err)
			}
			eng.Free(dst)
			eng.Free(m)
		}
		if dd := relDiff(outs[0], outs[1]); dd > 1e-6 {
			t.Errorf("view %v: result differs from the CPU by %.3g", v, dd)
		}
		if math.Abs(sums[0]-sums[1]) > 1e-5*sums[1] {
			t.Errorf("view %v: SumSquares %v, CPU %v", v, sums[0], sums[1])
		}
	}
	// A float32 matrix whose norm overflows float32 but whose sum of
	// squares fits in float64.
	big := []float32{3e38, 3e38, 3e38, 3e38}
	m, err := e.Upload(2, 2, big)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free(m)
	got, err := e.SumSquares(m)
	if want := 4 * 3e38 * 3e38; err != nil || math.Abs(got-want) > 1e-6*want {
		t.Errorf("SumSquares near the float32 limit = %v, %v; want %v", got, err, want)
	}
}

// TestApplyAllocationFree checks that a warm Apply (cuBLAS path) allocates
// nothing on the Go heap, as lowrank's ApplyTo promises.
func TestApplyAllocationFree(t *testing.T) {
	b := requireGPU(t)
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
		if a := testing.AllocsPerRun(100, func() { _ = app.Apply(y, x, n, bias) }); a != 0 {
			t.Errorf("n=%d: Apply allocates %v times per call", n, a)
		}
	}
}

// TestCrossCheckShapes factorizes the shapes users bring — square, tall,
// wide, 1×n, n×1 and rank-deficient — in float64 and float32, exactly and
// randomized, on the GPU and on the CPU with the same seed, and compares
// the singular values, the error, the product B·A and Apply.
func TestCrossCheckShapes(t *testing.T) {
	b := requireGPU(t)
	crossCheckShapes[float64](t, b, 1e-9)
	crossCheckShapes[float32](t, b, 2e-3)
}

func crossCheckShapes[T lowrank.Float](t *testing.T, b lowrank.Backend, tol float64) {
	var z T
	for _, sh := range []struct {
		name       string
		d, k, rank int // rank 0: full (a decaying spectrum)
	}{
		{"square", 200, 200, 0}, {"tall", 400, 90, 0}, {"wide", 90, 400, 0},
		{"1xn", 1, 300, 0}, {"nx1", 300, 1, 0}, {"rank-deficient", 150, 120, 6},
	} {
		w := shapeMatrix[T](sh.d, sh.k, sh.rank, uint64(sh.d*7+sh.k))
		r := min(5, sh.d, sh.k)
		for _, m := range []lowrank.Method{lowrank.Exact, lowrank.Randomized} {
			t.Run(fmt.Sprintf("%T/%s/%v", z, sh.name, m), func(t *testing.T) {
				opts := []lowrank.Option{lowrank.WithMethod(m), lowrank.WithSeed(11)}
				g, err := lowrank.Factorize(w, lowrank.Rank(r), append(opts, lowrank.WithBackend(b))...)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				c, err := lowrank.Factorize(w, lowrank.Rank(r), append(opts, lowrank.WithBackend(cpu.New()))...)
				if err != nil {
					t.Fatal(err)
				}
				if g.Backend.Name() != "cuda" || g.Fallback != "" {
					t.Fatalf("computed on %q (fallback %q); want cuda", g.Backend.Name(), g.Fallback)
				}
				if g.Rank != c.Rank {
					t.Fatalf("rank %d on the GPU, %d on the CPU", g.Rank, c.Rank)
				}
				if d := relDiff(g.S, c.S); d > tol {
					t.Errorf("singular values differ from the CPU's by %.3g", d)
				}
				if d := math.Abs(g.RelError - c.RelError); d > 10*tol {
					t.Errorf("relative errors %.9g (GPU) and %.9g (CPU)", g.RelError, c.RelError)
				}
				gw, err1 := g.Reconstruct()
				cw, err2 := c.Reconstruct()
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				if d := relDiff(gw.Data, cw.Data); d > 10*tol {
					t.Errorf("B·A differs from the CPU's by %.3g", d)
				}
				x := randMatrix[T](1, sh.k, 5).Data
				gy, err1 := g.Apply(x, nil)
				cy, err2 := c.Apply(x, nil)
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				if d := relDiff(gy, cy); d > 10*tol {
					t.Errorf("Apply differs from the CPU's by %.3g", d)
				}
			})
		}
	}
}

// shapeMatrix returns a d×k matrix: Gaussian with columns scaled by
// 0.93^j (a decaying spectrum with clear gaps) when rank is 0, else the
// product of Gaussian d×rank and rank×k factors.
func shapeMatrix[T lowrank.Float](d, k, rank int, seed uint64) lowrank.Matrix[T] {
	if rank == 0 {
		w := randMatrix[T](d, k, seed)
		for i := range d {
			for j := range k {
				w.Data[i*k+j] *= T(math.Pow(0.93, float64(j)))
			}
		}
		return w
	}
	x, y := randMatrix[float64](d, rank, seed), randMatrix[float64](rank, k, seed+1)
	w := lowrank.Matrix[T]{Rows: d, Cols: k, Data: make([]T, d*k)}
	for i := range d {
		for j := range k {
			var s float64
			for l := range rank {
				s += x.Data[i*rank+l] * y.Data[l*k+j]
			}
			w.Data[i*k+j] = T(s)
		}
	}
	return w
}

// TestOutOfMemoryReal runs out of the real device's memory, twice: a
// request larger than the GPU (the allocation fails with
// CUDA_ERROR_OUT_OF_MEMORY, matching la.ErrDeviceMemory, and the device
// stays usable), and a factorization on a GPU whose memory another user
// holds (lowrank computes on the CPU and says why). Nothing leaks.
func TestOutOfMemoryReal(t *testing.T) { testOutOfMemory(t, requireGPU(t)) }

func testOutOfMemory(t *testing.T, b *gpu.Backend) {
	e := b.Float64()
	base := gpu.LiveAllocations()
	_, err := e.Zeros(1<<20, 1<<20) // 8 TiB
	var ce *cuda.Error
	if !errors.Is(err, la.ErrDeviceMemory) || !errors.As(err, &ce) || ce.Call != "cuMemAlloc_v2" || ce.Name != "CUDA_ERROR_OUT_OF_MEMORY" {
		t.Fatalf("8 TiB: %v; want cuMemAlloc_v2's CUDA_ERROR_OUT_OF_MEMORY matching la.ErrDeviceMemory", err)
	}
	m, err := e.Upload(2, 2, []float64{1, 2, 3, 4})
	if err != nil {
		t.Fatalf("the device after running out: %v", err)
	}
	e.Free(m)

	// Hold all but a few MiB of the device, in 1 GiB blocks then smaller
	// ones.
	var held []la.Mat
	defer func() {
		for _, h := range held {
			e.Free(h)
		}
		if got := gpu.LiveAllocations(); got != base {
			t.Errorf("%d device allocations leaked", got-base)
		}
	}()
	for rows := 1 << 17; rows >= 1<<9; rows /= 2 { // rows of 1024 float64: 1 GiB down to 4 MiB
		for {
			h, err := e.Zeros(rows, 1024)
			if err != nil {
				if !errors.Is(err, la.ErrDeviceMemory) {
					t.Fatalf("holding memory: %v", err)
				}
				break
			}
			held = append(held, h)
		}
	}
	w := randMatrix[float64](1500, 1000, 8) // 12 MB: does not fit any more
	f, err := lowrank.Factorize(w, lowrank.Rank(10), lowrank.WithBackend(b), lowrank.WithMethod(lowrank.Exact))
	if err != nil {
		t.Fatalf("Factorize on a full GPU: %v; want the CPU's result", err)
	}
	defer f.Close()
	t.Logf("on a full GPU: backend %s, fallback %q", f.Backend.Name(), f.Fallback)
	if f.Backend.Name() != "cpu" || !strings.Contains(f.Fallback, "memory") {
		t.Errorf("backend %q, fallback %q; want cpu, and the reason", f.Backend.Name(), f.Fallback)
	}
	// Data-aware factorization: C's Cholesky factorization and W·L run on
	// the device first too, and fall back the same way.
	c, _ := lowrank.NewMatrix[float64](1000, 1000, nil)
	for i := range 1000 {
		c.Set(i, i, 1+float64(i%7))
	}
	g, err := lowrank.Factorize(w, lowrank.Rank(10), lowrank.WithBackend(b), lowrank.WithInputCovariance(c))
	if err != nil {
		t.Fatalf("data-aware Factorize on a full GPU: %v; want the CPU's result", err)
	}
	defer g.Close()
	if g.Backend.Name() != "cpu" || !strings.Contains(g.Fallback, "memory") || g.Weighting != lowrank.WeightCovariance {
		t.Errorf("data-aware: backend %q, fallback %q, weighting %v; want cpu, the reason, covariance", g.Backend.Name(), g.Fallback, g.Weighting)
	}
}
