package model

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/lowrank-go/lowrank/internal/osfile"
	"github.com/lowrank-go/lowrank/safetensors"
)

// A model on disk is one of:
//
//   - a .safetensors file;
//   - a folder as Hugging Face stores a model: model.safetensors, or shards
//     model-00001-of-0000N.safetensors … with model.safetensors.index.json
//     (transformers), or diffusion_pytorch_model.safetensors and its index
//     (diffusers, a UNet or VAE folder), beside config.json, tokenizer
//     files and so on;
//   - the index file of such a folder, given itself.
//
// A Checkpoint is the weights of one, opened: its files' headers read and
// checked (a sharded folder's index strictly against its shards), and its
// tensors listed across the files, each read on demand from the file that
// holds it.

// Prefixes are the names of the weight files a model folder may hold, in
// the order they are looked for: transformers' and diffusers'.
var Prefixes = []string{"model", "diffusion_pytorch_model"}

// CheckpointOptions configure OpenCheckpoint.
type CheckpointOptions struct {
	// Context, when cancelled, stops the reading of large headers and
	// indexes.
	Context context.Context
	// MaxMemory, when positive, bounds what reading the headers and the
	// index holds (together); Budget, when set, is charged instead.
	MaxMemory int64
	Budget    Budget
	// OpenFile opens one safetensors file (a caller's budget and limits);
	// nil: safetensors.OpenWith within MaxMemory or Budget.
	OpenFile func(path string) (*safetensors.File, error)
}

// Checkpoint is the weights of a model on disk: one safetensors file or the
// shards of a folder. Its methods read tensors from the file that holds
// them; they are safe for concurrent use, except Close.
type Checkpoint struct {
	path   string // as given
	dir    string // the model folder ("" for a file given alone)
	index  *safetensors.Index
	prefix string
	files  []*safetensors.File
	names  []string // the files' names in dir (their paths for a lone file)

	tensors []safetensors.TensorInfo // every tensor, file by file
	where   map[string]int           // tensor → file
	meta    map[string]string
	size    int64
}

