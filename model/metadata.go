package model

import (
	"encoding/json"
	"math"
	"slices"

	"github.com/lowrank-go/lowrank/internal/strictjson"
	"github.com/lowrank-go/lowrank/safetensors"
)

// MetadataKey is the __metadata__ entry under which lowrank factorize and
// lowrank extract record, as one JSON string, what they computed.
const MetadataKey = "lowrank"

// Metadata is the JSON stored under MetadataKey. A file written by lowrank
// factorize (or Writer) fills Version, Policy, Split, Tensors and Dense;
// an adapter written by lowrank extract fills Version, Policy, Split,
// Format, KohyaPrefix and Modules.
//
// What a file records is a claim: Open checks it against the tensors (a
// factorized tensor's pair must be there with the recorded shape, rank and
// dtype; a tensor kept dense must be there) and refuses a file whose
// metadata lies, with an error wrapping ErrMetadata that names the tensor.
type Metadata struct {
	Version int    `json:"version"`
	Policy  string `json:"policy"`
	Split   string `json:"split"`
	// Tensors records each factorized tensor NAME (stored as NAME.A and
	// NAME.B).
	Tensors map[string]Record `json:"tensors"`
	// Dense gives, for each selected tensor kept dense, the reason.
	Dense map[string]string `json:"dense"`
	// DenseSource gives, for each tensor kept dense in another dtype than
	// its source's (lowrank factorize --dtype), the source's dtype, which
	// lowrank merge restores.
	DenseSource map[string]string `json:"dense_source_dtype"`
	// Format ("peft" or "kohya"), KohyaPrefix and Modules are an
	// extracted adapter's.
	Format      string            `json:"format"`
	KohyaPrefix string            `json:"kohya_prefix"`
	Modules     map[string]Record `json:"modules"`
}

// Record is what the metadata says of one factorized tensor (or adapter
// module).
type Record struct {
	// Shape is [d, k], the shape of the matrix B·A approximates.
	Shape []int `json:"shape"`
	// Rank is r, the inner dimension of B (d×r) and A (r×k).
	Rank int `json:"rank"`
	// RelError is ‖W − B·A‖_F / ‖W‖_F of the factors as stored.
	RelError float64 `json:"rel_error"`
	// Energy is the fraction of ‖W‖_F² the factors keep.
	Energy float64 `json:"energy"`
	// DType is the dtype the factors are stored in ("F16", "F32", …).
	DType string `json:"dtype"`
	// SourceDType is the dtype of the tensor the factors were computed
	// from, when it differs from DType (lowrank factorize --dtype):
	// lowrank merge writes B·A back in it.
	SourceDType string `json:"source_dtype,omitempty"`
	// With input statistics (lowrank factorize --calibration): whether the
	// tensor had statistics, and for those that had, the relative output
	// error ‖(W − B·A)·X‖/‖W·X‖ the factors were chosen for (before
	// rounding to DType; about the mean when the bias took the mean error)
	// and the ridge added to C. BiasShifted names the bias that took the
	// mean error, b + (W − B·A)·μ, when the statistics held the mean.
	Calibrated     *bool    `json:"calibrated,omitempty"`
	OutputRelError *float64 `json:"output_rel_error,omitempty"`
	Ridge          *float64 `json:"ridge,omitempty"`
	BiasShifted    string   `json:"bias_shifted,omitempty"`
}

// ParseMetadata reads the JSON stored under MetadataKey, strictly (a key
// twice, NaN, or a value of the wrong type is an error wrapping
// ErrMetadata; unknown keys are skipped). It checks the JSON only: what
// the entries claim is checked against a file's tensors by Open.
func ParseMetadata(raw string) (*Metadata, error) {
	var m Metadata
	if err := strictjson.Unmarshal([]byte(raw), &m); err != nil {
		return nil, errorf(ErrMetadata, "metadata %q is not lowrank's JSON: %v", MetadataKey, err)
	}
	return &m, nil
}

// fileMeta is the JSON lowrank factorize writes, field for field in its
// order, so that Writer writes the bytes the command always wrote.
type fileMeta struct {
	Version int               `json:"version"`
	Policy  string            `json:"policy"`
	Split   string            `json:"split"`
	Tensors map[string]Record `json:"tensors"`
	Dense   map[string]string `json:"dense,omitempty"`
	// DenseSource: see Metadata.DenseSource.
	DenseSource map[string]string `json:"dense_source_dtype,omitempty"`
	// Calibration is the base name of the input statistics file the
	// factors were computed for (lowrank factorize --calibration).
	Calibration string `json:"calibration,omitempty"`
}

// marshal returns the JSON of m (map keys sorted, as encoding/json does).
func (m fileMeta) marshal() (string, error) {
	b, err := json.Marshal(m)
	return string(b), err
}

