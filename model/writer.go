package model

import (
	"io"
	"math"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/safetensors"
)

// WriterOptions configure CreateWith and NewWriter.
type WriterOptions struct {
	// Policy and Split are recorded in the lowrank metadata as the file's
	// ("energy=0.99", "us"); empty: those of the first factors added
	// (Factors.Policy and Factors.Split).
	Policy, Split string
	// Metadata holds __metadata__ entries to keep (the source model's);
	// its MetadataKey entry, if any, is replaced.
	Metadata map[string]string
	// Overwrite and HeaderReserve are passed to safetensors.Create.
	Overwrite     bool
	HeaderReserve int
	// Calibration is recorded as the input statistics file the factors
	// were computed for (its base name), if any.
	Calibration string
}

// Writer writes a factorized model exactly as lowrank factorize writes
// one: each factorized tensor NAME as NAME.A (r×k) and NAME.B (d×r) with
// an entry in the lowrank metadata (shape, rank, relative error, energy,
// dtype), tensors kept dense under their own names (with the reason, see
// MarkDense), other tensors copied, and the source's metadata kept. The
// file appears whole at its path on Close (written to a temporary file,
// synced and renamed), or not at all.
//
// Tensors are stored in the order they are added. Add them by decreasing
// element size (F64, then F32, then F16 and BF16), as lowrank factorize
// does, so that every tensor is aligned for readers that map the file.
// A Writer is not safe for concurrent use.
type Writer struct {
	w    *safetensors.Writer
	opts WriterOptions
	meta fileMeta
}

// Create starts a factorized model file at path; it fails when path
// exists. See CreateWith.
func Create(path string) (*Writer, error) { return CreateWith(path, WriterOptions{}) }

// CreateWith starts a factorized model file at path, written atomically
// through safetensors.Create.
func CreateWith(path string, o WriterOptions) (*Writer, error) {
	w, err := safetensors.Create(path, safetensors.WriterOptions{Overwrite: o.Overwrite, HeaderReserve: o.HeaderReserve})
	if err != nil {
		return nil, err
	}
	return NewWriter(w, o), nil
}

// NewWriter writes a factorized model through w, a safetensors writer the
// caller made (over a file it created, say); Close closes w.
func NewWriter(w *safetensors.Writer, o WriterOptions) *Writer {
	return &Writer{w: w, opts: o, meta: fileMeta{Version: 1, Policy: o.Policy, Split: o.Split, Tensors: map[string]Record{}, Dense: map[string]string{}, DenseSource: map[string]string{}, Calibration: o.Calibration}}
}

// AddFactors writes the factors f of the d×k tensor name as name.A (r×k)
// and name.B (d×r) in dtype dt (F16, BF16, F32 or F64, rounded to nearest
// when narrower than T), and records them in the metadata with f.RelError
// and f.Energy (and, for factors computed with WithInputCovariance or
// WithInputMoments, f.OutputRelError and f.Ridge). Those must be known (Factorize's, or set by
// Factors.SetRecorded: after rounding to a narrower dtype, the error of
// the stored factors is what lowrank factorize records). A value that
// would overflow dt, or a NaN recorded error, is an error wrapping
// lowrank.ErrNonFinite naming the tensor, and nothing is written.
func AddFactors[T lowrank.Float](w *Writer, name string, f *lowrank.Factors[T], dt safetensors.DType) error {
	if f == nil {
		return tensorErr(lowrank.ErrEmpty, w.path(), name, "nil factors; expected factors to write")
	}
	if !dt.IsFloat() {
		return tensorErr(safetensors.ErrDType, w.path(), name, "dtype %s; expected F16, BF16, F32 or F64", dt)
	}
	if math.IsNaN(f.RelError) || math.IsInf(f.RelError, 0) || math.IsNaN(f.Energy) || math.IsInf(f.Energy, 0) {
		return tensorErr(lowrank.ErrNonFinite, w.path(), name, "relative error %v and energy %v; expected known values to record (Factorize's, or set by Factors.SetRecorded)", f.RelError, f.Energy)
	}
	if err := fits(w.path(), name+".A", f.A, dt); err != nil {
		return err
	}
	if err := fits(w.path(), name+".B", f.B, dt); err != nil {
		return err
	}
	if err := writeMatrix(w.w, name+".A", dt, f.A); err != nil {
		return err
	}
	if err := writeMatrix(w.w, name+".B", dt, f.B); err != nil {
		return err
	}
	d, k := f.Dims()
	rec := Record{Shape: []int{d, k}, Rank: f.Rank, RelError: f.RelError, Energy: f.Energy, DType: string(dt)}
	if f.Weighting == lowrank.WeightCovariance && f.OutputRelError >= 0 && f.OutputRelError <= 1 {
		// Computed with input statistics: their output error and ridge too.
		calibrated, outErr, ridge := true, f.OutputRelError, f.Ridge
		rec.Calibrated, rec.OutputRelError, rec.Ridge = &calibrated, &outErr, &ridge
	}
	w.meta.Tensors[name] = rec
	if w.meta.Policy == "" && w.opts.Policy == "" {
		w.meta.Policy = f.Policy.String()
	}
	if w.meta.Split == "" && w.opts.Split == "" {
		w.meta.Split = f.Split.String()
	}
	return nil
}

