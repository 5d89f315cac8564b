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
		p := fuzzPolicy(kind, value)
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

// FuzzFactorize32 is FuzzFactorize in float32, with the sketch cap the
// CLI's --max-memory uses: arbitrary bits (NaN, ±Inf, subnormals, values
// near the float32 limits), shapes, policies, methods and caps.
func FuzzFactorize32(f *testing.F) {
	f.Add(uint8(3), uint8(2), uint8(0), 0.5, uint8(1), uint8(0), uint8(0), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint8(0), uint8(2), uint8(1), 0.99, uint8(0), uint8(1), uint8(4), []byte{})
	f.Add(uint8(5), uint8(5), uint8(2), 0.01, uint8(2), uint8(8), uint8(2), []byte{0xff, 0xff, 0x7f, 0x7f, 0, 0, 0x80, 0x7f})
	f.Add(uint8(36), uint8(39), uint8(1), 0.999, uint8(2), uint8(0), uint8(3), []byte{1, 0, 0, 0, 0xff, 0xff, 0x7f, 0xff})
	f.Fuzz(func(t *testing.T, rows, cols, kind uint8, value float64, method, round, maxSketch uint8, raw []byte) {
		d, k := int(rows%40), int(cols%40)
		data := make([]float32, 0, d*k)
		for i := 0; i+4 <= len(raw) && len(data) < d*k; i += 4 {
			data = append(data, math.Float32frombits(binary.LittleEndian.Uint32(raw[i:])))
		}
		if len(raw)%2 == 0 {
			for len(data) < d*k {
				data = append(data, float32(len(data)%5)-2)
			}
		}
		w := lowrank.Matrix[float32]{Rows: d, Cols: k, Data: data}
		p := fuzzPolicy(kind, value)
		opts := []lowrank.Option{lowrank.WithMethod(lowrank.Method(method % 4)), lowrank.WithRoundTo(int(round%10) - 1), lowrank.WithMaxSketch(int(maxSketch%50) - 1)}
		est, _, eerr := estimateMemory(4, d, k, p, opts...)
		fac, err := lowrank.Factorize(w, p, opts...)
		if err != nil {
			checkErr(t, err)
			return
		}
		if eerr != nil || est <= 0 {
			t.Fatalf("Factorize succeeded but EstimateMemory: %d, %v", est, eerr)
		}
		if fac.Rank < 1 || fac.Rank > min(d, k) || math.IsNaN(fac.RelError) || fac.RelError < 0 || fac.RelError > 1+1e-6 {
			t.Fatalf("%d×%d %v: rank %d, error %v", d, k, p, fac.Rank, fac.RelError)
		}
		for _, v := range append(append([]float32(nil), fac.B.Data...), fac.A.Data...) {
			if v-v != 0 {
				t.Fatalf("%d×%d %v: factor value %v", d, k, p, v)
			}
		}
	})
}

// FuzzApply builds factors from arbitrary values with NewFactors and
// applies them to inputs of arbitrary lengths, one vector and a batch.
// Whatever the input: no panic; bad shapes and non-finite values are errors
// that start with "lowrank:" and wrap a sentinel; results have the right
// shape and, for moderate finite inputs, match B·(A·x) + bias computed
// here.
func FuzzApply(f *testing.F) {
	f.Add(uint8(3), uint8(2), uint8(4), uint8(4), uint8(3), uint8(1), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint8(0), uint8(1), uint8(1), uint8(1), uint8(0), uint8(0), []byte{})
	f.Add(uint8(2), uint8(2), uint8(2), uint8(3), uint8(2), uint8(2), []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f})
	f.Fuzz(func(t *testing.T, d, r, k, xlen, blen, batch uint8, raw []byte) {
		vals := func(n int, off int) []float64 {
			v := make([]float64, n)
			for i := range v {
				j := 8 * (off + i)
				if j+8 <= len(raw) {
					v[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[j:]))
				} else {
					v[i] = float64((off+i)%7) - 3
				}
			}
			return v
		}
		D, R, K := int(d%20), int(r%8), int(k%20)
		B := lowrank.Matrix[float64]{Rows: D, Cols: R, Data: vals(D*R, 0)}
		A := lowrank.Matrix[float64]{Rows: R, Cols: K, Data: vals(R*K, D*R)}
		fac, err := lowrank.NewFactors(B, A)
		if err != nil {
			checkErr(t, err)
			return
		}
		x := vals(int(xlen%24), D*R+R*K)
		var bias []float64
		if blen%3 != 0 {
			bias = vals(int(blen%24), 0)
		}
		moderate := func(vs ...[]float64) bool {
			for _, v := range vs {
				for _, e := range v {
					if !(math.Abs(e) < 1e50) || e != 0 && math.Abs(e) < 1e-50 {
						return false
					}
				}
			}
			return true
		}
		y, err := fac.Apply(x, bias)
		if err != nil {
			checkErr(t, err)
		} else {
			if len(y) != D {
				t.Fatalf("Apply: %d values; want %d", len(y), D)
			}
			if moderate(B.Data, A.Data, x, bias) {
				for i := range D {
					want := 0.0
					if bias != nil {
						want = bias[i]
					}
					for c := range R {
						var ax float64
						for j := range K {
							ax += A.Data[c*K+j] * x[j]
						}
						want += B.Data[i*R+c] * ax
					}
					// Rounding is relative to the size of the terms, which
					// may cancel.
					scale := termScale(B.Data, A.Data, x)*float64(1+R*K) + math.Abs(want)
					if diff := math.Abs(y[i] - want); !(diff <= 1e-12*scale) {
						t.Fatalf("Apply: y[%d] = %v; want %v", i, y[i], want)
					}
				}
			}
		}
		n := int(batch % 4)
		X := lowrank.Matrix[float64]{Rows: n, Cols: int(xlen%24) / max(n, 1), Data: nil}
		if n > 0 {
			X.Data = vals(n*X.Cols, 3)
		}
		Y, err := fac.ApplyBatch(X, bias)
		if err != nil {
			checkErr(t, err)
			return
		}
		if Y.Rows != n || Y.Cols != D || len(Y.Data) != n*D {
			t.Fatalf("ApplyBatch: %d×%d with %d values; want %d×%d", Y.Rows, Y.Cols, len(Y.Data), n, D)
		}
	})
}

// termScale bounds the magnitude of the terms of B·(A·x).
func termScale(b, a, x []float64) float64 {
	m := func(v []float64) float64 {
		s := 0.0
		for _, e := range v {
			s = math.Max(s, math.Abs(e))
		}
		return s
	}
	return m(b)*m(a)*m(x) + 1
}

// fuzzPolicy turns two fuzzed values into a policy; kind%5 == 4 gives the
// zero Policy, which Factorize must reject.
func fuzzPolicy(kind uint8, value float64) lowrank.Policy {
	switch kind % 5 {
	case 0:
		return lowrank.Rank(int(value))
	case 1:
		return lowrank.Energy(value)
	case 2:
		return lowrank.Tolerance(value)
	case 3:
		return lowrank.Ratio(value)
	}
	return lowrank.Policy{}
}
