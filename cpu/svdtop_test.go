package cpu

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank-go/lowrank/internal/blas"
	"github.com/lowrank-go/lowrank/la"
)

// TestSVDTop: la.TopSVD on the CPU engine. On a system LAPACK with
// CholeskyQR, a wide matrix's Vᵀ comes back with just the rows asked for,
// equal to the whole SVD's first rows to rounding; a matrix that is not
// wide enough, and every matrix on gonum, gets the whole SVD; rows out of
// [1, min(m, n)] is a shape error.
func TestSVDTop(t *testing.T) {
	for _, b := range []*Backend{New(), NewGonum()} {
		e := b.Float32()
		top, ok := e.(la.TopSVD)
		if !ok {
			t.Fatal("the cpu engine does not implement la.TopSVD")
		}
		short := b.system() && blas.HasChol[float32](b.lib) && blas.HasChol[float64](b.lib)
		t.Logf("%s: short Vᵀ %v", b.Describe()[0], short)
		rng := rand.New(rand.NewPCG(3, 4))
		for _, sh := range [][3]int{{24, 400, 5}, {24, 60, 5}, {24, 400, 24}} {
			m, n, rows := sh[0], sh[1], sh[2]
			data := make([]float32, m*n)
			for i := range data {
				data[i] = float32(rng.NormFloat64())
			}
			upload := func() la.Mat {
				a, err := e.Upload(m, n, append([]float32(nil), data...))
				if err != nil {
					t.Fatal(err)
				}
				return a
			}
			_, s, vt, err := e.SVD(upload())
			if err != nil {
				t.Fatal(err)
			}
			_, s2, vt2, err := top.SVDTop(upload(), rows)
			if err != nil {
				t.Fatalf("%d×%d, %d rows: %v", m, n, rows, err)
			}
			wantRows := m
			if short && m*wideSVD <= n {
				wantRows = rows
			}
			if r, _ := vt2.Dims(); r != wantRows {
				t.Errorf("%s %d×%d, %d rows: Vᵀ has %d rows; expected %d", b.Describe()[0], m, n, rows, r, wantRows)
			}
			full, got := make([]float32, m*n), make([]float32, wantRows*n)
			if err := e.Download(full, vt); err != nil {
				t.Fatal(err)
			}
			if err := e.Download(got, vt2); err != nil {
				t.Fatal(err)
			}
			for i := range rows * n {
				if math.Abs(float64(got[i]-full[i])) > 1e-5 || math.Abs(s[i/n]-s2[i/n]) > 1e-5*s[0] {
					t.Fatalf("%d×%d, %d rows: Vᵀ[%d][%d] = %v, σ = %v; the whole SVD's %v, %v", m, n, rows, i/n, i%n, got[i], s2[i/n], full[i], s[i/n])
				}
			}
		}
		for _, rows := range []int{0, 25} {
			a, _ := e.Upload(24, 400, make([]float32, 24*400))
			if _, _, _, err := top.SVDTop(a, rows); !errors.Is(err, la.ErrShape) {
				t.Errorf("%d rows of a 24×400 matrix: %v; expected la.ErrShape", rows, err)
			}
		}
	}
}
