// Package safetensors reads and writes the safetensors format of Hugging
// Face (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON header, then the tensors'
// bytes, row-major and little-endian.
//
// Files are read lazily: Open reads and validates only the header, and each
// tensor is read on demand with positioned reads (io.ReaderAt), so a file
// larger than memory can be processed one tensor at a time. Writer streams
// tensors to a temporary file in the output's directory and renames it into
// place on Close, so an output is either complete or absent.
//
// The header is validated before any tensor is read: its length against the
// file size and MaxHeaderSize, its JSON (read strictly: UTF-8, no
// duplicate keys anywhere, entry keys spelled exactly dtype, shape and
// data_offsets, string-valued __metadata__, at most MaxTensors tensors),
// every dtype, shape and offset (dtype·shape = byte length,
// no overflow, offsets inside the data section, tensors covering it exactly
// with no holes and no overlaps, as the format requires). A hostile header
// cannot make Open allocate more than a small multiple of the header size.
//
// Errors for malformed files wrap ErrFormat or ErrDType, and their text
// starts with "lowrank:" and names the file and the tensor.
package safetensors

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/lowrank-go/lowrank/internal/osfile"
	"github.com/lowrank-go/lowrank/internal/strictjson"
)

// Limits on what a header may declare.
const (
	// MaxHeaderSize is the largest header accepted, in bytes (as the
	// reference implementation: 100 MB).
	MaxHeaderSize = 100_000_000
	// MaxTensors is the largest number of tensors a header may declare.
	MaxTensors = 1 << 20
	// MaxDims is the largest number of dimensions of one tensor.
	MaxDims = 64
)

// Sentinel errors, for errors.Is.
var (
	// ErrFormat: a file that is not valid safetensors (truncated, bad
	// header, bad offsets).
	ErrFormat = errors.New("invalid safetensors file")
	// ErrDType: an element type that is unknown, or that cannot be
	// converted as asked.
	ErrDType = errors.New("unsupported dtype")
	// ErrExists: the output exists and overwriting was not allowed.
	ErrExists = errors.New("output exists")
)

// Error is a problem with one file, and possibly one tensor in it. Its text
// is "lowrank: FILE: tensor "NAME": what was wrong; what was expected".
type Error struct {
	File   string
	Tensor string // "" when the problem is not about one tensor
	Err    error
}

func (e *Error) Error() string {
	s := "lowrank: " + e.File + ": "
	if e.Tensor != "" {
		s += "tensor " + strconv.Quote(e.Tensor) + ": "
	}
	return s + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func formatErr(file, tensor, format string, args ...any) error {
	return &Error{File: file, Tensor: tensor, Err: fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)}
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are the data_offsets: the tensor's bytes are
	// [Begin, End) of the data section.
	Begin, End int64
}

// NumElements returns the product of the dimensions (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Size returns the tensor's size in bytes.
func (t TensorInfo) Size() int64 { return t.End - t.Begin }

// Matrix reports whether the tensor is a non-empty 2-D F16, BF16, F32 or
// F64 tensor, and returns its rows and columns.
func (t TensorInfo) Matrix() (rows, cols int, ok bool) {
	if len(t.Shape) != 2 || !t.DType.IsFloat() || t.Shape[0] < 1 || t.Shape[1] < 1 {
		return 0, 0, false
	}
	return t.Shape[0], t.Shape[1], true
}

// File is an open safetensors file whose header has been validated.
type File struct {
	path      string
	r         io.ReaderAt
	closer    io.Closer
	size      int64
	dataStart int64
	meta      map[string]string
	tensors   []TensorInfo // in the order of their data
	index     map[string]int
}

// OpenOptions configure OpenWith and NewReaderWith.
type OpenOptions struct {
	// Context, when cancelled, stops reading the header (a header of a
	// million entries takes a while); the error then wraps the context's.
	Context context.Context
	// MaxMemory, when positive, bounds the memory reading the header may
	// take: a header whose reading could need more (HeaderMemory of its
	// length) is refused before it is read, with an error wrapping
	// ErrMemory.
	MaxMemory int64
}

// ErrMemory: reading the file would take more memory than allowed.
var ErrMemory = errors.New("not enough memory")

