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
