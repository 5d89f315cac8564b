package lowrank_test

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
)

// FuzzFactorize feeds arbitrary shapes, data, policies and options to
// Factorize and Apply. Whatever the input, they must return either a
// result that satisfies its contract or an error that starts with
// "lowrank:" and wraps a sentinel; never panic, never return NaN.
func FuzzFactorize(f *testing.F) {
	f.Add(uint8(3), uint8(2), uint8(0), 0.5, uint8(1), uint8(0), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint8(0), uint8(2), uint8(1), 0.99, uint8(0), uint8(1), []byte{})
	f.Add(uint8(5), uint8(5), uint8(2), 0.01, uint8(2), uint8(8), []byte{0xff, 0xf0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(4), uint8(7), uint8(3), 0.3, uint8(1), uint8(3), []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f})
	f.Fuzz(func(t *testing.T, rows, cols, kind uint8, value float64, method, round uint8, raw []byte) {
		d, k := int(rows%40), int(cols%40)
		data := make([]float64, 0, d*k)
		for i := 0; i+8 <= len(raw) && len(data) < d*k; i += 8 {
			v := math.Float64frombits(binary.LittleEndian.Uint64(raw[i:]))
			data = append(data, v)
		}
		// Short data is padded with a pattern: the fuzzer should not
		// need d·k·8 bytes to reach the algorithms.
		if len(raw)%2 == 0 {
			for len(data) < d*k {
				data = append(data, float64(len(data)%7)-3)
			}
		}
		w := lowrank.Matrix[float64]{Rows: d, Cols: k, Data: data}
		var p lowrank.Policy
		switch kind % 5 {
		case 0:
			p = lowrank.Rank(int(value))
		case 1:
			p = lowrank.Energy(value)
		case 2:
			p = lowrank.Tolerance(value)
		case 3:
			p = lowrank.Ratio(value)
		}
		fac, err := lowrank.Factorize(w, p, lowrank.WithMethod(lowrank.Method(method%4)), lowrank.WithRoundTo(int(round%10)-1))
		if err != nil {
			checkErr(t, err)
			return
		}
		if fac.Rank < 1 || fac.Rank > min(d, k) || math.IsNaN(fac.RelError) || fac.RelError < 0 || fac.RelError > 1+1e-9 {
			t.Fatalf("%d×%d %v: rank %d, error %v", d, k, p, fac.Rank, fac.RelError)
		}
		x := make([]float64, k)
		for i := range x {
			x[i] = 1
		}
		y, err := fac.Apply(x, nil)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		for _, v := range y {
			if math.IsNaN(v) {
				t.Fatalf("Apply returned NaN for finite W")
			}
		}
	})
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	if !strings.HasPrefix(err.Error(), "lowrank: ") {
		t.Fatalf("error %q does not start with \"lowrank: \"", err)
	}
	for _, s := range []error{lowrank.ErrEmpty, lowrank.ErrShape, lowrank.ErrNonFinite, lowrank.ErrRank, lowrank.ErrPolicy, lowrank.ErrOption, lowrank.ErrNoConvergence} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %q wraps no sentinel", err)
}
