//go:build cgo

package gpu_test

// GPU faults, injected through the fake CUDA installation: out of memory
// (at an allocation, in a solver's workspace), solvers that do not
// converge, library and driver errors in the middle of a computation, a
// lost context, a library missing a symbol. Each test checks what the
// caller sees and that device memory is released on every path.

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/gpu"
	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/internal/testkit/fakecuda"
	"github.com/lowrank-go/lowrank/la"
)

// syncBuffer is a bytes.Buffer safe for a slog handler and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// captureLog sends lowrank's log to a buffer until the test ends.
func captureLog(t *testing.T) *syncBuffer {
	buf := &syncBuffer{}
	lowrank.SetLogger(slog.New(slog.NewTextHandler(buf, nil)))
	t.Cleanup(func() { lowrank.SetLogger(nil) })
	return buf
}

// usage is what the device holds: allocations seen by internal/cuda and
// by the fake driver, bytes, pinned buffers and events.
type usage struct {
	cuda                 int64
	fake, pinned, events int
	bytes                uint64
}

func usageNow() usage {
	return usage{cuda.LiveAllocations(), fakecuda.LiveAllocations(), fakecuda.PinnedAllocations(), fakecuda.Events(), fakecuda.LiveBytes()}
}

// warm makes b allocate what it keeps for its life (the pinned staging
// buffers and their events), so that usage snapshots compare like with
// like.
func warm(t *testing.T, b *gpu.Backend) {
	t.Helper()
	m, err := b.Float64().Upload(1, 1, []float64{1})
	if err != nil {
		t.Fatal(err)
	}
	b.Float64().Free(m)
}

// checkReleased fails t unless the device holds what it held at u.
func checkReleased(t *testing.T, what string, u usage) {
	t.Helper()
	if now := usageNow(); now != u {
		t.Errorf("%s: device use %+v; want %+v as before", what, now, u)
	}
}

// checkSame fails t unless f and g hold the same factors to tol.
func checkSame[T lowrank.Float](t *testing.T, what string, f, g *lowrank.Factors[T], tol float64) {
	t.Helper()
	if f.Rank != g.Rank || relDiff(f.B.Data, g.B.Data) > tol || relDiff(f.A.Data, g.A.Data) > tol || relDiff(f.S, g.S) > tol {
		t.Errorf("%s: rank %d, B off by %.3g, A by %.3g, S by %.3g from the CPU's (rank %d)", what, f.Rank,
			relDiff(f.B.Data, g.B.Data), relDiff(f.A.Data, g.A.Data), relDiff(f.S, g.S), g.Rank)
	}
}

// run is one factorization the fault tests repeat.
type run struct {
	name   string
	policy lowrank.Policy
	opts   []lowrank.Option
}

func runs() []run {
	return []run{
		{"exact", lowrank.Rank(5), []lowrank.Option{lowrank.WithMethod(lowrank.Exact)}},
		{"randomized", lowrank.Rank(5), []lowrank.Option{lowrank.WithMethod(lowrank.Randomized), lowrank.WithSeed(3)}},
		{"adaptive", lowrank.Energy(0.9), []lowrank.Option{lowrank.WithMethod(lowrank.Randomized), lowrank.WithSeed(3)}},
	}
}

func (r run) on(w lowrank.Matrix[float64], b lowrank.Backend) (*lowrank.Factors[float64], error) {
	return lowrank.Factorize(w, r.policy, append(r.opts, lowrank.WithBackend(b))...)
}