// HeaderMemory returns the most memory reading and indexing a header of n
// bytes takes: the header itself, the tensor list and the name index (at
// most about 4.5 times n at the 2²⁰-tensor extreme, see TestHeaderCaps),
// with a margin.
func HeaderMemory(n int64) int64 { return 8*n + 64<<10 }

// Open opens the safetensors file at path and validates its header. The
// tensors are not read until asked for. The path must be a regular file (or
// a link to one): a FIFO, device or socket is refused without reading from
// it or waiting on it.
func Open(path string) (*File, error) { return OpenWith(path, OpenOptions{}) }

// OpenWith is Open with options.
func OpenWith(path string, o OpenOptions) (*File, error) {
	f, st, err := osfile.OpenRegular(path)
	if err != nil {
		if errors.Is(err, osfile.ErrNotRegular) {
			return nil, formatErr(path, "", "is %s; expected a regular .safetensors file", osfile.Kind(statMode(path)))
		}
		return nil, fmt.Errorf("lowrank: %w", err)
	}
	sf, err := NewReaderWith(f, st.Size(), path, o)
	if err != nil {
		f.Close()
		return nil, err
	}
	sf.closer = f
	return sf, nil
}

func statMode(path string) os.FileMode {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Mode()
}

// NewReader reads and validates the header of the size-byte safetensors
// data in r; name is how errors call it.
func NewReader(r io.ReaderAt, size int64, name string) (*File, error) {
	return NewReaderWith(r, size, name, OpenOptions{})
}

// NewReaderWith is NewReader with options.
func NewReaderWith(r io.ReaderAt, size int64, name string, o OpenOptions) (*File, error) {
	if size < 8 {
		return nil, formatErr(name, "", "file is %d bytes; expected at least the 8-byte header length", size)
	}
	var nb [8]byte
	if _, err := r.ReadAt(nb[:], 0); err != nil {
		return nil, formatErr(name, "", "reading the header length: %v", err)
	}
	n := binary.LittleEndian.Uint64(nb[:])
	if n > MaxHeaderSize {
		return nil, formatErr(name, "", "header length is %d bytes; expected at most %d", n, MaxHeaderSize)
	}
	if n > uint64(size-8) {
		return nil, formatErr(name, "", "header length is %d bytes but the file has only %d bytes after the length (truncated file?)", n, size-8)
	}
	if n < 2 {
		return nil, formatErr(name, "", "header length is %d bytes; expected a JSON object", n)
	}
	if need := HeaderMemory(int64(n)); o.MaxMemory > 0 && need > o.MaxMemory {
		return nil, &Error{File: name, Err: fmt.Errorf("%w: reading the %d-byte header needs up to %d bytes of memory but only %d are allowed", ErrMemory, n, need, o.MaxMemory)}
	}
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, formatErr(name, "", "reading the %d-byte header: %v", n, err)
	}
	dataLen := size - 8 - int64(n)
	meta, tensors, index, err := parseHeader(ctx, hdr, name)
	if err != nil {
		return nil, err
	}
	if err := validate(tensors, dataLen, name); err != nil {
		return nil, err
	}
	for i, t := range tensors { // positions after sorting by offset
		index[t.Name] = i
	}
	return &File{path: name, r: r, size: size, dataStart: 8 + int64(n), meta: meta, tensors: tensors, index: index}, nil
}

// Header entries are read strictly (internal/strictjson): a key that
// appears twice, in the header, an entry or __metadata__, is an error; an
// entry's keys must be spelled exactly dtype, shape and data_offsets (no
// case or Unicode folding, nothing else); numbers are plain digits.

