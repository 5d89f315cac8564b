package model

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/safetensors"
)

// Budget is charged with the memory that opening an adapter holds for
// good: adapter_config.json as read, its pattern keys, and the regular
// expressions compiled for them. Take reserves n bytes for what, or
// returns why not (an error starting "lowrank: "). A command shares one
// budget between everything it opens (lowrank merge's --max-memory does).
type Budget interface {
	Take(n int64, what string) error
}

// take charges n bytes to b (nil: no budget).
func take(b Budget, n int64, what string) error {
	if b == nil {
		return nil
	}
	return b.Take(n, what)
}

// limit is the Budget of AdapterOptions.MaxMemory.
type limit struct{ avail int64 }

func (l *limit) Take(n int64, what string) error {
	if n > l.avail {
		return errorf(ErrMemory, "%s needs about %d bytes but MaxMemory leaves %d; expected a larger MaxMemory", what, n, l.avail)
	}
	l.avail -= n
	return nil
}

// AdapterOptions configure OpenAdapterWith.
type AdapterOptions struct {
	// Base is the model the adapter applies to. With it, the adapter's
	// modules are checked against the base's (present, shapes that fit)
	// as it is opened, and a kohya adapter's names are mapped to the
	// base's modules. A kohya adapter needs Base or BaseModules.
	Base *Model
	// BaseModules are the base's module names, for a caller that has no
	// Model of the base (lowrank merge: every tensor NAME.weight, as
	// NAME); BaseName is how errors call the base. Ignored with Base.
	BaseModules []string
	BaseName    string
	// KohyaPrefixes are the prefixes of kohya LoRA names (PREFIX_module
	// with dots turned into underscores); nil: the one lowrank extract
	// recorded in the adapter, else DefaultKohyaPrefixes. A name two
	// prefixes (or two modules) could claim is an error naming both.
	KohyaPrefixes []string
	// Backend is where the LoRA layers compute; nil: Base's backend, else
	// lowrank.DefaultBackend.
	Backend lowrank.Backend
	// Context, when cancelled, stops the reading of a large header or
	// config.
	Context context.Context
	// Budget is charged with what opening holds (see Budget); nil: a
	// budget of MaxMemory bytes when MaxMemory > 0, else none (the
	// format's bounds still hold: a config ≤ 16 MiB, bounded pattern
	// matching).
	Budget    Budget
	MaxMemory int64
	// OpenFile opens the adapter's safetensors file; nil:
	// safetensors.OpenWith with Context and MaxMemory. A command passes
	// its own, which charges the header to its budget.
	OpenFile func(path string) (*safetensors.File, error)
}

// Adapter is a LoRA adapter: a PEFT folder (adapter_config.json and
// adapter_model.safetensors) or a kohya .safetensors file. OpenAdapter
// reads the config and the headers, maps every module and works out its
// rank and scaling; each module's matrices are read when LoRA (or LoRA64)
// first asks for them, and kept.
//
// An adapter is applied without merging it, by Layer.ForwardAdapter: one
// base serves many adapters, chosen per call.
//
// The methods of an Adapter are safe for concurrent use by many
// goroutines, except Close.
type Adapter struct {
	path    string
	format  string // "peft" or "kohya"
	cfg     *PEFTConfig
	file    *safetensors.File
	mods    []AdapterModule
	byName  map[string]int
	names   []string
	backend lowrank.Backend

	checked bool // by OpenAdapterWith, not InspectAdapter

	mu     sync.Mutex
	loras  map[layerKey]any // *loraSlot[float32] or *loraSlot[float64]
	closed atomic.Bool
}

// AdapterModule is one module of an adapter, as the headers and the
// config tell it.
type AdapterModule struct {
	// Module is the base module it changes (the base tensor is
	// Module.weight).
	Module string
	// A (lora_A, kohya's lora_down) is r×k and B (lora_B, lora_up) d×r.
	A, B safetensors.TensorInfo
	// Alpha is the kohya alpha tensor's name ("" when there is none, or
	// for PEFT).
	Alpha string
	// Rank is r; Scale the factor of B·A: lora_alpha/r (lora_alpha/√r
	// with use_rslora) for PEFT, alpha/r for kohya (1 without alpha).
	Rank  int
	Scale float64
	// Kernel is [k_h, k_w] for a conv LoRA (LoCon: A is r × in × k_h ×
	// k_w, B is out × r × 1 × 1, and B·A is taken as the out ×
	// (in·k_h·k_w) matrix of WeightMatrix); nil for a linear or embedding
	// module.
	Kernel []int
	// Embedding marks PEFT's embedding LoRA (keys lora_embedding_A, r ×
	// vocab, and lora_embedding_B, hidden × r): the base weight is the
	// vocab × hidden embedding table and the change to it is
	// Scale·(B·A)ᵀ.
	Embedding bool
}