// reference factorizes w on the CPU.
func (r run) reference(t *testing.T, w lowrank.Matrix[float64]) *lowrank.Factors[float64] {
	t.Helper()
	f, err := r.on(w, cpu.New())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// countCalls runs r once on b without faults and returns how many calls
// matching pattern it makes.
func countCalls(t *testing.T, b lowrank.Backend, w lowrank.Matrix[float64], r run, pattern string) int {
	t.Helper()
	fakecuda.ClearFaults()
	fakecuda.ResetCalls()
	f, err := r.on(w, b)
	if err != nil {
		t.Fatalf("%s without faults: %v", r.name, err)
	}
	if f.Backend.Name() != "cuda" {
		t.Fatalf("%s without faults ran on %s (%s)", r.name, f.Backend.Name(), f.Fallback)
	}
	return fakecuda.Calls(pattern)
}

// TestFakeOutOfMemoryAtAllocation fills the device from the Nth
// cuMemAlloc on, for every N a factorization reaches: Factorize must
// compute the result on the CPU, say why in Factors.Fallback and in the
// log, and leave no device memory behind. A single failed allocation
// (the device recovers) must give a correct result too, on either side.
func TestFakeOutOfMemoryAtAllocation(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	w := randMatrix[float64](60, 40, 1)
	logs := captureLog(t)
	for _, r := range runs() {
		want := r.reference(t, w)
		n := countCalls(t, b, w, r, "cuMemAlloc_v2")
		for _, repeat := range []bool{true, false} {
			for i := 1; i <= n; i++ {
				what := fmt.Sprintf("%s, allocation %d of %d fails (repeat %v)", r.name, i, n, repeat)
				u := usageNow()
				fakecuda.SetFaults(fakecuda.Fault{Call: "cuMemAlloc_v2", Nth: i, Status: fakecuda.CudaErrorOutOfMemory, Repeat: repeat})
				f, err := r.on(w, b)
				fakecuda.ClearFaults()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				checkReleased(t, what, u)
				checkSame(t, what, f, want, 1e-9)
				if repeat && (f.Backend.Name() != "cpu" || !strings.Contains(f.Fallback, "cuda ran out of memory") ||
					!strings.Contains(f.Fallback, "cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY")) {
					t.Errorf("%s: backend %q, fallback %q; want cpu and the reason", what, f.Backend.Name(), f.Fallback)
				}
				if f.Backend.Name() == "cuda" && f.Fallback != "" {
					t.Errorf("%s: computed on the GPU, yet Fallback = %q", what, f.Fallback)
				}
			}
		}
	}
	// The libraries' own allocation failures count as out of memory too.
	for _, lib := range []struct {
		pattern, name string
		status        int
	}{
		{"cublas*", "CUBLAS_STATUS_ALLOC_FAILED", fakecuda.CublasStatusAllocFailed},
		{"cusolver*", "CUSOLVER_STATUS_ALLOC_FAILED", fakecuda.CusolverStatusAllocFailed},
	} {
		u := usageNow()
		fakecuda.SetFaults(fakecuda.Fault{Call: lib.pattern, Nth: 1, Status: lib.status, Repeat: true})
		f, err := runs()[0].on(w, b)
		fakecuda.ClearFaults()
		if err != nil || f.Backend.Name() != "cpu" || !strings.Contains(f.Fallback, lib.name) {
			t.Errorf("%s fails with %s: %v, %v; want the CPU's result and the reason", lib.pattern, lib.name, f, err)
		}
		checkReleased(t, lib.name, u)
	}
	if l := logs.String(); !strings.Contains(l, "falling back to the CPU") || !strings.Contains(l, "CUDA_ERROR_OUT_OF_MEMORY") {
		t.Errorf("the log does not report the fallbacks:\n%s", l)
	}
}

// TestFakeOutOfPinnedMemory makes the pinned staging buffers fail to
// allocate on a fresh device: the first factorization falls back to the
// CPU, and the next one, when pinned memory is available again, runs on
// the GPU.
func TestFakeOutOfPinnedMemory(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	w := randMatrix[float64](30, 20, 2)
	r := runs()[0]
	want := r.reference(t, w)
	captureLog(t)
	fakecuda.SetFaults(fakecuda.Fault{Call: "cuMemAllocHost_v2", Nth: 2, Status: fakecuda.CudaErrorOutOfMemory})
	u := usageNow()
	f, err := r.on(w, b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Backend.Name() != "cpu" || !strings.Contains(f.Fallback, "cuMemAllocHost_v2") {
		t.Errorf("backend %q, fallback %q; want cpu because of cuMemAllocHost_v2", f.Backend.Name(), f.Fallback)
	}
	checkSame(t, "pinned allocation failed", f, want, 1e-9)
	if now := usageNow(); now.cuda != u.cuda || now.fake != u.fake {
		t.Errorf("device allocations %+v after the fallback; want %+v", now, u)
	}
	g, err := r.on(w, b)
	if err != nil || g.Backend.Name() != "cuda" {
		t.Fatalf("after the pinned allocation recovered: backend %v, %v; want cuda", g, err)
	}
	checkSame(t, "pinned allocation recovered", g, want, 1e-9)
}

// TestFakeWorkspaceDoesNotFit makes the solvers' bufferSize report more
// workspace than cuMemGetInfo has free: gesvdj's falls back to gesvd on
// the GPU; when gesvd's does not fit either, or geqrf's (the randomized
// path's QR), the factorization reruns on the CPU.
func TestFakeWorkspaceDoesNotFit(t *testing.T) {
	const mem = 256 << 20
	huge := 1 << 26 // elements: 512 MiB of float64
	b := fakeGPU(t, &fakecuda.Fake{MemLimit: mem})
	warm(t, b)
	w := randMatrix[float64](60, 40, 3)
	logs := captureLog(t)
	exact, randomized := runs()[0], runs()[1]

	fakecuda.SetLwork(fakecuda.Gesvdj, huge)
	fakecuda.ResetCalls()
	u := usageNow()
	f, err := exact.on(w, b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Backend.Name() != "cuda" || f.Fallback != "" || fakecuda.Calls("cusolverDnDgesvd") != 1 || fakecuda.Calls("cusolverDnDgesvdj") != 0 {
		t.Errorf("gesvdj's workspace too large: backend %q, fallback %q, gesvd called %d times, gesvdj %d; want gesvd once on the GPU",
			f.Backend.Name(), f.Fallback, fakecuda.Calls("cusolverDnDgesvd"), fakecuda.Calls("cusolverDnDgesvdj"))
	}
	checkSame(t, "gesvd instead of gesvdj", f, exact.reference(t, w), 1e-9)
	checkReleased(t, "gesvd instead of gesvdj", u)

	// Neither solver fits: the engine says so with la.ErrDeviceMemory, and
	// Factorize computes on the CPU.
	fakecuda.SetLwork(fakecuda.Gesvd, huge)
	a, err := b.Float64().Upload(w.Rows, w.Cols, w.Data)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = b.Float64().SVD(a)
	b.Float64().Free(a)
	if !errors.Is(err, la.ErrDeviceMemory) || !strings.Contains(err.Error(), "cusolverDnDgesvd's workspace needs 512.0 MiB") {
		t.Errorf("SVD when no workspace fits: %v; want la.ErrDeviceMemory naming gesvd's workspace", err)
	}
	f, err = exact.on(w, b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Backend.Name() != "cpu" || !strings.Contains(f.Fallback, "workspace") {
		t.Errorf("no workspace fits: backend %q, fallback %q; want cpu and the reason", f.Backend.Name(), f.Fallback)
	}
	checkSame(t, "no SVD workspace fits", f, exact.reference(t, w), 1e-9)
	checkReleased(t, "no SVD workspace fits", u)
	fakecuda.SetLwork(fakecuda.Gesvd, -1)
	fakecuda.SetLwork(fakecuda.Gesvdj, -1)

	fakecuda.SetLwork(fakecuda.Geqrf, huge)
	f, err = randomized.on(w, b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Backend.Name() != "cpu" || !strings.Contains(f.Fallback, "cusolverDnDgeqrf/orgqr's workspace needs 512.0 MiB") {
		t.Errorf("geqrf's workspace too large: backend %q, fallback %q; want cpu and the reason", f.Backend.Name(), f.Fallback)
	}
	checkSame(t, "no QR workspace fits", f, randomized.reference(t, w), 1e-9)
	checkReleased(t, "no QR workspace fits", u)
	fakecuda.SetLwork(fakecuda.Geqrf, -1)
	if !strings.Contains(logs.String(), "workspace") {
		t.Errorf("the log does not give the workspace reason:\n%s", logs)
	}

	g, err := randomized.on(w, b)
	if err != nil || g.Backend.Name() != "cuda" {
		t.Errorf("after the faults: %v, %v; want the GPU again", g, err)
	}
}

// TestFakeNoConvergence makes the solvers report devInfo > 0: gesvdj is
// retried with gesvd; when gesvd does not converge either the error wraps
// la.ErrNoConvergence and says what each solver reported. devInfo < 0 (a
// bad parameter) is an error of its own, not retried.
func TestFakeNoConvergence(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	warm(t, b)
	w := randMatrix[float64](50, 30, 4)
	exact := runs()[0]
	want := exact.reference(t, w)
	u := usageNow()

	fakecuda.SetDevInfo(fakecuda.Gesvdj, 3)
	fakecuda.ResetCalls()
	f, err := exact.on(w, b)
	if err != nil || f.Backend.Name() != "cuda" {
		t.Fatalf("gesvdj did not converge: %v, %v; want gesvd's result on the GPU", f, err)
	}
	if fakecuda.Calls("cusolverDnDgesvdj") != 1 || fakecuda.Calls("cusolverDnDgesvd") != 1 {
		t.Errorf("gesvdj called %d times, gesvd %d; want once each", fakecuda.Calls("cusolverDnDgesvdj"), fakecuda.Calls("cusolverDnDgesvd"))
	}
	checkSame(t, "gesvd after gesvdj", f, want, 1e-9)
	checkReleased(t, "gesvd after gesvdj", u)

	fakecuda.SetDevInfo(fakecuda.Gesvd, 2)
	_, err = exact.on(w, b)
	if !errors.Is(err, la.ErrNoConvergence) || !errors.Is(err, lowrank.ErrNoConvergence) {
		t.Errorf("no solver converges: %v; want an error wrapping la.ErrNoConvergence", err)
	}
	for _, s := range []string{"lowrank: svd: ", "cuda: cusolverDnDgesvdj: devInfo = 3 (50×30): the SVD did not converge", "then gesvd: ",
		"cuda: cusolverDnDgesvd: devInfo = 2 (50×30)"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	var ce *cuda.Error
	if !errors.As(err, &ce) || ce.Call != "cusolverDnDgesvd" || ce.DevInfo != 2 || ce.Lib != cuda.LibCUSOLVER {
		t.Errorf("no solver converges: %v does not unwrap to gesvd's devInfo *cuda.Error", err)
	}
	checkReleased(t, "no solver converges", u)

	// gesvd asked for explicitly is not retried.
	b.SetSolver(gpu.SolverGesvd)
	fakecuda.ResetCalls()
	_, err = exact.on(w, b)
	if !errors.Is(err, la.ErrNoConvergence) || fakecuda.Calls("cusolverDnDgesvdj") != 0 {
		t.Errorf("gesvd alone: %v, gesvdj called %d times; want la.ErrNoConvergence and no gesvdj", err, fakecuda.Calls("cusolverDnDgesvdj"))
	}
	b.SetSolver(gpu.SolverAuto)
	fakecuda.SetDevInfo(fakecuda.Gesvd, 0)

	fakecuda.SetDevInfo(fakecuda.Gesvdj, -4)
	_, err = exact.on(w, b)
	if err == nil || errors.Is(err, la.ErrNoConvergence) || !strings.Contains(err.Error(), "cusolverDnDgesvdj: devInfo = -4 (50×30): parameter 4 is wrong") ||
		!errors.As(err, &ce) || ce.DevInfo != -4 {
		t.Errorf("gesvdj devInfo = -4: %v; want a parameter error", err)
	}
	fakecuda.SetDevInfo(fakecuda.Gesvdj, 0)

	fakecuda.SetDevInfo(fakecuda.Orgqr, -3)
	_, err = runs()[1].on(w, b)
	if err == nil || !strings.Contains(err.Error(), "cuda: cusolverDnDorgqr: devInfo = -3") || !errors.As(err, &ce) || ce.DevInfo != -3 {
		t.Errorf("orgqr devInfo = -3: %v; want a parameter error", err)
	}
	fakecuda.SetDevInfo(fakecuda.Orgqr, 0)

	// geqrf's devInfo is read too: before, orgqr's overwrote it (the two
	// shared one devInfo), so geqrf's failure went unseen and Q was built
	// from a tau geqrf never wrote.
	fakecuda.SetDevInfo(fakecuda.Geqrf, -3)
	_, err = runs()[1].on(w, b)
	if err == nil || !strings.Contains(err.Error(), "cuda: cusolverDnDgeqrf: devInfo = -3") || !errors.As(err, &ce) || ce.Call != "cusolverDnDgeqrf" {
		t.Errorf("geqrf devInfo = -3: %v; want geqrf's parameter error", err)
	}
	fakecuda.SetDevInfo(fakecuda.Geqrf, 0)
	checkReleased(t, "solver errors", u)

	f, err = exact.on(w, b)
	if err != nil || f.Backend.Name() != "cuda" {
		t.Fatalf("after the faults: %v, %v", f, err)
	}
	checkSame(t, "after the faults", f, want, 1e-9)
}

// TestFakeLibraryErrorMidRun makes the Nth call of each library fail, for
// every N a factorization reaches: the error names the library, the call
// and the status; nothing is left on the device; and the device works
// afterwards.
func TestFakeLibraryErrorMidRun(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	w := randMatrix[float64](40, 30, 5)
	for _, lib := range []struct {
		pattern, name string
		status        int
	}{
		{"cublas*", "CUBLAS_STATUS_EXECUTION_FAILED", fakecuda.CublasStatusExecutionFailed},
		{"cusolver*", "CUSOLVER_STATUS_EXECUTION_FAILED", fakecuda.CusolverStatusExecutionFailed},
		{"cuMemcpy*", "CUDA_ERROR_INVALID_VALUE", fakecuda.CudaErrorInvalidValue},
		{"cuMemsetD32Async", "CUDA_ERROR_INVALID_VALUE", fakecuda.CudaErrorInvalidValue},
		{"cuStreamSynchronize", "CUDA_ERROR_INVALID_VALUE", fakecuda.CudaErrorInvalidValue},
		{"cuEvent*", "CUDA_ERROR_INVALID_VALUE", fakecuda.CudaErrorInvalidValue},
		{"cuMemGetInfo_v2", "CUDA_ERROR_INVALID_VALUE", fakecuda.CudaErrorInvalidValue},
		{"cuMemAlloc_v2", "CUDA_ERROR_INVALID_VALUE", fakecuda.CudaErrorInvalidValue},
	} {
		total := 0
		for _, r := range runs() {
			want := r.reference(t, w)
			n := countCalls(t, b, w, r, lib.pattern)
			total += n
			for i := 1; i <= n; i++ {
				what := fmt.Sprintf("%s: %s call %d of %d fails", r.name, lib.pattern, i, n)
				u := usageNow()
				fakecuda.SetFaults(fakecuda.Fault{Call: lib.pattern, Nth: i, Status: lib.status})
				got, err := r.on(w, b)
				fakecuda.ClearFaults()
				var ce *cuda.Error
				switch {
				case err == nil && lib.pattern == "cuStreamSynchronize":
					// The wait before a free is tried again when it
					// fails; inside la.Engine.Free, which has no error
					// to return, that is all that can be done. The
					// result must be unharmed.
					checkSame(t, what, got, want, 1e-9)
				case err == nil:
					t.Errorf("%s: no error", what)
				case !errors.As(err, &ce):
					t.Errorf("%s: %v is not a *cuda.Error", what, err)
				case ce.Status != lib.status || !strings.HasPrefix(err.Error(), "lowrank: ") ||
					!strings.Contains(err.Error(), ce.Call+": "+lib.name) ||
					!strings.HasPrefix(ce.Call, strings.TrimSuffix(lib.pattern, "*")):
					t.Errorf("%s: %v (%s %s status %d); want the call and %s", what, err, ce.Lib, ce.Call, ce.Status, lib.name)
				}
				checkReleased(t, what, u)
				f, err := r.on(w, b)
				if err != nil || f.Backend.Name() != "cuda" {
					t.Fatalf("%s: the next factorization: %v, %v", what, f, err)
				}
				checkSame(t, what+", then no fault", f, want, 1e-9)
			}
		}
		if total == 0 {
			t.Errorf("no factorization makes a %s call", lib.pattern)
		}
	}
}

// TestFakeApplyFaults covers the device-resident Apply: no memory for the
// factors, a cuBLAS failure, no memory for a larger batch. Each is an
// error; the Factors stay usable and release everything on Close.
func TestFakeApplyFaults(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	w := randMatrix[float64](30, 24, 6)
	f, err := lowrank.Factorize(w, lowrank.Rank(4), lowrank.WithBackend(b))
	if err != nil {
		t.Fatal(err)
	}
	x := randMatrix[float64](1, 24, 7).Data
	bias := randMatrix[float64](1, 30, 8).Data
	want := denseApply(f.B.Data, f.A.Data, x, bias, 30, 4, 24, 1)
	u := usageNow()

	// No device memory for the factors: Apply runs on the CPU, says so in
	// the log, and Close lets the next Apply try the GPU again.
	logs := captureLog(t)
	fakecuda.SetFaults(fakecuda.Fault{Call: "cuMemAlloc_v2", Nth: 1, Status: fakecuda.CudaErrorOutOfMemory})
	y0, err := f.Apply(x, bias)
	fakecuda.ClearFaults()
	if err != nil || relDiff(y0, want) > 1e-12 {
		t.Errorf("no memory for the factors: %v; want the CPU's result", err)
	}
	if l := logs.String(); !strings.Contains(l, "applying on the CPU") || !strings.Contains(l, "CUDA_ERROR_OUT_OF_MEMORY") {
		t.Errorf("the log does not report the fallback:\n%s", l)
	}
	checkReleased(t, "no memory for the factors", u)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	fakecuda.SetFaults(fakecuda.Fault{Call: "cublasDgemv_v2", Nth: 2, Status: fakecuda.CublasStatusExecutionFailed})
	_, err = f.Apply(x, bias)
	var ce *cuda.Error
	if !errors.As(err, &ce) || ce.Call != "cublasDgemv_v2" || !strings.Contains(err.Error(), "CUBLAS_STATUS_EXECUTION_FAILED") {
		t.Errorf("gemv fails: %v; want the cuBLAS error", err)
	}
	fakecuda.ClearFaults()
	y, err := f.Apply(x, bias)
	if err != nil || relDiff(y, want) > 1e-12 {
		t.Errorf("Apply after a cuBLAS error: %v (off by %.3g)", err, relDiff(y, want))
	}

	xs := randMatrix[float64](40, 24, 9)
	fakecuda.SetFaults(fakecuda.Fault{Call: "cuMemAlloc_v2", Nth: 1, Status: fakecuda.CudaErrorOutOfMemory})
	if _, err := f.ApplyBatch(xs, bias); !errors.Is(err, la.ErrDeviceMemory) {
		t.Errorf("no memory for a batch's scratch: %v; want la.ErrDeviceMemory", err)
	}
	fakecuda.ClearFaults()
	ys, err := f.ApplyBatch(xs, bias)
	if err != nil || relDiff(ys.Data, denseApply(f.B.Data, f.A.Data, xs.Data, bias, 30, 4, 24, 40)) > 1e-12 {
		t.Errorf("ApplyBatch after running out of memory: %v", err)
	}

	// The fused kernel cannot be compiled here (the fake's NVRTC fails):
	// Apply says why and uses cuBLAS.
	b.SetFusedApply(true)
	defer b.SetFusedApply(false)
	app, err := b.Float64().NewApplier(30, 4, 24, f.B.Data, f.A.Data)
	if err != nil {
		t.Fatal(err)
	}
	yy := make([]float64, 30)
	if err := app.Apply(yy, x, 1, bias); err != nil || relDiff(yy, want) > 1e-12 {
		t.Errorf("Apply without a fused kernel: %v", err)
	}
	if err := gpu.FusedError(app); err == nil || !strings.Contains(err.Error(), "nvrtcCreateProgram") {
		t.Errorf("FusedError = %v; want the NVRTC failure", err)
	}
	if err := app.Close(); err != nil {
		t.Error(err)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	checkReleased(t, "after Close", u)

	// lowrank.SVD reruns on the CPU when the device runs out of memory.
	fakecuda.SetFaults(fakecuda.Fault{Call: "cuMemAlloc_v2", Nth: 1, Status: fakecuda.CudaErrorOutOfMemory, Repeat: true})
	res, err := lowrank.SVD(w, lowrank.WithBackend(b))
	fakecuda.ClearFaults()
	ref, _ := lowrank.SVD(w, lowrank.WithBackend(cpu.New()))
	if err != nil || relDiff(res.S, ref.S) > 1e-12 {
		t.Errorf("SVD out of device memory: %v; want the CPU's result", err)
	}
	checkReleased(t, "SVD fallback", u)
}

// TestFakeContextLost makes a call lose the context, as a kernel fault
// does (CUDA_ERROR_LAUNCH_FAILED, sticky): the failing call's error names
// it; every later call fails at once with a *cuda.LostError that names it
// too and says to restart; nothing hangs; and closing the device releases
// everything.
func TestFakeContextLost(t *testing.T) {
	for _, fault := range []fakecuda.Fault{
		{Call: "cuStreamSynchronize", Nth: 3, Status: fakecuda.CudaErrorLaunchFailed, Sticky: true},
		{Call: "cublasDgemm_v2", Nth: 2, Status: fakecuda.CublasStatusExecutionFailed, Sticky: true},
	} {
		t.Run(fault.Call, func(t *testing.T) {
			b := fakeGPU(t, &fakecuda.Fake{})
			w := randMatrix[float64](40, 30, 10)
			r := runs()[1]
			before, err := r.on(w, b)
			if err != nil {
				t.Fatal(err)
			}
			x := randMatrix[float64](1, 30, 11).Data
			if _, err := before.Apply(x, nil); err != nil {
				t.Fatal(err)
			}
			fakecuda.SetFaults(fault)
			_, err = r.on(w, b)
			var ce *cuda.Error
			if !errors.As(err, &ce) || ce.Call != fault.Call || ce.Status != fault.Status {
				t.Fatalf("the failing run: %v; want %s's error", err, fault.Call)
			}
			_, err = r.on(w, b)
			var le *cuda.LostError
			if !errors.As(err, &le) || !errors.As(err, &ce) || ce.Status != fakecuda.CudaErrorLaunchFailed ||
				!strings.Contains(err.Error(), "CUDA_ERROR_LAUNCH_FAILED") || !strings.Contains(err.Error(), "restart") {
				t.Errorf("after the loss: %v; want a *cuda.LostError naming CUDA_ERROR_LAUNCH_FAILED", err)
			}
			if _, err := before.Apply(x, nil); !errors.As(err, &le) {
				t.Errorf("Apply after the loss: %v; want a *cuda.LostError", err)
			}
			if err := before.Close(); err != nil {
				t.Errorf("Close after the loss: %v", err)
			}
			if !strings.Contains(strings.Join(b.Describe(), "\n"), "UNUSABLE: cuda: the GPU context was lost") {
				t.Errorf("Describe does not say the device is lost: %q", b.Describe())
			}
			if _, err := b.Float64().Upload(1, 1, []float64{1}); !errors.As(err, &le) {
				t.Errorf("Upload after the loss: %v", err)
			}
		})
	}
}

// TestFakeMissingSymbol removes one entry point from a library: Init fails
// naming the library and the symbol, and asking for the backend fails
// with that reason. A missing optional symbol is no reason.
func TestFakeMissingSymbol(t *testing.T) {
	t.Setenv(cuda.LibDirEnv, fakeDir)
	for _, tc := range []struct{ sym, lib string }{
		{"cublasSgemm_v2", "libcublas.so.13"},
		{"cusolverDnDgesvdj", "libcusolver.so.12"},
		{"cusolverDnSgeqrf_bufferSize", "libcusolver.so.12"},
		{"cuMemAlloc_v2", "libcuda.so.1"},
		{"cuMemcpyDtoHAsync_v2", "libcuda.so.1"},
	} {
		f := &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), MissingSyms: []string{tc.sym}}
		f.Install()
		b := gpu.NewWithLoader(f)
		err := b.Init()
		if err == nil {
			b.CloseDevice()
			t.Errorf("Init without %s succeeded", tc.sym)
			continue
		}
		if !strings.Contains(err.Error(), tc.lib) || !strings.Contains(err.Error(), "has no symbol "+tc.sym) ||
			!strings.Contains(err.Error(), "undefined symbol: "+tc.sym) {
			t.Errorf("Init without %s: %q; want the library %s and the symbol", tc.sym, err, tc.lib)
		}
		if b.Float64() != nil || b.Describe() != nil {
			t.Errorf("without %s: the backend has engines", tc.sym)
		}
		_, err = lowrank.Factorize(randMatrix[float64](5, 4, 1), lowrank.Rank(1), lowrank.WithBackend(b))
		if !errors.Is(err, lowrank.ErrBackend) || !strings.Contains(err.Error(), tc.sym) {
			t.Errorf("Factorize on the backend without %s: %v; want ErrBackend with the symbol", tc.sym, err)
		}
		checkClean(t)
	}

	// Optional entry points may be missing.
	b := fakeGPU(t, &fakecuda.Fake{MissingSyms: []string{"cusolverDnXgesvdjSetMaxSweeps", "cublasSetMathMode"}})
	w := randMatrix[float64](20, 10, 2)
	f, err := runs()[0].on(w, b)
	if err != nil || f.Backend.Name() != "cuda" {
		t.Fatalf("without optional symbols: %v, %v", f, err)
	}
	checkSame(t, "without optional symbols", f, runs()[0].reference(t, w), 1e-9)
}

// TestFakeAutoChoiceMissingSymbol checks lowrank's automatic choice when
// the CUDA libraries lack a symbol: cpu, with the reason. The choice is
// made once per process, so the check runs in a child process.
func TestFakeAutoChoiceMissingSymbol(t *testing.T) {
	if os.Getenv("LOWRANK_FAKE_AUTO_CHILD") == "1" {
		f := &fakecuda.Fake{Files: fakecuda.CUDA13(fakeDir), MissingSyms: []string{"cusolverDnSgesvd"}}
		f.Install()
		gpu.SetSharedLoaderForTest(f)
		def, err := lowrank.DefaultBackend()
		if err != nil || def.Name() != "cpu" {
			t.Fatalf("DefaultBackend = %v, %v; want cpu", def, err)
		}
		why := lowrank.AutoReason()
		if !strings.Contains(why, "cuda: ") || !strings.Contains(why, "libcusolver.so.12") || !strings.Contains(why, "has no symbol cusolverDnSgesvd") {
			t.Errorf("AutoReason = %q; want the missing symbol", why)
		}
		for _, info := range lowrank.Backends() {
			if info.Name == "cuda" && (info.Available || !strings.Contains(info.Reason, "cusolverDnSgesvd")) {
				t.Errorf("Backends reports cuda as %+v", info)
			}
		}
		fs, err := lowrank.Factorize(randMatrix[float64](8, 6, 1), lowrank.Rank(2))
		if err != nil || fs.Backend.Name() != "cpu" {
			t.Errorf("Factorize with the automatic choice: %v, %v; want cpu", fs, err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFakeAutoChoiceMissingSymbol$", "-test.v")
	cmd.Env = append(os.Environ(), "LOWRANK_FAKE_AUTO_CHILD=1", cuda.LibDirEnv+"="+fakeDir, lowrank.BackendEnv+"=")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFakeAutoChoiceMissingSymbol") {
		t.Errorf("child process: %v\n%s", err, out)
	}
}

// TestFakeNoLeaks repeats factorizations, applies and closes, and checks
// that device memory, pinned buffers and events return to where they
// started after every round.
func TestFakeNoLeaks(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	w := randMatrix[float32](50, 40, 12)
	x := randMatrix[float32](6, 40, 13)
	round := func() {
		for _, m := range []lowrank.Method{lowrank.Exact, lowrank.Randomized} {
			f, err := lowrank.Factorize(w, lowrank.Rank(6), lowrank.WithBackend(b), lowrank.WithMethod(m))
			if err != nil || f.Backend.Name() != "cuda" {
				t.Fatalf("%v: %v, %v", m, f, err)
			}
			if _, err := f.Apply(x.Data[:40], nil); err != nil {
				t.Fatal(err)
			}
			if _, err := f.ApplyBatch(x, make([]float32, 50)); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := lowrank.Factorize(w, lowrank.Energy(0.9), lowrank.WithBackend(b)); err != nil {
			t.Fatal(err)
		}
		if _, err := lowrank.SVD(w, lowrank.WithBackend(b)); err != nil {
			t.Fatal(err)
		}
	}
	round() // the staging buffers are allocated once, on first use
	u := usageNow()
	if u.pinned != 2 {
		t.Errorf("%d pinned buffers; want the 2 staging buffers", u.pinned)
	}
	for i := range 20 {
		round()
		checkReleased(t, fmt.Sprintf("round %d", i), u)
	}
	if fakecuda.Pending() != 0 {
		t.Errorf("%d asynchronous copies never synchronized", fakecuda.Pending())
	}
}

// TestFakeSolvers checks each solver's layout (gesvd returns Vᵀ, gesvdj
// V; wide inputs are transposed) against the CPU, on the fake.
func TestFakeSolvers(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	defer b.SetSolver(gpu.SolverAuto)
	for _, s := range []gpu.Solver{gpu.SolverGesvd, gpu.SolverGesvdj, gpu.SolverGesvdp} {
		for _, shape := range [][2]int{{30, 30}, {45, 20}, {20, 45}, {1, 17}, {17, 1}} {
			t.Run(fmt.Sprintf("%v/%dx%d", s, shape[0], shape[1]), func(t *testing.T) {
				b.SetSolver(s)
				checkSVDAgainstCPU[float64](t, b, shape[0], shape[1], 1e-10)
				checkSVDAgainstCPU[float32](t, b, shape[0], shape[1], 2e-4)
			})
		}
	}
}

// TestFakePointerModeRestore is the regression test of a handle left in
// DEVICE pointer mode: SumSquares switched cuBLAS to DEVICE mode for nrm2
// and restored HOST mode afterwards; when the restore failed, every later
// gemm read alpha and beta at host addresses as if they were on the device
// (an illegal address on a GPU). The mode is now set before each call that
// depends on it.
func TestFakePointerModeRestore(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	e := b.Float64()
	a, err := e.Upload(2, 2, []float64{3, 0, 0, 4})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free(a)
	c, err := e.Zeros(2, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free(c)
	if ss, err := e.SumSquares(a); err != nil || ss != 25 {
		t.Fatalf("SumSquares = %v, %v", ss, err)
	}
	// The next mode switch (back to HOST) fails once.
	fakecuda.SetFaults(fakecuda.Fault{Call: "cublasSetPointerMode_v2", Nth: 1, Status: fakecuda.CublasStatusInternalError})
	err = e.Gemm(false, false, 1, a, a, 0, c)
	var ce *cuda.Error
	if !errors.As(err, &ce) || ce.Call != "cublasSetPointerMode_v2" {
		t.Errorf("Gemm when the pointer mode cannot be set: %v", err)
	}
	if err := e.Gemm(false, false, 1, a, a, 0, c); err != nil {
		t.Fatalf("the next Gemm: %v", err)
	}
	got := make([]float64, 4)
	if err := e.Download(got, c); err != nil || got[0] != 9 || got[3] != 16 || got[1] != 0 || got[2] != 0 {
		t.Errorf("a·a = %v, %v; want [9 0 0 16]", got, err)
	}
	if v := fakecuda.Violations(); len(v) > 0 {
		t.Errorf("violations: %q", v)
	}
}

// TestFakeContextLostAnywhere loses the context at every call a
// factorization makes, one device per call: whatever the call, the run
// either fails with a typed error or returns correct factors, every later
// run fails fast with a *cuda.LostError, and no allocation is left
// unaccounted (the fake frees what remains with the context on Close).
func TestFakeContextLostAnywhere(t *testing.T) {
	w := randMatrix[float64](30, 20, 14)
	for _, r := range runs()[:2] {
		want := r.reference(t, w)
		for _, lib := range []struct {
			pattern string
			status  int
		}{
			{"cuMem*", fakecuda.CudaErrorIllegalAddr},
			{"cuStream*", fakecuda.CudaErrorLaunchFailed},
			{"cuEvent*", fakecuda.CudaErrorLaunchFailed},
			{"cublas*", fakecuda.CublasStatusExecutionFailed},
			{"cusolver*", fakecuda.CusolverStatusExecutionFailed},
		} {
			var n int
			t.Run(r.name+"/"+lib.pattern+"/count", func(t *testing.T) {
				b := fakeGPU(t, &fakecuda.Fake{})
				warm(t, b)
				n = countCalls(t, b, w, r, lib.pattern)
			})
			for i := 1; i <= n; i++ {
				t.Run(fmt.Sprintf("%s/%s/%d", r.name, lib.pattern, i), func(t *testing.T) {
					b := fakeGPU(t, &fakecuda.Fake{})
					warm(t, b)
					u := usageNow()
					fakecuda.SetFaults(fakecuda.Fault{Call: lib.pattern, Nth: i, Status: lib.status, Sticky: true})
					f, err := r.on(w, b)
					var ce *cuda.Error
					if err != nil && !errors.As(err, &ce) {
						t.Errorf("the run that loses the context: %v is not a *cuda.Error", err)
					}
					if err == nil {
						checkSame(t, "the context lost at the end", f, want, 1e-9)
					}
					if now := usageNow(); now.cuda != u.cuda {
						t.Errorf("%d allocations unaccounted for", now.cuda-u.cuda)
					}
					_, err = r.on(w, b)
					var le *cuda.LostError
					if !errors.As(err, &le) {
						t.Errorf("the next run: %v; want a *cuda.LostError", err)
					}
				})
			}
		}
	}
}

// TestFakeUnclosedFactorsReleased: Factors dropped without Close release
// their device-resident copy once the garbage collector finds them.
func TestFakeUnclosedFactorsReleased(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	warm(t, b)
	u := usageNow()
	func() {
		w := randMatrix[float64](30, 20, 3)
		f, err := lowrank.Factorize(w, lowrank.Rank(3), lowrank.WithBackend(b))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Apply(make([]float64, 20), nil); err != nil {
			t.Fatal(err)
		}
		if usageNow() == u {
			t.Fatal("Apply kept nothing on the device; the test would prove nothing")
		}
	}()
	// Cleanups run on their own goroutine after a GC cycle.
	for range 100 {
		runtime.GC()
		if usageNow() == u {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("device use %+v after the Factors became unreachable; want %+v", usageNow(), u)
}

// TestFakeQRPlanCoversBuffers: the randomized QR (Orthonormalize) checks
// that all its buffers fit before allocating any. Before, it allocated
// Q's buffer first and checked only the workspace, so a Q that did not fit
// went unnoticed by the plan.
func TestFakeQRPlanCoversBuffers(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	e := b.Float64()
	const m, n = 512, 512 // Q's work buffer: 2 MiB; the fake's workspace: 4 KiB
	w := randMatrix[float64](m, n, 5)
	a, err := e.Upload(m, n, w.Data)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free(a)
	// fits keeps a 64 MiB margin: 1 MiB more takes the workspace, not Q.
	old := gpu.SetMemoryLimitForTest(64<<20 + 1<<20)
	defer gpu.SetMemoryLimitForTest(old)
	fakecuda.ResetCalls()
	err = e.Orthonormalize(a)
	if !errors.Is(err, la.ErrDeviceMemory) || !strings.Contains(err.Error(), "geqrf/orgqr's buffers needs 2.0 MiB") {
		t.Fatalf("Orthonormalize where Q's buffer does not fit: %v; want the plan's la.ErrDeviceMemory", err)
	}
	if got := fakecuda.Calls("cuMemAlloc_v2"); got != 0 {
		t.Errorf("%d allocations before the plan found they do not fit; want none", got)
	}
	gpu.SetMemoryLimitForTest(old)
	if err := e.Orthonormalize(a); err != nil {
		t.Errorf("Orthonormalize without the limit: %v", err)
	}
}

// TestFakeGesvdp: gesvdp, asked for, runs where cuSOLVER has it; it is
// retried with gesvd when it does not converge, and gesvdj runs in its
// place where cuSOLVER lacks it (before 11.1).
func TestFakeGesvdp(t *testing.T) {
	w := randMatrix[float64](40, 25, 6)
	want, err := lowrank.SVD(w, lowrank.WithBackend(cpu.New()))
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, b *gpu.Backend, wantCalls map[string]int) {
		t.Helper()
		b.SetSolver(gpu.SolverGesvdp)
		fakecuda.ResetCalls()
		got, err := lowrank.SVD(w, lowrank.WithBackend(b))
		if err != nil {
			t.Fatal(err)
		}
		if d := relDiff(got.S, want.S); d > 1e-10 {
			t.Errorf("singular values differ from the CPU's by %.3g", d)
		}
		for call, n := range wantCalls {
			if got := fakecuda.Calls(call); got != n {
				t.Errorf("%s called %d times; want %d", call, got, n)
			}
		}
	}
	t.Run("present", func(t *testing.T) {
		b := fakeGPU(t, &fakecuda.Fake{})
		check(t, b, map[string]int{"cusolverDnXgesvdp": 1, "cusolverDnDgesvdj": 0, "cusolverDnDgesvd": 0})
		fakecuda.SetDevInfo(fakecuda.Gesvdp, 2)
		check(t, b, map[string]int{"cusolverDnXgesvdp": 1, "cusolverDnDgesvd": 1})
		fakecuda.SetDevInfo(fakecuda.Gesvdp, 0)
	})
	t.Run("absent", func(t *testing.T) {
		b := fakeGPU(t, &fakecuda.Fake{MissingSyms: []string{"cusolverDnXgesvdp"}})
		check(t, b, map[string]int{"cusolverDnXgesvdp": 0, "cusolverDnDgesvdj": 1})
	})
}
