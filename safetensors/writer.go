package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/lowrank-go/lowrank/internal/osfile"
)

// WriterOptions configure Create.
type WriterOptions struct {
	// Overwrite allows Close to replace an existing file at the path.
	// Without it, Create fails when the path exists, and so does Close
	// if a file appeared there in the meantime.
	Overwrite bool
	// HeaderReserve is the room, in bytes, kept for the header before the
	// first tensor. Tensors are streamed to the file as they are written
	// and the header, which lists their offsets, is written last; the data
	// is then moved once (forward or back) unless the header, padded with
	// spaces to a multiple of 8 as the format asks, fills the reserve
	// exactly: a written header is never larger than it needs to be. A
	// reserve close to the final header size saves that move. 0 means
	// 64 KiB.
	HeaderReserve int
}

// Writer streams tensors into a new safetensors file. Tensors are stored in
// the order they are written; the caller should write them by decreasing
// element size (F64 before F32 before F16 …), as the reference
// implementation does, so that every tensor's data is aligned to its
// element size for readers that map the file.
//
// With Create, nothing appears at the output path until Close succeeds:
// the data goes to a temporary file in the same directory, which Close
// syncs and renames. Abort (or a failed Close) removes the temporary file.
// With NewWriter the caller owns the file and its name.
type Writer struct {
	path, tmp string // tmp: the temporary file Create made ("" for NewWriter)
	opts      WriterOptions
	f         *os.File
	bw        *bufio.Writer
	reserve   int64
	pos       int64 // bytes of data written
	tensors   []TensorInfo
	names     map[string]bool
	meta      map[string]string
	copyBuf   []byte
	done      bool
}

// writerOnly hides a writer's ReadFrom.
type writerOnly struct{ io.Writer }

// Create starts a safetensors file at path. It fails with an error wrapping
// ErrExists when path exists and opts.Overwrite is false, and with the
// operating system's error when the directory is not writable. With
// Overwrite, only a regular file (or a symbolic link to one, which is
// replaced as a link, its target untouched) is replaced: a folder, device,
// FIFO or socket at path is refused.
func Create(path string, opts WriterOptions) (*Writer, error) {
	if err := replaceable(path, opts.Overwrite); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, osfile.TempPattern(path))
	if err != nil {
		return nil, &Error{File: path, Err: fmt.Errorf("cannot create the output: %w", unwrapPath(err))}
	}
	// CreateTemp makes the file private (0600); outputs are ordinary files.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, &Error{File: path, Err: fmt.Errorf("cannot create the output: %w", unwrapPath(err))}
	}
	w, err := NewWriter(f, path, opts)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	w.tmp = f.Name()
	return w, nil
}

// replaceable checks what is at path before a file is written there: nothing,
// or (with overwrite) a regular file or a symbolic link to one.
func replaceable(path string, overwrite bool) error {
	st, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if st.Mode()&os.ModeSymlink != 0 {
		if t, err := os.Stat(path); err != nil || !t.Mode().IsRegular() {
			what := "a missing target"
			if err == nil {
				what = osfile.Kind(t.Mode())
			}
			return &Error{File: path, Err: fmt.Errorf("is a symbolic link to %s; expected a new file name or a previous output (a regular file)", what)}
		}
	} else if !st.Mode().IsRegular() {
		return &Error{File: path, Err: fmt.Errorf("is %s; expected a new file name or a previous output (a regular file)", osfile.Kind(st.Mode()))}
	}
	if !overwrite {
		return &Error{File: path, Err: fmt.Errorf("%w; expected a new file (use --force to overwrite)", ErrExists)}
	}
	return nil
}

