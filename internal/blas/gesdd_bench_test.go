//go:build cgo && (linux || freebsd)

package blas

import (
	"math/rand/v2"
	"testing"
)

func BenchmarkGesdd(b *testing.B) {
	l, err := Load()
	if err != nil {
		b.Skip(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	n := 1024
	a0 := make([]float64, n*n)
	for i := range a0 {
		a0[i] = rng.NormFloat64()
	}
	a := make([]float64, n*n)
	s := make([]float64, n)
	u := make([]float64, n*n)
	vt := make([]float64, n*n)
	for b.Loop() {
		copy(a, a0)
		if err := Gesdd(l, n, n, a, n, s, u, n, vt, n); err != nil {
			b.Fatal(err)
		}
	}
}
