package safetensors

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// boundedReader is an io.ReaderAt over b that records every read and
// fails the test on one outside b.
type boundedReader struct {
	t  *testing.T
	b  []byte
	mu sync.Mutex
	hi int64 // the end of the furthest read
}

func (r *boundedReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.hi = max(r.hi, off+int64(len(p)))
	r.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(r.b)) {
		r.t.Errorf("read of %d bytes at %d outside the %d-byte file", len(p), off, len(r.b))
		if off < 0 || off >= int64(len(r.b)) {
			return 0, io.EOF
		}
		n := copy(p, r.b[off:])
		return n, io.EOF
	}
	return copy(p, r.b[off:]), nil
}

// allocs returns the bytes fn allocates.
func allocs(fn func()) uint64 {
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// A header can claim anything; what Open and the reads allocate is bounded
// by the file's size, and nothing is read outside the file. Each file here
// claims far more than it holds.
func TestHostileClaimsAllocateLittle(t *testing.T) {
	for _, c := range []struct{ name, header string }{
		{"shape of 10^10 elements, offsets of 40 GB", `{"a":{"dtype":"F32","shape":[100000,100000],"data_offsets":[0,40000000000]}}`},
		{"shape of 2^62 bytes", `{"a":{"dtype":"U8","shape":[4611686018427387904],"data_offsets":[0,4611686018427387904]}}`},
		{"dims overflowing int64", `{"a":{"dtype":"F64","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}`},
		{"zero dim beside 2^62 dims", `{"a":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`},
		{"offsets past the file", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[9223372036854775799,9223372036854775807]}}`},
		{"64 dims of 2^0", `{"a":{"dtype":"F32","shape":[` + strings.Repeat("1,", 63) + `2],"data_offsets":[0,8]}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := rawFile(c.header, make([]byte, 8))
			r := &boundedReader{t: t, b: b}
			var errs []error
			got := allocs(func() {
				f, err := NewReader(r, int64(len(b)), "x.safetensors")
				if err != nil {
					errs = append(errs, err)
					return
				}
				for _, ti := range f.Tensors() {
					if _, err := f.ReadRaw(ti.Name); err != nil {
						errs = append(errs, err)
					}
					if ti.DType.IsFloat() {
						if _, err := f.Float64s(ti.Name); err != nil {
							errs = append(errs, err)
						}
					}
				}
			})
			if bound := uint64(64 << 10); got > bound {
				t.Errorf("allocated %d bytes for a %d-byte file; want at most %d", got, len(b), bound)
			}
			for _, err := range errs {
				if !strings.HasPrefix(err.Error(), "lowrank: x.safetensors: ") || !errors.Is(err, ErrFormat) {
					t.Errorf("error %v", err)
				}
			}
			t.Logf("%v; allocated %d bytes", errs, got)
		})
	}
}

// The caps on header size and tensor count hold, and a header at the cap
// is parsed in a bounded multiple of its size (about 9.4×; checked: 12×):
// every name, shape and
// offset lives once in memory, plus encoding/json's work.
func TestHeaderCaps(t *testing.T) {
	// Header length over MaxHeaderSize: refused before any allocation of
	// that size, even when the file is that big (a sparse reader here).
	big := int64(MaxHeaderSize) + 8 + 1
	r := io.NewSectionReader(zeroReader{lenPrefix: uint64(MaxHeaderSize + 1)}, 0, big)
	got := allocs(func() {
		if _, err := NewReader(r, big, "x.safetensors"); err == nil || !strings.Contains(err.Error(), "expected at most 100000000") {
			t.Errorf("header of MaxHeaderSize+1 bytes: %v", err)
		}
	})
	if got > 64<<10 {
		t.Errorf("refusing an oversized header allocated %d bytes", got)
	}
	if testing.Short() {
		t.Skip("-short: skipping the million-tensor headers")
	}
	// MaxTensors entries are accepted, MaxTensors+1 refused; parsing a
	// header allocates at most HeaderMemory (8 times its size).
	for _, n := range []int{MaxTensors, MaxTensors + 1} {
		var h strings.Builder
		h.WriteByte('{')
		for i := range n {
			if i > 0 {
				h.WriteByte(',')
			}
			fmt.Fprintf(&h, `"%x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`, i)
		}
		h.WriteByte('}')
		b := rawFile(h.String(), nil)
		var f *File
		var err error
		got := allocs(func() { f, err = NewReader(bytes.NewReader(b), int64(len(b)), "x.safetensors") })
		t.Logf("%d entries, %d-byte header: allocated %d bytes (%.1f× the header), error %v", n, len(b), got, float64(got)/float64(len(b)), err)
		if got > uint64(HeaderMemory(int64(len(b)))) {
			t.Errorf("%d entries: allocated %d bytes for a %d-byte header; want at most HeaderMemory, %d", n, got, len(b), HeaderMemory(int64(len(b))))
		}
		switch {
		case n == MaxTensors && (err != nil || len(f.Tensors()) != n):
			t.Errorf("%d entries: %v", n, err)
		case n > MaxTensors && (err == nil || !strings.Contains(err.Error(), "more than 1048576 tensors")):
			t.Errorf("%d entries: %v; want refused", n, err)
		}
	}
}

// zeroReader reads as an 8-byte little-endian length followed by zeros.
type zeroReader struct{ lenPrefix uint64 }

func (z zeroReader) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		p[i] = 0
		if o := off + int64(i); o < 8 {
			p[i] = byte(z.lenPrefix >> (8 * o))
		}
	}
	return len(p), nil
}

// d·k·size cannot overflow what the reader hands out: a tensor's element
// count and byte size are checked against 63 bits before anything uses
// them, so NumElements·Size of an accepted tensor is its byte length.
func TestNoSizeOverflow(t *testing.T) {
	for _, shape := range []string{"[3037000500,3037000500]", "[2147483648,2147483648,2]", "[9223372036854775807]", "[1,9223372036854775807]"} {
		h := `{"a":{"dtype":"F16","shape":` + shape + `,"data_offsets":[0,2]}}`
		_, err := openBytes(t, rawFile(h, make([]byte, 2)))
		if err == nil || !strings.Contains(err.Error(), "overflows 64 bits") && !strings.Contains(err.Error(), "expected") {
			t.Errorf("F16 %s: %v; want refused", shape, err)
		}
	}
}
