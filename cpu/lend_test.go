package cpu_test

import (
	"testing"

	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/la"
)

// TestLend checks which matrices the engine lends (la.Lender) and that a
// lent slice is the matrix's own storage, its capacity reaching to the
// end of what lies beneath it.
func TestLend(t *testing.T) {
	e := cpu.New().Float32()
	l, ok := e.(la.Lender[float32])
	if !ok {
		t.Fatal("the cpu engine does not implement la.Lender")
	}
	m, err := e.Upload(4, 3, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	if err != nil {
		t.Fatal(err)
	}
	view := func(i0, i1, j0, j1 int) la.Mat {
		v, err := e.View(m, i0, i1, j0, j1)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		name      string
		m         la.Mat
		ok        bool
		want      []float32
		wantSpare int
	}{
		{"whole", m, true, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 0},
		{"first rows", view(0, 2, 0, 3), true, []float32{1, 2, 3, 4, 5, 6}, 6},
		{"middle rows", view(1, 3, 0, 3), true, []float32{4, 5, 6, 7, 8, 9}, 3},
		{"one row, some columns", view(2, 3, 1, 3), true, []float32{8, 9}, 3},
		{"columns", view(0, 4, 0, 2), false, nil, 0},
	} {
		data, ok := l.Lend(c.m)
		if ok != c.ok {
			t.Fatalf("%s: lent %v; expected %v", c.name, ok, c.ok)
		}
		if !ok {
			continue
		}
		if len(data) != len(c.want) || cap(data)-len(data) != c.wantSpare {
			t.Fatalf("%s: len %d, cap %d; expected len %d, cap %d", c.name, len(data), cap(data), len(c.want), len(c.want)+c.wantSpare)
		}
		for i := range data {
			if data[i] != c.want[i] {
				t.Fatalf("%s: %v; expected %v", c.name, data, c.want)
			}
		}
		data[0] = -1 // the storage itself, not a copy
		got := make([]float32, len(data))
		if err := e.Download(got, c.m); err != nil || got[0] != -1 {
			t.Fatalf("%s: a write through the lent slice is not seen by the matrix (%v, %v)", c.name, got, err)
		}
		data[0] = c.want[0]
	}
}
