package lowrank_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/lowrank-go/lowrank"
)

// A 4×3 matrix of rank 1 is reproduced exactly by rank-1 factors holding
// 7 parameters instead of 12.
func ExampleFactorize() {
	w, err := lowrank.NewMatrix(4, 3, []float64{
		1, 2, 3,
		2, 4, 6,
		3, 6, 9,
		4, 8, 12,
	})
	if err != nil {
		panic(err)
	}
	f, err := lowrank.Factorize(w, lowrank.Rank(1))
	if err != nil {
		panic(err)
	}
	fmt.Printf("B %d×%d, A %d×%d\n", f.B.Rows, f.B.Cols, f.A.Rows, f.A.Cols)
	fmt.Printf("parameters %d → %d, relative error %.3f\n", f.DenseParams(), f.Params(), f.RelError)
	// Output:
	// B 4×1, A 1×3
	// parameters 12 → 7, relative error 0.000
}

// FactorizeContext stops a factorization when its context ends: here a
// service's request deadline. A cancelled or timed-out call returns an
// error wrapping ctx.Err() and no factors; one that finishes in time is
// Factorize's result.
func ExampleFactorizeContext() {
	w, _ := lowrank.NewMatrix(4, 3, []float64{
		1, 2, 3,
		2, 4, 6,
		3, 6, 9,
		4, 8, 12,
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := lowrank.FactorizeContext(ctx, w, lowrank.Rank(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("rank %d, relative error %.3f\n", f.Rank, f.RelError)

	// A context that has already ended stops the call before any work.
	cancel()
	_, err = lowrank.FactorizeContext(ctx, w, lowrank.Rank(1))
	fmt.Println(errors.Is(err, context.Canceled))
	fmt.Println(err)
	// Output:
	// rank 1, relative error 0.000
	// true
	// lowrank: factorization of a 4×3 matrix stopped: context canceled
}

// SVDContext is SVD with a context: the decomposition itself is one
// LAPACK call that runs to its end, so the context is checked before and
// after it.
func ExampleSVDContext() {
	w, _ := lowrank.NewMatrix(2, 3, []float64{
		3, 0, 0,
		0, 0, 2,
	})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Minute))
	defer cancel()
	svd, err := lowrank.SVDContext(ctx, w)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(svd.S)

	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	_, err = lowrank.SVDContext(expired, w)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output:
	// [3 2]
	// true
}

// The Energy policy picks the smallest rank that keeps 99% of ‖W‖_F².
func ExampleEnergy() {
	// σ = 10, 1, 0.1 on the diagonal.
	w, _ := lowrank.NewMatrix(3, 3, []float64{
		10, 0, 0,
		0, 1, 0,
		0, 0, 0.1,
	})
	f, _ := lowrank.Factorize(w, lowrank.Energy(0.99))
	fmt.Printf("rank %d keeps %.4f of the energy, error %.4f\n", f.Rank, f.Energy, f.RelError)
	// Output:
	// rank 1 keeps 0.9900 of the energy, error 0.1000
}

// Apply evaluates the factorized layer y = B·(A·x) + bias.
func ExampleFactors_Apply() {
	w, _ := lowrank.NewMatrix(2, 2, []float64{
		1, 1,
		1, 1,
	})
	f, _ := lowrank.Factorize(w, lowrank.Rank(1))
	y, _ := f.Apply([]float64{1, 2}, []float64{0.5, -0.5})
	fmt.Printf("%.3f\n", y)
	// Output:
	// [3.500 2.500]
}

// One Factors serves many goroutines at once, as in an inference service:
// each applies its own inputs into its own output. The library shares the
// CPU's cores among them (one each, at most GOMAXPROCS at a time) instead
// of letting BLAS threads multiply with goroutines.
func ExampleFactors_ApplyTo() {
	w, _ := lowrank.NewMatrix(2, 2, []float64{
		1, 1,
		1, 1,
	})
	f, _ := lowrank.Factorize(w, lowrank.Rank(1))
	sums := make([]float64, 8)
	var wg sync.WaitGroup
	for g := range sums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			y := make([]float64, 2)
			for i := range 100 {
				if err := f.ApplyTo(y, []float64{float64(g), float64(i)}, nil); err != nil {
					panic(err)
				}
				sums[g] += y[0]
			}
		}()
	}
	wg.Wait()
	fmt.Printf("%.0f\n", sums)
	// Output:
	// [4950 5050 5150 5250 5350 5450 5550 5650]
}