// NewWriter starts a safetensors file written into f, an empty file open for
// reading and writing that the caller created (a temporary file, say);
// name is how errors call it. Close writes the header, syncs and closes f
// but does not rename it, and Abort only closes it: where f ends up is the
// caller's business. opts.Overwrite is not used.
func NewWriter(f *os.File, name string, opts WriterOptions) (*Writer, error) {
	reserve := int64(opts.HeaderReserve)
	if reserve <= 0 {
		reserve = 64 << 10
	}
	reserve = (reserve + 7) &^ 7
	w := &Writer{path: name, opts: opts, f: f, reserve: reserve, names: map[string]bool{}, meta: map[string]string{}}
	if _, err := f.Seek(8+reserve, io.SeekStart); err != nil {
		return nil, w.fail(err)
	}
	w.bw = bufio.NewWriterSize(f, 1<<20)
	return w, nil
}

// unwrapPath drops the temporary file name from an *os.PathError.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (w *Writer) fail(err error) error {
	return &Error{File: w.path, Err: fmt.Errorf("writing: %w", unwrapPath(err))}
}

// Path returns the path the file is written to (the name errors use).
func (w *Writer) Path() string { return w.path }

// SetMetadata sets the __metadata__ entries written on Close.
func (w *Writer) SetMetadata(m map[string]string) {
	w.meta = make(map[string]string, len(m))
	for k, v := range m {
		w.meta[k] = v
	}
}

// begin checks and records a new tensor of the given size.
func (w *Writer) begin(name string, dt DType, shape []int) (TensorInfo, error) {
	if w.done {
		return TensorInfo{}, &Error{File: w.path, Tensor: name, Err: errors.New("writer is closed")}
	}
	if name == "__metadata__" {
		return TensorInfo{}, &Error{File: w.path, Tensor: name, Err: errors.New("is reserved for the metadata; expected another tensor name")}
	}
	if w.names[name] {
		return TensorInfo{}, &Error{File: w.path, Tensor: name, Err: errors.New("written twice; expected unique names")}
	}
	if !utf8.ValidString(name) {
		return TensorInfo{}, &Error{File: w.path, Tensor: name, Err: errors.New("name is not valid UTF-8; expected a UTF-8 name (the header is UTF-8 JSON)")}
	}
	if !dt.Known() {
		_, err := ParseDType(string(dt))
		return TensorInfo{}, &Error{File: w.path, Tensor: name, Err: err}
	}
	nbits := int64(dt.Bits())
	for _, d := range shape {
		if d < 0 || (d > 0 && nbits > (1<<62)/int64(d)) {
			return TensorInfo{}, &Error{File: w.path, Tensor: name, Err: fmt.Errorf("shape %v is invalid or too large", shape)}
		}
		nbits *= int64(d)
	}
	if nbits%8 != 0 {
		return TensorInfo{}, &Error{File: w.path, Tensor: name, Err: fmt.Errorf("%s shape %v is not a whole number of bytes", dt, shape)}
	}
	t := TensorInfo{Name: name, DType: dt, Shape: append([]int(nil), shape...), Begin: w.pos, End: w.pos + nbits/8}
	return t, nil
}

func (w *Writer) commitTensor(t TensorInfo) {
	w.names[t.Name] = true
	w.tensors = append(w.tensors, t)
	w.pos = t.End
}

// WriteRaw writes a tensor from its raw little-endian bytes.
func (w *Writer) WriteRaw(name string, dt DType, shape []int, data []byte) error {
	return w.WriteFrom(name, dt, shape, bytes.NewReader(data))
}

// WriteFrom writes a tensor whose raw little-endian bytes are read from r,
// which must hold exactly the tensor's size.
func (w *Writer) WriteFrom(name string, dt DType, shape []int, r io.Reader) error {
	t, err := w.begin(name, dt, shape)
	if err != nil {
		return err
	}
	// Copy through our own buffer into the buffered writer: io.Copy would
	// hand an empty bufio.Writer's ReadFrom straight to the file, one write
	// system call per tensor (a million for a million small tensors).
	if w.copyBuf == nil {
		w.copyBuf = make([]byte, 256<<10)
	}
	n, err := io.CopyBuffer(writerOnly{w.bw}, io.LimitReader(r, t.Size()), w.copyBuf)
	if err != nil {
		return w.fail(err)
	}
	if n != t.Size() {
		return &Error{File: w.path, Tensor: name, Err: fmt.Errorf("got %d bytes; expected %d for %s %v", n, t.Size(), dt, shape)}
	}
	w.commitTensor(t)
	return nil
}