// AddDense writes the matrix m as tensor name in dtype dt (rounded to
// nearest when narrower than T); a value that would overflow dt is an
// error naming the tensor. MarkDense records why a tensor the caller
// chose to factorize was kept dense.
func AddDense[T lowrank.Float](w *Writer, name string, m lowrank.Matrix[T], dt safetensors.DType) error {
	if !dt.IsFloat() {
		return tensorErr(safetensors.ErrDType, w.path(), name, "dtype %s; expected F16, BF16, F32 or F64", dt)
	}
	if err := fits(w.path(), name, m, dt); err != nil {
		return err
	}
	return writeMatrix(w.w, name, dt, m)
}

// MarkDense records in the metadata that tensor name, written by AddDense
// or CopyFrom, was kept dense, and why ("break-even at rank 40: r·(d+k) ≥
// d·k", as lowrank factorize says).
func (w *Writer) MarkDense(name, reason string) { w.meta.Dense[name] = reason }

// SetSourceDType records that the tensor name, added as factors or kept
// dense (MarkDense) in another dtype, came from a tensor of dtype dt, which
// lowrank merge writes it back in. It is an error when name was neither
// added as factors nor marked dense, or dt is not F16, BF16, F32 or F64.
func (w *Writer) SetSourceDType(name string, dt safetensors.DType) error {
	if !sourceDType(string(dt)) {
		return tensorErr(safetensors.ErrDType, w.path(), name, "source dtype %s; expected F16, BF16, F32 or F64", dt)
	}
	if r, ok := w.meta.Tensors[name]; ok {
		if string(dt) != r.DType {
			r.SourceDType = string(dt)
			w.meta.Tensors[name] = r
		}
		return nil
	}
	if _, ok := w.meta.Dense[name]; ok {
		w.meta.DenseSource[name] = string(dt)
		return nil
	}
	return tensorErr(ErrNotFound, w.path(), name, "neither factors nor a tensor marked dense; expected AddFactors or MarkDense first")
}

// AddRecord records factors written as they were read (CopyFrom of
// name.A and name.B from a file lowrank factorize wrote) with what that
// file recorded of them, so that refactorizing part of a factorized file
// keeps the record of the rest.
func (w *Writer) AddRecord(name string, r Record) { w.meta.Tensors[name] = r }

// Amend changes the record of factors already added as name (for what
// the caller knows and the factors do not, such as the bias that took the
// mean error); it is an error when no factors were added under name.
func (w *Writer) Amend(name string, fn func(r *Record)) error {
	r, ok := w.meta.Tensors[name]
	if !ok {
		return tensorErr(ErrNotFound, w.path(), name, "no factors recorded; expected AddFactors first")
	}
	fn(&r)
	w.meta.Tensors[name] = r
	return nil
}

// CopyFrom writes a tensor of any dtype from its raw little-endian bytes,
// read from r (which must hold exactly its size): a bias, a norm, a tensor
// not factorized.
func (w *Writer) CopyFrom(name string, dt safetensors.DType, shape []int, r io.Reader) error {
	return w.w.WriteFrom(name, dt, shape, r)
}

// Close writes the header, with the source's metadata and the lowrank
// metadata, and puts the file in place (for CreateWith; for NewWriter,
// the caller's file is complete).
func (w *Writer) Close() error {
	md := make(map[string]string, len(w.opts.Metadata)+1)
	for k, v := range w.opts.Metadata {
		md[k] = v
	}
	j, err := w.meta.marshal()
	if err != nil {
		w.w.Abort()
		return errorf(ErrMetadata, "%s: %v", w.path(), err)
	}
	md[MetadataKey] = j
	w.w.SetMetadata(md)
	return w.w.Close()
}

// Abort discards the file: nothing appears at the path.
func (w *Writer) Abort() error { return w.w.Abort() }

func (w *Writer) path() string { return w.w.Path() }

// writeMatrix writes m as tensor name of type dt.
func writeMatrix[T lowrank.Float](w *safetensors.Writer, name string, dt safetensors.DType, m lowrank.Matrix[T]) error {
	shape := []int{m.Rows, m.Cols}
	switch v := any(m.Data).(type) {
	case []float32:
		return w.WriteFloat32(name, dt, shape, v)
	case []float64:
		return w.WriteFloat64(name, dt, shape, v)
	}
	return nil
}

// fits checks that every value of m is finite and stays finite in dt.
func fits[T lowrank.Float](file, name string, m lowrank.Matrix[T], dt safetensors.DType) error {
	if m.Rows < 1 || m.Cols < 1 || len(m.Data) != m.Rows*m.Cols {
		return tensorErr(lowrank.ErrShape, file, name, "%d×%d with %d values; expected a non-empty matrix", m.Rows, m.Cols, len(m.Data))
	}
	for i, x := range m.Data {
		var q float64
		switch dt {
		case safetensors.F16:
			q = float64(safetensors.F16ToFloat32(safetensors.Float64ToF16(float64(x))))
		case safetensors.BF16:
			q = float64(safetensors.BF16ToFloat32(safetensors.Float64ToBF16(float64(x))))
		case safetensors.F32:
			q = float64(float32(x))
		default:
			q = float64(x)
		}
		if math.IsNaN(q) || math.IsInf(q, 0) {
			if x-x != 0 {
				return tensorErr(lowrank.ErrNonFinite, file, name, "element [%d, %d] is %v; expected finite values", i/m.Cols, i%m.Cols, x)
			}
			return tensorErr(lowrank.ErrNonFinite, file, name, "element [%d, %d] = %v exceeds the range of %s; expected a wider dtype (F32 or BF16)", i/m.Cols, i%m.Cols, x, dt)
		}
	}
	return nil
}
