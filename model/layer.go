package model

import (
	"math"
	"sync"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/safetensors"
)

// Layer is one linear layer of a Model, computing in T:
//
//	y = W·x + b          (a dense W, d×k)
//	y = B·(A·x) + b      (factors B, d×r, and A, r×k)
//
// with b the module's bias, or nothing when the file holds none. Get one
// with Model.Linear (float32) or Model.Linear64 (float64).
//
// The weights are converted to T once, when the layer is loaded: F16,
// BF16 and F32 tensors widen exactly to float32 and float64; F64 tensors
// are exact in float64 and rounded to nearest for float32 (a value beyond
// the float32 range is an error naming the tensor: use Linear64). On a
// GPU, the factors (or W) are uploaded on the first Forward and stay
// resident until Close; computation runs on Options.Backend, through
// lowrank.Factors and lowrank.Dense.
//
// The methods of a Layer are safe for concurrent use by many goroutines,
// except Close.
type Layer[T lowrank.Float] struct {
	m      *Model
	name   string
	weight string
	d, k   int
	kernel []int // a Conv2d weight's [k_h, k_w], nil for a 2-D one

	factors *lowrank.Factors[T] // or
	dense   *lowrank.Dense[T]
	bias    []T
}

// Linear is a layer computing in float32: Model.Linear returns one.
type Linear = Layer[float32]

// Linear64 is a layer computing in float64: Model.Linear64 returns one.
type Linear64 = Layer[float64]

// Linear returns the layer of module name computing in float32, reading
// its tensors on the first call for that name (later calls return the same
// layer). It returns an error wrapping ErrNotFound for a name the model
// does not hold, ErrFormat for a bias that does not fit the weight, and
// lowrank.ErrNonFinite for a NaN or ±Inf in a tensor, each naming the
// tensor.
func (m *Model) Linear(name string) (*Linear, error) { return layerOf[float32](m, name) }

// Linear64 is Linear computing in float64.
func (m *Model) Linear64(name string) (*Linear64, error) { return layerOf[float64](m, name) }

// layerKey identifies a loaded layer: the module and the precision.
type layerKey struct {
	name string
	f64  bool
}

// slot holds one loaded layer; its mutex makes concurrent first calls
// load it once.
type slot[T lowrank.Float] struct {
	mu sync.Mutex
	l  *Layer[T]
}

func (s *slot[T]) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l == nil {
		return nil
	}
	return s.l.release()
}

func is64[T lowrank.Float]() bool {
	var z T
	_, ok := any(z).(float64)
	return ok
}

func layerOf[T lowrank.Float](m *Model, name string) (*Layer[T], error) {
	w, err := m.lookup(name)
	if err != nil {
		return nil, err
	}
	key := layerKey{name, is64[T]()}
	m.mu.Lock()
	s, _ := m.layers[key].(*slot[T])
	if s == nil {
		s = &slot[T]{}
		m.layers[key] = s
	}
	m.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l != nil {
		return s.l, nil
	}
	l, err := loadLayer[T](m, name, w)
	if err != nil {
		return nil, err
	}
	s.l = l
	return l, nil
}

