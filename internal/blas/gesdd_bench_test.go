//go:build cgo && (linux || freebsd)

package blas

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkGesdd compares ?gesdd on A with ?gesdd on Aᵀ (the same memory
// read as the transpose), for a square float32 matrix.
func BenchmarkGesdd(b *testing.B) {
	l, err := Load()
	if err != nil {
		b.Skip(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{1024, 2048} {
		a0 := make([]float32, n*n)
		for i := range a0 {
			a0[i] = float32(rng.NormFloat64())
		}
		a := make([]float32, n*n)
		s := make([]float32, n)
		u := make([]float32, n*n)
		vt := make([]float32, n*n)
		for _, tr := range []string{"A", "At"} {
			b.Run(fmt.Sprintf("%d/%s", n, tr), func(b *testing.B) {
				for b.Loop() {
					if tr == "A" {
						copy(a, a0)
					} else {
						for i := range n {
							for j := range n {
								a[j*n+i] = a0[i*n+j]
							}
						}
					}
					if err := Gesdd(l, n, n, a, n, s, u, n, vt, n); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