// parseHeader decodes the JSON header, keeping the tensors in header order,
// and returns an index of their names.
func parseHeader(ctx context.Context, hdr []byte, name string) (map[string]string, []TensorInfo, map[string]int, error) {
	if hdr[0] != '{' {
		return nil, nil, nil, formatErr(name, "", "header starts with %q; expected a JSON object starting with '{'", hdr[0])
	}
	// The format's JSON is UTF-8 (serde_json and Python's json refuse
	// anything else): say where it is not.
	if i := invalidUTF8(hdr); i >= 0 {
		return nil, nil, nil, formatErr(name, "", "header is not valid UTF-8 (byte %d is %#x); expected UTF-8 JSON", i, hdr[i])
	}
	bad := func(tensor string, err error) error { return formatErr(name, tensor, "header is %v", err) }
	s := strictjson.NewScanner(hdr)
	if err := s.BeginObject(); err != nil {
		return nil, nil, nil, bad("", err)
	}
	meta := map[string]string{}
	// Every entry holds "data_offsets": counting them sizes the slice and
	// the index once instead of growing them (a header may list a million
	// tensors).
	guess := min(bytes.Count(hdr, []byte(`"data_offsets"`)), MaxTensors)
	tensors := make([]TensorInfo, 0, guess)
	seen := make(map[string]int, guess)
	sawMeta := false
	for i := 0; ; i++ {
		if i&4095 == 0 && ctx.Err() != nil {
			return nil, nil, nil, &Error{File: name, Err: fmt.Errorf("reading the header: %w", ctx.Err())}
		}
		key, more, err := s.NextKey()
		if err != nil {
			return nil, nil, nil, bad("", err)
		}
		if !more {
			break
		}
		if _, dup := seen[key]; dup || key == "__metadata__" && sawMeta {
			return nil, nil, nil, formatErr(name, key, "appears twice in the header; expected unique names")
		}
		if key == "__metadata__" {
			sawMeta = true
			if meta, err = parseMetadata(s, name); err != nil {
				return nil, nil, nil, err
			}
			continue
		}
		if len(tensors) >= MaxTensors {
			return nil, nil, nil, formatErr(name, "", "header declares more than %d tensors", MaxTensors)
		}
		seen[key] = len(tensors)
		t, err := parseEntry(s, hdr, key, name)
		if err != nil {
			return nil, nil, nil, err
		}
		tensors = append(tensors, t)
	}
	if err := s.End(); err != nil {
		return nil, nil, nil, formatErr(name, "", "header has bytes after its JSON object; expected only space padding (%v)", err)
	}
	return meta, tensors, seen, nil
}

// parseMetadata reads __metadata__: an object of strings (or null).
func parseMetadata(s *strictjson.Scanner, name string) (map[string]string, error) {
	meta := map[string]string{}
	k, err := s.Peek()
	if err != nil {
		return nil, formatErr(name, "", "__metadata__ is %v", err)
	}
	if k == strictjson.Null {
		if err := s.Null(); err != nil {
			return nil, formatErr(name, "", "__metadata__ is %v", err)
		}
		return meta, nil
	}
	if k != strictjson.Object {
		return nil, formatErr(name, "", "__metadata__ is %s; expected a JSON object of strings", k)
	}
	s.BeginObject()
	for {
		off := s.Offset()
		key, more, err := s.NextKey()
		if err != nil {
			return nil, formatErr(name, "", "__metadata__ is %v", err)
		}
		if !more {
			return meta, nil
		}
		if _, dup := meta[key]; dup {
			return nil, formatErr(name, "", "__metadata__ is %v", s.Duplicate(key, off))
		}
		vk, err := s.Peek()
		if err != nil {
			return nil, formatErr(name, "", "__metadata__ value of %q is %v", key, err)
		}
		if vk != strictjson.String {
			return nil, formatErr(name, "", "__metadata__ value of %q is %s; expected a string (the format allows only strings)", key, vk)
		}
		if meta[key], err = s.String(); err != nil {
			return nil, formatErr(name, "", "__metadata__ value of %q is %v", key, err)
		}
	}
}