// Dims returns the shape d×k of B·A as matrices (for a conv module, k =
// in·k_h·k_w; for an embedding module, d is the hidden size and k the
// vocabulary).
func (m AdapterModule) Dims() (d, k int) {
	d, _, _, _ = WeightMatrix(m.B)
	_, k, _, _ = WeightMatrix(m.A)
	return d, k
}

// Fits reports whether the module's change fits the base weight tensor w
// (whose rows are stored in×out when fanInFanOut): a linear module's B·A
// has w's shape (transposed with fanInFanOut); a conv module's has w's
// out × in·k_h·k_w with the same kernel (a 1×1 conv may be stored 2-D on
// either side); an embedding module's (B·A)ᵀ has w's vocab × hidden.
func (m AdapterModule) Fits(w safetensors.TensorInfo, fanInFanOut bool) bool {
	wd, wk, kernel, ok := WeightMatrix(w)
	if !ok {
		return false
	}
	d, k := m.Dims()
	switch {
	case m.Embedding:
		return kernel == nil && wd == k && wk == d
	case kernel != nil || m.Kernel != nil:
		return sameKernel(kernel, m.Kernel) && wd == d && wk == k
	case fanInFanOut:
		return wd == k && wk == d
	}
	return wd == d && wk == k
}

// sameKernel reports whether two kernels are the same, nil standing for
// 1×1 (a Linear weight, or a 1×1 conv stored 2-D).
func sameKernel(a, b []int) bool {
	one := []int{1, 1}
	if a == nil {
		a = one
	}
	if b == nil {
		b = one
	}
	return slices.Equal(a, b)
}

// OpenAdapter opens the PEFT adapter folder or kohya file at path; a
// kohya file needs its base (see OpenAdapterWith).
func OpenAdapter(path string) (*Adapter, error) { return OpenAdapterWith(path, AdapterOptions{}) }

// OpenAdapterWith opens the PEFT adapter folder or kohya .safetensors
// file at path, as lowrank merge reads one, refusing what it refuses:
//
//   - PEFT: adapter_config.json read strictly (see ParsePEFTConfig);
//     adapter_model.safetensors (adapter_model.bin, a pickle, is not
//     read); keys [base_model.model.]<module>.lora_A[.<adapter>].weight
//     and lora_B (DoRA magnitudes, embedding LoRA, LoRA biases and
//     modules_to_save are refused); lora_A's rank equal to the config's
//     r for the module (rank_pattern, alpha_pattern, use_rslora);
//   - kohya: NAME.lora_down.weight, NAME.lora_up.weight and NAME.alpha,
//     each NAME mapped exactly to the base module whose kohya name it is
//     (see AdapterOptions.KohyaPrefixes; no suffix guessing);
//   - every A and B a 2-D float matrix, of one rank; with a base, every
//     module present in it with a weight B·A fits.
//
// Errors start "lowrank: " and name the file and the key; they wrap
// ErrFormat, ErrUnsupported, ErrNotFound, ErrNeedBase, ErrMismatch (with
// lowrank.ErrShape) or the errors of safetensors.
func OpenAdapterWith(path string, o AdapterOptions) (*Adapter, error) {
	return openAdapter(path, o, true)
}

// InspectAdapter opens an adapter to show what it holds, as lowrank info
// does: it reads and checks what OpenAdapterWith reads (the config, the
// keys, the kohya names, the bounds and budgets) and works out every
// module's rank and scaling from the config (kohya modules: Rank and Scale
// 0), but does not check the
// matrices against the config or each other (a rank that disagrees, a
// 3-D lora_A, B and A of different ranks) nor against a base. An adapter
// opened so describes itself (Modules, PEFT, File) but makes no LoRA
// layer: LoRA returns an error wrapping ErrUnsupported.
func InspectAdapter(path string, o AdapterOptions) (*Adapter, error) {
	return openAdapter(path, o, false)
}