// loadLayer reads the tensors of module name (weight w) as T.
func loadLayer[T lowrank.Float](m *Model, name string, w *weight) (*Layer[T], error) {
	l := &Layer[T]{m: m, name: name, weight: w.name}
	if w.a != nil {
		a, err := readMatrix[T](m.files[w.a.file], w.a.info)
		if err != nil {
			return nil, err
		}
		b, err := readMatrix[T](m.files[w.b.file], w.b.info)
		if err != nil {
			return nil, err
		}
		if m.opts.FanInFanOut { // stored B·A is Wᵀ: W = Aᵀ·Bᵀ
			a, b = b.Transpose(), a.Transpose()
		}
		f, err := lowrank.NewFactors(b, a)
		if err != nil { // checked above: unreachable but for a bug
			return nil, wrap(ErrFormat, err, "%s: module %q", m.files[w.a.file].Path(), name)
		}
		f.Backend = m.opts.Backend
		if w.rec != nil {
			if err := f.SetRecorded(w.rec.RelError, w.rec.Energy); err != nil {
				return nil, wrap(ErrMetadata, err, "%s: tensor %q", m.files[w.a.file].Path(), w.name)
			}
			restoreOutput(f, w.rec)
		}
		l.factors = f
		l.d, l.k = f.Dims()
	} else {
		wm, err := readMatrix[T](m.files[w.dense.file], w.dense.info)
		if err != nil {
			return nil, err
		}
		_, _, l.kernel, _ = WeightMatrix(w.dense.info)
		if m.opts.FanInFanOut && l.kernel == nil {
			wm = wm.Transpose()
		}
		dn, err := lowrank.NewDense(wm)
		if err != nil {
			return nil, wrap(ErrFormat, err, "%s: module %q", m.files[w.dense.file].Path(), name)
		}
		dn.Backend = m.opts.Backend
		l.dense = dn
		l.d, l.k = dn.Dims()
	}
	li, _ := m.Info(name)
	if li.Bias != "" {
		r := m.tensors[li.Bias]
		file := m.files[r.file].Path()
		if len(r.info.Shape) != 1 || !r.info.DType.IsFloat() || r.info.Shape[0] != l.d {
			return nil, tensorErr(ErrFormat, file, li.Bias, "is %s %s; expected a 1-D float vector of length %d, the rows of %q", r.info.DType, shapeString(r.info.Shape), l.d, w.name)
		}
		v, err := readFloats[T](m.files[r.file], r.info)
		if err != nil {
			return nil, err
		}
		if i := firstNonFinite(v); i >= 0 {
			return nil, tensorErr(lowrank.ErrNonFinite, file, li.Bias, "element [%d] is %v; expected finite values", i, v[i])
		}
		l.bias = v
	}
	return l, nil
}

// readMatrix reads the 2-D tensor t of f as a matrix of T (a 4-D conv
// tensor as its WeightMatrix), refusing a NaN or ±Inf (and an F64 value
// beyond the float32 range, for float32).
func readMatrix[T lowrank.Float](f *safetensors.File, t safetensors.TensorInfo) (lowrank.Matrix[T], error) {
	d, k, _, _ := WeightMatrix(t)
	v, err := readFloats[T](f, t)
	if err != nil {
		return lowrank.Matrix[T]{}, err
	}
	if i := firstNonFinite(v); i >= 0 {
		return lowrank.Matrix[T]{}, tensorErr(lowrank.ErrNonFinite, f.Path(), t.Name, "element [%d, %d] is %v; expected finite values", i/k, i%k, v[i])
	}
	return lowrank.Matrix[T]{Rows: d, Cols: k, Data: v}, nil
}

// readFloats reads a float tensor as T. An F64 tensor read as float32 is
// rounded; a finite value that overflows is an error.
func readFloats[T lowrank.Float](f *safetensors.File, t safetensors.TensorInfo) ([]T, error) {
	var out any
	var err error
	switch {
	case is64[T]():
		out, err = f.Float64s(t.Name)
	case t.DType == safetensors.F64:
		var v64 []float64
		if v64, err = f.Float64s(t.Name); err != nil {
			return nil, err
		}
		v := make([]float32, len(v64))
		for i, x := range v64 {
			v[i] = float32(x)
			if math.IsInf(float64(v[i]), 0) && !math.IsInf(x, 0) {
				return nil, tensorErr(lowrank.ErrNonFinite, f.Path(), t.Name, "element %d is %g, beyond the float32 range; expected Linear64 (float64) for this tensor", i, x)
			}
		}
		out = v
	default:
		out, err = f.Float32s(t.Name)
	}
	if err != nil {
		return nil, err
	}
	return out.([]T), nil
}

// firstNonFinite returns the index of the first NaN or ±Inf in v, or -1.
func firstNonFinite[T lowrank.Float](v []T) int {
	for i, x := range v {
		if x-x != 0 {
			return i
		}
	}
	return -1
}