// parseEntry reads one tensor's entry {"dtype", "shape", "data_offsets"}.
func parseEntry(s *strictjson.Scanner, hdr []byte, key, name string) (TensorInfo, error) {
	bad := func(format string, args ...any) (TensorInfo, error) {
		return TensorInfo{}, formatErr(name, key, format, args...)
	}
	if k, err := s.Peek(); err != nil || k != strictjson.Object {
		if err != nil {
			return bad("header entry is %v", err)
		}
		return bad("header entry is %s; expected an object {\"dtype\", \"shape\", \"data_offsets\"}", k)
	}
	s.BeginObject()
	var dtype string
	var shape, offs []string
	var have [3]bool
	for {
		off := s.Offset()
		field, more, err := s.NextKey()
		if err != nil {
			return bad("header entry is %v", err)
		}
		if !more {
			break
		}
		slot := -1
		switch field {
		case "dtype":
			slot = 0
		case "shape":
			slot = 1
		case "data_offsets":
			slot = 2
		default:
			return bad("header entry has the key %q; expected only \"dtype\", \"shape\" and \"data_offsets\", spelled exactly so", field)
		}
		if have[slot] {
			return bad("header entry is %v", s.Duplicate(field, off))
		}
		have[slot] = true
		switch slot {
		case 0:
			if k, err := s.Peek(); err != nil || k != strictjson.String {
				return bad("dtype is %s; expected a string such as \"F32\"", rawValue(s, hdr))
			}
			if dtype, err = s.String(); err != nil {
				return bad("header entry is %v", err)
			}
		case 1, 2:
			list, err := numbers(s, hdr)
			if err != nil {
				return bad("%s%v", field, err)
			}
			if slot == 1 {
				shape = list
			} else {
				offs = list
			}
		}
	}
	if !have[0] || !have[1] || !have[2] {
		return bad("header entry lacks dtype, shape or data_offsets")
	}
	return tensorInfo(key, dtype, shape, offs, name)
}

// rawValue skips the next value and returns its text (for messages; cut
// at 40 bytes).
func rawValue(s *strictjson.Scanner, hdr []byte) string {
	start := s.Offset()
	if err := s.Skip(); err != nil {
		return err.Error()
	}
	v := strings.TrimSpace(string(hdr[start:s.Offset()]))
	if len(v) > 40 {
		v = v[:37] + "…"
	}
	return v
}

// numbers reads an array of JSON values that must be numbers, returning
// them as written; a value of another type is reported by its text.
func numbers(s *strictjson.Scanner, hdr []byte) ([]string, error) {
	if k, err := s.Peek(); err != nil || k != strictjson.Array {
		if err != nil {
			return nil, fmt.Errorf(" is %v", err)
		}
		return nil, fmt.Errorf(" is %s; expected an array of integers", rawValue(s, hdr))
	}
	s.BeginArray()
	var out []string
	for i := 0; ; i++ {
		more, err := s.NextElem()
		if err != nil {
			return nil, fmt.Errorf(" is %v", err)
		}
		if !more {
			return out, nil
		}
		if len(out) > MaxDims {
			return nil, fmt.Errorf(" has more than %d values; expected at most %d", MaxDims, MaxDims)
		}
		k, err := s.Peek()
		if err != nil {
			return nil, fmt.Errorf("[%d] is %v", i, err)
		}
		if k != strictjson.Number {
			return nil, fmt.Errorf("[%d] is %s; expected a non-negative integer", i, rawValue(s, hdr))
		}
		v, err := s.Number()
		if err != nil {
			return nil, fmt.Errorf("[%d] is %v", i, err)
		}
		out = append(out, v)
	}
}

// parseUint parses a JSON number written as decimal digits only (no sign,
// fraction or exponent) that fits 63 bits.
func parseUint(n string) (uint64, bool) {
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(n, 10, 63)
	return v, err == nil
}

