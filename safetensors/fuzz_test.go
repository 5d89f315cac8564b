package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// readAll opens the size-byte file in r and reads every tensor the way the
// commands do: raw bytes, float32 and float64 values, and scalars.
func readAll(r *bytes.Reader, size int64) (*File, []error) {
	f, err := NewReader(r, size, "fuzz.safetensors")
	if err != nil {
		return nil, []error{err}
	}
	var errs []error
	for _, t := range f.Tensors() {
		if _, err := f.ReadRaw(t.Name); err != nil {
			errs = append(errs, err)
		}
		if t.DType.IsFloat() {
			if _, err := f.Float32s(t.Name); err != nil {
				errs = append(errs, err)
			}
			if _, err := f.Float64s(t.Name); err != nil {
				errs = append(errs, err)
			}
		}
		if t.NumElements() == 1 {
			if _, err := f.Scalar(t.Name); err != nil && !errors.Is(err, ErrDType) {
				errs = append(errs, err)
			}
		}
		if sec, err := f.Section(t.Name); err != nil || sec.Size() != t.Size() {
			errs = append(errs, err)
		}
	}
	return f, errs
}

// allocBound is what reading a file of n bytes may allocate at most: the
// header is parsed into a few times its size, and no tensor is decoded into
// more than 4 times its bytes (F16 → float64) plus the 1 MiB read buffer.
func allocBound(n int) uint64 { return 1<<21 + 64*uint64(n) }

// FuzzReader feeds arbitrary bytes to the reader and reads every tensor of
// what it accepts. Whatever the input: no panic; every error starts with
// "lowrank: fuzz.safetensors: " and wraps ErrFormat or ErrDType (a read
// error cannot happen: the header was checked against the file size); the
// tensors of an accepted file lie inside it, cover its data section
// exactly and are readable; and allocations stay below allocBound.
func FuzzReader(f *testing.F) {
	seeds := [][]byte{
		rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)),
		rawFile(`{"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"s":{"dtype":"I64","shape":[],"data_offsets":[8,16]}}  `, make([]byte, 16)),
		rawFile(`{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"F64","shape":[1,1],"data_offsets":[2,10]},"e":{"dtype":"U8","shape":[0,3],"data_offsets":[10,10]}}`, make([]byte, 10)),
		rawFile(`{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]},"b":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[1,4]}}`, make([]byte, 4)),
		rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)),
		rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)),
		rawFile(`{"__metadata__":{"n":1}}`, nil),
		rawFile(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, make([]byte, 4)),
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	// The checked-in hostile files are seeds too.
	if paths, _ := filepath.Glob(filepath.Join("..", "testdata", "hostile", "*.safetensors")); len(paths) > 0 {
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil && len(b) <= 1<<20 {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		file, errs := readAll(bytes.NewReader(data), int64(len(data)))
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > allocBound(len(data)) {
			t.Errorf("reading a %d-byte file allocated %d bytes; want at most %d", len(data), got, allocBound(len(data)))
		}
		if file == nil {
			err := errs[0]
			if !strings.HasPrefix(err.Error(), "lowrank: fuzz.safetensors: ") {
				t.Fatalf("error %q does not start with \"lowrank: fuzz.safetensors: \"", err)
			}
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrDType) {
				t.Fatalf("error %q wraps neither ErrFormat nor ErrDType", err)
			}
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %q is not a *safetensors.Error", err)
			}
			return
		}
		if len(errs) > 0 {
			t.Fatalf("accepted file, then reading failed: %v", errs[0])
		}
		var pos int64
		data0 := file.dataStart
		for _, ti := range file.Tensors() {
			if ti.Begin != pos || ti.End < ti.Begin || data0+ti.End > int64(len(data)) {
				t.Fatalf("tensor %q at [%d, %d): not contiguous from %d inside %d bytes", ti.Name, ti.Begin, ti.End, pos, len(data)-int(data0))
			}
			if got, ok := file.Tensor(ti.Name); !ok || got.Begin != ti.Begin {
				t.Fatalf("tensor %q not found by name", ti.Name)
			}
			bits := int64(ti.DType.Bits())
			for _, d := range ti.Shape {
				if d < 0 {
					t.Fatalf("tensor %q has shape %v", ti.Name, ti.Shape)
				}
				bits *= int64(d)
			}
			if bits != 8*ti.Size() {
				t.Fatalf("tensor %q: %s %v is %d bits in %d bytes", ti.Name, ti.DType, ti.Shape, bits, ti.Size())
			}
			pos = ti.End
		}
		if data0+pos != int64(len(data)) {
			t.Fatalf("tensors cover %d of %d data bytes", pos, int64(len(data))-data0)
		}
		if file.HeaderSize() > MaxHeaderSize || len(file.Tensors()) > MaxTensors {
			t.Fatalf("limits not enforced: header %d bytes, %d tensors", file.HeaderSize(), len(file.Tensors()))
		}
	})
}
