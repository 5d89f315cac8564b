package gpu_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/gpu"
	"github.com/lowrank-go/lowrank/internal/cuda"
)

// backend is shared by the tests: the device is opened once per process.
var backend = gpu.New()

// requireGPU returns the CUDA backend, or skips the test with the reason
// the GPU cannot be used. With LOWRANK_REQUIRE_GPU=1 (set by
// scripts/gpu-check.sh) it fails instead.
func requireGPU(t testing.TB) *gpu.Backend {
	t.Helper()
	if err := backend.Init(); err != nil {
		if os.Getenv("LOWRANK_REQUIRE_GPU") == "1" {
			t.Fatalf("LOWRANK_REQUIRE_GPU=1 but the cuda backend cannot run: %v", err)
		}
		t.Skipf("no usable GPU: %v", err)
	}
	return backend
}

// knownReasons are the beginnings of the reasons Init gives on a machine
// where the GPU cannot be used.
var knownReasons = []string{
	cuda.NoDriverMessage,
	cuda.ErrNoCgo.Error(),
	"cuInit: ",
	"cuDeviceGetCount: ",
	"no usable cuBLAS and cuSOLVER",
}

// TestInitReason runs where there is no GPU (CI): Init fails with one of the
// documented reasons, every time, and the engines are nil.
func TestInitReason(t *testing.T) {
	b := gpu.New()
	err := b.Init()
	if err == nil {
		t.Skip("a GPU is usable here; see the GPU tests")
	}
	ok := false
	for _, r := range knownReasons {
		if strings.HasPrefix(err.Error(), r) {
			ok = true
		}
	}
	if !ok {
		t.Errorf("Init: %q does not start with a documented reason %q", err, knownReasons)
	}
	if err2 := b.Init(); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second Init = %v; want the same answer %v", err2, err)
	}
	if b.Name() != "cuda" || b.Describe() != nil || b.Float32() != nil || b.Float64() != nil {
		t.Errorf("unavailable backend: name %q, describe %q, engines %v %v", b.Name(), b.Describe(), b.Float32(), b.Float64())
	}
}

// TestFallbackToCPU checks the root's choice when cuda cannot run: auto
// picks cpu and says why, and asking for cuda fails with the reason.
func TestFallbackToCPU(t *testing.T) {
	reason := gpu.New().Init()
	if reason == nil {
		t.Skip("a GPU is usable here")
	}
	if os.Getenv(lowrank.BackendEnv) != "" {
		t.Skipf("%s is set", lowrank.BackendEnv)
	}
	def, err := lowrank.DefaultBackend()
	if err != nil || def.Name() != "cpu" {
		t.Fatalf("DefaultBackend = %v, %v; want cpu", def, err)
	}
	if why := lowrank.AutoReason(); !strings.Contains(why, reason.Error()) {
		t.Errorf("AutoReason %q does not give the cuda reason %q", why, reason)
	}
	_, err = lowrank.LookupBackend("cuda")
	if !errors.Is(err, lowrank.ErrBackend) || !strings.Contains(err.Error(), reason.Error()) ||
		!strings.HasPrefix(err.Error(), "lowrank: ") {
		t.Errorf("LookupBackend(cuda) = %v; want ErrBackend with the reason", err)
	}
	w, _ := lowrank.NewMatrix(3, 2, []float64{1, 2, 3, 4, 5, 6})
	f, err := lowrank.Factorize(w, lowrank.Rank(1))
	if err != nil || f.Backend.Name() != "cpu" {
		t.Errorf("Factorize without a GPU: backend %v, %v; want cpu", f, err)
	}
	for _, info := range lowrank.Backends() {
		if info.Name == "cuda" && (info.Available || info.Reason != reason.Error()) {
			t.Errorf("Backends reports cuda as %+v", info)
		}
	}
}

func TestChooseSolver(t *testing.T) {
	for _, tc := range []struct {
		req       gpu.Solver
		m, n      int
		hasGesvdp bool
		want      gpu.Solver
	}{
		{gpu.SolverAuto, 100, 80, true, gpu.SolverGesvdj},
		{gpu.SolverAuto, 1024, 1024, true, gpu.SolverGesvdj},
		{gpu.SolverAuto, 1025, 10, true, gpu.SolverGesvd},
		{gpu.SolverAuto, 4096, 11008, true, gpu.SolverGesvd},
		{gpu.SolverGesvd, 10, 10, true, gpu.SolverGesvd},
		{gpu.SolverGesvdp, 10, 10, true, gpu.SolverGesvdp},
		{gpu.SolverGesvdp, 10, 10, false, gpu.SolverGesvdj},
		{gpu.SolverGesvdj, 5000, 5000, false, gpu.SolverGesvdj},
	} {
		if got := gpu.ChooseSolver(tc.req, tc.m, tc.n, tc.hasGesvdp); got != tc.want {
			t.Errorf("ChooseSolver(%v, %d, %d, %v) = %v; want %v", tc.req, tc.m, tc.n, tc.hasGesvdp, got, tc.want)
		}
	}
	for _, s := range []string{"auto", "GESVD", " gesvdj ", "gesvdp"} {
		if _, err := gpu.ParseSolver(s); err != nil {
			t.Errorf("ParseSolver(%q): %v", s, err)
		}
	}
	if _, err := gpu.ParseSolver("qr"); err == nil || !strings.HasPrefix(err.Error(), "lowrank: ") {
		t.Errorf("ParseSolver(qr) = %v", err)
	}
}

func TestBadEnvironment(t *testing.T) {
	t.Setenv(gpu.SolverEnv, "magic")
	if err := gpu.New().Init(); err == nil || !strings.Contains(err.Error(), "LOWRANK_CUDA_SVD") {
		t.Errorf("Init with %s=magic: %v", gpu.SolverEnv, err)
	}
	t.Setenv(gpu.SolverEnv, "")
	t.Setenv(gpu.FusedEnv, "maybe")
	if err := gpu.New().Init(); err == nil || !strings.Contains(err.Error(), "LOWRANK_CUDA_FUSED") {
		t.Errorf("Init with %s=maybe: %v", gpu.FusedEnv, err)
	}
}