// checkClaims checks the metadata md of file against the model's index:
// every factorized tensor it records is a factor pair with the recorded
// shape, rank and dtype, every tensor kept dense is a dense tensor; the
// recorded error and energy are in their domains. It returns the first
// lie, naming the tensor.
func (m *Model) checkClaims(file string, md *Metadata) error {
	if md.Version != 0 && md.Version != 1 {
		return fileErr(ErrMetadata, file, "metadata %q has version %d; expected 1 (written by a newer lowrank?)", MetadataKey, md.Version)
	}
	names := make([]string, 0, len(md.Tensors))
	for n := range md.Tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		rec := md.Tensors[n]
		lie := func(format string, args ...any) error {
			return tensorErr(ErrMetadata, file, n, "the %q metadata claims "+format, append([]any{MetadataKey}, args...)...)
		}
		w, ok := m.weights[n]
		if !ok || w.a == nil {
			what := "no such tensor"
			if ok {
				what = "a dense " + shapeString(w.dense.info.Shape) + " tensor"
			}
			return lie("factors %q and %q but the file has %s; expected the metadata to describe the tensors", n+".A", n+".B", what)
		}
		d, r, k := w.b.info.Shape[0], w.a.info.Shape[0], w.a.info.Shape[1]
		switch {
		case !slices.Equal(rec.Shape, []int{d, k}):
			return lie("shape %s but its factors %q (%s) and %q (%s) make %d×%d; expected them to agree", shapeString(rec.Shape), n+".B", shapeString(w.b.info.Shape), n+".A", shapeString(w.a.info.Shape), d, k)
		case rec.Rank != r:
			return lie("rank %d but its factors have rank %d (%q is %s); expected them to agree", rec.Rank, r, n+".A", shapeString(w.a.info.Shape))
		case rec.DType != string(w.a.info.DType) || rec.DType != string(w.b.info.DType):
			return lie("dtype %q but its factors are %s and %s; expected them to agree", rec.DType, w.b.info.DType, w.a.info.DType)
		case math.IsNaN(rec.RelError) || rec.RelError < 0:
			return lie("relative error %v; expected a value ≥ 0", rec.RelError)
		case !(rec.Energy >= 0 && rec.Energy <= 1):
			return lie("energy %v; expected a value in [0, 1]", rec.Energy)
		case rec.OutputRelError != nil && !(*rec.OutputRelError >= 0 && *rec.OutputRelError <= 1+1e-9): // ≤ 1 but for rounding
			return lie("output error %v; expected a value in [0, 1]", *rec.OutputRelError)
		case rec.Ridge != nil && !(*rec.Ridge >= 0 && *rec.Ridge <= math.MaxFloat64):
			return lie("ridge %v; expected a finite value ≥ 0", *rec.Ridge)
		case rec.SourceDType != "" && !sourceDType(rec.SourceDType):
			return lie("source dtype %q; expected F16, BF16, F32 or F64", rec.SourceDType)
		}
		w.rec = &rec
	}
	dense := make([]string, 0, len(md.Dense))
	for n := range md.Dense {
		dense = append(dense, n)
	}
	slices.Sort(dense)
	for _, n := range dense {
		w, ok := m.weights[n]
		if _, plain := m.tensors[n]; !plain || (ok && w.a != nil) {
			what := "no such tensor"
			if ok && w.a != nil {
				what = "its factors"
			}
			return tensorErr(ErrMetadata, file, n, "the %q metadata claims it is kept dense but the file has %s; expected the metadata to describe the tensors", MetadataKey, what)
		}
		if ok {
			w.denseReason = md.Dense[n]
		}
	}
	for n, dt := range md.DenseSource {
		if _, dense := md.Dense[n]; !dense || !sourceDType(dt) {
			return tensorErr(ErrMetadata, file, n, "the %q metadata claims source dtype %q for it; expected F16, BF16, F32 or F64 for a tensor it records as kept dense", MetadataKey, dt)
		}
	}
	return nil
}

// sourceDType reports whether dt is a dtype a source tensor can have.
func sourceDType(dt string) bool {
	switch safetensors.DType(dt) {
	case safetensors.F16, safetensors.BF16, safetensors.F32, safetensors.F64:
		return true
	}
	return false
}

// isFloatMatrix reports whether t is a 2-D float tensor.
func isFloatMatrix(t safetensors.TensorInfo) bool {
	_, _, ok := t.Matrix()
	return ok
}

// MergeRecorded returns the lowrank metadata of several files that Writer
// wrote with the same options (the pieces of one shard, written by the
// parts of a distributed run) as one: exactly what one Writer that had
// written all their tensors would record. Metadata of different versions,
// policies, splits or calibrations is an error wrapping ErrMetadata.
func MergeRecorded(raws ...string) (string, error) {
	var out fileMeta
	for i, raw := range raws {
		var m fileMeta
		if err := strictjson.Unmarshal([]byte(raw), &m); err != nil {
			return "", errorf(ErrMetadata, "metadata %q is not lowrank's JSON: %v", MetadataKey, err)
		}
		if i == 0 {
			out = m
			if out.Tensors == nil {
				out.Tensors = map[string]Record{}
			}
			continue
		}
		if m.Version != out.Version || m.Policy != out.Policy || m.Split != out.Split || m.Calibration != out.Calibration {
			return "", errorf(ErrMetadata, "pieces record different settings (%s, %s) and (%s, %s); expected pieces of one run", out.Policy, out.Split, m.Policy, m.Split)
		}
		for k, v := range m.Tensors {
			out.Tensors[k] = v
		}
		for k, v := range m.Dense {
			if out.Dense == nil {
				out.Dense = map[string]string{}
			}
			out.Dense[k] = v
		}
		for k, v := range m.DenseSource {
			if out.DenseSource == nil {
				out.DenseSource = map[string]string{}
			}
			out.DenseSource[k] = v
		}
	}
	return out.marshal()
}
