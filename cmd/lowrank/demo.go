package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/lowrank-go/lowrank"
)

// runDemo reproduces the notebook that motivates the library: a d×k matrix
// of rank r, its SVD, the factors B = U_r·S_r and A = V_r, and the check
// that W·x + b and B·(A·x) + b agree while the factors hold (d+k)·r
// parameters instead of d·k.
func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "demo [--d 10] [--k 10] [--rank 2] [--seed 42] [--f32]", stderr)
	d := fs.Int("d", 10, "rows of W (output size)")
	k := fs.Int("k", 10, "columns of W (input size)")
	r := fs.Int("rank", 2, "rank of W, and of the factors")
	seed := fs.Uint64("seed", 42, "seed of the random W, x and bias")
	f32 := fs.Bool("f32", false, "compute in float32 instead of float64")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("demo takes no arguments, got %q", pos)
	}
	if *d < 1 || *k < 1 {
		return usagef("demo: --d %d --k %d; expected both ≥ 1", *d, *k)
	}
	if *d > 4096 || *k > 4096 {
		return usagef("demo: --d %d --k %d; the demo prints W, so expected both ≤ 4096", *d, *k)
	}
	if *r < 1 || *r > min(*d, *k) {
		return usagef("demo: --rank %d; expected 1 ≤ rank ≤ min(d,k) = %d", *r, min(*d, *k))
	}
	if err := parsed("demo", []int{*d, *k, *r}); err != nil {
		return err
	}
	if *f32 {
		return demo[float32](stdout, *d, *k, *r, *seed)
	}
	return demo[float64](stdout, *d, *k, *r, *seed)
}

func demo[T lowrank.Float](w io.Writer, d, k, r int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0))
	gauss := func(n int) []T {
		v := make([]T, n)
		for i := range v {
			v[i] = T(rng.NormFloat64())
		}
		return v
	}
	// W = G1·G2 with G1 d×r and G2 r×k has rank r.
	g1, g2 := gauss(d*r), gauss(r*k)
	W, err := lowrank.NewMatrix[T](d, k, nil)
	if err != nil {
		return err
	}
	for i := range d {
		for j := range k {
			var s T
			for t := range r {
				s += g1[i*r+t] * g2[t*k+j]
			}
			W.Set(i, j, s)
		}
	}
	bias, x := gauss(d), gauss(k)

	fmt.Fprintf(w, "W (%d×%d, built with rank %d from seed %d):\n", d, k, r, seed)
	printMatrix(w, W)

	svd, err := lowrank.SVD(W)
	if err != nil {
		return err
	}
	p := len(svd.S)
	rank := numericalRank(svd.S, d, k)
	fmt.Fprintf(w, "\nRank of W: %d\n", rank)
	fmt.Fprintf(w, "\nU, S, V = SVD(W)\n")
	fmt.Fprintf(w, "  U: (%d, %d)  S: (%d)  V: (%d, %d)\n", d, p, p, k, p)
	fmt.Fprintf(w, "  S = %s\n", formatVector(svd.S))

	f, err := lowrank.Factorize(W, lowrank.Rank(r), lowrank.WithMethod(lowrank.Exact))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nKeep the first r = %d singular triplets:\n", r)
	fmt.Fprintf(w, "  U_r = U[:, :%d]        shape (%d, %d)\n", r, d, r)
	fmt.Fprintf(w, "  S_r = diag(S[:%d])     shape (%d, %d)\n", r, r, r)
	fmt.Fprintf(w, "  V_r = V[:, :%d]ᵀ       shape (%d, %d)\n", r, r, k)
	fmt.Fprintf(w, "  B = U_r·S_r           shape (%d, %d)\n", f.B.Rows, f.B.Cols)
	fmt.Fprintf(w, "  A = V_r               shape (%d, %d)\n", f.A.Rows, f.A.Cols)
	fmt.Fprintf(w, "  relative error ‖W − B·A‖_F / ‖W‖_F = %.3g\n", f.RelError)

	// y = W·x + bias, the dense layer.
	y := make([]T, d)
	for i := range d {
		s := bias[i]
		for j, v := range W.Row(i) {
			s += v * x[j]
		}
		y[i] = s
	}
	// y' = B·(A·x) + bias, the factorized layer.
	yp, err := f.Apply(x, bias)
	if err != nil {
		return err
	}
	var maxDiff float64
	for i := range y {
		maxDiff = max(maxDiff, math.Abs(float64(y[i]-yp[i])))
	}
	fmt.Fprintf(w, "\nOriginal y using W:\n%s\n", formatVector(y))
	fmt.Fprintf(w, "\ny' computed using B·(A·x):\n%s\n", formatVector(yp))
	fmt.Fprintf(w, "\nmax |y − y'| = %.3g\n", maxDiff)
	fmt.Fprintf(w, "\nTotal parameters in original : %d\n", f.DenseParams())
	fmt.Fprintf(w, "Total parameters in B and A : %d\n", f.Params())
	fmt.Fprintf(w, "\nbackend: %s\n", f.Backend.Name())
	return nil
}

// numericalRank counts the singular values above the usual threshold
// max(d,k)·ε·σ₁ (numpy.linalg.matrix_rank's).
func numericalRank[T lowrank.Float](s []T, d, k int) int {
	if len(s) == 0 {
		return 0
	}
	eps := 2.220446049250313e-16
	var z T
	if _, ok := any(z).(float32); ok {
		eps = 1.1920929e-07
	}
	tol := float64(max(d, k)) * eps * float64(s[0])
	n := 0
	for _, v := range s {
		if float64(v) > tol {
			n++
		}
	}
	return n
}

func printMatrix[T lowrank.Float](w io.Writer, m lowrank.Matrix[T]) {
	for i := range m.Rows {
		fmt.Fprintln(w, formatVector(m.Row(i)))
	}
}

func formatVector[T lowrank.Float](v []T) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%8.4f", x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