// SVD returns the thin decomposition W = U·diag(S)·Vᵀ.
func ExampleSVD() {
	w, _ := lowrank.NewMatrix(2, 3, []float64{
		3, 0, 0,
		0, 0, 2,
	})
	svd, _ := lowrank.SVD(w)
	fmt.Printf("U %d×%d, S %v, Vt %d×%d\n", svd.U.Rows, svd.U.Cols, svd.S, svd.Vt.Rows, svd.Vt.Cols)
	// Output:
	// U 2×2, S [3 2], Vt 2×3
}

// AddTo merges an adapter ΔW = B·A into a base weight, as PEFT's
// merge_and_unload does with alpha = α/r; -alpha takes it out again.
func ExampleFactors_AddTo() {
	base, _ := lowrank.NewMatrix(2, 3, []float64{
		1, 0, 0,
		0, 1, 0,
	})
	b, _ := lowrank.NewMatrix(2, 1, []float64{1, 2})
	a, _ := lowrank.NewMatrix(1, 3, []float64{1, 0, 1})
	delta, _ := lowrank.NewFactors(b, a)
	if err := delta.AddTo(base, 0.5); err != nil {
		panic(err)
	}
	fmt.Println(base.Data)
	// Output:
	// [1.5 0 0.5 1 1 1]
}

// Residual measures the error of factors changed after Factorize, here
// rounded to one decimal for storage; Factors.Norm is ‖W‖_F.
func ExampleFactors_Residual() {
	w, _ := lowrank.NewMatrix(2, 2, []float64{
		2, 1,
		1, 2,
	})
	f, _ := lowrank.Factorize(w, lowrank.Rank(1))
	for i, v := range f.A.Data {
		f.A.Data[i] = math.Round(v*10) / 10
	}
	res, _ := f.Residual(w)
	fmt.Printf("‖W‖ = %.4f, relative error %.4f (%.4f before rounding)\n", f.Norm, res/f.Norm, f.RelError)
	// Output:
	// ‖W‖ = 3.1623, relative error 0.3164 (0.3162 before rounding)
}

// Dense is a dense layer y = W·x + bias on the backend, the counterpart of
// Factors for a weight kept dense.
func ExampleNewDense() {
	w, _ := lowrank.NewMatrix(2, 3, []float64{
		1, 2, 3,
		4, 5, 6,
	})
	layer, err := lowrank.NewDense(w)
	if err != nil {
		panic(err)
	}
	defer layer.Close()
	y, _ := layer.Apply([]float64{1, 0, -1}, []float64{0.5, 0.5})
	fmt.Println(y)
	// Output:
	// [-1.5 -1.5]
}

// SetRecorded restores what a file recorded about factors read from it:
// NewFactors cannot know their error and energy.
func ExampleFactors_SetRecorded() {
	b, _ := lowrank.NewMatrix(2, 1, []float32{1, 2})
	a, _ := lowrank.NewMatrix(1, 2, []float32{3, 4})
	f, _ := lowrank.NewFactors(b, a)
	fmt.Println(f.RelError, f.Energy)
	if err := f.SetRecorded(0.01, 0.9999); err != nil {
		panic(err)
	}
	fmt.Println(f.RelError, f.Energy)
	// Output:
	// NaN NaN
	// 0.01 0.9999
}
