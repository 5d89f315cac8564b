package bf16

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank-go/lowrank/la"
)

func need(t *testing.T) {
	t.Helper()
	if !Available() {
		t.Skip("no AVX512_BF16 kernel on this CPU or in this build")
	}
}

func widen(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// TestRoundOne checks the scalar rounding against la.BF16.Round (round to
// nearest, ties to even) on normal numbers, and the instruction's
// treatment of subnormals (signed zero) and NaN (kept, quiet).
func TestRoundOne(t *testing.T) {
	need(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		b := rng.Uint32()
		f := math.Float32frombits(b)
		got := roundOne(f)
		switch {
		case math.IsNaN(float64(f)):
			if !math.IsNaN(float64(widen(got))) || got&0x40 == 0 {
				t.Fatalf("NaN %#08x rounded to %#04x; expected a quiet NaN", b, got)
			}
		case b&0x7f800000 == 0:
			if got != uint16(b>>16)&0x8000 {
				t.Fatalf("subnormal %#08x rounded to %#04x; expected a signed zero", b, got)
			}
		default:
			if w := la.BF16.Round(f); widen(got) != w {
				t.Fatalf("%g (%#08x) rounded to %g; la.BF16.Round gives %g", f, b, widen(got), w)
			}
		}
	}
	// Ties go to even, and past the largest bfloat16 to infinity.
	for _, c := range []struct {
		in   uint32
		want uint16
	}{{0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, {0x7f7fffff, 0x7f80}, {0xff800000, 0xff80}, {0x80000001, 0x8000}} {
		if got := roundOne(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("round(%#08x) = %#04x; expected %#04x", c.in, got, c.want)
		}
	}
}

// TestRoundLayouts checks that the vector rounding of whole rows, the
// tiled transposed rounding and the scalar tail give the scalar rounding
// of every element, including special values, with the pad column zero.
func TestRoundLayouts(t *testing.T) {
	need(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sz := range [][2]int{{1, 1}, {1, 33}, {7, 64}, {33, 31}, {65, 97}, {130, 3}} {
		rows, cols := sz[0], sz[1]
		lds := cols + 5
		src := make([]float32, rows*lds)
		for i := range src {
			switch rng.IntN(8) {
			case 0:
				src[i] = math.Float32frombits(rng.Uint32()) // any bits: NaN, Inf, subnormal
			default:
				src[i] = float32(rng.NormFloat64())
			}
		}
		for _, tr := range []bool{false, true} {
			for _, workers := range []int{1, 3} {
				r, c := rows, cols
				if tr {
					r, c = cols, rows
				}
				ld := (c + 1) &^ 1
				data := make([]uint16, r*ld)
				for i := range data {
					data[i] = 0xdead // the pad must be written
				}
				run(split(workers, r, r, 32), func(p part) {
					if tr {
						roundCols(src, lds, rows, p.i0, p.i1, data, ld)
					} else {
						roundRows(src, lds, p.i0, p.i1, cols, data, ld)
					}
				})
				for i := range r {
					for j := range ld {
						got := data[i*ld+j]
						var want uint16
						if j < c {
							if tr {
								want = roundOne(src[j*lds+i])
							} else {
								want = roundOne(src[i*lds+j])
							}
						}
						if got != want {
							t.Fatalf("%d×%d transpose=%v workers=%d: element (%d,%d) = %#04x; expected %#04x", rows, cols, tr, workers, i, j, got, want)
						}
					}
				}
			}
		}
	}
}

// TestGemm checks c = alpha·a·op(b) + beta·c against the float64 product
// of the rounded inputs, within the float32 accumulation's error bound,
// over shapes that exercise every kernel (1–5 vectors of 16 columns,
// 8-, 4- and 1-row blocks, masked tails, odd inner dimensions, several
// blocks of the inner dimension, panels of 80 columns).
func TestGemm(t *testing.T) {
	need(t)
	rng := rand.New(rand.NewPCG(5, 6))
	type shape struct{ m, n, k int }
	shapes := []shape{{1, 1, 1}, {3, 5, 2}, {8, 16, 3}, {13, 17, 31}, {9, 33, 64}, {37, 48, 7}, {12, 64, 100},
		{11, 80, 33}, {21, 81, 65}, {5, 100, 9}, {17, 200, 40}, {90, 24, 5000}, {170, 7, 3300}, {1800, 3, 700}, {1100, 37, 300}}
	for _, s := range shapes {
		trs := [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}}
		abs := [][2]float32{{1, 0}, {0.5, 0}, {-2, 1}, {1, -0.25}}
		if testing.Short() && s.m*s.n*s.k > 1<<17 {
			// The large shapes cover the blocking; under -short (the race
			// detector's run) one case per orientation of a is enough.
			trs, abs = [][2]bool{{false, true}, {true, false}}, abs[2:3]
		}
		for _, tr := range trs {
			tA, tB := tr[0], tr[1]
			for _, ab := range abs {
				alpha, beta := ab[0], ab[1]
				// a is m×k or k×m, b is k×n or n×k, each with a row stride
				// beyond its columns.
				ar, ac := s.m, s.k
				if tA {
					ar, ac = s.k, s.m
				}
				br, bc := s.k, s.n
				if tB {
					br, bc = s.n, s.k
				}
				lda, ldb, ldc := ac+3, bc+2, s.n+7
				af, bf := randn(rng, ar*lda), randn(rng, br*ldb)
				opA := func(i, p int) float64 {
					if tA {
						return float64(la.BF16.Round(af[p*lda+i]))
					}
					return float64(la.BF16.Round(af[i*lda+p]))
				}
				opB := func(p, j int) float64 {
					if tB {
						return float64(la.BF16.Round(bf[j*ldb+p]))
					}
					return float64(la.BF16.Round(bf[p*ldb+j]))
				}
				c0 := randn(rng, s.m*ldc)
				if beta == 0 {
					for i := range c0 {
						c0[i] = float32(math.NaN()) // beta = 0 must not read c
					}
				}
				var first []float32
				for _, workers := range []int{1, 4} {
					c := append([]float32(nil), c0...)
					Gemm(workers, tA, tB, s.m, s.n, s.k, alpha, af, lda, bf, ldb, beta, c, ldc)
					for i := range s.m {
						for j := range s.n {
							var sum, abs float64
							for p := range s.k {
								x := opA(i, p) * opB(p, j)
								sum += x
								abs += math.Abs(x)
							}
							want := float64(alpha) * sum
							bound := float64(s.k+2) * 0x1p-23 * math.Abs(float64(alpha)) * abs
							if beta != 0 {
								want += float64(beta) * float64(c0[i*ldc+j])
								bound += 0x1p-22 * math.Abs(float64(beta)*float64(c0[i*ldc+j]))
							}
							if got := float64(c[i*ldc+j]); !(math.Abs(got-want) <= bound+1e-30) {
								t.Fatalf("%+v tA=%v tB=%v alpha=%g beta=%g workers=%d: c[%d,%d] = %g; expected %g ± %g", s, tA, tB, alpha, beta, workers, i, j, got, want, bound)
							}
						}
						for j := s.n; j < ldc; j++ { // outside c's m×n: untouched
							if got, was := c[i*ldc+j], c0[i*ldc+j]; math.Float32bits(got) != math.Float32bits(was) {
								t.Fatalf("%+v tA=%v: c[%d,%d] outside the product changed from %g to %g", s, tA, i, j, was, got)
							}
						}
					}
					if first == nil {
						first = c
						continue
					}
					for i := range c {
						if math.Float32bits(c[i]) != math.Float32bits(first[i]) {
							t.Fatalf("%+v tA=%v tB=%v: 4 workers gave c[%d] = %g, 1 worker %g; expected the same bits", s, tA, tB, i, c[i], first[i])
						}
					}
				}
			}
		}
	}
}

func randn(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func BenchmarkGemm(b *testing.B) {
	if !Available() {
		b.Skip("no AVX512_BF16 kernel")
	}
	for _, s := range []struct{ m, n, k int }{{4096, 80, 4096}, {4096, 32, 4096}, {4096, 272, 4096}} {
		rng := rand.New(rand.NewPCG(7, 8))
		af, bf, c := randn(rng, s.m*s.k), randn(rng, s.k*s.n), make([]float32, s.m*s.n)
		for _, tA := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dx%dx%d/tA=%v", s.m, s.n, s.k, tA), func(b *testing.B) {
				for b.Loop() {
					Gemm(1, tA, false, s.m, s.n, s.k, 1, af, s.k, bf, s.n, 0, c, s.n)
				}
				b.ReportMetric(2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
