package lowrank_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lowrank-go/lowrank"
)

// Benchmarks of the three jobs on the default backend (the CPU one here:
// a system BLAS/LAPACK when installed, gonum otherwise; `lowrank
// backends` says which). The side-by-side comparison with numpy, torch and
// scikit-learn is bench/run.sh; these are for profiling and regressions:
//
//	go test -run '^$' -bench . -benchtime 3x
//	go test -run '^$' -bench 'Factorize/randomized/4096' -cpuprofile cpu.out

// benchMatrix returns a d×k matrix with a decaying spectrum plus noise:
// a rank-128 part with σᵢ = 1/(1+i) and Gaussian noise of norm ≈ 0.01·σ₁.
func benchMatrix[T lowrank.Float](b *testing.B, d, k int) lowrank.Matrix[T] {
	b.Helper()
	const r = 128
	rng := rand.New(rand.NewPCG(1, 2))
	bm := lowrank.Matrix[T]{Rows: d, Cols: r, Data: make([]T, d*r)}
	am := lowrank.Matrix[T]{Rows: r, Cols: k, Data: make([]T, r*k)}
	for i := range bm.Data {
		bm.Data[i] = T(rng.NormFloat64() / math.Sqrt(float64(d)) / float64(1+i%r))
	}
	for i := range am.Data {
		am.Data[i] = T(rng.NormFloat64() / math.Sqrt(float64(k)))
	}
	f, err := lowrank.NewFactors(bm, am)
	if err != nil {
		b.Fatal(err)
	}
	w, err := f.Reconstruct()
	if err != nil {
		b.Fatal(err)
	}
	noise := 0.01 / math.Sqrt(float64(d*k))
	for i := range w.Data {
		w.Data[i] += T(noise * rng.NormFloat64())
	}
	return w
}

func BenchmarkFactorize(b *testing.B) {
	b.Run("exact/1024x1024/f32", func(b *testing.B) { benchFactorize[float32](b, 1024, 1024, 64, lowrank.Exact) })
	b.Run("exact/1024x1024/f64", func(b *testing.B) { benchFactorize[float64](b, 1024, 1024, 64, lowrank.Exact) })
	b.Run("randomized/1024x1024/r64/f32", func(b *testing.B) { benchFactorize[float32](b, 1024, 1024, 64, lowrank.Randomized) })
	b.Run("randomized/1024x1024/r64/f64", func(b *testing.B) { benchFactorize[float64](b, 1024, 1024, 64, lowrank.Randomized) })
	b.Run("randomized/4096x4096/r64/f32", func(b *testing.B) { benchFactorize[float32](b, 4096, 4096, 64, lowrank.Randomized) })
	b.Run("randomized/4096x4096/r64/f64", func(b *testing.B) { benchFactorize[float64](b, 4096, 4096, 64, lowrank.Randomized) })
	b.Run("randomized/4096x4096/r64/bf16sketch", func(b *testing.B) {
		benchFactorize[float32](b, 4096, 4096, 64, lowrank.Randomized, lowrank.WithSketchPrecision(lowrank.SketchBF16))
	})
}

func benchFactorize[T lowrank.Float](b *testing.B, d, k, r int, m lowrank.Method, opts ...lowrank.Option) {
	w := benchMatrix[T](b, d, k)
	b.SetBytes(int64(d * k * bytesOf[T]()))
	b.ResetTimer()
	for b.Loop() {
		if _, err := lowrank.Factorize(w, lowrank.Rank(r), append([]lowrank.Option{lowrank.WithMethod(m)}, opts...)...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("4096x4096/r64/n%d/f32", n), func(b *testing.B) { benchApply[float32](b, 4096, 4096, 64, n) })
		b.Run(fmt.Sprintf("4096x4096/r64/n%d/f64", n), func(b *testing.B) { benchApply[float64](b, 4096, 4096, 64, n) })
	}
}

// benchApply reports bytes as the factors read per call, (d+k)·r·size, so
// that MB/s compares with the memory bandwidth for n = 1.
func benchApply[T lowrank.Float](b *testing.B, d, k, r, n int) {
	rng := rand.New(rand.NewPCG(3, 4))
	mk := func(rows, cols int) lowrank.Matrix[T] {
		m := lowrank.Matrix[T]{Rows: rows, Cols: cols, Data: make([]T, rows*cols)}
		for i := range m.Data {
			m.Data[i] = T(rng.NormFloat64())
		}
		return m
	}
	f, err := lowrank.NewFactors(mk(d, r), mk(r, k))
	if err != nil {
		b.Fatal(err)
	}
	x := mk(n, k)
	y := lowrank.Matrix[T]{Rows: n, Cols: d, Data: make([]T, n*d)}
	bias := mk(1, d).Data
	b.SetBytes(int64((d + k) * r * bytesOf[T]()))
	b.ResetTimer()
	for b.Loop() {
		var err error
		if n == 1 {
			err = f.ApplyTo(y.Data, x.Data, bias)
		} else {
			err = f.ApplyBatchTo(y, x, bias)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2*n*(d+k)*r)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func bytesOf[T lowrank.Float]() int {
	var z T
	if _, ok := any(z).(float32); ok {
		return 4
	}
	return 8
}

// BenchmarkConcurrentApply applies one shared rank-64 4096² float32
// Factors (one vector per call) from 1, 8 and 64 goroutines and reports
// the applies per second of all of them together; the library's goal is
// at least the one-goroutine rate at 8 and 64.
func BenchmarkConcurrentApply(b *testing.B) {
	const d, k, r = 4096, 4096, 64
	rng := rand.New(rand.NewPCG(5, 6))
	mk := func(rows, cols int) lowrank.Matrix[float32] {
		m := lowrank.Matrix[float32]{Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}
		for i := range m.Data {
			m.Data[i] = float32(rng.NormFloat64())
		}
		return m
	}
	f, err := lowrank.NewFactors(mk(d, r), mk(r, k))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	bias := mk(1, d).Data
	for _, g := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			xs := make([][]float32, g)
			ys := make([][]float32, g)
			for i := range g {
				xs[i], ys[i] = mk(1, k).Data, make([]float32, d)
			}
			if err := f.ApplyTo(ys[0], xs[0], bias); err != nil { // prepare outside the timing
				b.Fatal(err)
			}
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := range g {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := f.ApplyTo(ys[i], xs[i], bias); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
		})
	}
}

// BenchmarkConcurrentFactorize runs 1, 2 and 4 independent randomized
// factorizations (1024² float32, rank 32, each on its own matrix) at once
// and reports factorizations per second; the goal is near-linear scaling
// up to the number of cores.
func BenchmarkConcurrentFactorize(b *testing.B) {
	const n, r = 1024, 32
	ws := make([]lowrank.Matrix[float32], 4)
	for i := range ws {
		ws[i] = benchMatrix[float32](b, n, n)
	}
	for _, c := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("callers=%d", c), func(b *testing.B) {
			b.ResetTimer()
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range c {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := lowrank.Factorize(ws[i], lowrank.Rank(r), lowrank.WithSeed(uint64(i))); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(c*b.N)/b.Elapsed().Seconds(), "factorizations/s")
		})
	}
}
