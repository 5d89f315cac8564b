//go:build cgo

package gpu_test

// GPU benchmarks, run by scripts/gpu-check.sh beside the same problems in
// torch (scripts/gpu_torch_bench.py). Each reports the device time
// measured with CUDA events (gpu-ms/op) beside Go's wall time, and the
// randomized ones the ratio of their error to the optimal (Eckart–Young)
// error. The matrices have a known spectrum, σ_i = exp(−i/64) + 1e-3, so
// that the torch script builds the same problem.
//
// Two environment variables shape a run:
//
//   - LOWRANK_BENCH_DEADLINE (Unix seconds): a benchmark whose predicted
//     time (its previous size's time scaled by the flops) would end past
//     it is skipped with "budget", so that a time-boxed run keeps what it
//     measured instead of being killed inside a long cuSOLVER call;
//   - LOWRANK_BENCH_FAKE=1: run over the fake CUDA at small sizes (a dry
//     run of scripts/gpu-check.sh's benchmark stage on a machine without
//     a GPU: it checks the names, metrics and the table, not the speed).

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/gpu"
	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/internal/testkit/fakecuda"
	"github.com/lowrank-go/lowrank/la"
)

// spectrum returns σ_i = exp(−i/64) + 1e-3 for i < n.
func spectrum(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.Exp(-float64(i)/64) + 1e-3
	}
	return s
}

// optimalError is the Eckart–Young relative error of rank r.
func optimalError(s []float64, r int) float64 {
	var tail, all float64
	for i, v := range s {
		all += v * v
		if i >= r {
			tail += v * v
		}
	}
	return math.Sqrt(tail / all)
}

// spectralMatrix builds W = U·diag(σ)·Vᵀ (d×k) with random orthonormal U
// and V on the GPU and downloads it.
func spectralMatrix[T lowrank.Float](tb testing.TB, e la.Engine[T], d, k int, seed uint64) lowrank.Matrix[T] {
	tb.Helper()
	p := min(d, k)
	rng := rand.New(rand.NewPCG(seed, 99))
	gauss := func(r, c int) la.Mat {
		g := make([]T, r*c)
		for i := range g {
			g[i] = T(rng.NormFloat64())
		}
		m, err := e.Upload(r, c, g)
		if err != nil {
			tb.Fatal(err)
		}
		if err := e.Orthonormalize(m); err != nil {
			tb.Fatal(err)
		}
		return m
	}
	u, v := gauss(d, p), gauss(k, p)
	defer e.Free(u)
	defer e.Free(v)
	s := spectrum(p)
	sf := make([]T, p)
	for i := range s {
		sf[i] = T(s[i])
	}
	if err := e.ScaleColumns(u, sf); err != nil {
		tb.Fatal(err)
	}
	w, err := e.Zeros(d, k)
	if err != nil {
		tb.Fatal(err)
	}
	defer e.Free(w)
	if err := e.Gemm(false, true, 1, u, v, 0, w); err != nil {
		tb.Fatal(err)
	}
	out := lowrank.Matrix[T]{Rows: d, Cols: k, Data: make([]T, d*k)}
	if err := e.Download(out.Data, w); err != nil {
		tb.Fatal(err)
	}
	return out
}

func reportDevice(b *testing.B, total time.Duration) {
	b.ReportMetric(float64(total.Nanoseconds())/1e6/float64(b.N), "gpu-ms/op")
}

// benchFake is the backend over the fake CUDA of LOWRANK_BENCH_FAKE=1,
// opened once.
var benchFake = sync.OnceValues(func() (*gpu.Backend, error) {
	f := &fakecuda.Fake{Files: fakecuda.CUDA13("/fake/cuda/lib")}
	if err := os.Setenv(cuda.LibDirEnv, "/fake/cuda/lib"); err != nil {
		return nil, err
	}
	f.Install()
	b := gpu.NewWithLoader(f)
	return b, b.Init()
})

// benchGPU returns the backend the benchmarks run on and whether it is
// the fake (small sizes).
func benchGPU(b *testing.B) (*gpu.Backend, bool) {
	if os.Getenv("LOWRANK_BENCH_FAKE") == "1" {
		be, err := benchFake()
		if err != nil {
			b.Fatalf("fake CUDA: %v", err)
		}
		return be, true
	}
	return requireGPU(b), false
}