func tensorInfo(key, dtype string, rawShape, rawOffs []string, name string) (TensorInfo, error) {
	dt := DType(dtype)
	if !dt.Known() {
		_, err := ParseDType(dtype)
		return TensorInfo{}, &Error{File: name, Tensor: key, Err: err}
	}
	if len(rawShape) > MaxDims {
		return TensorInfo{}, formatErr(name, key, "shape has %d dimensions; expected at most %d", len(rawShape), MaxDims)
	}
	// Count bits with overflow checks: elements · bits per element.
	nbits := uint64(dt.Bits())
	shape := make([]int, len(rawShape))
	for i, d := range rawShape {
		v, ok := parseUint(d)
		if !ok {
			return TensorInfo{}, formatErr(name, key, "shape[%d] is %s; expected a non-negative integer", i, d)
		}
		hi, lo := bits.Mul64(nbits, v)
		if hi != 0 || lo > math.MaxInt64 {
			return TensorInfo{}, formatErr(name, key, "shape [%s] overflows 64 bits", strings.Join(rawShape, ", "))
		}
		nbits = lo
		shape[i] = int(v)
	}
	if nbits%8 != 0 {
		return TensorInfo{}, formatErr(name, key, "%s shape %v is %d bits; expected a whole number of bytes", dt, shape, nbits)
	}
	if len(rawOffs) != 2 {
		return TensorInfo{}, formatErr(name, key, "data_offsets has %d values; expected [BEGIN, END]", len(rawOffs))
	}
	b, ok1 := parseUint(rawOffs[0])
	e, ok2 := parseUint(rawOffs[1])
	if !ok1 || !ok2 || e < b {
		return TensorInfo{}, formatErr(name, key, "data_offsets [%s]; expected non-negative integers BEGIN ≤ END", strings.Join(rawOffs, ", "))
	}
	if e-b != nbits/8 {
		return TensorInfo{}, formatErr(name, key, "data_offsets [%d, %d] hold %d bytes; expected %d bytes for %s %v", b, e, e-b, nbits/8, dt, shape)
	}
	return TensorInfo{Name: key, DType: dt, Shape: shape, Begin: int64(b), End: int64(e)}, nil
}

// validate sorts the tensors by offset and checks that they cover the data
// section exactly: inside it, no overlaps, no holes.
func validate(ts []TensorInfo, dataLen int64, name string) error {
	sort.SliceStable(ts, func(i, j int) bool {
		if ts[i].Begin != ts[j].Begin {
			return ts[i].Begin < ts[j].Begin
		}
		return ts[i].End < ts[j].End
	})
	var pos int64
	prev := ""
	for _, t := range ts {
		if t.End > dataLen {
			return formatErr(name, t.Name, "data_offsets [%d, %d] end beyond the data section of %d bytes (truncated file?)", t.Begin, t.End, dataLen)
		}
		if t.Begin < pos {
			return formatErr(name, t.Name, "data_offsets [%d, %d] overlap tensor %q, which ends at %d; expected disjoint tensors", t.Begin, t.End, prev, pos)
		}
		if t.Begin > pos {
			return formatErr(name, t.Name, "data_offsets [%d, %d] leave bytes [%d, %d) of the data section unused; expected tensors to cover it without holes", t.Begin, t.End, pos, t.Begin)
		}
		pos, prev = t.End, t.Name
	}
	if pos != dataLen {
		return formatErr(name, "", "tensors cover %d bytes of a %d-byte data section; expected them to cover it exactly", pos, dataLen)
	}
	return nil
}

// Path returns the name the file was opened with.
func (f *File) Path() string { return f.path }

// HeaderEstimate returns about how many bytes of header JSON the file's
// tensors and metadata take, padding excluded: a guide for the
// WriterOptions.HeaderReserve of a file derived from this one.
func (f *File) HeaderEstimate() int {
	n := 64
	for k, v := range f.meta {
		n += len(k) + len(v) + 8
	}
	for _, t := range f.tensors {
		n += len(t.Name) + 80 + 12*len(t.Shape)
	}
	return n
}

// HeaderSize returns the length of the file's JSON header in bytes.
func (f *File) HeaderSize() int64 { return f.dataStart - 8 }

// Size returns the file's size in bytes.
func (f *File) Size() int64 { return f.size }

// Metadata returns the header's __metadata__ (never nil). The map is the
// file's own: do not modify it.
func (f *File) Metadata() map[string]string { return f.meta }

// Tensors returns the tensors in the order of their data in the file.
func (f *File) Tensors() []TensorInfo { return f.tensors }

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.tensors[i], true
}

// Close closes the file.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

func (f *File) lookup(name string) (TensorInfo, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return TensorInfo{}, &Error{File: f.path, Tensor: name, Err: errors.New("no such tensor")}
	}
	return t, nil
}

// Section returns a reader of the tensor's raw bytes.
func (f *File) Section(name string) (*io.SectionReader, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(f.r, f.dataStart+t.Begin, t.Size()), nil
}

