package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

func runMerge(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("merge", `merge --base BASE.safetensors --adapter ADAPTER_DIR -o OUT.safetensors [--unmerge]
       lowrank merge FACTORIZED.safetensors -o DENSE.safetensors

With --adapter, writes W + scaling·B·A for every module of a PEFT adapter
folder (or a kohya .safetensors file): Linear, Conv2d (LoCon: 1×1 and
k×k) and PEFT Embedding modules; --unmerge subtracts it. Without
--adapter, turns a file written by 'lowrank factorize' back into dense
tensors NAME = NAME.B·NAME.A, in the dtype of the tensor it was computed
from (recorded in the file's metadata).`, stderr)
	base := fs.String("base", "", "the base model: a `FILE`.safetensors, a model folder (shards and their index; the output is then a model folder) or an index file")
	adapter := fs.String("adapter", "", "PEFT adapter `DIR` (adapter_config.json + adapter_model.safetensors) or kohya LoRA .safetensors file")
	unmerge := fs.Bool("unmerge", false, "subtract the adapter instead of adding it")
	kohyaPrefix := fs.String("kohya-prefix", "", "kohya adapters: the `PREFIX`es of LoRA names, comma-separated (default: the prefix extract recorded in the adapter, else "+strings.Join(defaultKohyaPrefixes, ", ")+"; a name two prefixes could map is an error)")
	output := fs.String("o", "", "output `FILE`.safetensors (a folder for a model folder input, --max-shard-size or --shard)")
	force := fs.Bool("force", false, "overwrite existing outputs")
	quiet := fs.Bool("quiet", false, "no progress bar and no table")
	report := fs.String("report", "", "also write the per-tensor table to `FILE`.json or FILE.csv")
	jobs := fs.Int("jobs", 1, "tensors processed in parallel; memory grows with `N`")
	allowExpand := fs.Bool("allow-expand", false, "densify: allow an output more than 100× its input and over 10 GB (densifying a factorized file multiplies its size; without this flag the command refuses before the work)")
	dtype := fs.String("dtype", "auto", "dtype of the tensors merge computes: auto (densify: the dtype factorize recorded for the source, else the factors'; --adapter: the base tensor's), keep (the tensor's own: the factors' or the base's), f32, f16 or bf16")
	maxMemory := fs.String("max-memory", "0", "memory budget `SIZE` (512MiB, 2GiB, 1.5GB) for the whole process: a tensor whose merge does not fit is refused before any work, naming what it needs; shared by --jobs. 0: the default, "+fmt.Sprintf("%d/%d", defaultNum, defaultDen)+" of the memory the process may use (cgroup limit or MemAvailable; here: "+defaultBudgetShort()+")")
	ff := addFolderFlags(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	in := *base
	switch {
	case len(pos) == 1 && in == "":
		in = pos[0]
	case len(pos) > 0:
		return usagef("merge: unexpected arguments %q; expected --base BASE.safetensors --adapter DIR -o OUT", pos)
	}
	if in == "" {
		return usagef("merge: expected --base BASE.safetensors (or a factorized file to densify)")
	}
	if *output == "" {
		return usagef("merge: no output given; expected -o OUT.safetensors")
	}
	if *jobs < 1 {
		return usagef("merge: --jobs %d; expected ≥ 1", *jobs)
	}
	if *report != "" {
		if ext := strings.ToLower(filepath.Ext(*report)); ext != ".json" && ext != ".csv" {
			return usagef("merge: --report %q; expected a file name ending in .json or .csv", *report)
		}
	}
	if *unmerge && *adapter == "" {
		return usagef("merge: --unmerge needs --adapter")
	}
	s := &settings{output: *output, force: *force, quiet: *quiet, report: *report, jobs: *jobs, allowExpand: *allowExpand}
	if s.maxMemory, err = parseSize(*maxMemory); err != nil {
		return usagef("merge: %v", err)
	}
	fsx, err := ff.settings("merge", os.Getenv)
	if err != nil {
		return err
	}
	switch strings.ToLower(*dtype) {
	case "auto", "":
		s.mergeDType = ""
	case "keep":
		s.mergeDType = "keep"
	default:
		dt, err := parseOutDType(*dtype)
		if err != nil || dt == "" {
			return usagef("merge: --dtype %q; expected auto, keep, f32, f16 or bf16", *dtype)
		}
		s.mergeDType = string(dt)
	}
	outs := newOutputSet(s.force, in, *adapter)
	folder := isFolderModel(in) || fsx.maxShardGiven || fsx.distributed() // a model folder output (merge_folder.go)
	if folder {
		s.fold = &folderOut{fs: fsx, flags: flagsString(fs)}
	} else if fsx.resume {
		return usagef("merge: --resume with a single-file output; expected a folder output (a model folder as input, or --max-shard-size)")
	}
	out := outs.fileOrFolder(folder, s.output, "merge")
	s.addReport(outs)
	if err := ready("merge", s, outs); err != nil {
		return err
	}
	defer outs.abort()
	if s.mem, err = newBudget(s.maxMemory); err != nil {
		return err
	}
	defer s.mem.restore()
	fb, err := s.mem.openModel(in)
	if err != nil {
		return err
	}
	defer fb.Close()
	if *adapter == "" {
		return densify(stdout, stderr, fb, s, out)
	}
	var prefixes []string
	if *kohyaPrefix != "" {
		for _, p := range strings.Split(*kohyaPrefix, ",") {
			if p = strings.TrimSpace(p); p != "" {
				prefixes = append(prefixes, p)
			}
		}
	}
	return mergeAdapter(stdout, stderr, fb, *adapter, *unmerge, prefixes, s, out)
}

// mergeItem is one base tensor that an adapter module changes.
type mergeItem struct {
	mod     model.AdapterModule
	scaling float64
}

func mergeAdapter(stdout, stderr io.Writer, fb source, adapter string, unmerge bool, prefixes []string, s *settings, out *output) error {
	// The adapter is read by the model package, as a library caller reads
	// one: the config, the keys, the kohya names mapped to the base's
	// modules (every tensor NAME.weight, as NAME), ranks and scalings.
	baseModules := []string{}
	for ti, t := range fb.Tensors() {
		if err := tick(ti); err != nil {
			return err
		}
		if m, ok := moduleOf(t.Name); ok {
			baseModules = append(baseModules, m)
		}
	}
	ad, err := model.OpenAdapterWith(adapter, model.AdapterOptions{
		BaseModules: baseModules, BaseName: fb.Path(), KohyaPrefixes: prefixes,
		Context: cmdContext, Budget: s.mem, OpenFile: s.mem.open,
	})
	if err != nil {
		if cmdContext.Err() != nil {
			return errInterrupted
		}
		return err
	}
	defer ad.Close()
	fa := ad.File()
	weights := fa.Path()
	mods := ad.Modules()

	// Check the shapes against the base.
	fanIn := ad.FanInFanOut()
	byTensor := map[string]mergeItem{}
	for ti, m := range mods {
		if err := tick(ti); err != nil {
			return err
		}
		name := m.Module + ".weight"
		wt, _ := fb.Tensor(name)
		if !m.Fits(wt, fanIn) {
			d, k := m.Dims()
			want := shapeString([]int{d, k})
			switch {
			case m.Embedding:
				want = fmt.Sprintf("%d×%d (an embedding LoRA: (B·A)ᵀ)", k, d)
			case m.Kernel != nil:
				want = fmt.Sprintf("%d×%d×%d×%d (a %d×%d conv LoRA: out × in × k_h × k_w)", d, k/(m.Kernel[0]*m.Kernel[1]), m.Kernel[0], m.Kernel[1], m.Kernel[0], m.Kernel[1])
			case fanIn:
				want = shapeString([]int{k, d})
			}
			return fmt.Errorf("lowrank: %s: tensor %q is %s %s but the adapter's B (%s) · A (%s) for it is %s in %s; expected matching shapes",
				fb.Path(), name, wt.DType, shapeString(wt.Shape), shapeString(m.B.Shape), shapeString(m.A.Shape), want, weights)
		}
		it := mergeItem{mod: m, scaling: m.Scale}
		if unmerge {
			it.scaling = -it.scaling
		}
		byTensor[name] = it
	}

	// The dtype each tensor is written in (--dtype for the merged ones),
	// and the order: by decreasing element size, so that the data stays
	// aligned.
	outOf := func(t safetensors.TensorInfo) safetensors.DType {
		if _, ok := byTensor[t.Name]; ok && s.mergeDType != "" && s.mergeDType != "keep" {
			return safetensors.DType(s.mergeDType)
		}
		return t.DType
	}
	tensors := byOutSize(fb.Tensors(), outOf)
	var outBytes int64
	for _, t := range tensors {
		outBytes = add(outBytes, mul(int64(outOf(t).Size()), t.NumElements()))
	}
	costs := make([]int64, len(tensors))
	for i, t := range tensors {
		if err := tick(i); err != nil {
			return err
		}
		it, ok := byTensor[t.Name]
		if !ok {
			continue
		}
		d, k, _, _ := model.WeightMatrix(t)
		costs[i] = productCost(elemBytes(t.DType, it.mod.A.DType, it.mod.B.DType), d, k, it.mod.Rank)
		if !s.mem.fits(costs[i]) {
			return memErr(fb.Path(), t.Name, d, k, costs[i], "merge", s.mem)
		}
	}
	if err := checkDisk(s.output, add(headerBytes(fb), outBytes)); err != nil { // the same tensors, maybe in another dtype
		return err
	}
	cmd := "merge"
	if unmerge {
		cmd = "unmerge"
	}
	compute := func(i int) (outcome, error) {
		t := tensors[i]
		it, ok := byTensor[t.Name]
		if !ok {
			return copyOutcome(fb, t), nil
		}
		out := outOf(t)
		if computesIn64(t.DType, it.mod.A.DType, it.mod.B.DType) {
			return mergeOne[float64](fb, fa, t, it, fanIn, out)
		}
		return mergeOne[float32](fb, fa, t, it, fanIn, out)
	}
	if s.fold != nil { // merge_folder.go
		rows, err := mergeFolder(stderr, cmd, fb, adapter, tensors, func(i int) (int, bool) {
			it, ok := byTensor[tensors[i].Name]
			return it.mod.Rank, ok
		}, outOf, costs, compute, s)
		if err != nil {
			return err
		}
		return finish(stdout, s, reportFile{Command: cmd, Inputs: []string{fb.Path(), adapter}, Output: s.output, Tensors: rows})
	}
	rows := make([]row, 0, len(tensors))
	w, err := out.writer(fb.HeaderEstimate())
	if err != nil {
		return err
	}
	defer w.Abort()
	prog := newProgress(stderr, s.quiet, tensorBytes(tensors), "merge")
	err = pipeline(len(tensors), s.jobs, s.mem, func(i int) int64 { return costs[i] }, compute, func(i int, o outcome) error {
		if err := o.write(w); err != nil {
			return err
		}
		rows = append(rows, o.row)
		prog.step(o.row.Name, tensors[i].Size())
		return nil
	})
	prog.done()
	if err != nil {
		return err
	}
	w.SetMetadata(fb.Metadata())
	if err := w.Close(); err != nil {
		return err
	}
	if err := out.commit(); err != nil {
		return err
	}
	return finish(stdout, s, reportFile{Command: cmd, Inputs: []string{fb.Path(), adapter}, Output: s.output, Tensors: rows})
}

// mergeOne computes W + scaling·B·A for one base tensor (a conv weight as
// its out × in·k_h·k_w matrix; an embedding table with (B·A)ᵀ), written
// in dtype out.
func mergeOne[T lowrank.Float](fb, fa source, t safetensors.TensorInfo, it mergeItem, fanIn bool, out safetensors.DType) (outcome, error) {
	W, err := readMatrix[T](fb, t.Name)
	if err != nil {
		return outcome{}, err
	}
	A, err := readMatrix[T](fa, it.mod.A.Name)
	if err != nil {
		return outcome{}, err
	}
	B, err := readMatrix[T](fa, it.mod.B.Name)
	if err != nil {
		return outcome{}, err
	}
	transposed := fanIn || it.mod.Embedding
	if it.mod.Kernel != nil {
		transposed = false
	}
	if err := addProduct(W, it.scaling, B, A, transposed, operands{"W": {fb.Path(), t.Name}, "A": {fa.Path(), it.mod.A.Name}, "B": {fa.Path(), it.mod.B.Name}}); err != nil {
		return outcome{}, err
	}
	if i, ok := quantize(W.Data, out); !ok || firstNonFinite(W.Data) >= 0 {
		if i < 0 {
			i = firstNonFinite(W.Data)
		}
		return outcome{}, tensorErr(fb.Path(), t.Name, "merged element [%d, %d] (W %+g·B·A, B and A from %s) is outside the range of %s; expected finite values", i/W.Cols, i%W.Cols, it.scaling, fa.Path(), out)
	}
	n := int64(t.NumElements())
	status := stMerged
	if it.scaling == 0 {
		// PEFT accepts lora_alpha 0 (and alpha_pattern 0): scaling 0.
		status += ": scaling 0 (alpha 0), tensor unchanged"
	}
	o := outcome{row: row{Name: t.Name, Shape: t.Shape, DType: string(out), SourceDType: string(t.DType), Status: status, Rank: it.mod.Rank, Scaling: f64p(it.scaling), listed: true,
		ParamsBefore: n, ParamsAfter: n, BytesBefore: t.Size(), BytesAfter: n * int64(out.Size())}}
	o.row.BytesSaved = o.row.BytesBefore - o.row.BytesAfter
	o.write = func(w *safetensors.Writer) error { return writeMatrix(w, t.Name, out, W, t.Shape...) }
	return o, nil
}

// densify writes NAME = NAME.B·NAME.A for every factor pair of a file
// written by factorize, and copies everything else.
func densify(stdout, stderr io.Writer, f source, s *settings, out *output) error {
	tensors := f.Tensors()
	// The factor pairs, found and checked (shapes; no dense NAME beside
	// its factors) by the model package. The lowrank metadata is dropped
	// from the output, and not read.
	m, err := model.FromFiles(model.Options{Context: cmdContext, IgnoreMetadata: true}, filesOf(f)...)
	if err != nil {
		if cmdContext.Err() != nil {
			return errInterrupted
		}
		return err
	}
	pairs := map[string]bool{} // NAME of each pair
	for ti, t := range tensors {
		if err := tick(ti); err != nil {
			return err
		}
		if name, ok := strings.CutSuffix(t.Name, ".A"); ok {
			if wi, ok := m.Weight(name); ok && wi.Factored {
				pairs[name] = true
			}
		}
	}
	if len(pairs) == 0 {
		return errors.New("lowrank: " + f.Path() + ": no NAME.A / NAME.B factor pairs; expected a file written by 'lowrank factorize' (or give --adapter to merge an adapter)")
	}
	// The dtype each tensor is written in: --dtype, else what the
	// metadata records of the source (factorize --dtype), else its own.
	outOf, err := densifyDTypes(f, s.mergeDType, stderr, s.quiet)
	if err != nil {
		return err
	}
	tensors = byOutSize(tensors, func(t safetensors.TensorInfo) safetensors.DType {
		name, ok := strings.CutSuffix(t.Name, ".A")
		if ok && pairs[name] {
			b, _ := f.Tensor(name + ".B")
			return outOf(name, pairDType(t.DType, b.DType), true)
		}
		return outOf(name, t.DType, false)
	})
	costs := make([]int64, len(tensors))
	// The output's size, known exactly (less the offsets in its header).
	outSize := int64(8)
	var entries []safetensors.TensorInfo
	for i, t := range tensors {
		if err := tick(i); err != nil {
			return err
		}
		name, ok := strings.CutSuffix(t.Name, ".A")
		if !ok || !pairs[name] {
			if n, isB := strings.CutSuffix(t.Name, ".B"); !isB || !pairs[n] {
				dt := outOf(t.Name, t.DType, false)
				outSize = add(outSize, mul(int64(dt.Size()), t.NumElements()))
				entries = append(entries, safetensors.TensorInfo{Name: t.Name, DType: dt, Shape: t.Shape})
				if dt != t.DType {
					costs[i] = mul(16, t.NumElements())
				}
			}
			continue
		}
		b, _ := f.Tensor(name + ".B")
		r, k := t.Shape[0], t.Shape[1]
		d := b.Shape[0]
		dt := outOf(name, pairDType(t.DType, b.DType), true)
		outSize = add(outSize, mul(int64(dt.Size()), d, k))
		entries = append(entries, safetensors.TensorInfo{Name: name, DType: dt, Shape: []int{d, k}})
		// A and B, and one piece of the product at a time.
		costs[i] = add(mul(elemBytes(t.DType, b.DType), r, d+k), densifyPieceBytes)
		if !s.mem.fits(costs[i]) {
			return memErr(f.Path(), name, d, k, costs[i], "densify", s.mem)
		}
	}
	outSize = add(outSize, int64(safetensors.HeaderLen(f.Metadata(), entries)))
	note, err := checkExpansion(f.Path(), s.output, f.Size(), outSize, s.allowExpand)
	if err != nil {
		return err
	}
	if err := checkDisk(s.output, outSize); err != nil {
		return err
	}
	fmt.Fprint(stderr, note)
	if s.fold != nil { // merge_folder.go
		rows, err := densifyFolder(stderr, f, pairs, tensors, costs, outOf, s)
		if err != nil {
			return err
		}
		return finish(stdout, s, reportFile{Command: "densify", Inputs: []string{f.Path()}, Output: s.output, Tensors: rows})
	}
	w, err := out.writer(f.HeaderEstimate())
	if err != nil {
		return err
	}
	defer w.Abort()
	rows := make([]row, 0, len(tensors))
	prog := newProgress(stderr, s.quiet, tensorBytes(tensors), "densify")
	err = pipeline(len(tensors), s.jobs, s.mem, func(i int) int64 { return costs[i] }, func(i int) (outcome, error) {
		t := tensors[i]
		if name, ok := strings.CutSuffix(t.Name, ".B"); ok && pairs[name] {
			return outcome{write: func(*safetensors.Writer) error { return nil }}, nil
		}
		name, ok := strings.CutSuffix(t.Name, ".A")
		if !ok || !pairs[name] {
			if dt := outOf(t.Name, t.DType, false); dt != t.DType {
				return convertOutcome(f, t, dt)
			}
			return copyOutcome(f, t), nil
		}
		b, _ := f.Tensor(name + ".B")
		own := pairDType(t.DType, b.DType)
		dt := outOf(name, own, true)
		if computesIn64(own, dt) {
			return densifyOne[float64](f, name, own, dt)
		}
		return densifyOne[float32](f, name, own, dt)
	}, func(i int, o outcome) error {
		if err := o.write(w); err != nil {
			return err
		}
		if o.row.Name != "" {
			rows = append(rows, o.row)
		}
		prog.step(tensors[i].Name, tensors[i].Size())
		return nil
	})
	prog.done()
	if err != nil {
		return err
	}
	md := map[string]string{}
	for k, v := range f.Metadata() {
		if k != metaKey {
			md[k] = v
		}
	}
	w.SetMetadata(md)
	if err := w.Close(); err != nil {
		return err
	}
	if err := out.commit(); err != nil {
		return err
	}
	return finish(stdout, s, reportFile{Command: "densify", Inputs: []string{f.Path()}, Output: s.output, Tensors: rows})
}

// densifyPieceBytes bounds the piece of a product densify computes at a
// time: its values, and their encoding for the writer.
const densifyPieceBytes = 12 << 20

// densifyDTypes returns, for densify, the dtype a tensor of f is written
// in: for a factor pair NAME (pair) or a tensor factorize kept dense, the
// --dtype asked (want: a dtype, "keep" or "" for auto); with auto, the
// source dtype f's lowrank metadata records for it (factorize --dtype),
// else its own; other tensors keep theirs. A recorded source dtype that is
// not a float dtype is an error naming the tensor; metadata that is not
// lowrank's JSON is noted on stderr and not used.
func densifyDTypes(f source, want string, stderr io.Writer, quiet bool) (func(name string, own safetensors.DType, pair bool) safetensors.DType, error) {
	var md *model.Metadata
	if raw, ok := f.Metadata()[metaKey]; ok {
		var err error
		if md, err = model.ParseMetadata(raw); err != nil {
			md = nil
			if !quiet && want == "" {
				fmt.Fprintf(stderr, "lowrank: note: %s: %s; every tensor is written in its factors' dtype (or use --dtype)\n", f.Path(), esc(strip(err)))
			}
		}
	}
	if md != nil && want == "" {
		check := func(name, dt string) error {
			switch safetensors.DType(dt) {
			case safetensors.F16, safetensors.BF16, safetensors.F32, safetensors.F64:
				return nil
			}
			return tensorErr(f.Path(), name, "the %q metadata records source dtype %q; expected F16, BF16, F32 or F64 (or give --dtype)", metaKey, dt)
		}
		for name, r := range md.Tensors {
			if r.SourceDType != "" {
				if err := check(name, r.SourceDType); err != nil {
					return nil, err
				}
			}
		}
		for name, dt := range md.DenseSource {
			if err := check(name, dt); err != nil {
				return nil, err
			}
		}
	}
	return func(name string, own safetensors.DType, pair bool) safetensors.DType {
		if !pair {
			t, _ := f.Tensor(name)
			kept := false
			if md != nil {
				_, kept = md.Dense[name]
			}
			if _, _, ok := t.Matrix(); !ok || !kept {
				return own // copied as it is
			}
		}
		switch {
		case want == "keep":
			return own
		case want != "":
			return safetensors.DType(want)
		case md == nil:
			return own
		case pair:
			if r, ok := md.Tensors[name]; ok && r.SourceDType != "" && r.DType == string(own) {
				return safetensors.DType(r.SourceDType)
			}
		case md.DenseSource[name] != "":
			return safetensors.DType(md.DenseSource[name])
		}
		return own
	}, nil
}

// densifyOne reads the factors of tensor name (stored as own) and returns
// how to write their product in dtype dt: streamed in pieces of whole
// rows (or of one row, when a row is larger than a piece), so that memory
// holds A, B and one piece whatever the product's size.
func densifyOne[T lowrank.Float](f source, name string, own, dt safetensors.DType) (outcome, error) {
	A, err := readMatrix[T](f, name+".A")
	if err != nil {
		return outcome{}, err
	}
	B, err := readMatrix[T](f, name+".B")
	if err != nil {
		return outcome{}, err
	}
	ops := operands{"W": {f.Path(), name}, "A": {f.Path(), name + ".A"}, "B": {f.Path(), name + ".B"}}
	if _, err := lowrank.NewFactors(B, A); err != nil { // shapes, and NaN/Inf in A or B
		return outcome{}, ops.fault(err)
	}
	d, r, k := B.Rows, A.Rows, A.Cols
	n := int64(d) * int64(k)
	o := outcome{row: row{Name: name, Shape: []int{d, k}, DType: string(dt), SourceDType: string(own), Status: stMerged, Rank: r, listed: true,
		ParamsBefore: int64(r) * int64(d+k), ParamsAfter: n,
		BytesAfter: n * int64(dt.Size())}}
	for _, x := range []string{name + ".A", name + ".B"} {
		ti, _ := f.Tensor(x)
		o.row.BytesBefore += ti.Size()
	}
	o.row.BytesSaved = o.row.BytesBefore - o.row.BytesAfter
	o.write = func(w *safetensors.Writer) error {
		st, err := w.BeginFloats(name, dt, []int{d, k})
		if err != nil {
			return err
		}
		var z T
		piece := int(densifyPieceBytes / int64(unsafe.Sizeof(z)+8)) // values, and their encoding
		buf := make([]T, min(int64(piece), n))
		put := func(c []T, i, j int) error {
			if cmdContext.Err() != nil {
				return errInterrupted
			}
			if x, ok := quantize(c, dt); !ok || firstNonFinite(c) >= 0 {
				if x < 0 {
					x = firstNonFinite(c)
				}
				e := int64(i)*int64(k) + int64(j) + int64(x)
				return tensorErr(f.Path(), name, "element [%d, %d] of B·A is outside the range of %s; expected finite values: write it in a wider dtype with --dtype f32 (or --dtype keep for the factors' %s)", e/int64(k), e%int64(k), dt, own)
			}
			switch v := any(c).(type) {
			case []float32:
				return st.Write32(v)
			case []float64:
				return st.Write64(v)
			}
			return nil
		}
		for i := 0; i < d; {
			if k <= piece {
				rows := min(piece/k, d-i)
				c := buf[:rows*k]
				bi := lowrank.Matrix[T]{Rows: rows, Cols: r, Data: B.Data[i*r : (i+rows)*r]}
				if err := productInto(c, bi, A, ops); err != nil {
					return err
				}
				if err := put(c, i, 0); err != nil {
					return err
				}
				i += rows
				continue
			}
			// One row is larger than a piece: columns j… of it, from a copy
			// of A's columns j… (r×span, so that copy and piece fit together).
			bi := lowrank.Matrix[T]{Rows: 1, Cols: r, Data: B.Data[i*r : (i+1)*r]}
			step := max(1, piece/(r+1))
			for j := 0; j < k; j += step {
				span := min(step, k-j)
				c := buf[:span]
				aj := lowrank.Matrix[T]{Rows: r, Cols: span, Data: make([]T, r*span)}
				for l := range r {
					copy(aj.Data[l*span:(l+1)*span], A.Data[l*k+j:l*k+j+span])
				}
				if err := productInto(c, bi, aj, ops); err != nil {
					return err
				}
				if err := put(c, i, j); err != nil {
					return err
				}
			}
			i++
		}
		return st.End()
	}
	return o, nil
}

// productCost is the memory of W (d×k) + B (d×r)·A (r×k) in elements of es
// bytes.
func productCost(es int64, d, k, r int) int64 {
	return add(mul(es, d, k), mul(es, r, d), mul(es, r, k))
}

// memErr refuses a tensor whose work does not fit the budget.
func memErr(file, tensor string, d, k int, need int64, what string, b *budget) error {
	return tensorErr(file, tensor, "%d×%d needs about %s to %s but %s leaves %s for tensors; expected a larger --max-memory",
		d, k, humanBytes(need), what, b.source, humanBytes(b.avail))
}

// convertOutcome writes the 2-D tensor t converted to dtype dt (densify:
// a tensor factorize kept dense in another dtype than its source's).
func convertOutcome(f source, t safetensors.TensorInfo, dt safetensors.DType) (outcome, error) {
	if computesIn64(t.DType, dt) {
		return convertOne[float64](f, t, dt)
	}
	return convertOne[float32](f, t, dt)
}

func convertOne[T lowrank.Float](f source, t safetensors.TensorInfo, dt safetensors.DType) (outcome, error) {
	W, err := readMatrix[T](f, t.Name)
	if err != nil {
		return outcome{}, err
	}
	if i, ok := quantize(W.Data, dt); !ok || firstNonFinite(W.Data) >= 0 {
		if i < 0 {
			i = firstNonFinite(W.Data)
		}
		return outcome{}, tensorErr(f.Path(), t.Name, "element [%d, %d] is outside the range of %s; expected finite values (or another --dtype)", i/W.Cols, i%W.Cols, dt)
	}
	n := int64(t.NumElements())
	o := outcome{row: row{Name: t.Name, Shape: t.Shape, DType: string(dt), SourceDType: string(t.DType), Status: stDense + ": converted to " + string(dt), listed: true,
		ParamsBefore: n, ParamsAfter: n, BytesBefore: t.Size(), BytesAfter: n * int64(dt.Size())}}
	o.row.BytesSaved = o.row.BytesBefore - o.row.BytesAfter
	o.write = func(w *safetensors.Writer) error { return writeMatrix(w, t.Name, dt, W) }
	return o, nil
}

// tensorBytes is the size of the data of ts, what the progress bar counts.
func tensorBytes(ts []safetensors.TensorInfo) int64 {
	var n int64
	for _, t := range ts {
		n += t.Size()
	}
	return n
}

// byOutSize returns ts ordered by decreasing size of the element each is
// written in (out), the input's order kept within a size, so that every
// tensor's data is aligned in the output (safetensors.Writer).
func byOutSize(ts []safetensors.TensorInfo, out func(safetensors.TensorInfo) safetensors.DType) []safetensors.TensorInfo {
	ts = slices.Clone(ts)
	sort.SliceStable(ts, func(i, j int) bool { return out(ts[i]).Size() > out(ts[j]).Size() })
	return ts
}

// pairDType is the dtype the product of factors A and B is written in by
// default: theirs, or when they differ (a file factorize did not write),
// the wider one, F32 for F16 beside BF16, so that neither loses precision.
func pairDType(a, b safetensors.DType) safetensors.DType {
	switch {
	case a == b:
		return a
	case a.Bits() == b.Bits():
		return safetensors.F32
	case a.Bits() > b.Bits():
		return a
	}
	return b
}