func openAdapter(path string, o AdapterOptions, check bool) (*Adapter, error) {
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
			mm := o.MaxMemory
			if l, ok := mem.(*limit); ok {
				mm = max(l.avail, 1) // what the config left (0 would mean no bound)
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
	st, err := os.Stat(path)
	if err != nil {
		return nil, &modelError{kinds: []error{ErrNotFound, err}, msg: fmt.Sprintf("%s: %v; expected a PEFT adapter folder or a kohya LoRA .safetensors file", path, unwrapPathErr(err))}
	}
	if !st.IsDir() && filepath.Base(path) == PEFTConfigName {
		return nil, fileErr(ErrFormat, path, "is the config of the PEFT adapter folder %s; expected that folder as the adapter", filepath.Dir(path))
	}
	ad := &Adapter{path: path, format: "kohya", byName: map[string]int{}, loras: map[layerKey]any{}, backend: o.Backend, checked: check}
	weights := path
	if st.IsDir() {
		ad.format = "peft"
		if ad.cfg, err = readPEFTConfig(ctx, path, mem); err != nil {
			return nil, err
		}
		weights = filepath.Join(path, PEFTWeightsName)
		if _, err := os.Stat(weights); err != nil {
			if _, berr := os.Stat(filepath.Join(path, "adapter_model.bin")); berr == nil {
				return nil, fileErr(ErrUnsupported, path, "holds adapter_model.bin (a pickle); expected %s (safetensors only)", PEFTWeightsName)
			}
			return nil, &modelError{kinds: []error{ErrNotFound, err}, msg: fmt.Sprintf("%s: %s not found (%v); expected a PEFT adapter folder", path, PEFTWeightsName, unwrapPathErr(err))}
		}
	}
	if ad.file, err = open(weights); err != nil {
		return nil, err
	}
	if err := ad.index(ctx, o, check); err != nil {
		ad.file.Close()
		return nil, err
	}
	return ad, nil
}

// index maps the adapter's modules and works out their ranks and
// scalings, in the order lowrank merge always checked them; with check,
// it also checks the matrices (and the base, if any).
func (ad *Adapter) index(ctx context.Context, o AdapterOptions, check bool) error {
	fa := ad.file
	baseModules, baseName := o.BaseModules, o.BaseName
	if o.Base != nil {
		baseModules, baseName = o.Base.kohyaModules(), o.Base.paths
		if ad.backend == nil {
			ad.backend = o.Base.opts.Backend
		}
	}
	var mods []*loraModule
	var missing []string
	var err error
	if ad.cfg == nil {
		if !isKohya(fa) {
			dir := filepath.Dir(ad.path)
			if fi, err := os.Stat(filepath.Join(dir, PEFTConfigName)); err == nil && !fi.IsDir() {
				return fileErr(ErrFormat, ad.path, "holds no kohya lora_down keys and is a file of the PEFT adapter folder %s (%s beside it); expected that folder as the adapter", dir, PEFTConfigName)
			}
			return fileErr(ErrFormat, ad.path, "no adapter_config.json beside it and no kohya lora_down keys; expected a PEFT adapter folder or a kohya LoRA file")
		}
		if baseModules == nil && o.Base == nil {
			return fileErr(ErrNeedBase, ad.path, "a kohya adapter's names map to modules only with the base model; expected AdapterOptions.Base (or BaseModules)")
		}
		prefixes := o.KohyaPrefixes
		if len(prefixes) == 0 {
			prefixes = recordedPrefix(fa)
		}
		if mods, missing, err = parseKohyaKeys(ctx, fa, baseModules, baseName, prefixes); err != nil {
			return err
		}
		if len(prefixes) == 0 {
			prefixes = DefaultKohyaPrefixes() // as parseKohyaKeys reads them
		}
		if err := unetMappingProblem(ad.path, missing, prefixes, baseModules, baseName); err != nil {
			return err
		}
		if err := openCLIPMappingProblem(ad.path, missing, baseModules, baseName); err != nil {
			return err
		}
	} else {
		if mods, err = parsePEFTKeys(ctx, fa); err != nil {
			return err
		}
		if baseModules != nil || o.Base != nil {
			have := make(map[string]bool, len(baseModules))
			for _, m := range baseModules {
				have[m] = true
			}
			for ti, m := range mods {
				if err := tick(ctx, ti); err != nil {
					return err
				}
				if !have[m.module] {
					missing = append(missing, m.module)
				}
			}
			names := make(map[string]bool, len(mods))
			for _, m := range mods {
				names[m.module] = true
			}
			if mp := basePrefixMap(missing, have, names); mp != nil {
				for _, m := range mods {
					m.base = mp[m.module]
				}
				missing = nil
			}
		}
	}
	if len(missing) > 0 {
		more := ""
		if len(missing) > 10 {
			more = fmt.Sprintf(" and %d more", len(missing)-10)
			missing = missing[:10]
		}
		return fileErr(ErrNotFound, ad.path, "adapter modules not in %s: %s%s; expected every module's <module>.weight in the base model", baseName, strings.Join(quoteAll(missing), ", "), more)
	}
	if len(mods) == 0 {
		return fileErr(ErrFormat, ad.path, "the adapter holds no LoRA module")
	}
	if ad.cfg != nil {
		for _, p := range []*patterns{ad.cfg.rankPattern, ad.cfg.alphaPattern} {
			if err := p.checkWork(len(mods)); err != nil {
				return err
			}
		}
	}
	weights := fa.Path()
	for ti, m := range mods {
		if err := tick(ctx, ti); err != nil {
			return err
		}
		at, _ := fa.Tensor(m.aKey)
		bt, _ := fa.Tensor(m.bKey)
		am := AdapterModule{Module: m.module, A: at, B: bt, Alpha: m.alphaKey, Embedding: m.embedding}
		if m.base != "" {
			am.Module = m.base // rank_pattern and alpha_pattern still match m.module, PEFT's name
		}
		if _, _, kernel, ok := WeightMatrix(at); ok && kernel != nil {
			am.Kernel = kernel
		}
		if !check {
			if ad.cfg != nil {
				if am.Rank, am.Scale, err = ad.cfg.Scaling(m.module); err != nil {
					return err
				}
			}
			ad.add(am)
			continue
		}
		if m.embedding {
			if _, _, ok := at.Matrix(); !ok {
				return fileErr(ErrFormat, weights, "tensor %q is %s %s; expected a 2-D float matrix (r × vocabulary)", m.aKey, at.DType, shapeString(at.Shape))
			}
			if _, _, ok := bt.Matrix(); !ok {
				return fileErr(ErrFormat, weights, "tensor %q is %s %s; expected a 2-D float matrix (hidden × r)", m.bKey, bt.DType, shapeString(bt.Shape))
			}
		}
		if _, _, _, ok := WeightMatrix(at); !ok {
			return fileErr(ErrFormat, weights, "tensor %q is %s %s; expected a 2-D float matrix (r×k), or a conv's r × in × k_h × k_w", m.aKey, at.DType, shapeString(at.Shape))
		}
		_, br, ok := upFactor(bt)
		if !ok {
			return fileErr(ErrFormat, weights, "tensor %q is %s %s; expected a 2-D float matrix (d×r), or a conv's d × r × 1 × 1", m.bKey, bt.DType, shapeString(bt.Shape))
		}
		r := at.Shape[0]
		if br != r {
			return fileErr(ErrFormat, weights, "tensors %q (%s) and %q (%s): B has %d columns but A has %d rows; expected B (d×r) and A (r×k) of one rank r",
				m.bKey, shapeString(bt.Shape), m.aKey, shapeString(at.Shape), br, r)
		}
		am.Rank = r
		if ad.cfg == nil {
			alpha := float64(r) // kohya: no alpha means alpha = r
			if m.alphaKey != "" {
				if alpha, err = fa.Scalar(m.alphaKey); err != nil {
					return err
				}
				if alpha != alpha || alpha <= 0 || alpha > 1e30 {
					return fileErr(ErrFormat, weights, "tensor %q is %v; expected a positive alpha", m.alphaKey, alpha)
				}
			}
			am.Scale = alpha / float64(r)
		} else {
			cr, sc, err := ad.cfg.Scaling(m.module)
			if err != nil {
				return err
			}
			if cr != r {
				return fileErr(ErrFormat, weights, "tensor %q has rank %d but %s gives r = %d for module %q; expected them to agree", m.aKey, r, ad.cfg.Path, cr, m.module)
			}
			am.Scale = sc
		}
		if _, dup := ad.byName[am.Module]; dup {
			return fileErr(ErrFormat, weights, "two LoRAs for module %q (%q and %q); expected one", am.Module, ad.mods[ad.byName[am.Module]].A.Name, am.A.Name)
		}
		ad.add(am)
	}
	slices.Sort(ad.names)
	if check && o.Base != nil {
		for _, am := range ad.mods {
			li, err := o.Base.Info(am.Module)
			if err != nil {
				return err
			}
			if !am.fitsLayer(li) {
				return ad.mismatch(am, li)
			}
			if am.Kernel == nil && li.Kernel == nil && ad.FanInFanOut() != o.Base.opts.FanInFanOut {
				return ad.fanMismatch(am.Module, o.Base.opts.FanInFanOut)
			}
		}
	}
	return nil
}

// basePrefixMap maps the modules of a PEFT adapter that the base lacks to
// the base's modules the way transformers loads a checkpoint saved without
// (or with) the model class's base_model_prefix: GPT-2's model.safetensors
// holds "h.0.attn.c_attn.weight" where a PEFT adapter of GPT2LMHeadModel
// names "transformer.h.0.attn.c_attn", OPT's "decoder.layers.…" where it
// names "model.decoder.layers.…". It returns the mapping when one prefix P
// maps every missing module, all by stripping "P." or all by adding it,
// onto base modules the adapter does not name itself (taken), and no other
// prefix does; nil otherwise (the modules stay missing).
func basePrefixMap(missing []string, have, taken map[string]bool) map[string]string {
	if len(missing) == 0 {
		return nil
	}
	var found map[string]string
	ways := 0
	// Strip: every missing module is P.rest with rest in the base.
	if p, _, ok := strings.Cut(missing[0], "."); ok {
		mp := map[string]string{}
		for _, m := range missing {
			rest, ok := strings.CutPrefix(m, p+".")
			if !ok || !have[rest] || taken[rest] {
				mp = nil
				break
			}
			mp[m] = rest
		}
		if mp != nil {
			found, ways = mp, ways+1
		}
	}
	// Add: P.m is in the base for every missing m, for one P.
	prefixes := map[string]bool{}
	for b := range have {
		if p, _, ok := strings.Cut(b, "."); ok {
			prefixes[p] = true
		}
	}
	for p := range prefixes {
		mp := map[string]string{}
		for _, m := range missing {
			if !have[p+"."+m] || taken[p+"."+m] {
				mp = nil
				break
			}
			mp[m] = p + "." + m
		}
		if mp != nil {
			found, ways = mp, ways+1
		}
	}
	if ways != 1 {
		return nil
	}
	return found
}

// fitsLayer reports whether the module's change fits the base layer li
// (as Forward applies it: out×in, after any fan_in_fan_out transposition).
func (m AdapterModule) fitsLayer(li LayerInfo) bool {
	d, k := m.Dims()
	switch {
	case m.Embedding:
		return li.Kernel == nil && li.D == k && li.K == d
	case li.Kernel != nil || m.Kernel != nil:
		return sameKernel(li.Kernel, m.Kernel) && li.D == d && li.K == k
	}
	return li.D == d && li.K == k
}

// add records module am.
func (ad *Adapter) add(am AdapterModule) {
	if _, dup := ad.byName[am.Module]; !dup {
		ad.byName[am.Module] = len(ad.mods)
	}
	ad.mods = append(ad.mods, am)
	ad.names = append(ad.names, am.Module)
}

// mismatch is the error for module am whose B·A does not fit the base
// layer li.
func (ad *Adapter) mismatch(am AdapterModule, li LayerInfo) error {
	d, k := am.Dims()
	what := fmt.Sprintf("B (%s) · A (%s) is %d×%d", shapeString(am.B.Shape), shapeString(am.A.Shape), d, k)
	switch {
	case am.Embedding:
		what = fmt.Sprintf("embedding LoRA (B (%s) · A (%s))ᵀ is %d×%d", shapeString(am.B.Shape), shapeString(am.A.Shape), k, d)
	case am.Kernel != nil:
		what += fmt.Sprintf(" (a %d×%d conv)", am.Kernel[0], am.Kernel[1])
	}
	base := fmt.Sprintf("%d×%d (out×in)", li.D, li.K)
	if li.Kernel != nil {
		base = fmt.Sprintf("%d×%d (out × in·k_h·k_w, a %d×%d conv)", li.D, li.K, li.Kernel[0], li.Kernel[1])
	}
	return &modelError{kinds: []error{ErrMismatch, lowrank.ErrShape},
		msg: fmt.Sprintf("%s: module %q: the adapter's %s but the base's weight %q is %s; expected matching shapes",
			ad.path, am.Module, what, li.Weight, base)}
}

// fanMismatch is the error for an adapter whose fan_in_fan_out differs
// from how the base was opened.
func (ad *Adapter) fanMismatch(module string, baseFan bool) error {
	if ad.FanInFanOut() {
		return fileErr(ErrMismatch, ad.path, "module %q: the adapter has fan_in_fan_out (the base weights are stored in×out, as GPT-2's Conv1D) but the base was opened without Options.FanInFanOut; expected the base opened with it", module)
	}
	return fileErr(ErrMismatch, ad.path, "module %q: the base was opened with Options.FanInFanOut (weights stored in×out) but the adapter does not have fan_in_fan_out; expected them to agree", module)
}

// recordedPrefix returns the kohya prefix extract recorded in an adapter's
// lowrank metadata, or the default prefixes when there is none.
func recordedPrefix(fa *safetensors.File) []string {
	if raw, ok := fa.Metadata()[MetadataKey]; ok {
		if m, err := ParseMetadata(raw); err == nil && m.Format == "kohya" && m.KohyaPrefix != "" {
			return strings.Split(m.KohyaPrefix, ",") // extract records every prefix it used
		}
	}
	return DefaultKohyaPrefixes()
}

// IsKohya reports whether a safetensors file holds kohya LoRA keys
// (NAME.lora_down.weight).
func IsKohya(f *safetensors.File) bool { return isKohya(f) }

// Path returns the path the adapter was opened from.
func (ad *Adapter) Path() string { return ad.path }

// Format returns "peft" or "kohya".
func (ad *Adapter) Format() string { return ad.format }

// PEFT returns the PEFT config (nil for a kohya adapter). It must not be
// modified.
func (ad *Adapter) PEFT() *PEFTConfig { return ad.cfg }

// FanInFanOut reports whether the adapter was trained on weights stored
// in×out (PEFT's fan_in_fan_out; never for kohya): its base must be opened
// with Options.FanInFanOut.
func (ad *Adapter) FanInFanOut() bool { return ad.cfg != nil && ad.cfg.FanInFanOut }

// File returns the adapter's safetensors file (its tensors, metadata).
func (ad *Adapter) File() *safetensors.File { return ad.file }

// Modules returns the adapter's modules in the order of the file.
func (ad *Adapter) Modules() []AdapterModule { return slices.Clone(ad.mods) }

// Names returns the base modules the adapter changes, sorted.
func (ad *Adapter) Names() []string { return slices.Clone(ad.names) }

// Module returns the adapter's module for the base module name.
func (ad *Adapter) Module(name string) (AdapterModule, bool) {
	i, ok := ad.byName[name]
	if !ok {
		return AdapterModule{}, false
	}
	return ad.mods[i], true
}

// Close releases the adapter's file and the device memory its LoRA
// layers hold. It must not run concurrently with other methods or with a
// Forward that uses its layers; afterwards they return an error wrapping
// ErrClosed.
func (ad *Adapter) Close() error {
	if ad.closed.Swap(true) {
		return nil
	}
	ad.mu.Lock()
	defer ad.mu.Unlock()
	var first error
	for _, s := range ad.loras {
		if err := s.(interface{ close() error }).close(); err != nil && first == nil {
			first = err
		}
	}
	if ad.file == nil { // a zero Adapter
		return first
	}
	if err := ad.file.Close(); err != nil && first == nil {
		first = err
	}
	return first
}