// budget predicts whether a benchmark fits before LOWRANK_BENCH_DEADLINE:
// it remembers the last time per series (solver and type, say) and
// scales it by the ratio of flops.
type budget struct {
	deadline time.Time
	last     map[string][2]float64 // series → seconds, flops
}

func newBudget() *budget {
	bd := &budget{last: map[string][2]float64{}}
	if s, err := strconv.ParseInt(os.Getenv("LOWRANK_BENCH_DEADLINE"), 10, 64); err == nil {
		bd.deadline = time.Unix(s, 0)
	}
	return bd
}

// fits skips b (with "budget") when the series' last run scaled to flops
// would end past the deadline, or the deadline has passed.
func (bd *budget) fits(b *testing.B, series string, flops float64) {
	if bd.deadline.IsZero() {
		return
	}
	left := time.Until(bd.deadline).Seconds()
	if last, ok := bd.last[series]; ok && last[0]*flops/last[1] > left || left < 1 {
		b.Skipf("budget: %.0f s left", left)
	}
}

// record stores the time of one run of series.
func (bd *budget) record(series string, seconds, flops float64) {
	bd.last[series] = [2]float64{seconds, flops}
}

// BenchmarkExactSVD times the thin SVD (engine.SVD, upload excluded) of
// float32 and float64 matrices with each solver — the data for the
// solver rule (ChooseSolver; the metric auto is 1 for the solver the rule
// picks) — from 1024² to 8192², and 8192×1024 and 1024×8192. Sizes grow
// in the outer loop, so that a deadline cuts the largest.
func BenchmarkExactSVD(b *testing.B) {
	be, fake := benchGPU(b)
	defer be.SetSolver(gpu.SolverAuto)
	type shape struct{ d, k int }
	shapes := []shape{{1024, 1024}, {2048, 2048}, {8192, 1024}, {1024, 8192}, {4096, 4096}, {8192, 8192}}
	if fake {
		shapes = []shape{{48, 48}, {96, 32}}
	}
	bd := newBudget()
	for _, sh := range shapes {
		n := max(sh.d, sh.k)
		var w32 *lowrank.Matrix[float32]
		var w64 *lowrank.Matrix[float64]
		for _, s := range []gpu.Solver{gpu.SolverGesvd, gpu.SolverGesvdj, gpu.SolverGesvdp} {
			// One-sided Jacobi's sweeps grow fast with the size: past
			// 4096 it is minutes, not a candidate.
			if s == gpu.SolverGesvdj && n > 4096 && !fake {
				continue
			}
			b.Run(fmt.Sprintf("%v/f32/%dx%d", s, sh.d, sh.k), func(b *testing.B) {
				benchSVD(b, be, be.Float32(), &w32, s, sh.d, sh.k, bd)
			})
			b.Run(fmt.Sprintf("%v/f64/%dx%d", s, sh.d, sh.k), func(b *testing.B) {
				benchSVD(b, be, be.Float64(), &w64, s, sh.d, sh.k, bd)
			})
		}
	}
}