// ReadRaw returns the tensor's raw little-endian bytes.
func (f *File) ReadRaw(name string) ([]byte, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, t.Size())
	if err := f.readAt(t, buf, 0); err != nil {
		return nil, err
	}
	return buf, nil
}

func (f *File) readAt(t TensorInfo, buf []byte, off int64) (err error) {
	if len(buf) == 0 {
		return nil
	}
	// A large read is split between the cores (io.ReaderAt allows
	// parallel calls): copying from the page cache runs at one core's
	// speed per call (16 MiB: 2.1–3.0 ms on one, 1.1–2.0 ms on two here).
	if inParts(int64(len(buf)), 1, func(lo, hi int64) error { return f.readOnce(t, buf[lo:hi], off+lo) }, &err) {
		return err
	}
	return f.readOnce(t, buf, off)
}

// readOnce is readAt in one call.
func (f *File) readOnce(t TensorInfo, buf []byte, off int64) error {
	if _, err := f.r.ReadAt(buf, f.dataStart+t.Begin+off); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return &Error{File: f.path, Tensor: t.Name, Err: fmt.Errorf("reading %d bytes at offset %d: %w (was the file truncated?)", len(buf), f.dataStart+t.Begin+off, err)}
	}
	return nil
}

// parallelReadPart is the least a read gives each core (readAt).
const parallelReadPart = 4 << 20

// inParts splits the n bytes [0, n) into up to four parts of whole units,
// at least parallelReadPart each and no more than there are cores, and
// runs fn on each concurrently. It reports false, doing nothing, where
// that is one part; otherwise it sets *err to the error of the first part
// that failed (for a truncated file, where it ends) or nil.
func inParts(n, unit int64, fn func(lo, hi int64) error, err *error) bool {
	parts := min(int64(runtime.GOMAXPROCS(0)), n/parallelReadPart, 4)
	if parts <= 1 {
		return false
	}
	errs := make([]error, parts)
	var wg sync.WaitGroup
	units := n / unit
	for p := range parts {
		lo, hi := p*units/parts*unit, (p+1)*units/parts*unit
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = fn(lo, hi)
		}()
	}
	wg.Wait()
	*err = nil
	for _, e := range errs {
		if e != nil {
			*err = e
			break
		}
	}
	return true
}

// chunkBytes is the size of the buffer tensors are read through.
const chunkBytes = 1 << 20

// chunks holds the staging buffers of readChunks and writeFloats
// (chunkBytes each), so that converting a model's tensors one after
// another reuses a few buffers instead of allocating a fresh megabyte per
// tensor.
var chunks = sync.Pool{New: func() any { b := make([]byte, chunkBytes); return &b }}

// chunk returns a staging buffer of n bytes and the function that gives it
// back: one of chunks for a tensor that fills a good part of one, an
// exact allocation otherwise (a small tensor allocates no megabyte).
func chunk(n int) ([]byte, func()) {
	if n < chunkBytes/16 || n > chunkBytes {
		return make([]byte, n), func() {}
	}
	p := chunks.Get().(*[]byte)
	return (*p)[:n], func() { chunks.Put(p) }
}

// readChunks reads tensor t in chunks of whole elements and hands each
// chunk to fn with the index of its first element.
func (f *File) readChunks(t TensorInfo, fn func(chunk []byte, first int) error) error {
	return f.readChunksOf(t, 0, t.Size(), fn)
}

// readChunksOf is readChunks of the bytes [lo, hi) of t (whole elements).
func (f *File) readChunksOf(t TensorInfo, lo, hi int64, fn func(chunk []byte, first int) error) error {
	size := int64(t.DType.Size())
	per := max(chunkBytes/size, 1) * size
	buf, put := chunk(int(min(per, hi-lo)))
	defer put()
	for off := lo; off < hi; off += per {
		c := buf[:min(per, hi-off)]
		if err := f.readAt(t, c, off); err != nil {
			return err
		}
		if err := fn(c, int(off/size)); err != nil {
			return err
		}
	}
	return nil
}

