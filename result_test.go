package lowrank_test

import (
	"slices"
	"testing"

	"github.com/lowrank-go/lowrank"
)

// TestFactorsOwnTheirMemory: the factors may be the engine's own result
// buffers (la.Lender) rather than copies; each must still be a slice of
// exactly its length (an append must not write into memory beyond it) and
// stay unchanged by later factorizations.
func TestFactorsOwnTheirMemory(t *testing.T) {
	for _, c := range []struct {
		rank int
		m    lowrank.Method
	}{{200, lowrank.Randomized}, {8, lowrank.Randomized}, {200, lowrank.Exact}, {300, lowrank.Exact}} {
		w := gaussian32(300, 400, 11)
		f, err := lowrank.Factorize(w, lowrank.Rank(c.rank), lowrank.WithMethod(c.m))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []lowrank.Matrix[float32]{f.B, f.A} {
			if len(m.Data) != m.Rows*m.Cols || cap(m.Data) != len(m.Data) {
				t.Fatalf("rank %d %v: a %d×%d factor has len %d, cap %d; expected both %d", c.rank, c.m, m.Rows, m.Cols, len(m.Data), cap(m.Data), m.Rows*m.Cols)
			}
		}
		b, a := slices.Clone(f.B.Data), slices.Clone(f.A.Data)
		for seed := uint64(12); seed < 15; seed++ {
			if _, err := lowrank.Factorize(gaussian32(300, 400, seed), lowrank.Rank(c.rank), lowrank.WithMethod(c.m)); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(b, f.B.Data) || !slices.Equal(a, f.A.Data) {
			t.Fatalf("rank %d %v: the factors changed when other matrices were factorized", c.rank, c.m)
		}
	}
}
