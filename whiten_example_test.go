package lowrank_test

import (
	"fmt"
	"math"

	"github.com/lowrank-go/lowrank"
)

// A layer whose first input channel carries 100 times the energy of the
// second and 10 000 times that of the third. Plain SVD spends its one
// rank on the largest weights; with the inputs' second moment C = XᵀX/n
// the factors spend it on the outputs the layer really produces.
func ExampleWithInputCovariance() {
	w, _ := lowrank.NewMatrix(3, 3, []float64{
		0.2, 0.1, 3,
		0.1, 0.3, 2,
		0.3, 0.2, -1,
	})
	// C = (1/n)·Σ x·xᵀ over calibration inputs x (here uncorrelated
	// channels with mean squares 100, 1 and 0.01).
	c, _ := lowrank.NewMatrix(3, 3, []float64{
		100, 0, 0,
		0, 1, 0,
		0, 0, 0.01,
	})
	plain, _ := lowrank.Factorize(w, lowrank.Rank(1))
	aware, _ := lowrank.Factorize(w, lowrank.Rank(1), lowrank.WithInputCovariance(c))
	fmt.Printf("plain SVD:  weight error %.3f, output error %.3f\n", plain.RelError, outputError(w, plain, c))
	fmt.Printf("data-aware: weight error %.3f, output error %.3f (reported %.3f), ridge %g\n",
		aware.RelError, outputError(w, aware, c), aware.OutputRelError, aware.Ridge)
	// Output:
	// plain SVD:  weight error 0.126, output error 0.926
	// data-aware: weight error 0.925, output error 0.111 (reported 0.111), ridge 0
}

// outputError is ‖(W − B·A)·X‖_F / ‖W·X‖_F = sqrt(tr(E·C·Eᵀ) / tr(W·C·Wᵀ)),
// E = W − B·A.
func outputError(w lowrank.Matrix[float64], f *lowrank.Factors[float64], c lowrank.Matrix[float64]) float64 {
	ba, _ := f.Reconstruct()
	quad := func(m func(i, j int) float64) float64 {
		s := 0.0
		for i := range w.Rows {
			for a := range w.Cols {
				for b := range w.Cols {
					s += m(i, a) * c.At(a, b) * m(i, b)
				}
			}
		}
		return s
	}
	e := quad(func(i, j int) float64 { return w.At(i, j) - ba.At(i, j) })
	return math.Sqrt(e / quad(w.At))
}

// ASVD-style scaling: per-channel input scales s (the mean |x| of each
// channel, to a power α ≈ 0.5) instead of a full second moment. The
// factors minimise ‖(W − B·A)·diag(s)‖_F.
func ExampleWithInputScale() {
	w, _ := lowrank.NewMatrix(3, 3, []float64{
		0.2, 0.1, 3,
		0.1, 0.3, 2,
		0.3, 0.2, -1,
	})
	s := []float64{10, 1, 0.1} // the first channel's inputs are 100× the third's
	f, _ := lowrank.Factorize(w, lowrank.Rank(1), lowrank.WithInputScale(s))
	fmt.Printf("rank %d, weight error %.3f, scaled output error %.3f\n", f.Rank, f.RelError, f.OutputRelError)
	// Output:
	// rank 1, weight error 0.925, scaled output error 0.111
}

// A layer with a bias: with the inputs' mean μ beside C, the factors fit
// the inputs' spread about their mean and the bias takes the mean error,
// b + (W − B·A)·μ (Factors.BiasShift), as lowrank factorize --calibration
// does with NAME.input_mean.
func ExampleWithInputMoments() {
	w, _ := lowrank.NewMatrix(2, 3, []float64{
		1, 2, 3,
		3, 1, 2,
	})
	// Inputs (1, 1, 0) and (1, 0, 1): C = XᵀX/2 and μ their mean.
	c, _ := lowrank.NewMatrix(3, 3, []float64{
		1, 0.5, 0.5,
		0.5, 0.5, 0,
		0.5, 0, 0.5,
	})
	mu := []float64{1, 0.5, 0.5}
	f, _ := lowrank.Factorize(w, lowrank.Rank(1), lowrank.WithInputMoments(c, mu))
	bias := []float64{0, 0}
	for i, v := range f.BiasShift {
		bias[i] += v
	}
	// The compressed layer's outputs on the two inputs, against W·x.
	for _, x := range [][]float64{{1, 1, 0}, {1, 0, 1}} {
		y, _ := f.Apply(x, bias)
		want := []float64{w.At(0, 0)*x[0] + w.At(0, 1)*x[1] + w.At(0, 2)*x[2], w.At(1, 0)*x[0] + w.At(1, 1)*x[1] + w.At(1, 2)*x[2]}
		fmt.Printf("x %v: y %.3f, W·x %.3f\n", x, y, want)
	}
	// Two inputs spread along one direction about their mean: rank 1 and
	// the shifted bias reproduce the layer on them exactly.
	// Output:
	// x [1 1 0]: y [3.000 4.000], W·x [3.000 4.000]
	// x [1 0 1]: y [4.000 5.000], W·x [4.000 5.000]
}
