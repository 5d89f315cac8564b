package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// rawFile builds a safetensors file from a header string and data bytes.
func rawFile(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	return append(append(b, header...), data...)
}

func openBytes(t *testing.T, b []byte) (*File, error) {
	t.Helper()
	return NewReader(bytes.NewReader(b), int64(len(b)), "x.safetensors")
}

func TestRoundTripEveryFloatDType(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rt.safetensors")
	// Values exactly representable in every dtype, plus specials.
	vals := []float64{0, 1, -2, 0.5, 3.25, -1024, math.Ldexp(1, -14), math.Inf(1), math.Inf(-1)}
	w, err := Create(path, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.SetMetadata(map[string]string{"format": "pt", "note": "ünïcode \"quoted\""})
	dts := []DType{F64, F32, F16, BF16}
	for _, dt := range dts {
		if err := w.WriteFloat64(string(dt)+".w64", dt, []int{3, 3}, vals); err != nil {
			t.Fatal(err)
		}
		v32 := make([]float32, len(vals))
		for i, v := range vals {
			v32[i] = float32(v)
		}
		if err := w.WriteFloat32(string(dt)+".w32", dt, []int{9}, v32); err != nil {
			t.Fatal(err)
		}
	}
	// Non-float tensors are carried as raw bytes; scalars and empty
	// tensors are valid.
	if err := w.WriteRaw("ids", I64, []int{2}, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFloat32("alpha", F32, []int{}, []float32{8}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRaw("empty", U8, []int{0, 5}, nil); err != nil {
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
	if got := f.Metadata(); got["format"] != "pt" || got["note"] != "ünïcode \"quoted\"" {
		t.Errorf("metadata = %v", got)
	}
	for _, dt := range dts {
		for _, name := range []string{string(dt) + ".w64", string(dt) + ".w32"} {
			info, ok := f.Tensor(name)
			if !ok || info.DType != dt {
				t.Fatalf("%s: info %+v, ok %v", name, info, ok)
			}
			g64, err := f.Float64s(name)
			if err != nil {
				t.Fatal(err)
			}
			g32, err := f.Float32s(name)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if g64[i] != v || float64(g32[i]) != v {
					t.Errorf("%s[%d] = %v / %v; want %v", name, i, g64[i], g32[i], v)
				}
			}
		}
	}
	if s, err := f.Scalar("ids"); err == nil {
		t.Errorf("Scalar of a 2-element tensor = %v; want an error", s)
	}
	if a, err := f.Scalar("alpha"); err != nil || a != 8 {
		t.Errorf("alpha = %v, %v", a, err)
	}
	raw, err := f.ReadRaw("ids")
	if err != nil || raw[0] != 1 || raw[15] != 0xff {
		t.Errorf("ids = %v, %v", raw, err)
	}
	if e, _ := f.Tensor("empty"); !reflect.DeepEqual(e.Shape, []int{0, 5}) || e.Size() != 0 {
		t.Errorf("empty = %+v", e)
	}
	// Data is aligned: the header is padded to a multiple of 8.
	if f.dataStart%8 != 0 {
		t.Errorf("data starts at %d; want a multiple of 8", f.dataStart)
	}
}

// Rounding on write: values between representable ones round to nearest.
func TestWriteRoundsToNearest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.safetensors")
	w, err := Create(path, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x := 1 + math.Ldexp(1, -10) + math.Ldexp(1, -12) // between F16 1+2⁻¹⁰ and 1+2⁻⁹, nearer the first
	if err := w.WriteFloat64("h", F16, []int{1}, []float64{x}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFloat64("b", BF16, []int{1}, []float64{1 + math.Ldexp(1, -8)}); err != nil { // tie → even (1)
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
	h, _ := f.Float64s("h")
	b, _ := f.Float64s("b")
	if h[0] != 1+math.Ldexp(1, -10) || b[0] != 1 {
		t.Errorf("h = %v, b = %v", h[0], b[0])
	}
}

// A header larger than the reserve moves the data forward once.
func TestWriterHeaderLargerThanReserve(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.safetensors")
	w, err := Create(path, WriterOptions{HeaderReserve: 16})
	if err != nil {
		t.Fatal(err)
	}
	var want [][]float32
	for i := range 50 {
		v := make([]float32, 1000+i)
		for j := range v {
			v[j] = float32(i*10000 + j)
		}
		want = append(want, v)
		if err := w.WriteFloat32(strings.Repeat("n", 40)+string(rune('A'+i)), F32, []int{len(v)}, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, ti := range f.Tensors() {
		got, err := f.Float32s(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Fatalf("tensor %d differs after the move", i)
		}
	}
}

func TestWriterAtomicity(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.safetensors")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Existing output, no overwrite: refused up front.
	if _, err := Create(path, WriterOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over an existing file: %v; want ErrExists", err)
	}
	// An output that appears while writing is not clobbered either.
	other := filepath.Join(dir, "late.safetensors")
	w, err := Create(other, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.WriteFloat32("a", F32, []int{1}, []float32{1})
	os.WriteFile(other, []byte("late"), 0o644)
	if err := w.Close(); !errors.Is(err, ErrExists) {
		t.Fatalf("Close over a file that appeared: %v; want ErrExists", err)
	}
	if b, _ := os.ReadFile(other); string(b) != "late" {
		t.Errorf("late file was clobbered: %q", b)
	}
	// Abort leaves nothing behind; Overwrite replaces.
	w, err = Create(path, WriterOptions{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	w.WriteFloat32("a", F32, []int{1}, []float32{1})
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Errorf("aborted write changed the output: %q", b)
	}
	w, _ = Create(path, WriterOptions{Overwrite: true})
	w.WriteFloat32("a", F32, []int{1}, []float32{1})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if f, err := Open(path); err != nil {
		t.Errorf("overwritten output does not open: %v", err)
	} else {
		f.Close()
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	// Writer misuse is an error, not a panic.
	w, _ = Create(filepath.Join(dir, "m.safetensors"), WriterOptions{})
	defer w.Abort()
	if err := w.WriteFloat32("a", F32, []int{2}, []float32{1}); err == nil {
		t.Error("wrong value count: no error")
	}
	w.WriteFloat32("b", F32, []int{1}, []float32{1})
	if err := w.WriteFloat32("b", F32, []int{1}, []float32{1}); err == nil {
		t.Error("duplicate name: no error")
	}
	if err := w.WriteFloat32("c", I32, []int{1}, []float32{1}); !errors.Is(err, ErrDType) {
		t.Errorf("floats as I32: %v; want ErrDType", err)
	}
	if err := w.WriteRaw("d", F32, []int{2}, []byte{1, 2, 3}); err == nil {
		t.Error("short raw data: no error")
	}
	// Unwritable directory.
	if _, err := Create(filepath.Join(dir, "no", "such", "dir.safetensors"), WriterOptions{}); err == nil || !strings.HasPrefix(err.Error(), "lowrank: ") {
		t.Errorf("unwritable path: %v", err)
	}
}

// Every malformed header is rejected with an error naming the file, and the
// tensor when one is at fault.
func TestHostileHeaders(t *testing.T) {
	f32x2 := `"dtype":"F32","shape":[2]`
	cases := []struct {
		name, header string
		data         []byte
		want         string // substring of the error
	}{
		{"not an object", `[1,2]   `, nil, "expected a JSON object"},
		{"bad json", `{"a":`, nil, `tensor "a": invalid safetensors file: header entry`},
		{"bad json key", `{1:2}`, nil, "not valid JSON"},
		{"trailing garbage", `{} x`, nil, "after its JSON object"},
		{"unknown dtype", `{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, make([]byte, 16), `tensor "a": unsupported dtype: dtype "F128"`},
		{"missing field", `{"a":{"dtype":"F32","shape":[1]}}`, make([]byte, 4), `tensor "a": invalid safetensors file: header entry lacks`},
		{"negative dim", `{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4), "non-negative integer"},
		{"fractional dim", `{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, make([]byte, 4), "non-negative integer"},
		{"dims overflow", `{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4), "overflows 64 bits"},
		{"size mismatch", `{"a":{` + f32x2 + `,"data_offsets":[0,4]}}`, make([]byte, 4), "expected 8 bytes for F32 [2]"},
		{"end < begin", `{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, make([]byte, 8), "BEGIN ≤ END"},
		{"out of range", `{"a":{` + f32x2 + `,"data_offsets":[0,8]}}`, make([]byte, 4), "beyond the data section"},
		{"overlap", `{"a":{` + f32x2 + `,"data_offsets":[0,8]},"b":{` + f32x2 + `,"data_offsets":[4,12]}}`, make([]byte, 12), `tensor "b": invalid safetensors file: data_offsets [4, 12] overlap tensor "a"`},
		{"hole", `{"a":{` + f32x2 + `,"data_offsets":[4,12]}}`, make([]byte, 12), "unused"},
		{"trailing data", `{"a":{` + f32x2 + `,"data_offsets":[0,8]}}`, make([]byte, 12), "cover 8 bytes of a 12-byte"},
		{"duplicate name", `{"a":{` + f32x2 + `,"data_offsets":[0,8]},"a":{` + f32x2 + `,"data_offsets":[8,16]}}`, make([]byte, 16), "appears twice"},
		{"metadata not strings", `{"__metadata__":{"n":1}}`, nil, "expected a string"},
		{"sub-byte not whole", `{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}`, make([]byte, 1), "whole number of bytes"},
		// Found by the hostile suite: encoding/json accepts a quoted "2"
		// as a json.Number, and turns invalid UTF-8 into U+FFFD.
		{"quoted dim", `{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, make([]byte, 8), `shape[0] is "2"; expected a non-negative integer`},
		{"quoted offset", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,"8"]}}`, make([]byte, 8), `data_offsets[1] is "8"; expected a non-negative integer`},
		{"exponent dim", `{"a":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}`, make([]byte, 8), "shape[0] is 2e0"},
		{"invalid UTF-8 name", "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", make([]byte, 8), "not valid UTF-8 (byte 3 is 0xff)"},
		{"metadata twice", `{"__metadata__":{},"__metadata__":{}}`, nil, "appears twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := openBytes(t, rawFile(c.header, c.data))
			if err == nil {
				t.Fatalf("opened: %+v", f.Tensors())
			}
			if !strings.HasPrefix(err.Error(), "lowrank: x.safetensors: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q; want one naming the file and containing %q", err, c.want)
			}
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrDType) {
				t.Errorf("error %v wraps neither ErrFormat nor ErrDType", err)
			}
		})
	}
}

func TestHostileLengths(t *testing.T) {
	good := rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8))
	// Truncated anywhere: in the length, in the header, in the data.
	for _, n := range []int{0, 3, 8, 20, len(good) - 1} {
		if _, err := openBytes(t, good[:n]); err == nil || !strings.Contains(err.Error(), "x.safetensors") {
			t.Errorf("truncated to %d bytes: %v", n, err)
		}
	}
	// Header length beyond the file, and beyond the cap.
	for _, n := range []uint64{1 << 20, MaxHeaderSize + 1, math.MaxUint64} {
		b := append([]byte(nil), good...)
		binary.LittleEndian.PutUint64(b, n)
		_, err := openBytes(t, b)
		if err == nil || !strings.Contains(err.Error(), "header length") {
			t.Errorf("header length %d: %v", n, err)
		}
	}
	// A tensor read that fails (file shrank after Open) names the tensor.
	f, err := openBytes(t, good)
	if err != nil {
		t.Fatal(err)
	}
	f.r = bytes.NewReader(good[:len(good)-4])
	if _, err := f.Float32s("a"); err == nil || !strings.Contains(err.Error(), `tensor "a"`) {
		t.Errorf("short read: %v", err)
	}
}

// Tensors listed in any header order are returned in data order.
func TestTensorOrder(t *testing.T) {
	h := `{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  `
	f, err := openBytes(t, rawFile(h, make([]byte, 8)))
	if err != nil {
		t.Fatal(err)
	}
	if ts := f.Tensors(); ts[0].Name != "a" || ts[1].Name != "b" {
		t.Errorf("order %v", ts)
	}
	if _, err := f.Float32s("zzz"); err == nil {
		t.Error("missing tensor: no error")
	}
}

// headerPadding returns the length field of the file at path and how
// many bytes of it follow the JSON object (space padding).
func headerPadding(t *testing.T, path string) (n uint64, pad int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var nb [8]byte
	io.ReadFull(f, nb[:])
	n = binary.LittleEndian.Uint64(nb[:])
	hdr := make([]byte, n)
	io.ReadFull(f, hdr)
	trimmed := bytes.TrimRight(hdr, " ")
	return n, len(hdr) - len(trimmed)
}

// Issue 9, point 3: the writer kept its whole header reserve as padding
// once the data passed 64 MiB (a 300 000-tensor output got a 143 MB header
// that no reader accepts). A written header is now exactly as large as it
// needs to be: the JSON, padded to a multiple of 8.
func TestHeaderExactlyAsLargeAsNeeded(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name    string
		reserve int
		data    int64
	}{
		{"reserve far too large, data past 64 MiB", 4 << 20, 65 << 20},
		{"reserve too large, small data", 1 << 20, 1000},
		{"reserve too small", 16, 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "x.safetensors")
			w, err := Create(path, WriterOptions{Overwrite: true, HeaderReserve: c.reserve})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteFrom("big", U8, []int{int(c.data)}, io.LimitReader(zeros{}, c.data)); err != nil {
				t.Fatal(err)
			}
			w.SetMetadata(map[string]string{"k": "v"})
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			n, pad := headerPadding(t, path)
			if pad > 7 || n%8 != 0 {
				t.Errorf("header of %d bytes with %d bytes of padding; want the JSON padded to a multiple of 8 only", n, pad)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if st, _ := os.Stat(path); st.Size() != int64(8+n)+c.data {
				t.Errorf("file of %d bytes; want %d", st.Size(), int64(8+n)+c.data)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// HeaderLen is the length Close writes, for any metadata and names.
func TestHeaderLenMatchesWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	meta := map[string]string{"a<b>": "q\"\n\u2028é", "format": "pt"}
	w, err := Create(path, WriterOptions{HeaderReserve: 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"w", "<&>", "é\x00\n"} {
		if err := w.WriteFloat64(n, F32, []int{2, 3}, make([]float64, 6)); err != nil {
			t.Fatal(err)
		}
	}
	w.SetMetadata(meta)
	want := HeaderLen(meta, w.tensors)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := headerPadding(t, path); int(n) != want {
		t.Errorf("HeaderLen = %d; the writer wrote %d", want, n)
	}
}

// writeOpen writes one float32 tensor named "w" stored as dt to a new file
// under dir and opens it.
func writeOpen(t *testing.T, dir string, dt DType, vals []float32) (*File, string) {
	t.Helper()
	path := filepath.Join(dir, string(dt)+".safetensors")
	w, err := Create(path, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFloat32("w", dt, []int{len(vals)}, vals); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

// A tensor of several MiB is read in parts on all cores: the values come
// back whole, BF16 converted as one element at a time would be, and a file
// cut short under an open reader (after Open checked it) gives the error
// that names the truncation, from the first part that failed.
func TestParallelRead(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	dir := t.TempDir()
	n := 3 * parallelReadPart / 4 // 12 MiB of float32: three parts
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(i % 1000003)
	}
	f, path := writeOpen(t, dir, F32, vals)
	got := make([]float32, n)
	if err := f.ReadFloat32s("w", got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, vals) {
		t.Fatal("a tensor read in parts differs from what was written")
	}
	bf, _ := writeOpen(t, dir, BF16, append(vals, vals...)) // 12 MiB of BF16
	wide := make([]float32, 2*n)
	if err := bf.ReadFloat32s("w", wide); err != nil {
		t.Fatal(err)
	}
	for i, v := range wide {
		if want := BF16ToFloat32(Float32ToBF16(vals[i%n])); v != want {
			t.Fatalf("BF16 element %d read in parts as %v; expected %v", i, v, want)
		}
	}
	st, _ := os.Stat(path)
	if err := os.Truncate(path, st.Size()-int64(n)); err != nil { // a quarter of the data gone
		t.Fatal(err)
	}
	err := f.ReadFloat32s("w", got)
	if err == nil || !strings.Contains(err.Error(), "was the file truncated?") || !strings.Contains(err.Error(), "F32.safetensors") {
		t.Errorf("reading a truncated file: %v; expected the error naming the file and the truncation", err)
	}
}
