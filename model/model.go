package model

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/safetensors"
)

// Options configure OpenWith and FromFiles. The zero value is the
// default: the default backend, no memory bound beyond the format's, the
// metadata read and checked.
type Options struct {
	// Backend is where the layers compute; nil: lowrank.DefaultBackend
	// (the GPU when one is usable, else the CPU).
	Backend lowrank.Backend
	// Context, when cancelled, stops the reading of a large header.
	Context context.Context
	// MaxMemory, when positive, refuses (with an error wrapping ErrMemory)
	// a header whose reading could take more memory (see
	// safetensors.HeaderMemory).
	MaxMemory int64
	// FanInFanOut says that the 2-D weights are stored in×out, as GPT-2's
	// Conv1D stores them (PEFT's fan_in_fan_out): each is transposed as it
	// is loaded, so that Forward computes W·x with W out×in. Factors
	// stored B (in×r), A (r×out) become B' = Aᵀ, A' = Bᵀ.
	FanInFanOut bool
	// IgnoreMetadata leaves the lowrank metadata unread: nothing recorded
	// is restored (RelError and Energy stay NaN) nor checked.
	IgnoreMetadata bool
}

// Model is a dense or factorized model: the linear layers of one
// safetensors file or of the shards of a Hugging Face folder, by module
// name. Open reads the headers only; each layer's tensors are
// read when Linear (or Linear64) first asks for it, and kept.
//
// A module M is the weight M.weight, dense or stored as the factors
// M.weight.A (r×k) and M.weight.B (d×r) that lowrank factorize writes,
// with the bias M.bias when the file holds one. A 2-D weight whose name
// does not end in ".weight" (or its factors) is a module under its own
// name, without a bias. A 4-D weight (a Conv2d's, out × in × k_h × k_w)
// is the module of its out × (in·k_h·k_w) matrix (see WeightMatrix): its
// layer maps unfolded patches, and conv LoRA adapters apply to it.
//
// The methods of a Model are safe for concurrent use by many goroutines,
// except Close.
type Model struct {
	opts  Options
	files []*safetensors.File
	paths string // the files' paths, for messages
	// tensors indexes every tensor of every file by name; weights, every
	// weight (dense or factor pair) by the name of the matrix it holds;
	// modules, the weight of each module name.
	tensors map[string]ref
	weights map[string]*weight
	modules map[string][]string // module → candidate weights (two: ambiguous)
	names   []string
	meta    *Metadata // the first file's lowrank metadata, nil: none

	mu     sync.Mutex
	layers map[layerKey]any // *slot[float32] or *slot[float64]
	closed atomic.Bool
}

// ref is one tensor: the file that holds it and its header entry.
type ref struct {
	file int
	info safetensors.TensorInfo
}

// weight is one matrix of the model: a dense tensor, or a factor pair.
type weight struct {
	name        string
	dense       *ref // or
	a, b        *ref
	rec         *Record // what the metadata records of the pair
	denseReason string  // what it says of a tensor kept dense
}