// OpenCheckpoint opens the model at path (see Checkpoint): a .safetensors
// file, a model folder, or a folder's index file. A folder must hold
// exactly one of model.safetensors, model.safetensors.index.json,
// diffusion_pytorch_model.safetensors and
// diffusion_pytorch_model.safetensors.index.json (two is an error: give the
// file). A sharded checkpoint's index is read strictly
// (safetensors.ReadIndex) and checked against its shards, which are all
// opened: every shard it lists exists in the folder, as a regular file or
// a symbolic link to one inside the folder (or, for a folder of the Hugging
// Face cache, …/snapshots/REV, inside its …/blobs); each holds exactly the
// tensors the index puts in it; no tensor is in two shards. Errors name the
// index, the shard and the tensor, and wrap ErrFormat, ErrNotFound (a
// missing file) or safetensors' sentinels.
func OpenCheckpoint(path string, o CheckpointOptions) (*Checkpoint, error) {
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	mem := o.Budget
	if mem == nil && o.MaxMemory > 0 {
		mem = &limit{avail: o.MaxMemory}
	}
	open := o.OpenFile
	if open == nil {
		open = func(p string) (*safetensors.File, error) {
			mm := int64(0)
			if l, ok := mem.(*limit); ok {
				mm = max(l.avail, 1)
			}
			f, err := safetensors.OpenWith(p, safetensors.OpenOptions{Context: ctx, MaxMemory: mm})
			if err != nil {
				return nil, err
			}
			if err := take(mem, safetensors.HeaderMemory(f.HeaderSize()), p+": its header"); err != nil {
				f.Close()
				return nil, err
			}
			return f, nil
		}
	}
	c := &Checkpoint{path: path, where: map[string]int{}}
	weights, err := c.locate()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if strings.HasSuffix(weights, safetensors.IndexSuffix) {
		if err := c.openShards(ctx, weights, mem, open); err != nil {
			return nil, err
		}
	} else {
		f, err := open(weights)
		if err != nil {
			return nil, err
		}
		c.files, c.names = []*safetensors.File{f}, []string{filepath.Base(weights)}
	}
	if err := c.indexTensors(ctx); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// locate finds the weights of c.path: the file to open, or an index.
func (c *Checkpoint) locate() (string, error) {
	st, err := os.Stat(c.path)
	if err != nil {
		return "", &modelError{kinds: []error{ErrNotFound, err}, msg: unwrapPathErr(err).Error() + ": " + c.path}
	}
	if !st.IsDir() {
		base := filepath.Base(c.path)
		c.prefix = Prefixes[0]
		for _, p := range Prefixes {
			if strings.HasPrefix(base, p+".") || strings.HasPrefix(base, p+"-") {
				c.prefix = p
			}
		}
		if strings.HasSuffix(base, safetensors.IndexSuffix) {
			c.dir = filepath.Dir(c.path)
			c.prefix = strings.TrimSuffix(base, safetensors.IndexSuffix)
		}
		return c.path, nil
	}
	c.dir = c.path
	var found []string
	for _, p := range Prefixes {
		for _, name := range []string{p + ".safetensors", p + safetensors.IndexSuffix} {
			if _, err := os.Lstat(filepath.Join(c.dir, name)); err == nil {
				found = append(found, name)
				c.prefix = p
			}
		}
	}
	switch len(found) {
	case 0:
		what := "a model folder"
		if _, err := os.Lstat(filepath.Join(c.dir, "adapter_config.json")); err == nil {
			what = "a model folder (this one holds adapter_config.json: an adapter, not a model)"
		}
		return "", fileErr(ErrNotFound, c.path, "is a folder without model.safetensors, model.safetensors.index.json, diffusion_pytorch_model.safetensors or diffusion_pytorch_model.safetensors.index.json%s; expected %s or a .safetensors file", OtherWeightsHint(c.dir), what)
	case 1:
	default:
		return "", fileErr(ErrFormat, c.path, "holds both %s; expected one set of weights (give the one to read as the input)", strings.Join(quoteAll(found), " and "))
	}
	p := filepath.Join(c.dir, found[0])
	if err := c.inside(p); err != nil {
		return "", err
	}
	return p, nil
}

// inside checks that the file at p (in the model folder) is a regular
// file, or a symbolic link to one, that stays in the folder or, for a
// folder of the Hugging Face cache (…/snapshots/REV), in its …/blobs.
func (c *Checkpoint) inside(p string) error {
	st, err := os.Lstat(p)
	if err != nil {
		return &modelError{kinds: []error{ErrNotFound, err}, msg: p + ": " + unwrapPathErr(err).Error()}
	}
	if st.Mode()&fs.ModeSymlink == 0 {
		return nil // a non-regular file is refused when opened
	}
	dir, err := filepath.EvalSymlinks(c.dir)
	if err != nil {
		return &modelError{kinds: []error{ErrNotFound, err}, msg: c.dir + ": " + unwrapPathErr(err).Error()}
	}
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return &modelError{kinds: []error{ErrNotFound, err}, msg: p + ": is a symbolic link to a missing file: " + unwrapPathErr(err).Error()}
	}
	if within(target, dir) {
		return nil
	}
	if filepath.Base(filepath.Dir(dir)) == "snapshots" {
		if blobs := filepath.Join(filepath.Dir(filepath.Dir(dir)), "blobs"); filepath.Dir(target) == blobs {
			return nil
		}
	}
	return fileErr(ErrFormat, p, "is a symbolic link to %s, outside the model folder %s; expected files inside it (or, in the Hugging Face cache, in its blobs folder)", target, c.dir)
}

// within reports whether path lies inside folder dir (by name).
func within(path, dir string) bool {
	if dir == string(filepath.Separator) {
		return path != dir
	}
	return strings.HasPrefix(path, dir+string(filepath.Separator))
}