// WriteFloat32 writes values as a tensor of type dt (F16, BF16, F32 or F64),
// rounding to nearest even when dt is narrower.
func (w *Writer) WriteFloat32(name string, dt DType, shape []int, values []float32) error {
	return writeFloats(w, name, dt, shape, values, encodeFloat32)
}

// WriteFloat64 writes values as a tensor of type dt (F16, BF16, F32 or F64),
// rounding to nearest even when dt is narrower.
func (w *Writer) WriteFloat64(name string, dt DType, shape []int, values []float64) error {
	return writeFloats(w, name, dt, shape, values, encodeFloat64)
}

func writeFloats[T float32 | float64](w *Writer, name string, dt DType, shape []int, values []T, enc func([]byte, []T, DType) error) error {
	if !dt.IsFloat() {
		return &Error{File: w.path, Tensor: name, Err: fmt.Errorf("%w: cannot write floats as %s; expected F16, BF16, F32 or F64", ErrDType, dt)}
	}
	t, err := w.begin(name, dt, shape)
	if err != nil {
		return err
	}
	if int64(len(values)) != int64(t.NumElements()) {
		return &Error{File: w.path, Tensor: name, Err: fmt.Errorf("%d values; expected %d for shape %v", len(values), t.NumElements(), shape)}
	}
	size := dt.Size()
	per := chunkBytes / size
	buf, put := chunk(min(per, len(values)) * size)
	defer put()
	for i := 0; i < len(values); i += per {
		v := values[i:min(i+per, len(values))]
		c := buf[:len(v)*size]
		if err := enc(c, v, dt); err != nil {
			return &Error{File: w.path, Tensor: name, Err: err}
		}
		if _, err := w.bw.Write(c); err != nil {
			return w.fail(err)
		}
	}
	w.commitTensor(t)
	return nil
}

// FloatStream writes one float tensor in pieces, for tensors too large to
// hold in memory: BeginFloats, then Write32 or Write64 with the values in
// order (row-major), then End. No other tensor may be written until End.
type FloatStream struct {
	w       *Writer
	t       TensorInfo
	n, done int
	buf     []byte
}

// BeginFloats starts a tensor of type dt (F16, BF16, F32 or F64) and the
// given shape whose values follow in pieces.
func (w *Writer) BeginFloats(name string, dt DType, shape []int) (*FloatStream, error) {
	if !dt.IsFloat() {
		return nil, &Error{File: w.path, Tensor: name, Err: fmt.Errorf("%w: cannot write floats as %s; expected F16, BF16, F32 or F64", ErrDType, dt)}
	}
	t, err := w.begin(name, dt, shape)
	if err != nil {
		return nil, err
	}
	return &FloatStream{w: w, t: t, n: t.NumElements()}, nil
}

// Write32 writes the next values, rounding to nearest even when the dtype
// is narrower.
func (s *FloatStream) Write32(v []float32) error { return writePiece(s, v, encodeFloat32) }

// Write64 writes the next values, rounding to nearest even when the dtype
// is narrower.
func (s *FloatStream) Write64(v []float64) error { return writePiece(s, v, encodeFloat64) }

func writePiece[T float32 | float64](s *FloatStream, v []T, enc func([]byte, []T, DType) error) error {
	if s.done+len(v) > s.n {
		return &Error{File: s.w.path, Tensor: s.t.Name, Err: fmt.Errorf("%d values written; expected %d for shape %v", s.done+len(v), s.n, s.t.Shape)}
	}
	size := s.t.DType.Size()
	per := chunkBytes / size
	for i := 0; i < len(v); i += per {
		c := v[i:min(i+per, len(v))]
		if cap(s.buf) < len(c)*size {
			s.buf = make([]byte, min(per, len(v))*size)
		}
		b := s.buf[:len(c)*size]
		if err := enc(b, c, s.t.DType); err != nil {
			return &Error{File: s.w.path, Tensor: s.t.Name, Err: err}
		}
		if _, err := s.w.bw.Write(b); err != nil {
			return s.w.fail(err)
		}
	}
	s.done += len(v)
	return nil
}

