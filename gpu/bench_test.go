//go:build cgo

package gpu_test

// GPU benchmarks, run by scripts/gpu-check.sh. Each reports the device time
// measured with CUDA events (gpu-ms/op) beside Go's wall time, and the
// randomized ones the ratio of their error to the optimal (Eckart–Young)
// error. The matrices have a known spectrum, σ_i = exp(−i/64) + 1e-3, so
// that scripts/gpu_torch_bench.py builds the same problem for torch.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/gpu"
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
func spectralMatrix(tb testing.TB, b *gpu.Backend, d, k int, seed uint64) lowrank.Matrix[float32] {
	tb.Helper()
	e := b.Float32()
	p := min(d, k)
	rng := rand.New(rand.NewPCG(seed, 99))
	gauss := func(r, c int) la.Mat {
		g := make([]float32, r*c)
		for i := range g {
			g[i] = float32(rng.NormFloat64())
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
	sf := make([]float32, p)
	for i := range s {
		sf[i] = float32(s[i])
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
	out := lowrank.Matrix[float32]{Rows: d, Cols: k, Data: make([]float32, d*k)}
	if err := e.Download(out.Data, w); err != nil {
		tb.Fatal(err)
	}
	return out
}

func reportDevice(b *testing.B, total time.Duration) {
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "gpu-ms/op")
}

// BenchmarkExactSVD times the thin SVD (engine.SVD, upload excluded) of
// square float32 matrices with each solver: the data for the solver rule.
func BenchmarkExactSVD(b *testing.B) {
	be := requireGPU(b)
	defer be.SetSolver(gpu.SolverAuto)
	e := be.Float32()
	for _, n := range []int{256, 1024, 2048, 4096} {
		w := spectralMatrix(b, be, n, n, 1)
		for _, s := range []gpu.Solver{gpu.SolverGesvd, gpu.SolverGesvdj, gpu.SolverGesvdp} {
			b.Run(fmt.Sprintf("%v/f32/%dx%d", s, n, n), func(b *testing.B) {
				be.SetSolver(s)
				a, err := e.Upload(n, n, w.Data)
				if err != nil {
					b.Fatal(err)
				}
				defer e.Free(a)
				var dev time.Duration
				b.ResetTimer()
				for range b.N {
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
					dev += t
				}
				reportDevice(b, dev)
			})
		}
	}
}

// BenchmarkRandomized times lowrank.Factorize with the randomized method
// at rank 64 (default oversampling and power iterations, upload and
// download included) and reports err/opt, the achieved relative error over
// the optimal one.
func BenchmarkRandomized(b *testing.B) {
	be := requireGPU(b)
	for _, sh := range [][2]int{{4096, 4096}, {4096, 11008}} {
		d, k := sh[0], sh[1]
		w := spectralMatrix(b, be, d, k, 2)
		opt := optimalError(spectrum(min(d, k)), 64)
		b.Run(fmt.Sprintf("rank64/f32/%dx%d", d, k), func(b *testing.B) {
			var f *lowrank.Factors[float32]
			var dev time.Duration
			b.ResetTimer()
			for range b.N {
				t, err := be.DeviceTime(func() error {
					var err error
					f, err = lowrank.Factorize(w, lowrank.Rank(64), lowrank.WithBackend(be), lowrank.WithMethod(lowrank.Randomized))
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				dev += t
			}
			b.StopTimer()
			reportDevice(b, dev)
			b.ReportMetric(f.RelError/opt, "err/opt")
		})
	}
}

// BenchmarkApply times y = B·(A·x) + bias for one vector and a batch of 64
// with rank-64 factors of a 4096×4096 and a 4096×11008 layer, through
// cuBLAS and through the fused kernel (host-to-host, transfers included).
func BenchmarkApply(b *testing.B) {
	be := requireGPU(b)
	defer be.SetFusedApply(false)
	e := be.Float32()
	for _, sh := range [][2]int{{4096, 4096}, {4096, 11008}} {
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
			for _, n := range []int{1, 64} {
				x := randMatrix[float32](n, k, 4).Data
				y := make([]float32, n*d)
				b.Run(fmt.Sprintf("%s/n=%d/%dx%d", path, n, d, k), func(b *testing.B) {
					if err := app.Apply(y, x, n, bias); err != nil { // warm-up (compiles the kernel)
						b.Fatal(err)
					}
					if path == "fused" {
						if err := gpu.FusedError(app); err != nil {
							b.Fatalf("fused kernel unavailable: %v", err)
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
				})
			}
			app.Close()
		}
	}
}
