package lowrank_test

import (
	"math"
	"regexp"
	"sync"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/la"
)

// normLog records, in order, which normalization the range finder asked
// for: 'n' for NormalizeRange (the engine's cheap basis), 'q' for
// Orthonormalize.
type normLog struct {
	lowrank.Backend
	mu    sync.Mutex
	calls []byte
}

func (b *normLog) add(c byte) {
	b.mu.Lock()
	b.calls = append(b.calls, c)
	b.mu.Unlock()
}

func (b *normLog) Float32() la.Engine[float32] {
	e := b.Backend.Float32()
	return &normEngine[float32]{Engine: e, n: e.(la.RangeNormalizer[float32]), b: b}
}

func (b *normLog) Float64() la.Engine[float64] {
	e := b.Backend.Float64()
	return &normEngine[float64]{Engine: e, n: e.(la.RangeNormalizer[float64]), b: b}
}

type normEngine[T la.Float] struct {
	la.Engine[T]
	n la.RangeNormalizer[T]
	b *normLog
}

func (e *normEngine[T]) Orthonormalize(a la.Mat) error {
	e.b.add('q')
	return e.Engine.Orthonormalize(a)
}

func (e *normEngine[T]) NormalizeRange(a la.Mat) error {
	e.b.add('n')
	return e.n.NormalizeRange(a)
}

// TestRangeFinderNormalizations: between power iterations the range
// finder uses the engine's cheap normalization (la.RangeNormalizer), and
// the basis it keeps — the last normalization of every block — is
// orthonormalized; the factors are as accurate as with QR everywhere
// (the counting engine of context_test.go has no NormalizeRange, so the
// range finder orthonormalizes every time there).
func TestRangeFinderNormalizations(t *testing.T) {
	w, flat := decaying32(400, 300, 11), gaussian32(400, 300, 12)
	cases := []struct {
		name string
		p    lowrank.Policy
		q    int
		want string
		flat bool // the Gaussian matrix instead of the decaying one
	}{
		{"rank, q=2", lowrank.Rank(20), 2, `^nnnnq$`, false},
		{"rank, q=1", lowrank.Rank(20), 1, `^nnq$`, false},
		{"rank, q=0", lowrank.Rank(20), 0, `^q$`, false},
		// Energy on a flat spectrum: blocks of 32, 64, … columns; a later
		// block projects out the basis before each normalization of Y and
		// orthonormalizes after a second projection.
		{"energy, q=1", lowrank.Energy(0.9), 1, `^nnq(nnnq)+$`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := w
			if c.flat {
				w = flat
			}
			b := &normLog{Backend: cpu.New()}
			opts := []lowrank.Option{lowrank.WithMethod(lowrank.Randomized), lowrank.WithPowerIters(c.q), lowrank.WithSeed(5)}
			f, err := lowrank.Factorize(w, c.p, append(opts, lowrank.WithBackend(b))...)
			if err != nil {
				t.Fatal(err)
			}
			got := string(b.calls)
			if !regexp.MustCompile(c.want).MatchString(got) {
				t.Fatalf("normalizations %q, want %s (n: NormalizeRange, q: Orthonormalize)", got, c.want)
			}
			ref, err := lowrank.Factorize(w, c.p, append(opts, lowrank.WithBackend(newCounting()))...)
			if err != nil {
				t.Fatal(err)
			}
			if f.Rank != ref.Rank {
				t.Fatalf("rank %d, with QR everywhere %d", f.Rank, ref.Rank)
			}
			e1, e2 := measuredError(t, w, f), measuredError(t, w, ref)
			if math.Abs(e1-e2) > 1e-3*e2 {
				t.Fatalf("relative error %.6g, with QR everywhere %.6g", e1, e2)
			}
		})
	}
}

// measuredError is ‖W − B·A‖_F / ‖W‖_F, in float64.
func measuredError(t *testing.T, w lowrank.Matrix[float32], f *lowrank.Factors[float32]) float64 {
	t.Helper()
	r, err := f.Reconstruct()
	if err != nil {
		t.Fatal(err)
	}
	var num, den float64
	for i, v := range w.Data {
		d := float64(v) - float64(r.Data[i])
		num += d * d
		den += float64(v) * float64(v)
	}
	return math.Sqrt(num / den)
}
