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
// file size and MaxHeaderSize, its JSON (UTF-8, no duplicate names,
// string-valued __metadata__, at most MaxTensors tensors), every dtype, shape and offset (dtype·shape = byte length,
// no overflow, offsets inside the data section, tensors covering it exactly
// with no holes and no overlaps, as the format requires). A hostile header
// cannot make Open allocate more than a small multiple of the header size.
//
// Errors for malformed files wrap ErrFormat or ErrDType, and their text
// starts with "lowrank:" and names the file and the tensor.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
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

// Open opens the safetensors file at path and validates its header. The
// tensors are not read until asked for.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lowrank: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lowrank: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, formatErr(path, "", "not a regular file; expected a .safetensors file")
	}
	sf, err := NewReader(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	sf.closer = f
	return sf, nil
}

// NewReader reads and validates the header of the size-byte safetensors
// data in r; name is how errors call it.
func NewReader(r io.ReaderAt, size int64, name string) (*File, error) {
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
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, formatErr(name, "", "reading the %d-byte header: %v", n, err)
	}
	dataLen := size - 8 - int64(n)
	meta, tensors, index, err := parseHeader(hdr, name)
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

// rawInfo is a header entry as written. Numbers are kept as written:
// json.Number would also accept a quoted "2".
type rawInfo struct {
	DType       *string            `json:"dtype"`
	Shape       *[]json.RawMessage `json:"shape"`
	DataOffsets *[]json.RawMessage `json:"data_offsets"`
}

// parseHeader decodes the JSON header, keeping the tensors in header order,
// and returns an index of their names.
func parseHeader(hdr []byte, name string) (map[string]string, []TensorInfo, map[string]int, error) {
	if hdr[0] != '{' {
		return nil, nil, nil, formatErr(name, "", "header starts with %q; expected a JSON object starting with '{'", hdr[0])
	}
	// encoding/json would replace invalid UTF-8 by U+FFFD, silently
	// renaming tensors; the format's JSON is UTF-8 (as serde_json and
	// Python's json, which reject it, read it).
	if !utf8.Valid(hdr) {
		i := 0
		for i < len(hdr) {
			r, n := utf8.DecodeRune(hdr[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return nil, nil, nil, formatErr(name, "", "header is not valid UTF-8 (byte %d is %#x); expected UTF-8 JSON", i, hdr[i])
	}
	bad := func(err error) error { return formatErr(name, "", "header is not valid JSON: %v", err) }
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, nil, nil, bad(err)
	}
	meta := map[string]string{}
	// Every entry holds "data_offsets": counting them sizes the slice and
	// the index once instead of growing them (a header may list a million
	// tensors).
	guess := min(bytes.Count(hdr, []byte(`"data_offsets"`)), MaxTensors)
	tensors := make([]TensorInfo, 0, guess)
	seen := make(map[string]int, guess)
	sawMeta := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, nil, bad(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, nil, nil, bad(fmt.Errorf("key %v", tok))
		}
		if _, dup := seen[key]; dup || key == "__metadata__" && sawMeta {
			return nil, nil, nil, formatErr(name, key, "appears twice in the header; expected unique names")
		}
		if key == "__metadata__" {
			sawMeta = true
			if meta, err = parseMetadata(dec, name); err != nil {
				return nil, nil, nil, err
			}
			continue
		}
		seen[key] = len(tensors)
		if len(tensors) >= MaxTensors {
			return nil, nil, nil, formatErr(name, "", "header declares more than %d tensors", MaxTensors)
		}
		var raw rawInfo
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, nil, formatErr(name, key, "header entry is not {\"dtype\", \"shape\", \"data_offsets\"}: %v", err)
		}
		t, err := tensorInfo(key, raw, name)
		if err != nil {
			return nil, nil, nil, err
		}
		tensors = append(tensors, t)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, nil, nil, bad(err)
	}
	if rest := hdr[dec.InputOffset():]; len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return nil, nil, nil, formatErr(name, "", "header has %d bytes after its JSON object; expected only space padding", len(rest))
	}
	return meta, tensors, seen, nil
}

func parseMetadata(dec *json.Decoder, name string) (map[string]string, error) {
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, formatErr(name, "", "__metadata__ is not a JSON object: %v", err)
	}
	meta := make(map[string]string, len(raw))
	for k, v := range raw {
		s, ok := v.(string)
		if !ok {
			return nil, formatErr(name, "", "__metadata__ value of %q is %s; expected a string (the format allows only strings)", k, jsonKind(v))
		}
		meta[k] = s
	}
	return meta, nil
}

