//go:build !cgo || !(linux || freebsd)

package blas

import "unsafe"

// symbols is empty: without cgo no library is ever loaded.
type symbols struct{}

// Load reports that a system BLAS cannot be loaded without cgo, unless
// LOWRANK_BLAS=gonum asked for none anyway.
func Load() (*Lib, error) {
	if _, err := candidates(getenv()); err != nil {
		return nil, err
	}
	return nil, ErrNoCgo
}

// The methods exist so that callers build without cgo; they do nothing
// and are never reached, because Load never returns a *Lib.

func (l *Lib) Sgemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
}

func (l *Lib) Dgemm(tA, tB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
}

func (l *Lib) Sgemv(tA bool, m, n int, alpha float32, a []float32, lda int, x []float32, beta float32, y []float32) {
}

func (l *Lib) Dgemv(tA bool, m, n int, alpha float64, a []float64, lda int, x []float64, beta float64, y []float64) {
}

// SetThreads reports false.
func (l *Lib) SetThreads(n int) bool { return false }

func (l *Lib) ThreadPool() unsafe.Pointer { return nil }

// CurrentThreads returns 0.
func (l *Lib) CurrentThreads() int { return 0 }

// Gesdd returns ErrNoCgo.
func Gesdd[T float32 | float64](l *Lib, m, n int, a []T, lda int, s, u []T, ldu int, vt []T, ldvt int) error {
	return ErrNoCgo
}

// OrthQR returns ErrNoCgo.
func OrthQR[T float32 | float64](l *Lib, m, n int, a []T, lda int) error { return ErrNoCgo }

// OrthLQ returns ErrNoCgo.
func OrthLQ[T float32 | float64](l *Lib, m, n int, a []T, lda int) error { return ErrNoCgo }

// HasLU reports false.
func HasLU[T float32 | float64](l *Lib) bool { return false }

// LUBasis returns ErrNoCgo.
func LUBasis[T float32 | float64](l *Lib, m, n int, a []T, lda int) error { return ErrNoCgo }

// HasChol reports false: no library without cgo.
func HasChol[T float32 | float64](l *Lib) bool { return false }

// CholBasis is unreachable without cgo.
func CholBasis[T float32 | float64](l *Lib, m, n int, a []T, lda int) error { return ErrNoCgo }

// WideSVD is unreachable without cgo.
func WideSVD[T float32 | float64](l *Lib, m, n int, a []T, lda int, s []float64, u []T, ldu int, vt []T, ldvt, vtRows int) error {
	return ErrNoCgo
}