// Open opens the dense or factorized model at path: a .safetensors file, a
// Hugging Face model folder (model.safetensors, or shards with
// model.safetensors.index.json; diffusers' diffusion_pytorch_model names
// too) or such a folder's index file, as OpenCheckpoint reads them. It
// reads and checks the headers (a sharded folder's index strictly against
// its shards, and the lowrank metadata of every file, a claim checked
// against the tensors), and no tensor. A factorized folder written by
// lowrank factorize is read like a factorized file: a module's factors may
// lie in any shard.
func Open(path string) (*Model, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options.
func OpenWith(path string, o Options) (*Model, error) {
	files, err := openFiles(path, o)
	if err != nil {
		return nil, err
	}
	m, err := newModel(files, o)
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	return m, nil
}

// openFiles opens the files of the model at path through OpenCheckpoint:
// one file, or a folder's shards (checked against its index), which make
// one Model through newModel.
func openFiles(path string, o Options) ([]*safetensors.File, error) {
	c, err := OpenCheckpoint(path, CheckpointOptions{Context: o.Context, MaxMemory: o.MaxMemory})
	if err != nil {
		return nil, err
	}
	return c.Files(), nil
}

// FromFiles makes a Model of safetensors files the caller opened (within
// its own limits, say). The Model owns them: its Close closes them. A
// tensor name held by two files is an error wrapping ErrFormat.
func FromFiles(o Options, files ...*safetensors.File) (*Model, error) {
	if len(files) == 0 {
		return nil, errorf(ErrNotFound, "no file given; expected at least one safetensors file")
	}
	for i, f := range files {
		if f == nil {
			return nil, errorf(ErrNotFound, "file %d of %d is nil; expected open safetensors files", i+1, len(files))
		}
	}
	return newModel(files, o)
}

// newModel indexes the tensors of files: factor pairs, weights, modules;
// then reads and checks the lowrank metadata.
func newModel(files []*safetensors.File, o Options) (*Model, error) {
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	m := &Model{opts: o, files: files, tensors: map[string]ref{}, weights: map[string]*weight{}, modules: map[string][]string{}, layers: map[layerKey]any{}}
	var paths []string
	n := 0
	for i, f := range files {
		paths = append(paths, f.Path())
		for _, t := range f.Tensors() {
			if err := tick(ctx, n); err != nil {
				return nil, err
			}
			n++
			if prev, dup := m.tensors[t.Name]; dup {
				return nil, tensorErr(ErrFormat, f.Path(), t.Name, "is also in %s; expected each tensor in one file", files[prev.file].Path())
			}
			m.tensors[t.Name] = ref{file: i, info: t}
		}
	}
	m.paths = strings.Join(paths, ", ")
	// Factor pairs, in file order (the first bad pair is the one reported,
	// as lowrank merge reports it).
	pairPart := map[string]bool{}
	for i, f := range files {
		for ti, t := range f.Tensors() {
			if err := tick(ctx, ti); err != nil {
				return nil, err
			}
			name, ok := strings.CutSuffix(t.Name, ".A")
			if !ok {
				continue
			}
			b, ok := m.tensors[name+".B"]
			if !ok {
				continue
			}
			_, _, okA := t.Matrix()
			_, r, okB := b.info.Matrix()
			if !okA || !okB || t.Shape[0] != r {
				return nil, fileErr(ErrFormat, f.Path(), "tensors %q (%s) and %q (%s) are not factors B (d×r) and A (r×k) of one matrix", t.Name, shapeString(t.Shape), b.info.Name, shapeString(b.info.Shape))
			}
			if _, clash := m.tensors[name]; clash {
				return nil, fileErr(ErrFormat, f.Path(), "tensor %q exists beside its factors %q and %q; expected one or the other", name, t.Name, b.info.Name)
			}
			a := ref{file: i, info: t}
			m.weights[name] = &weight{name: name, a: &a, b: &b}
			pairPart[t.Name], pairPart[b.info.Name] = true, true
		}
	}
	for i, f := range files {
		for ti, t := range f.Tensors() {
			if err := tick(ctx, ti); err != nil {
				return nil, err
			}
			if pairPart[t.Name] || !isWeight(t) {
				continue
			}
			r := ref{file: i, info: t}
			m.weights[t.Name] = &weight{name: t.Name, dense: &r}
		}
	}
	for name := range m.weights {
		mod := name
		if s, ok := strings.CutSuffix(name, ".weight"); ok && s != "" {
			mod = s
		}
		m.modules[mod] = append(m.modules[mod], name)
	}
	for mod, ws := range m.modules {
		slices.Sort(ws)
		m.names = append(m.names, mod)
	}
	slices.Sort(m.names)
	if o.IgnoreMetadata {
		return m, nil
	}
	for _, f := range files {
		raw, ok := f.Metadata()[MetadataKey]
		if !ok {
			continue
		}
		md, err := ParseMetadata(raw)
		if err != nil {
			return nil, wrap(nil, err, "%s", f.Path())
		}
		if err := m.checkClaims(f.Path(), md); err != nil {
			return nil, err
		}
		m.meta = mergeMetadata(m.meta, md)
	}
	return m, nil
}

// Names returns the module names of the model, sorted: every name Linear
// takes.
func (m *Model) Names() []string { return slices.Clone(m.names) }

// Metadata returns the __metadata__ of the model's (first) file.
func (m *Model) Metadata() map[string]string { return m.files[0].Metadata() }

// Recorded returns the lowrank metadata the model's files hold, as checked
// by Open (the shards of a folder each record their own tensors: merged),
// or nil when they hold none (or Options.IgnoreMetadata was set). The
// caller must not modify it.
func (m *Model) Recorded() *Metadata { return m.meta }

// Files returns the safetensors files the model reads from.
func (m *Model) Files() []*safetensors.File { return slices.Clone(m.files) }

// WeightInfo describes one weight matrix of the model: a dense tensor, or
// a factor pair NAME.A (r×k) and NAME.B (d×r), as stored (before the
// transposition of Options.FanInFanOut).
type WeightInfo struct {
	// Name is the matrix's name: the dense tensor's, or NAME of the pair.
	Name string
	// Factored tells which of W or A and B hold the matrix.
	Factored bool
	W, A, B  safetensors.TensorInfo
	// Record and DenseReason are what the lowrank metadata says (see
	// LayerInfo).
	Record      *Record
	DenseReason string
}

// Weight describes the weight matrix called name (a 2-D float tensor, or
// NAME of a factor pair NAME.A and NAME.B), and reports whether the model
// holds one.
func (m *Model) Weight(name string) (WeightInfo, bool) {
	w, ok := m.weights[name]
	if !ok {
		return WeightInfo{}, false
	}
	wi := WeightInfo{Name: name, Factored: w.a != nil, Record: w.rec, DenseReason: w.denseReason}
	if w.a != nil {
		wi.A, wi.B = w.a.info, w.b.info
	} else {
		wi.W = w.dense.info
	}
	return wi, true
}

// LayerInfo describes one module as the header tells it, without reading
// a tensor.
type LayerInfo struct {
	// Name is the module name; Weight the name of its weight matrix
	// ("blocks.0.fc.weight"), stored as Weight or as Weight.A and
	// Weight.B; Bias the bias tensor, "" when there is none.
	Name, Weight, Bias string
	// D and K are the shape of W as Forward applies it (out×in: after the
	// transposition of Options.FanInFanOut). For a Conv2d weight (out × in
	// × k_h × k_w), K is in·k_h·k_w: Forward maps a patch (see
	// WeightMatrix) to the output channels at one position.
	D, K int
	// Kernel is [k_h, k_w] for a Conv2d weight, nil for a 2-D one.
	Kernel []int
	// Rank is r for a factorized weight, 0 for a dense one.
	Rank int
	// DType is the weight's (or its factors') dtype.
	DType safetensors.DType
	// Record is what the lowrank metadata records of the factors (nil:
	// nothing); DenseReason why a selected tensor was kept dense ("").
	Record      *Record
	DenseReason string
}

// Info describes the module name from the header, without reading its
// tensors. It returns an error wrapping ErrNotFound for a name the model
// does not hold.
func (m *Model) Info(name string) (LayerInfo, error) {
	w, err := m.lookup(name)
	if err != nil {
		return LayerInfo{}, err
	}
	li := LayerInfo{Name: name, Weight: w.name, Record: w.rec, DenseReason: w.denseReason}
	if w.a != nil {
		li.D, li.Rank, li.K, li.DType = w.b.info.Shape[0], w.a.info.Shape[0], w.a.info.Shape[1], w.a.info.DType
	} else {
		li.D, li.K, li.Kernel, _ = WeightMatrix(w.dense.info)
		li.DType = w.dense.info.DType
	}
	if m.opts.FanInFanOut && li.Kernel == nil {
		li.D, li.K = li.K, li.D
	}
	if s, ok := strings.CutSuffix(w.name, ".weight"); ok && s != "" {
		if _, ok := m.tensors[s+".bias"]; ok {
			li.Bias = s + ".bias"
		}
	}
	return li, nil
}

// lookup returns the weight of module name.
func (m *Model) lookup(name string) (*weight, error) {
	if m.closed.Load() {
		return nil, fileErr(ErrClosed, m.paths, "model used after Close")
	}
	ws := m.modules[name]
	switch len(ws) {
	case 0:
		for _, suffix := range []string{".weight", ".weight.A", ".weight.B", ".bias"} {
			if mod, ok := strings.CutSuffix(name, suffix); ok && len(m.modules[mod]) > 0 {
				return nil, fileErr(ErrNotFound, m.paths, "no module %q; expected a module name: %q (%q is one of its tensors)", name, mod, name)
			}
		}
		return nil, fileErr(ErrNotFound, m.paths, "no module %q; expected %q (dense, or its factors %q and %q) or a 2-D tensor of that name", name, name+".weight", name+".weight.A", name+".weight.B")
	case 1:
		return m.weights[ws[0]], nil
	}
	return nil, fileErr(ErrFormat, m.paths, "module %q names both %q and %q; expected one weight per module", name, ws[0], ws[1])
}

// Close releases the model's files and the device memory its layers hold.
// It must not run concurrently with other methods or with Forward on its
// layers; afterwards they return an error wrapping ErrClosed.
func (m *Model) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var first error
	for _, s := range m.layers {
		if err := s.(interface{ close() error }).close(); err != nil && first == nil {
			first = err
		}
	}
	for _, f := range m.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// kohyaModules returns the module names adapters are matched against:
// every tensor name ending in ".weight", without it (whatever its shape,
// as lowrank merge maps them), and every factor pair NAME.weight.A and
// NAME.weight.B, as NAME.
func (m *Model) kohyaModules() []string {
	var out []string
	for _, f := range m.files {
		for _, t := range f.Tensors() {
			if s, ok := strings.CutSuffix(t.Name, ".weight"); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	var pairs []string
	for name, w := range m.weights {
		if s, ok := strings.CutSuffix(name, ".weight"); ok && s != "" && w.a != nil {
			pairs = append(pairs, s)
		}
	}
	slices.Sort(pairs) // the order errors name them in
	return append(out, pairs...)
}

// mergeMetadata returns the lowrank metadata of several files (the shards
// of a folder) as one: the first's version, policy and split, and every
// file's tensors, dense tensors and modules.
func mergeMetadata(into, md *Metadata) *Metadata {
	if into == nil {
		return md
	}
	if into.Tensors == nil {
		into.Tensors = map[string]Record{}
	}
	if into.Dense == nil {
		into.Dense = map[string]string{}
	}
	for k, v := range md.Tensors {
		into.Tensors[k] = v
	}
	for k, v := range md.Dense {
		into.Dense[k] = v
	}
	if len(md.Modules) > 0 {
		if into.Modules == nil {
			into.Modules = map[string]Record{}
		}
		for k, v := range md.Modules {
			into.Modules[k] = v
		}
	}
	return into
}