// openShards reads the index and opens its shards, checking them against
// it.
func (c *Checkpoint) openShards(ctx context.Context, index string, mem Budget, open func(string) (*safetensors.File, error)) error {
	if err := c.inside(index); err != nil {
		return err
	}
	mm := int64(0)
	if l, ok := mem.(*limit); ok {
		mm = max(l.avail, 1)
	}
	if st, err := os.Stat(index); err == nil && mem != nil && st.Mode().IsRegular() {
		if err := take(mem, safetensors.IndexMemory(min(st.Size(), safetensors.MaxIndexSize)), index+": the index"); err != nil {
			return err
		}
	}
	ix, err := safetensors.ReadIndex(index, safetensors.OpenOptions{Context: ctx, MaxMemory: mm})
	if err != nil {
		if ctx.Err() != nil {
			return ctxErr(ctx)
		}
		return err
	}
	c.index = ix
	// Every shard exists before any is opened: a missing one is the
	// likeliest fault (a partial download), reported first.
	for _, sh := range ix.Shards {
		p := filepath.Join(c.dir, sh)
		if _, err := os.Lstat(p); err != nil {
			ts := ix.Tensors[sh]
			return &modelError{kinds: []error{ErrNotFound, err}, msg: fmt.Sprintf("%s: shard %q (listed for %d tensors, such as %q) is missing from %s: %s; expected every shard the index lists (an interrupted download?)",
				index, sh, len(ts), ts[0], c.dir, unwrapPathErr(err))}
		}
		if err := c.inside(p); err != nil {
			return wrap(ErrFormat, err, "%s: shard %q", index, sh)
		}
	}
	for _, sh := range ix.Shards {
		f, err := open(filepath.Join(c.dir, sh))
		if err != nil {
			return err
		}
		c.files = append(c.files, f)
		c.names = append(c.names, sh)
	}
	// No tensor in two shards, then each shard holds what the index says.
	seen := map[string]int{}
	for i, f := range c.files {
		for ti, t := range f.Tensors() {
			if err := tick(ctx, ti); err != nil {
				return err
			}
			if j, dup := seen[t.Name]; dup {
				return tensorErr(ErrFormat, index, t.Name, "is in two shards, %q and %q; expected each tensor in one shard", c.names[j], c.names[i])
			}
			seen[t.Name] = i
			want, listed := ix.WeightMap[t.Name]
			switch {
			case !listed:
				return tensorErr(ErrFormat, index, t.Name, "is in shard %q but the index does not list it; expected the index to list every tensor of its shards", c.names[i])
			case want != c.names[i]:
				return tensorErr(ErrFormat, index, t.Name, "is in shard %q but the index puts it in %q; expected the index to say where each tensor is", c.names[i], want)
			}
		}
	}
	for i, sh := range ix.Shards {
		for ti, name := range ix.Tensors[sh] {
			if err := tick(ctx, ti); err != nil {
				return err
			}
			if _, ok := c.files[i].Tensor(name); !ok {
				return tensorErr(ErrFormat, index, name, "is listed in shard %q, which does not hold it; expected the index to list only the tensors of its shards", sh)
			}
		}
	}
	return nil
}

// indexTensors lists every tensor across the files and merges their
// metadata.
func (c *Checkpoint) indexTensors(ctx context.Context) error {
	n := 0
	for _, f := range c.files {
		n += len(f.Tensors())
		c.size += f.Size()
	}
	c.tensors = make([]safetensors.TensorInfo, 0, n)
	c.meta = map[string]string{}
	for i, f := range c.files {
		for ti, t := range f.Tensors() {
			if err := tick(ctx, ti); err != nil {
				return err
			}
			if j, dup := c.where[t.Name]; dup { // several files given to FromCheckpointFiles
				return tensorErr(ErrFormat, f.Path(), t.Name, "is also in %s; expected each tensor in one file", c.files[j].Path())
			}
			c.where[t.Name] = i
			c.tensors = append(c.tensors, t)
		}
		for k, v := range f.Metadata() {
			if _, ok := c.meta[k]; !ok {
				c.meta[k] = v
			}
		}
	}
	return nil
}

