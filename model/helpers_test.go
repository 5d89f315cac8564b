package model_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// tensor is a test tensor: float64 values written as dt (raw for other
// dtypes).
type tensor struct {
	name  string
	dt    safetensors.DType
	shape []int
	vals  []float64
	raw   []byte
}

// writeST writes tensors, in order, and meta to path.
func writeST(t testing.TB, path string, meta map[string]string, ts ...tensor) {
	t.Helper()
	w, err := safetensors.Create(path, safetensors.WriterOptions{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		if x.raw != nil || !x.dt.IsFloat() {
			err = w.WriteRaw(x.name, x.dt, x.shape, x.raw)
		} else {
			err = w.WriteFloat64(x.name, x.dt, x.shape, x.vals)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	w.SetMetadata(meta)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// gauss returns n normal values of standard deviation scale.
func gauss(rng *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * scale
	}
	return v
}

// matvec returns W·x + b for the row-major d×k W (b may be nil).
func matvec(w []float64, d, k int, x, b []float64) []float64 {
	y := make([]float64, d)
	for i := range d {
		s := 0.0
		if b != nil {
			s = b[i]
		}
		for j := range k {
			s += w[i*k+j] * x[j]
		}
		y[i] = s
	}
	return y
}

// matmul returns the d×k product of b (d×r) and a (r×k).
func matmul(b, a []float64, d, r, k int) []float64 {
	out := make([]float64, d*k)
	for i := range d {
		for l := range r {
			for j := range k {
				out[i*k+j] += b[i*r+l] * a[l*k+j]
			}
		}
	}
	return out
}

// transpose returns the c×r transpose of the row-major r×c v.
func transpose(v []float64, r, c int) []float64 {
	o := make([]float64, len(v))
	for i := range r {
		for j := range c {
			o[j*r+i] = v[i*c+j]
		}
	}
	return o
}

// relDiff returns ‖x − y‖ / ‖y‖.
func relDiff[T, U float32 | float64](x []T, y []U) float64 {
	var num, den float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		num += d * d
		den += float64(y[i]) * float64(y[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

func to32(v []float64) []float32 {
	o := make([]float32, len(v))
	for i, x := range v {
		o[i] = float32(x)
	}
	return o
}

// stored returns v as dt would store it (rounded), in float64.
func stored(v []float64, dt safetensors.DType) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		switch dt {
		case safetensors.F16:
			o[i] = float64(safetensors.F16ToFloat32(safetensors.Float64ToF16(x)))
		case safetensors.BF16:
			o[i] = float64(safetensors.BF16ToFloat32(safetensors.Float64ToBF16(x)))
		case safetensors.F32:
			o[i] = float64(float32(x))
		default:
			o[i] = x
		}
	}
	return o
}

// tmp returns a path in a fresh temporary folder.
func tmp(t testing.TB, name string) string { return filepath.Join(t.TempDir(), name) }

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
