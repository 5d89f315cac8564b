package lowrank_test

import (
	"errors"
	"math"
	"sync"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
)

// Dense computes W·x + bias like the float64 loop, one vector and a batch,
// on the default backend and on the pure-Go one, and again after Close.
func TestDense(t *testing.T) {
	w, x, bias := notebook[float64](7, 5, 3, 11)
	want := dense(w, x, bias)
	for _, b := range []lowrank.Backend{nil, cpu.NewGonum()} {
		m, err := lowrank.NewDense(w)
		if err != nil {
			t.Fatal(err)
		}
		m.Backend = b
		if d, k := m.Dims(); d != 7 || k != 5 {
			t.Fatalf("Dims = %d×%d", d, k)
		}
		for range 2 {
			y, err := m.Apply(x, bias)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxDiff(y, want); e > 1e-12 {
				t.Errorf("Apply off by %g", e)
			}
			xs := append(append([]float64(nil), x...), x...)
			xm, _ := lowrank.NewMatrix(2, 5, xs)
			ym, err := m.ApplyBatch(xm, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				for j := range 7 {
					if e := math.Abs(ym.At(i, j) + bias[j] - want[j]); e > 1e-12 {
						t.Errorf("ApplyBatch row %d [%d] off by %g", i, j, e)
					}
				}
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func maxDiff(a, b []float64) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(a[i]-b[i]))
	}
	return m
}

// Dense refuses bad input with the sentinels, like Factors.
func TestDenseErrors(t *testing.T) {
	if _, err := lowrank.NewDense(lowrank.Matrix[float32]{Rows: 2, Cols: 2, Data: []float32{1, float32(math.NaN()), 3, 4}}); !errors.Is(err, lowrank.ErrNonFinite) {
		t.Errorf("NaN in W: %v", err)
	} else if nf := (*lowrank.NonFiniteError)(nil); !errors.As(err, &nf) || nf.Name != "W" || nf.Row != 0 || nf.Col != 1 {
		t.Errorf("NaN in W: %#v", err)
	}
	if _, err := lowrank.NewDense(lowrank.Matrix[float32]{Rows: 2, Cols: 2, Data: []float32{1}}); !errors.Is(err, lowrank.ErrShape) {
		t.Errorf("short data: %v", err)
	}
	if _, err := lowrank.NewDense(lowrank.Matrix[float32]{}); !errors.Is(err, lowrank.ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
	m, _ := lowrank.NewDense(lowrank.Matrix[float64]{Rows: 2, Cols: 3, Data: []float64{1, 2, 3, 4, 5, 6}})
	for name, err := range map[string]error{
		"short x":  m.ApplyTo(make([]float64, 2), []float64{1, 2}, nil),
		"short y":  m.ApplyTo(make([]float64, 1), []float64{1, 2, 3}, nil),
		"bias":     m.ApplyTo(make([]float64, 2), []float64{1, 2, 3}, []float64{1}),
		"X cols":   m.ApplyBatchTo(lowrank.Matrix[float64]{Rows: 1, Cols: 2, Data: make([]float64, 2)}, lowrank.Matrix[float64]{Rows: 1, Cols: 2, Data: []float64{1, 2}}, nil),
		"Y shape":  m.ApplyBatchTo(lowrank.Matrix[float64]{Rows: 2, Cols: 2, Data: make([]float64, 4)}, lowrank.Matrix[float64]{Rows: 1, Cols: 3, Data: []float64{1, 2, 3}}, nil),
		"NaN in x": m.ApplyTo(make([]float64, 2), []float64{1, math.NaN(), 3}, nil),
	} {
		want := lowrank.ErrShape
		if name == "NaN in x" {
			want = lowrank.ErrNonFinite
		}
		if !errors.Is(err, want) || err.Error()[:9] != "lowrank: " {
			t.Errorf("%s: %v; want %v", name, err, want)
		}
	}
	if _, err := m.ApplyBatch(lowrank.Matrix[float64]{}, nil); !errors.Is(err, lowrank.ErrEmpty) {
		t.Errorf("empty batch: %v", err)
	}
}

// Many goroutines share one Dense.
func TestDenseConcurrent(t *testing.T) {
	w, x, bias := notebook[float32](33, 17, 4, 5)
	m, _ := lowrank.NewDense(w)
	defer m.Close()
	want, err := m.Apply(x, bias)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			y := make([]float32, 33)
			for range 50 {
				if err := m.ApplyTo(y, x, bias); err != nil {
					t.Error(err)
					return
				}
				for i := range y {
					if y[i] != want[i] {
						t.Errorf("goroutine %d: y[%d] = %v, want %v", g, i, y[i], want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// SetRecorded restores recorded values into NewFactors' NaNs, and refuses
// values outside their domain without changing anything.
func TestSetRecorded(t *testing.T) {
	b, _ := lowrank.NewMatrix(2, 1, []float64{1, 2})
	a, _ := lowrank.NewMatrix(1, 2, []float64{3, 4})
	f, err := lowrank.NewFactors(b, a)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(f.RelError) || !math.IsNaN(f.Energy) {
		t.Fatalf("NewFactors: RelError %v Energy %v; want NaN", f.RelError, f.Energy)
	}
	if err := f.SetRecorded(0.25, 0.9375); err != nil {
		t.Fatal(err)
	}
	if f.RelError != 0.25 || f.Energy != 0.9375 || !math.IsNaN(f.Norm) {
		t.Errorf("after SetRecorded: RelError %v Energy %v Norm %v", f.RelError, f.Energy, f.Norm)
	}
	for _, c := range [][2]float64{{-1, 0.5}, {math.NaN(), 0.5}, {math.Inf(1), 0.5}, {0.1, 1.5}, {0.1, -0.1}, {0.1, math.NaN()}} {
		if err := f.SetRecorded(c[0], c[1]); !errors.Is(err, lowrank.ErrOption) {
			t.Errorf("SetRecorded(%v, %v) = %v; want ErrOption", c[0], c[1], err)
		}
	}
	if f.RelError != 0.25 || f.Energy != 0.9375 {
		t.Errorf("a refused SetRecorded changed the values: %v %v", f.RelError, f.Energy)
	}
}