// End finishes the tensor; it fails unless every value was written.
func (s *FloatStream) End() error {
	if s.done != s.n {
		return &Error{File: s.w.path, Tensor: s.t.Name, Err: fmt.Errorf("%d values written; expected %d for shape %v", s.done, s.n, s.t.Shape)}
	}
	s.w.commitTensor(s.t)
	return nil
}

// Abort discards everything written: it closes the file and, for Create,
// removes the temporary file. It is safe to call after Close (it then does
// nothing).
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	if w.tmp == "" {
		return nil
	}
	return os.Remove(w.tmp)
}

// header returns the JSON header: __metadata__ first, then the tensors in
// file order.
func (w *Writer) header() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(HeaderLen(w.meta, w.tensors))
	appendHeader(&b, w.meta, w.tensors)
	if b.Len() > MaxHeaderSize {
		return nil, &Error{File: w.path, Err: fmt.Errorf("header would be %d bytes; expected at most %d", b.Len(), MaxHeaderSize)}
	}
	return b.Bytes(), nil
}

// appendHeader writes the header JSON for meta and tensors (with their
// offsets) to b, as Writer writes it. Its length is HeaderLen's (less the
// padding).
func appendHeader(b *bytes.Buffer, meta map[string]string, tensors []TensorInfo) {
	b.WriteByte('{')
	if len(meta) > 0 {
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(`"__metadata__":{`)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kj, _ := json.Marshal(k)
			vj, _ := json.Marshal(meta[k])
			b.Write(kj)
			b.WriteByte(':')
			b.Write(vj)
		}
		b.WriteByte('}')
	}
	var e []byte
	for i, t := range tensors {
		if i > 0 || len(meta) > 0 {
			b.WriteByte(',')
		}
		e = appendEntry(e[:0], t)
		b.Write(e)
	}
	b.WriteByte('}')
}

// appendEntry appends one tensor's entry, "NAME":{…}, to e.
func appendEntry(e []byte, t TensorInfo) []byte {
	nj, _ := json.Marshal(t.Name)
	e = append(e, nj...)
	e = append(e, `:{"dtype":"`...)
	e = append(e, t.DType...)
	e = append(e, `","shape":[`...)
	for j, d := range t.Shape {
		if j > 0 {
			e = append(e, ',')
		}
		e = strconv.AppendInt(e, int64(d), 10)
	}
	e = append(e, `],"data_offsets":[`...)
	e = strconv.AppendInt(e, t.Begin, 10)
	e = append(e, ',')
	e = strconv.AppendInt(e, t.End, 10)
	return append(e, "]}"...)
}

// EntryLen returns the length of one tensor's entry, "NAME":{…}, in a
// header the Writer writes (without the comma before it).
func EntryLen(t TensorInfo) int { return len(appendEntry(nil, t)) }

// HeaderLen returns the length of the header a Writer writes for these
// metadata and tensors (in this order, with their offsets): the JSON
// padded with spaces to a multiple of 8. It allocates only what one entry
// needs, so a caller can check, before writing anything, that an output
// stays within MaxHeaderSize (offsets of 0 give a lower bound).
func HeaderLen(meta map[string]string, tensors []TensorInfo) int {
	n := 2 // {}
	if len(meta) > 0 {
		n += len(`"__metadata__":{}`) + len(meta) - 1
		for k, v := range meta {
			kj, _ := json.Marshal(k)
			vj, _ := json.Marshal(v)
			n += len(kj) + 1 + len(vj)
		}
	}
	var e []byte
	for i, t := range tensors {
		if i > 0 || len(meta) > 0 {
			n++
		}
		e = appendEntry(e[:0], t)
		n += len(e)
	}
	return (n + 7) &^ 7
}