// Float32s returns the values of the F16, BF16, F32 or F64 tensor called
// name as float32 (F64 values are rounded to nearest).
func (f *File) Float32s(name string) ([]float32, error) {
	return readFloats(f, name, nil, F32, decodeFloat32)
}

// Float64s returns the values of the F16, BF16, F32 or F64 tensor called
// name as float64 (exactly).
func (f *File) Float64s(name string) ([]float64, error) {
	return readFloats(f, name, nil, F64, decodeFloat64)
}

// ReadFloat32s is Float32s into dst, which must hold exactly the tensor's
// number of elements: a caller that reads many tensors can reuse one
// buffer instead of allocating (and faulting in) a fresh one each time.
// Every element of dst is overwritten when it returns nil.
func (f *File) ReadFloat32s(name string, dst []float32) error {
	_, err := readFloats(f, name, nonNil(dst), F32, decodeFloat32)
	return err
}

// ReadFloat64s is Float64s into dst, as ReadFloat32s.
func (f *File) ReadFloat64s(name string, dst []float64) error {
	_, err := readFloats(f, name, nonNil(dst), F64, decodeFloat64)
	return err
}

// nonNil returns v, or an empty slice for nil (which readFloats would
// allocate in its place).
func nonNil[T float32 | float64](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// readFloats reads the float tensor name into dst (allocated when nil) as
// T, whose dtype is native. A tensor already stored as T is read straight
// into dst's memory on a little-endian machine, without a staging buffer.
func readFloats[T float32 | float64](f *File, name string, dst []T, native DType, decode func([]T, []byte, DType) error) ([]T, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if !t.DType.IsFloat() {
		return nil, &Error{File: f.path, Tensor: name, Err: fmt.Errorf("%w: dtype %s; expected F16, BF16, F32 or F64", ErrDType, t.DType)}
	}
	n := t.NumElements()
	if dst == nil {
		dst = make([]T, n)
	} else if len(dst) != n {
		return nil, &Error{File: f.path, Tensor: name, Err: fmt.Errorf("a buffer of %d values for %d elements; expected exactly %d", len(dst), n, n)}
	}
	if t.DType == native && littleEndian && n > 0 {
		return dst, f.readAt(t, unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), t.Size()), 0)
	}
	size := t.DType.Size()
	conv := func(c []byte, first int) error { return decode(dst[first:first+len(c)/size], c, t.DType) }
	// A large tensor is read and converted in parts on all cores (as
	// readAt splits a large read): converting BF16 or F16 runs at one
	// core's speed per part.
	if inParts(t.Size(), int64(size), func(lo, hi int64) error { return f.readChunksOf(t, lo, hi, conv) }, &err) {
		return dst, err
	}
	return dst, f.readChunks(t, conv)
}

// littleEndian reports whether this machine stores numbers as the format
// does, so that F32 and F64 data can be read into memory as it is.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Scalar returns the value of a one-element tensor of any numeric dtype
// (float, integer or BOOL) as a float64, for small values such as kohya's
// "alpha".
func (f *File) Scalar(name string) (float64, error) {
	t, err := f.lookup(name)
	if err != nil {
		return 0, err
	}
	if t.NumElements() != 1 {
		return 0, &Error{File: f.path, Tensor: name, Err: fmt.Errorf("shape %v; expected a single value", t.Shape)}
	}
	b, err := f.ReadRaw(name)
	if err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	switch t.DType {
	case F16, BF16, F32, F64:
		v := make([]float64, 1)
		err := decodeFloat64(v, b, t.DType)
		return v[0], err
	case I64:
		return float64(int64(le.Uint64(b))), nil
	case U64:
		return float64(le.Uint64(b)), nil
	case I32:
		return float64(int32(le.Uint32(b))), nil
	case U32:
		return float64(le.Uint32(b)), nil
	case I16:
		return float64(int16(le.Uint16(b))), nil
	case U16:
		return float64(le.Uint16(b)), nil
	case I8:
		return float64(int8(b[0])), nil
	case U8, BOOL:
		return float64(b[0]), nil
	}
	return 0, &Error{File: f.path, Tensor: name, Err: fmt.Errorf("%w: dtype %s; expected a float or integer scalar", ErrDType, t.DType)}
}
