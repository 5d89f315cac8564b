//go:build cgo && linux

package blas

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"unsafe"
)

// hugeF32 returns n float32 in fresh anonymous memory advised for
// transparent huge pages (MADV_HUGEPAGE = 14), as numpy does for arrays of
// 4 MB and more; nil when mmap fails. The mapping is not released: this
// is a benchmark process.
func hugeF32(n int) []float32 {
	b, err := syscall.Mmap(-1, 0, 4*n+(2<<20), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil
	}
	syscall.Madvise(b, 14)
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
}

// BenchmarkGesddHuge compares sgesdd on Go heap buffers with buffers
// advised for transparent huge pages (numpy's choice): an open question
// from the side-by-side run, where lowrank's exact SVD ran 1.05–1.6× the
// time of scipy's and torch's sgesdd on a machine too busy to tell.
func BenchmarkGesddHuge(b *testing.B) {
	l, err := Load()
	if err != nil {
		b.Skip(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	n := 2048
	a0 := make([]float32, n*n)
	for i := range a0 {
		a0[i] = float32(rng.NormFloat64())
	}
	for round := range 2 {
		for _, huge := range []bool{false, true} {
			b.Run(fmt.Sprintf("%d/huge=%v/%d", n, huge, round), func(b *testing.B) {
				alloc := func(k int) []float32 {
					if huge {
						if h := hugeF32(k); h != nil {
							return h
						}
					}
					return make([]float32, k)
				}
				a, s, u, vt := alloc(n*n), alloc(n), alloc(n*n), alloc(n*n)
				if a == nil || s == nil || u == nil || vt == nil {
					b.Skip("mmap failed")
				}
				for b.Loop() {
					copy(a, a0)
					if err := gesddAlloc(l, n, n, a, n, s, u, n, vt, n, alloc); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