// Close writes the header, syncs the file and renames it to the output
// path. On failure the temporary file is removed and nothing is left at the
// path (an existing file there is untouched).
func (w *Writer) Close() (err error) {
	if w.done {
		return &Error{File: w.path, Err: errors.New("writer is already closed")}
	}
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	if err := w.bw.Flush(); err != nil {
		return w.fail(err)
	}
	hdr, err := w.header()
	if err != nil {
		return err
	}
	need := (int64(len(hdr)) + 7) &^ 7
	// The header takes exactly what it needs (padded to a multiple of 8):
	// move the data when the reserve was too small or too large.
	if need != w.reserve {
		if err := shift(w.f, 8+w.reserve, 8+need, w.pos); err != nil {
			return w.fail(err)
		}
		if err := w.f.Truncate(8 + need + w.pos); err != nil {
			return w.fail(err)
		}
		w.reserve = need
	}
	full := make([]byte, 8+w.reserve)
	binary.LittleEndian.PutUint64(full, uint64(w.reserve))
	copy(full[8:], hdr)
	for i := 8 + len(hdr); i < len(full); i++ {
		full[i] = ' '
	}
	if _, err := w.f.WriteAt(full, 0); err != nil {
		return w.fail(err)
	}
	if err := w.f.Sync(); err != nil {
		return w.fail(err)
	}
	if err := w.f.Close(); err != nil {
		return w.fail(err)
	}
	if w.tmp != "" {
		if err := commit(w.tmp, w.path, w.opts.Overwrite); err != nil {
			return err
		}
	}
	w.done = true
	return nil
}

// shift moves n bytes at offset from to offset to within f, in bounded
// chunks, copying from the end when moving forward and from the start when
// moving back so that no byte is overwritten before it is read.
func shift(f *os.File, from, to, n int64) error {
	if from == to || n == 0 {
		return nil
	}
	buf := make([]byte, min(n, 4<<20))
	move := func(start, c int64) error {
		if _, err := f.ReadAt(buf[:c], from+start); err != nil {
			return err
		}
		_, err := f.WriteAt(buf[:c], to+start)
		return err
	}
	if to > from {
		for end := n; end > 0; {
			c := min(int64(len(buf)), end)
			if err := move(end-c, c); err != nil {
				return err
			}
			end -= c
		}
		return nil
	}
	for start := int64(0); start < n; {
		c := min(int64(len(buf)), n-start)
		if err := move(start, c); err != nil {
			return err
		}
		start += c
	}
	return nil
}

// commit moves the finished temporary file tmp to path: with overwrite by
// rename, without it by a hard link that fails if path exists (so a file
// that appeared meanwhile is not clobbered), then syncs the directory.
func commit(tmp, path string, overwrite bool) error {
	if err := replaceable(path, overwrite); err != nil {
		return err
	}
	if overwrite {
		if err := os.Rename(tmp, path); err != nil {
			return &Error{File: path, Err: fmt.Errorf("cannot rename the finished output into place: %w", unwrapPath(err))}
		}
	} else {
		err := os.Link(tmp, path)
		switch {
		case err == nil:
			os.Remove(tmp)
		case errors.Is(err, os.ErrExist):
			return &Error{File: path, Err: fmt.Errorf("%w; expected a new file (use --force to overwrite)", ErrExists)}
		default:
			// No hard links here (some file systems): check, then rename.
			if _, serr := os.Lstat(path); serr == nil {
				return &Error{File: path, Err: fmt.Errorf("%w; expected a new file (use --force to overwrite)", ErrExists)}
			}
			if err := os.Rename(tmp, path); err != nil {
				return &Error{File: path, Err: fmt.Errorf("cannot rename the finished output into place: %w", unwrapPath(err))}
			}
		}
	}
	SyncDir(filepath.Dir(path))
	return nil
}

// SyncDir flushes a directory's entries to disk (best effort), so that a
// rename into it survives a crash.
func SyncDir(dir string) { osfile.SyncDir(dir) }
