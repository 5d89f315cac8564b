package lowrank_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/lowrank-go/lowrank"
)

// FuzzInputCovariance feeds arbitrary W, C and μ (C built as G·Gᵀ + E for
// fuzzed G and E, so that both valid and invalid matrices are reached) to
// Factorize with WithInputCovariance and WithInputMoments. It must return
// finite factors whose output error is in [0, 1], or an error that starts
// with "lowrank:" and wraps a sentinel; never panic.
func FuzzInputCovariance(f *testing.F) {
	f.Add(uint8(5), uint8(4), uint8(2), uint8(0), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add(uint8(3), uint8(6), uint8(1), uint8(1), []byte{0xff, 0, 0x80, 0x7f, 3, 3, 3})
	f.Add(uint8(8), uint8(8), uint8(7), uint8(2), []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f})
	f.Fuzz(func(t *testing.T, rows, cols, rank, mode uint8, raw []byte) {
		d, k := int(rows%12)+1, int(cols%12)+1
		next := func(i int) float64 {
			if len(raw) == 0 {
				return float64(i%5) - 2
			}
			j := (i * 8) % len(raw)
			var b [8]byte
			for t := range 8 {
				b[t] = raw[(j+t)%len(raw)]
			}
			v := math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
			if mode%2 == 0 && (math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e6) {
				v = float64(int(raw[j])%9) - 4 // mostly tame numbers
			}
			return v
		}
		w := lowrank.Matrix[float64]{Rows: d, Cols: k, Data: make([]float64, d*k)}
		for i := range w.Data {
			w.Data[i] = next(i)
		}
		c := lowrank.Matrix[float64]{Rows: k, Cols: k, Data: make([]float64, k*k)}
		g := make([]float64, k*k)
		for i := range g {
			g[i] = next(d*k + i)
		}
		for i := range k {
			for j := range k {
				var s float64
				for t := range int(rank % uint8(k+1)) { // G·Gᵀ of a fuzzed rank
					s += g[i*k+t] * g[j*k+t]
				}
				c.Data[i*k+j] = s
			}
		}
		if mode%4 == 3 { // and sometimes an arbitrary perturbation
			for i := range c.Data {
				c.Data[i] += next(2*k*k + i)
			}
		}
		opt := lowrank.WithInputCovariance(c)
		if mode%3 == 1 {
			mean := make([]float64, k)
			for i := range mean {
				mean[i] = next(3*k*k+i) / 4
			}
			opt = lowrank.WithInputMoments(c, mean)
		}
		fac, err := lowrank.Factorize(w, lowrank.Rank(1+int(rank)%min(d, k)), opt)
		if err != nil {
			checkErr(t, err)
			return
		}
		for _, v := range append(append([]float64(nil), fac.A.Data...), fac.B.Data...) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("non-finite factor")
			}
		}
		if e := fac.OutputRelError; math.IsNaN(e) || e < 0 || e > 1 || math.IsNaN(fac.RelError) {
			t.Fatalf("output error %v, weight error %v", e, fac.RelError)
		}
	})
}
