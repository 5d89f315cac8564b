package safetensors

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadFloatsIntoReusedBuffer checks ReadFloat32s and ReadFloat64s
// against Float32s and Float64s bit for bit, for every float dtype, for
// tensors of several staging chunks and of none, into buffers that held
// other values before (every element must be overwritten), and that a
// buffer of the wrong length is refused.
func TestReadFloatsIntoReusedBuffer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	w, err := Create(path, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3*chunkBytes/4 + 5 // F32 and F64 span several chunks
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = math.Sin(float64(i)) * math.Ldexp(1, i%40-20)
	}
	vals[7] = math.NaN()
	vals[8] = math.Inf(-1)
	dts := []DType{F64, F32, F16, BF16}
	for _, dt := range dts {
		if err := w.WriteFloat64(string(dt), dt, []int{n}, vals); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFloat64(string(dt)+".small", dt, []int{2, 3}, vals[:6]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteFloat32("empty", F32, []int{0, 4}, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, dt := range dts {
		for _, name := range []string{string(dt), string(dt) + ".small"} {
			want32, err := f.Float32s(name)
			if err != nil {
				t.Fatal(err)
			}
			want64, err := f.Float64s(name)
			if err != nil {
				t.Fatal(err)
			}
			got32 := make([]float32, len(want32))
			got64 := make([]float64, len(want64))
			for i := range got32 {
				got32[i], got64[i] = 7, 7 // stale values of an earlier tensor
			}
			if err := f.ReadFloat32s(name, got32); err != nil {
				t.Fatal(err)
			}
			if err := f.ReadFloat64s(name, got64); err != nil {
				t.Fatal(err)
			}
			for i := range want32 {
				if math.Float32bits(got32[i]) != math.Float32bits(want32[i]) || math.Float64bits(got64[i]) != math.Float64bits(want64[i]) {
					t.Fatalf("%s[%d]: read into a buffer %v / %v; Float32s / Float64s %v / %v", name, i, got32[i], got64[i], want32[i], want64[i])
				}
			}
			err = f.ReadFloat32s(name, make([]float32, len(want32)+1))
			if err == nil || !strings.HasPrefix(err.Error(), "lowrank: ") || !strings.Contains(err.Error(), "expected exactly") {
				t.Errorf("%s: a buffer one too long: %v; want an error", name, err)
			}
			if err := f.ReadFloat64s(name, nil); err == nil && len(want64) > 0 {
				t.Errorf("%s: a nil buffer was accepted", name)
			}
		}
	}
	if err := f.ReadFloat32s("empty", nil); err != nil {
		t.Errorf("empty tensor into an empty buffer: %v", err)
	}
	if err := f.ReadFloat32s("ids", make([]float32, 1)); err == nil {
		t.Error("a missing tensor was read")
	}
}