// parseUint parses a JSON number written as decimal digits only (no sign,
// fraction, exponent or quotes) that fits 63 bits.
func parseUint(n json.RawMessage) (uint64, bool) {
	for _, c := range n {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(string(n), 10, 63)
	return v, err == nil
}

// rawList prints raw JSON values as a list, for messages.
func rawList(vs []json.RawMessage) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// jsonKind names the JSON type of a decoded value, for messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func tensorInfo(key string, raw rawInfo, name string) (TensorInfo, error) {
	if raw.DType == nil || raw.Shape == nil || raw.DataOffsets == nil {
		return TensorInfo{}, formatErr(name, key, "header entry lacks dtype, shape or data_offsets")
	}
	dt := DType(*raw.DType)
	if !dt.Known() {
		_, err := ParseDType(*raw.DType)
		return TensorInfo{}, &Error{File: name, Tensor: key, Err: err}
	}
	if len(*raw.Shape) > MaxDims {
		return TensorInfo{}, formatErr(name, key, "shape has %d dimensions; expected at most %d", len(*raw.Shape), MaxDims)
	}
	// Count bits with overflow checks: elements · bits per element.
	nbits := uint64(dt.Bits())
	shape := make([]int, len(*raw.Shape))
	for i, d := range *raw.Shape {
		v, ok := parseUint(d)
		if !ok {
			return TensorInfo{}, formatErr(name, key, "shape[%d] is %s; expected a non-negative integer", i, d)
		}
		hi, lo := bits.Mul64(nbits, v)
		if hi != 0 || lo > math.MaxInt64 {
			return TensorInfo{}, formatErr(name, key, "shape %s overflows 64 bits", rawList(*raw.Shape))
		}
		nbits = lo
		shape[i] = int(v)
	}
	if nbits%8 != 0 {
		return TensorInfo{}, formatErr(name, key, "%s shape %v is %d bits; expected a whole number of bytes", dt, shape, nbits)
	}
	if len(*raw.DataOffsets) != 2 {
		return TensorInfo{}, formatErr(name, key, "data_offsets has %d values; expected [BEGIN, END]", len(*raw.DataOffsets))
	}
	b, ok1 := parseUint((*raw.DataOffsets)[0])
	e, ok2 := parseUint((*raw.DataOffsets)[1])
	if !ok1 || !ok2 || e < b {
		return TensorInfo{}, formatErr(name, key, "data_offsets %s; expected non-negative integers BEGIN ≤ END", rawList(*raw.DataOffsets))
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

func (f *File) readAt(t TensorInfo, buf []byte, off int64) error {
	if len(buf) == 0 {
		return nil
	}
	if _, err := f.r.ReadAt(buf, f.dataStart+t.Begin+off); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return &Error{File: f.path, Tensor: t.Name, Err: fmt.Errorf("reading %d bytes at offset %d: %w (was the file truncated?)", len(buf), f.dataStart+t.Begin+off, err)}
	}
	return nil
}

// chunkBytes is the size of the buffer tensors are read through.
const chunkBytes = 1 << 20

// readChunks reads tensor t in chunks of whole elements and hands each
// chunk to fn with the index of its first element.
func (f *File) readChunks(t TensorInfo, fn func(chunk []byte, first int) error) error {
	size := int64(t.DType.Size())
	per := max(chunkBytes/size, 1) * size
	buf := make([]byte, min(per, t.Size()))
	for off := int64(0); off < t.Size(); off += per {
		c := buf[:min(per, t.Size()-off)]
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
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if !t.DType.IsFloat() {
		return nil, &Error{File: f.path, Tensor: name, Err: fmt.Errorf("%w: dtype %s; expected F16, BF16, F32 or F64", ErrDType, t.DType)}
	}
	out := make([]float32, t.NumElements())
	size := t.DType.Size()
	err = f.readChunks(t, func(c []byte, first int) error {
		return decodeFloat32(out[first:first+len(c)/size], c, t.DType)
	})
	return out, err
}

// Float64s returns the values of the F16, BF16, F32 or F64 tensor called
// name as float64 (exactly).
func (f *File) Float64s(name string) ([]float64, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if !t.DType.IsFloat() {
		return nil, &Error{File: f.path, Tensor: name, Err: fmt.Errorf("%w: dtype %s; expected F16, BF16, F32 or F64", ErrDType, t.DType)}
	}
	out := make([]float64, t.NumElements())
	size := t.DType.Size()
	err = f.readChunks(t, func(c []byte, first int) error {
		return decodeFloat64(out[first:first+len(c)/size], c, t.DType)
	})
	return out, err
}

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