// restoreOutput restores into f what rec records of the output error: the
// weight error for plain factors (the inputs taken as isotropic, as
// Factorize reports it), the recorded output error, its energy, the ridge
// and the weighting for factors computed with input statistics
// (lowrank factorize --calibration). Checked by checkClaims.
func restoreOutput[T lowrank.Float](f *lowrank.Factors[T], rec *Record) {
	f.OutputRelError, f.OutputEnergy = f.RelError, f.Energy
	if rec.Calibrated == nil || !*rec.Calibrated || rec.OutputRelError == nil {
		return
	}
	e := *rec.OutputRelError
	f.Weighting, f.OutputRelError, f.OutputEnergy = lowrank.WeightCovariance, e, 1-e*e
	if rec.Ridge != nil {
		f.Ridge = *rec.Ridge
	}
}

// Name returns the module name.
func (l *Layer[T]) Name() string { return l.name }

// Dims returns the shape d×k of W (out×in): Forward maps vectors of length
// k to vectors of length d.
func (l *Layer[T]) Dims() (d, k int) { return l.d, l.k }

// Rank returns r for a factorized layer, 0 for a dense one.
func (l *Layer[T]) Rank() int {
	if l.factors == nil {
		return 0
	}
	return l.factors.Rank
}

// Factors returns the factors of a factorized layer (nil for a dense
// one), with the relative error and energy the file records restored
// (NaN when it records none). They must not be modified.
func (l *Layer[T]) Factors() *lowrank.Factors[T] { return l.factors }

// Dense returns the weight of a dense layer (nil for a factorized one). It
// must not be modified.
func (l *Layer[T]) Dense() *lowrank.Dense[T] { return l.dense }

// Bias returns the bias (nil when the module has none). It must not be
// modified.
func (l *Layer[T]) Bias() []T { return l.bias }

// Forward computes y = W·x + b (or B·(A·x) + b) for one input x of length
// k into y, of length d (y may be x itself, for a square layer). It returns an error wrapping lowrank.ErrShape or
// lowrank.ErrNonFinite for a vector of the wrong length or holding a NaN
// or ±Inf, naming the module.
func (l *Layer[T]) Forward(y, x []T) error {
	if err := l.live(); err != nil {
		return err
	}
	var err error
	if l.factors != nil {
		err = l.factors.ApplyTo(y, x, l.bias)
	} else {
		err = l.dense.ApplyTo(y, x, l.bias)
	}
	return l.fail(err)
}

// ForwardBatch computes Forward for the n inputs held as the rows of x
// (n×k) into the rows of y (n×d): Y = X·Wᵀ + b, PyTorch's convention.
func (l *Layer[T]) ForwardBatch(y, x lowrank.Matrix[T]) error {
	if err := l.live(); err != nil {
		return err
	}
	var err error
	if l.factors != nil {
		err = l.factors.ApplyBatchTo(y, x, l.bias)
	} else {
		err = l.dense.ApplyBatchTo(y, x, l.bias)
	}
	return l.fail(err)
}

// Close releases the device memory the layer holds; it stays usable (the
// next Forward uploads it again). It must not run concurrently with
// Forward.
func (l *Layer[T]) Close() error { return l.release() }

func (l *Layer[T]) release() error {
	if l.factors != nil {
		return l.factors.Close()
	}
	if l.dense != nil {
		return l.dense.Close()
	}
	return nil // a zero Layer holds nothing
}

// live returns ErrClosed once the model is closed, and ErrNotFound for a
// zero Layer (declared, not obtained from Model.Linear).
func (l *Layer[T]) live() error {
	if l.m == nil {
		return errorf(ErrNotFound, "a zero Layer; expected one from Model.Linear or Model.Linear64")
	}
	if l.m.closed.Load() {
		return errorf(ErrClosed, "module %q: model used after Close", l.name)
	}
	return nil
}

// fail names the module in err.
func (l *Layer[T]) fail(err error) error {
	if err == nil {
		return nil
	}
	return wrap(nil, err, "module %q", l.name)
}