// Path returns the path the checkpoint was opened with.
func (c *Checkpoint) Path() string { return c.path }

// Folder returns the model folder, or "" for a .safetensors file given by
// itself.
func (c *Checkpoint) Folder() string { return c.dir }

// Sharded reports whether the weights are the shards of an index.
func (c *Checkpoint) Sharded() bool { return c.index != nil }

// Index returns the index of a sharded checkpoint, or nil.
func (c *Checkpoint) Index() *safetensors.Index { return c.index }

// Prefix returns the name of the checkpoint's weight files in a folder:
// "model" (transformers) or "diffusion_pytorch_model" (diffusers); for a
// lone file, the one its name starts with, else "model".
func (c *Checkpoint) Prefix() string { return c.prefix }

// Files returns the open safetensors files, shards in the order of their
// names. The Checkpoint owns them.
func (c *Checkpoint) Files() []*safetensors.File { return slices.Clone(c.files) }

// FileNames returns the files' names in the model folder (for a lone file,
// its base name), in the order of Files.
func (c *Checkpoint) FileNames() []string { return slices.Clone(c.names) }

// Tensors returns every tensor, file by file, each file's in the order of
// its data. Begin and End are offsets in the tensor's own file.
func (c *Checkpoint) Tensors() []safetensors.TensorInfo { return c.tensors }

// Tensor returns the tensor called name.
func (c *Checkpoint) Tensor(name string) (safetensors.TensorInfo, bool) {
	i, ok := c.where[name]
	if !ok {
		return safetensors.TensorInfo{}, false
	}
	return c.files[i].Tensor(name)
}

// FileOf returns the file that holds tensor name, or nil.
func (c *Checkpoint) FileOf(name string) *safetensors.File {
	i, ok := c.where[name]
	if !ok {
		return nil
	}
	return c.files[i]
}

// Metadata returns the __metadata__ of the files, merged (a key the files
// disagree on takes the first file's value). Do not modify it.
func (c *Checkpoint) Metadata() map[string]string { return c.meta }

// Size returns the bytes of the weight files together.
func (c *Checkpoint) Size() int64 { return c.size }

// HeaderEstimate returns the files' HeaderEstimate together.
func (c *Checkpoint) HeaderEstimate() int {
	n := 0
	for _, f := range c.files {
		n += f.HeaderEstimate()
	}
	return n
}

// file returns the file of tensor name, or an error naming it.
func (c *Checkpoint) file(name string) (*safetensors.File, error) {
	f := c.FileOf(name)
	if f == nil {
		return nil, &safetensors.Error{File: c.path, Tensor: name, Err: errors.New("no such tensor")}
	}
	return f, nil
}

// Section returns a reader of the raw bytes of tensor name.
func (c *Checkpoint) Section(name string) (*io.SectionReader, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.Section(name)
}

// ReadRaw returns the raw bytes of tensor name.
func (c *Checkpoint) ReadRaw(name string) ([]byte, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.ReadRaw(name)
}

// Float32s returns the values of tensor name as float32.
func (c *Checkpoint) Float32s(name string) ([]float32, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.Float32s(name)
}

// Float64s returns the values of tensor name as float64.
func (c *Checkpoint) Float64s(name string) ([]float64, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.Float64s(name)
}

// ReadFloat32s reads the values of tensor name as float32 into dst, which
// must hold exactly its number of elements (safetensors.File.ReadFloat32s).
func (c *Checkpoint) ReadFloat32s(name string, dst []float32) error {
	f, err := c.file(name)
	if err != nil {
		return err
	}
	return f.ReadFloat32s(name, dst)
}

// ReadFloat64s reads the values of tensor name as float64 into dst, as
// ReadFloat32s.
func (c *Checkpoint) ReadFloat64s(name string, dst []float64) error {
	f, err := c.file(name)
	if err != nil {
		return err
	}
	return f.ReadFloat64s(name, dst)
}