func benchSVD[T lowrank.Float](b *testing.B, be *gpu.Backend, e la.Engine[T], w **lowrank.Matrix[T], s gpu.Solver, d, k int, bd *budget) {
	var z T
	series := fmt.Sprintf("%v/%T", s, z)
	flops := float64(d) * float64(k) * float64(min(d, k))
	bd.fits(b, series, flops)
	if *w == nil {
		m := spectralMatrix(b, e, d, k, 1)
		*w = &m
	}
	be.SetSolver(s)
	a, err := e.Zeros(d, k)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Free(a)
	src, err := e.Upload(d, k, (*w).Data)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Free(src)
	var dev time.Duration
	var wall time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := e.Copy(a, src); err != nil { // the SVD destroys its input
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		t, err := be.DeviceTime(func() error {
			u, _, vt, err := e.SVD(a)
			if err == nil {
				e.Free(u)
				e.Free(vt)
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		wall += time.Since(t0)
		dev += t
	}
	b.StopTimer()
	bd.record(series, wall.Seconds()/float64(b.N), flops)
	reportDevice(b, dev)
	auto := 0.0
	if gpu.ChooseSolver(gpu.SolverAuto, d, k, true) == s {
		auto = 1
	}
	b.ReportMetric(auto, "auto")
}

// BenchmarkRandomized times lowrank.Factorize with the randomized method
// (default oversampling 10 and 2 power iterations, upload and download
// included) at ranks 16, 64 and 256 on 4096², 8192² and 4096×11008
// float32 matrices, with the float32, TF32 and BF16 sketch, and reports
// err/opt, the achieved relative error over the optimal one, and
// reduced = 1 when the reduced precision ran (0 when the factors were
// accurate enough for lowrank to recompute them in float32).
func BenchmarkRandomized(b *testing.B) {
	be, fake := benchGPU(b)
	shapes := [][2]int{{4096, 4096}, {4096, 11008}, {8192, 8192}}
	ranks := []int{16, 64, 256}
	if fake {
		shapes, ranks = [][2]int{{256, 256}, {200, 320}}, []int{16}
	}
	bd := newBudget()
	for _, sh := range shapes {
		d, k := sh[0], sh[1]
		var w lowrank.Matrix[float32]
		made := false
		for _, r := range ranks {
			opt := optimalError(spectrum(min(d, k)), r)
			for _, p := range []lowrank.SketchPrecision{lowrank.SketchF32, lowrank.SketchTF32, lowrank.SketchBF16} {
				b.Run(fmt.Sprintf("r%d/%v/%dx%d", r, p, d, k), func(b *testing.B) {
					flops := float64(d) * float64(k) * float64(r+lowrank.DefaultOversampling)
					bd.fits(b, "randomized", flops)
					if !made {
						w, made = spectralMatrix(b, be.Float32(), d, k, 2), true
					}
					var f *lowrank.Factors[float32]
					var dev time.Duration
					t0 := time.Now()
					b.ResetTimer()
					for range b.N {
						t, err := be.DeviceTime(func() error {
							var err error
							f, err = lowrank.Factorize(w, lowrank.Rank(r), lowrank.WithBackend(be),
								lowrank.WithMethod(lowrank.Randomized), lowrank.WithSketchPrecision(p))
							return err
						})
						if err != nil {
							b.Fatal(err)
						}
						dev += t
						if f.Backend.Name() != "cuda" {
							b.Fatalf("ran on %s: %s", f.Backend.Name(), f.Fallback)
						}
					}
					b.StopTimer()
					bd.record("randomized", time.Since(t0).Seconds()/float64(b.N), flops)
					reportDevice(b, dev)
					b.ReportMetric(f.RelError/opt, "err/opt")
					reduced := 0.0
					if f.SketchPrecision == p {
						reduced = 1
					}
					b.ReportMetric(reduced, "reduced")
				})
			}
		}
	}
}

// BenchmarkApply times y = B·(A·x) + bias for batches of 1, 8, 64 and 512
// vectors with rank-64 factors of a 4096×4096 and a 4096×11008 layer,
// through cuBLAS and through the fused kernel (host-to-host, transfers
// included). The fused kernel takes batches up to gpu.FusedMaxBatch; the
// metric fused says whether it ran.
func BenchmarkApply(b *testing.B) {
	be, fake := benchGPU(b)
	defer be.SetFusedApply(false)
	e := be.Float32()
	shapes := [][2]int{{4096, 4096}, {4096, 11008}}
	if fake {
		shapes = [][2]int{{256, 320}}
	}
	for _, sh := range shapes {
		d, k := sh[0], sh[1]
		const r = 64
		bm := randMatrix[float32](d, r, 1).Data
		am := randMatrix[float32](r, k, 2).Data
		bias := randMatrix[float32](1, d, 3).Data
		for _, path := range []string{"cublas", "fused"} {
			be.SetFusedApply(path == "fused")
			app, err := e.NewApplier(d, r, k, bm, am)
			if err != nil {
				b.Fatal(err)
			}
			for _, n := range []int{1, 8, 64, 512} {
				x := randMatrix[float32](n, k, 4).Data
				y := make([]float32, n*d)
				b.Run(fmt.Sprintf("%s/n=%d/%dx%d", path, n, d, k), func(b *testing.B) {
					if err := app.Apply(y, x, n, bias); err != nil { // warm-up (compiles the kernel)
						b.Fatal(err)
					}
					fused := 0.0
					if path == "fused" && n <= gpu.FusedMaxBatch {
						if err := gpu.FusedError(app); err != nil {
							if !fake { // the fake has no NVRTC
								b.Fatalf("fused kernel unavailable: %v", err)
							}
						} else {
							fused = 1
						}
					}
					b.ResetTimer()
					dev, err := be.DeviceTime(func() error {
						for range b.N {
							if err := app.Apply(y, x, n, bias); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
					reportDevice(b, dev)
					b.ReportMetric(fused, "fused")
				})
			}
			app.Close()
		}
	}
}