// Scalar returns the value of the one-element tensor name.
func (c *Checkpoint) Scalar(name string) (float64, error) {
	f, err := c.file(name)
	if err != nil {
		return 0, err
	}
	return f.Scalar(name)
}

// Close closes the files.
func (c *Checkpoint) Close() error {
	var first error
	for _, f := range c.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// OtherFile is a file of a model folder that is not weights: config.json,
// tokenizer files, generation_config.json, README.md, ….
type OtherFile struct {
	// Name is its name in the folder; Path where to read it (a symbolic
	// link followed, inside the folder or the cache's blobs).
	Name, Path string
	Size       int64
}

// weightExts end the names of weight files in any format: they are not
// "other files" (a factorized model's folder must not carry the dense
// weights, nor pickles beside them).
var weightExts = []string{".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx", ".onnx_data", ".ot", ".pb", ".tflite", ".npz", ".pkl", ".pickle"}

// IsWeightFile reports whether name is a file of weights (in any format,
// such as pytorch_model-00001-of-00002.bin or model.safetensors) or an
// index of them (model.safetensors.index.json, pytorch_model.bin.index.json).
func IsWeightFile(name string) bool {
	n := strings.ToLower(name)
	n = strings.TrimSuffix(n, ".index.json")
	for _, e := range weightExts {
		if strings.HasSuffix(n, e) {
			return true
		}
	}
	return false
}

// OtherFiles lists the files of the model folder that are not weights
// (see IsWeightFile) nor lowrank's own (names starting ".lowrank", and
// temporaries ".NAME.tmp-…"), sorted by name, to be copied beside a
// model written from this one; skipped lists, with the reason, what is not
// copied: weight files other than the checkpoint's own, and subfolders
// (which are never copied: a model folder's subfolders hold other models,
// originals or caches, such as original/ or .git/). A file that is not
// regular (a FIFO, a device) or a symbolic link leading outside the folder
// is an error. A lone file has no other files.
func (c *Checkpoint) OtherFiles() (files []OtherFile, skipped []string, err error) {
	if c.dir == "" {
		return nil, nil, nil
	}
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, nil, &modelError{kinds: []error{ErrNotFound, err}, msg: c.dir + ": " + unwrapPathErr(err).Error()}
	}
	own := map[string]bool{}
	for _, n := range c.names {
		own[n] = true
	}
	if c.index != nil {
		own[filepath.Base(c.index.Path)] = true
	}
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(c.dir, name)
		switch {
		case own[name], strings.HasPrefix(name, ".lowrank"), strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-"):
			continue
		case e.IsDir():
			skipped = append(skipped, strconv.Quote(name)+" (a subfolder: not copied)")
			continue
		case IsWeightFile(name):
			skipped = append(skipped, strconv.Quote(name)+" (weights not read: not copied)")
			continue
		}
		if err := c.inside(p); err != nil {
			return nil, nil, err
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, &modelError{kinds: []error{ErrNotFound, err}, msg: p + ": " + unwrapPathErr(err).Error()}
		}
		if st.IsDir() {
			skipped = append(skipped, strconv.Quote(name)+" (a link to a folder: not copied)")
			continue
		}
		if !st.Mode().IsRegular() {
			return nil, nil, fileErr(ErrFormat, p, "is %s; expected regular files in the model folder", osfile.Kind(st.Mode()))
		}
		files = append(files, OtherFile{Name: name, Path: p, Size: st.Size()})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, skipped, nil
}

// OtherWeightsHint returns, for a folder without the weights files a model
// folder is read from, a clause naming a .safetensors file it does hold
// (a diffusers variant such as diffusion_pytorch_model.fp16.safetensors),
// to give as the input; "" when it holds none.
func OtherWeightsHint(dir string) string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if len(m) == 0 {
		return ""
	}
	more := ""
	if len(m) > 1 {
		more = fmt.Sprintf(" and %d more", len(m)-1)
	}
	return fmt.Sprintf(" (it holds %q%s, such as a variant's weights: give the file to read as the input)", filepath.Base(m[0]), more)
}
