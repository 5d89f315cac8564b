package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// negligible is the threshold below which a change is not extracted:
// ‖tuned − base‖_F ≤ negligible·‖tuned‖_F.
const negligible = 1e-6

// maxCompareBytes bounds the tensors extract compares byte for byte only
// to warn that a change cannot go into the adapter.
const maxCompareBytes = 64 << 20

// adapterMeta is stored under metaKey in the adapter's safetensors file.
type adapterMeta struct {
	Version int    `json:"version"`
	Policy  string `json:"policy"`
	Split   string `json:"split"`
	Format  string `json:"format"`
	// KohyaPrefix is --kohya-prefix, for merge to map the names back.
	KohyaPrefix string                `json:"kohya_prefix,omitempty"`
	Modules     map[string]tensorMeta `json:"modules"`
}

func runExtract(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("extract", "extract --base BASE.safetensors --tuned TUNED.safetensors -o ADAPTER_DIR [--rank N | --energy E | --tol T | --ratio R] [flags]", stderr)
	base := fs.String("base", "", "the base model: a `FILE`.safetensors, a model folder (shards and their index) or an index file")
	tuned := fs.String("tuned", "", "the fine-tuned model: a `FILE`.safetensors, a model folder or an index file")
	format := fs.String("format", "peft", "adapter format: peft (a folder) or kohya (one .safetensors file)")
	prefix := fs.String("kohya-prefix", "lora", "with --format kohya, the `PREFIX` of LoRA names (kohya uses lora_unet, lora_te, …); a full Stable Diffusion checkpoint's text encoders are named lora_te (SDXL: lora_te1) whatever it is, and a UNet's modules (model.diffusion_model., down_blocks, input_blocks, …) lora_unet unless it is given")
	baseName := fs.String("base-model", "", "base_model_name_or_path written to adapter_config.json (the base's Hugging Face `NAME` or path)")
	fanIn := fs.Bool("fan-in-fan-out", false, "the base stores its 2-D weights in × out (transformers' Conv1D: GPT-2, OpenAI GPT): write the PEFT adapter as PEFT expects then (lora_A r × in, lora_B out × r, fan_in_fan_out true); default: on when the base's config.json says model_type gpt2 or openai-gpt")
	taskType := fs.String("task-type", "", "task_type written to adapter_config.json: one of "+strings.Join(peftTaskTypes, ", ")+" (default: null)")
	rf := addRankFlags(fs, "sqrt", "how S is shared: sqrt (B = U·√S, A = √S·Vᵀ, balanced, the default) or us")
	devSpec := addDevicesFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("extract: unexpected arguments %q; expected --base, --tuned and -o", pos)
	}
	prefixGiven := false // --kohya-prefix given: a full checkpoint's UNet keeps it
	fanInGiven := false
	fs.Visit(func(f *flag.Flag) {
		prefixGiven = prefixGiven || f.Name == "kohya-prefix"
		fanInGiven = fanInGiven || f.Name == "fan-in-fan-out"
	})
	var usedPrefixes []string // the kohya prefixes written, recorded for merge
	if *base == "" || *tuned == "" {
		return usagef("extract: expected --base BASE.safetensors and --tuned TUNED.safetensors")
	}
	kohya := false
	switch strings.ToLower(*format) {
	case "peft":
	case "kohya":
		kohya = true
		if *prefix == "" || strings.Contains(*prefix, ",") {
			return usagef("extract: --kohya-prefix %q; expected one prefix such as lora, lora_unet or lora_te (not empty, no comma)", *prefix)
		}
	default:
		return usagef("extract: --format %q; expected peft or kohya", *format)
	}
	if *taskType != "" && !slices.Contains(peftTaskTypes, *taskType) {
		return usagef("extract: --task-type %q; expected one of PEFT's task types %s", *taskType, strings.Join(peftTaskTypes, ", "))
	}
	s, err := rf.settings("extract")
	if err != nil {
		return err
	}
	if err := checkDevicesFlags("extract", fs, *devSpec); err != nil { // devices.go
		return err
	}
	s.conv = true
	switch {
	case s.output == "":
		return usagef("extract: no output given; expected -o ADAPTER_DIR (or -o FILE.safetensors with --format kohya)")
	case !kohya && strings.EqualFold(filepath.Ext(s.output), ".safetensors"):
		return usagef("extract: -o %q: a PEFT adapter is a folder (adapter_config.json and adapter_model.safetensors); expected a folder path, or --format kohya for one .safetensors file", s.output)
	case kohya && *taskType != "":
		return usagef("extract: --task-type is written to adapter_config.json, which --format kohya does not write")
	case kohya && *baseName != "":
		return usagef("extract: --base-model is written to adapter_config.json, which --format kohya does not write")
	case kohya && *fanIn:
		return usagef("extract: --fan-in-fan-out is PEFT's layout for in × out weights; expected --format peft (kohya files hold out × in weights)")
	}
	outs := newOutputSet(s.force, *base, *tuned)
	var out *output
	if kohya {
		out = outs.file(s.output, "the output")
	} else {
		out = outs.folder(s.output, "extract", peftConfigName, peftWeightsName)
	}
	s.addReport(outs)
	if err := ready("extract", s, outs); err != nil {
		return err
	}
	defer outs.abort()
	if s.mem, err = newBudget(s.maxMemory); err != nil {
		return err
	}
	defer s.mem.restore()
	fb, err := s.mem.openModel(*base)
	if err != nil {
		return err
	}
	defer fb.Close()
	ft, err := s.mem.openModel(*tuned)
	if err != nil {
		return err
	}
	defer ft.Close()
	if !kohya && !fanInGiven {
		// GPT-2's checkpoints store Conv1D weights in × out; PEFT then
		// expects fan_in_fan_out and its layout, and refuses the other.
		cfg := configBeside(fb)
		if c, err := readHFConfig(cfg); err == nil && conv1DModelTypes[c.modelType] {
			*fanIn = true
			if !s.quiet {
				fmt.Fprintf(stderr, "lowrank: note: %s says model_type %q, whose weights are stored in × out (Conv1D): the adapter is written with fan_in_fan_out true (--fan-in-fan-out=false to write it as out × in)\n", cfg, c.modelType)
			}
		}
	}

	// Plan: which tensors to extract, which to report.
	type item struct {
		t        safetensors.TensorInfo
		module   string
		extract  bool
		compare  bool // not extractable: only check whether it changed
		preRow   *row // decided without reading
		outDType safetensors.DType
		kind     moduleKind
	}
	var items []item
	common := 0
	for ti, t := range ft.Tensors() {
		if err := tick(ti); err != nil {
			return err
		}
		b, inBase := fb.Tensor(t.Name)
		skip := func(why string) {
			items = append(items, item{t: t, preRow: &row{Name: t.Name, Shape: t.Shape, SourceDType: string(t.DType), Status: stSkipped + ": " + why, listed: true}})
		}
		if !inBase {
			skip("only in " + *tuned)
			continue
		}
		common++
		if !s.selected(t) {
			if b.DType == t.DType && equalShape(b.Shape, t.Shape) && t.Size() <= maxCompareBytes {
				items = append(items, item{t: t, compare: true})
			}
			continue
		}
		if _, _, _, ok := model.WeightMatrix(b); !ok || !equalShape(b.Shape, t.Shape) {
			return fmt.Errorf("lowrank: %s: tensor %q is %s %s but %s has it as %s %s; expected equal shapes in base and tuned models",
				*tuned, t.Name, t.DType, shapeString(t.Shape), *base, b.DType, shapeString(b.Shape))
		}
		module, ok := moduleOf(t.Name)
		if !ok {
			skip("not a <module>.weight tensor; LoRA adapters hold module weights")
			continue
		}
		it := item{t: t, module: module, extract: true, outDType: s.outDType(t), kind: kindLinear}
		if _, _, kernel, _ := model.WeightMatrix(t); kernel != nil {
			it.kind = kindConv
		} else if !kohya && embeddingKind(t.Name) == "embedding" {
			it.kind = kindEmbedding
		} else if *fanIn {
			it.kind = kindConv1D
		}
		items = append(items, it)
	}
	for ti, b := range fb.Tensors() {
		if err := tick(ti); err != nil {
			return err
		}
		if _, ok := ft.Tensor(b.Name); !ok {
			items = append(items, item{t: b, preRow: &row{Name: b.Name, Shape: b.Shape, SourceDType: string(b.DType), Status: stSkipped + ": only in " + *base, listed: true}})
		}
	}
	if common == 0 && len(ft.Tensors()) > 0 && len(fb.Tensors()) > 0 {
		return fmt.Errorf("lowrank: %s: no tensor name in common with %s (it has %q, the base %q); expected the fine-tuned copy of the base, with the base's tensor names",
			*tuned, *base, ft.Tensors()[0].Name, fb.Tensors()[0].Name)
	}
	// Write by decreasing element size so that the data stays aligned.
	sort.SliceStable(items, func(i, j int) bool { return items[i].outDType.Bits() > items[j].outDType.Bits() })
	// kohya names must not collide.
	if kohya {
		seen := map[string]string{}
		for ti, it := range items {
			if err := tick(ti); err != nil {
				return err
			}
			if !it.extract {
				continue
			}
			k, used := kohyaOut(*prefix, prefixGiven, it.module)
			if !slices.Contains(usedPrefixes, used) {
				usedPrefixes = append(usedPrefixes, used)
			}
			if other, dup := seen[k]; dup {
				return fmt.Errorf("lowrank: %s: tensors %q and %q both map to kohya name %q; expected names that stay distinct when dots become underscores", *tuned, other, it.t.Name, k)
			}
			seen[k] = it.t.Name
		}
	}

	plans := make([]factorPlan, len(items))
	for i, it := range items {
		if err := tick(i); err != nil {
			return err
		}
		if s.mem.total == 0 {
			break
		}
		switch {
		case it.compare:
			plans[i].cost = 2 * it.t.Size()
		case it.extract:
			d, k, _, _ := model.WeightMatrix(it.t)
			es := elemBytes(it.t.DType, mustTensor(fb, it.t.Name).DType)
			p, err := planFactorize(s.mem, s, *tuned, it.t.Name, d, k, es, mul(es, d, k))
			if err != nil {
				return err
			}
			// Reading holds the base and the tuned tensor at once.
			p.cost = max(p.cost, mul(2*es, d, k))
			if !s.mem.fits(p.cost) {
				return tensorErr(*tuned, it.t.Name, "%d×%d needs about %s to read from both models but %s leaves %s for tensors; expected a larger --max-memory or --include to leave the tensor out",
					d, k, humanBytes(p.cost), s.mem.source, humanBytes(s.mem.avail))
			}
			plans[i] = p
		}
	}

	// Output: a folder (PEFT) or one file (kohya).
	wf, weights := out.file, s.output
	if !kohya {
		weights = filepath.Join(s.output, peftWeightsName)
		if wf, err = out.create(peftWeightsName); err != nil {
			return err
		}
	}
	w, err := safetensors.NewWriter(wf, weights, safetensors.WriterOptions{HeaderReserve: 64 << 10})
	if err != nil {
		return err
	}
	defer w.Abort()

	meta := adapterMeta{Version: 1, Policy: s.policy.String(), Split: s.split.String(), Format: strings.ToLower(*format), Modules: map[string]tensorMeta{}}
	if kohya {
		meta.KohyaPrefix = strings.Join(usedPrefixes, ",")
	}
	rows := make([]row, 0, len(items))
	var mods []peftModule
	var total int64
	for _, it := range items {
		if it.preRow == nil {
			total += it.t.Size()
		}
	}
	var devs *devicePool
	if *devSpec != "" {
		if devs, err = openDevices("extract", *devSpec, stderr); err != nil {
			return err
		}
		defer devs.close()
		s.jobs = len(devs.all)
	}
	prog := newProgress(stderr, s.quiet, total, "extract")
	err = pipeline(len(items), s.jobs, s.mem, func(i int) int64 { return plans[i].cost }, func(i int) (extracted, error) {
		it := items[i]
		switch {
		case it.preRow != nil:
			return extracted{row: *it.preRow}, nil
		case it.compare:
			return compareOnly(fb, ft, it.t)
		}
		run := func(plan factorPlan) (extracted, error) {
			if computesIn64(it.t.DType, mustTensor(fb, it.t.Name).DType) {
				return extractOne[float64](fb, ft, it.t, it.outDType, s, kohya, it.kind, plan)
			}
			return extractOne[float32](fb, ft, it.t, it.outDType, s, kohya, it.kind, plan)
		}
		if devs != nil { // --devices: on a free GPU (devices.go)
			return runOnDevice(devs, it.t.Name, func(b lowrank.Backend) (extracted, error) { return run(plans[i].on(b)) })
		}
		return run(plans[i])
	}, func(i int, e extracted) error {
		it := items[i]
		if e.note != "" && !s.quiet {
			fmt.Fprintln(stderr, e.note)
		}
		if e.row.Status == stAdapter {
			a, b, alpha := peftKey(it.module, "A"), peftKey(it.module, "B"), ""
			if it.kind == kindEmbedding {
				a, b = model.PEFTEmbeddingKey(it.module, "A"), model.PEFTEmbeddingKey(it.module, "B")
			}
			if kohya {
				k, _ := kohyaOut(*prefix, prefixGiven, it.module)
				a, b, alpha = k+".lora_down.weight", k+".lora_up.weight", k+".alpha"
			}
			if err := e.write(w, a, b, alpha); err != nil {
				return err
			}
			mods = append(mods, peftModule{name: it.module, rank: e.row.Rank})
			meta.Modules[it.module] = *e.meta
		}
		rows = append(rows, e.row)
		if it.preRow == nil {
			prog.step(e.row.Name, it.t.Size())
		}
		return nil
	})
	prog.done()
	if err != nil {
		return err
	}
	if len(mods) == 0 {
		return fmt.Errorf("lowrank: %s: no weight (2-D or conv)%s differs from %s by more than %g relative; no adapter written", *tuned, includeHint(s), *base, negligible)
	}
	mj, _ := json.Marshal(meta)
	w.SetMetadata(map[string]string{"format": "pt", metaKey: string(mj)})
	if err := w.Close(); err != nil {
		return err
	}
	if !kohya {
		cfg, err := peftConfigJSON(mods, *baseName, *taskType, *fanIn)
		if err != nil {
			return err
		}
		if err := out.writeFile(peftConfigName, cfg); err != nil {
			return err
		}
	}
	if err := out.commit(); err != nil {
		return err
	}
	return finish(stdout, s, reportFile{Command: "extract", Inputs: []string{*base, *tuned}, Output: s.output, Policy: s.policy.String(), Tensors: rows})
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mustTensor(f source, name string) safetensors.TensorInfo {
	t, _ := f.Tensor(name)
	return t
}

// extracted is the outcome of one tensor of extract.
type extracted struct {
	row  row
	meta *tensorMeta
	// write writes lora A (down) and B (up) under the given keys, and
	// kohya's alpha when alphaKey is not "".
	write func(w *safetensors.Writer, aKey, bKey, alphaKey string) error
	note  string // shown on stderr (a rank above min(d,k) lowered)
}

// compareOnly reports a tensor that cannot go into the adapter (not a
// selected 2-D matrix) when it nevertheless changed.
func compareOnly(fb, ft source, t safetensors.TensorInfo) (extracted, error) {
	a, err := fb.ReadRaw(t.Name)
	if err != nil {
		return extracted{}, err
	}
	b, err := ft.ReadRaw(t.Name)
	if err != nil {
		return extracted{}, err
	}
	r := row{Name: t.Name, Shape: t.Shape, SourceDType: string(t.DType), Status: stSkipped + ": unchanged"}
	if !bytes.Equal(a, b) {
		r.Status = stSkipped + ": CHANGED but not a selected weight (a 2-D matrix or a 4-D conv), so not in the adapter"
		r.listed = true
	}
	return extracted{row: r}, nil
}

// moduleKind is how extract writes a module: a Linear's B (d×r) and A
// (r×k); a Conv2d's lora_up (out × r × 1 × 1) and lora_down (r × in × k_h
// × k_w), from the factors of its out × in·k_h·k_w matrix; an
// Embedding's lora_embedding_B (hidden × r) and lora_embedding_A (r ×
// vocab), PEFT's layout of the change (B·A)ᵀ to the vocab × hidden table.
type moduleKind int

const (
	kindLinear moduleKind = iota
	kindConv
	kindEmbedding
	kindConv1D // a weight stored in × out (--fan-in-fan-out)
)

// conv1DModelTypes are the config.json model types whose checkpoints
// store their linear weights in × out (transformers' Conv1D).
var conv1DModelTypes = map[string]bool{"gpt2": true, "openai-gpt": true}

// extractOne computes the low-rank factors of ΔW = tuned − base for one
// tensor (a conv weight as its out × in·k_h·k_w matrix).
func extractOne[T lowrank.Float](fb, ft source, t safetensors.TensorInfo, out safetensors.DType, s *settings, kohya bool, kind moduleKind, plan factorPlan) (extracted, error) {
	Wb, err := readMatrix[T](fb, t.Name)
	if err != nil {
		return extracted{}, err
	}
	D, err := readMatrix[T](ft, t.Name)
	if err != nil {
		return extracted{}, err
	}
	d, k := D.Rows, D.Cols
	normTuned, err := D.Norm() // also the check of tuned
	if err != nil {
		return extracted{}, tensorFault(err, ft.Path(), t.Name)
	}
	for i := range D.Data {
		D.Data[i] -= Wb.Data[i]
	}
	normDelta, err := D.Norm()
	if err != nil {
		// tuned is finite: the NaN or ±Inf of ΔW is base's, or an
		// overflow of tuned − base, which Factorize reports below.
		if _, err := Wb.Norm(); err != nil {
			return extracted{}, tensorFault(err, fb.Path(), t.Name)
		}
		normDelta = math.Inf(1)
	}
	Wb = lowrank.Matrix[T]{}
	e := extracted{row: row{Name: t.Name, Shape: t.Shape, SourceDType: string(t.DType), listed: true}}
	if normDelta == 0 || normDelta <= negligible*normTuned {
		e.row.Status = fmt.Sprintf("%s: unchanged (‖ΔW‖ ≤ %g·‖W‖)", stSkipped, negligible)
		e.row.listed = normDelta != 0
		return e, nil
	}
	e.row.ParamsBefore, e.row.BytesBefore = int64(d)*int64(k), t.Size()
	policy := s.policy
	if fixedRank(s) > min(d, k) {
		// kohya's extract script does the same: rank min(d,k) is the
		// whole ΔW (a classifier head 2×768 under --rank 8).
		policy = lowrank.Rank(min(d, k))
		e.note = fmt.Sprintf("lowrank: note: %s is %d×%d: --rank %d is above min(d,k) = %d, so its adapter has rank %d (the whole ΔW)",
			esc(t.Name), d, k, fixedRank(s), min(d, k), min(d, k))
	}
	fac, err := lowrank.FactorizeContext(cmdContext, D, policy, append(s.opts[:len(s.opts):len(s.opts)], plan.opts...)...)
	if plan.capped(s, err) {
		return extracted{}, tensorErr(ft.Path(), t.Name, "ΔW (%d×%d): %s", d, k, budgetErr(s, plan))
	}
	if err != nil {
		hint := ""
		if errors.Is(err, lowrank.ErrRank) || errors.Is(err, lowrank.ErrPolicy) {
			hint = "; leave it out with --include or --exclude, or choose a smaller rank"
		}
		return extracted{}, tensorErr(ft.Path(), t.Name, "ΔW (%d×%d): %s%s", d, k, strip(err), hint)
	}
	r := fac.Rank
	A, B := fac.A, fac.B
	alpha := float64(r)
	if kohya && narrower[float64](out) {
		// kohya stores alpha in the adapter's dtype; fold any rounding of
		// r into B so that (alpha/r)·B·A stays ΔW.
		v := []float64{alpha}
		quantize(v, out)
		if v[0] != alpha {
			for i := range B.Data {
				B.Data[i] *= T(alpha / v[0])
			}
			alpha = v[0]
		}
	}
	rel := fac.RelError
	if narrower[T](out) {
		if i, ok := quantize(B.Data, out); !ok {
			return extracted{}, tensorErr(ft.Path(), t.Name, "factor B[%d, %d] exceeds the range of %s; expected --dtype f32 (or bf16)", i/r, i%r, out)
		}
		if i, ok := quantize(A.Data, out); !ok {
			return extracted{}, tensorErr(ft.Path(), t.Name, "factor A[%d, %d] exceeds the range of %s; expected --dtype f32 (or bf16)", i/k, i%k, out)
		}
		scaled := B
		if alpha != float64(r) {
			scaled = lowrank.Matrix[T]{Rows: d, Cols: r, Data: make([]T, len(B.Data))}
			for i, v := range B.Data {
				scaled.Data[i] = v * T(alpha/float64(r))
			}
		}
		sf := fac
		if alpha != float64(r) {
			if sf, err = lowrank.NewFactors(scaled, A); err != nil {
				return extracted{}, tensorFault(err, ft.Path(), t.Name)
			}
			sf.Backend = fac.Backend
		}
		if rel, err = relResidual(D, sf, fac.Norm); err != nil {
			return extracted{}, tensorFault(err, ft.Path(), t.Name)
		}
	}
	e.meta = recordFactors(&e.row, stAdapter, fac, rel, out)
	e.row.DType = string(out)
	// What the adapter holds for the module: its factors (and kohya's alpha).
	var aShape, bShape []int
	switch kind {
	case kindConv: // lora_down r × in × k_h × k_w, lora_up out × r × 1 × 1
		aShape = append([]int{r}, t.Shape[1:]...)
		bShape = []int{d, r, 1, 1}
	case kindEmbedding, kindConv1D:
		// ΔE = B·A (vocab × hidden), or ΔW stored in × out, is PEFT's
		// (B'·A')ᵀ: A' = Bᵀ, B' = Aᵀ.
		A, B = B.Transpose(), A.Transpose()
	}
	if kohya {
		e.row.ParamsAfter++
		e.row.BytesAfter += int64(out.Size())
		e.row.BytesSaved = e.row.BytesBefore - e.row.BytesAfter
	}
	e.write = func(w *safetensors.Writer, aKey, bKey, alphaKey string) error {
		if alphaKey != "" {
			if err := w.WriteFloat64(alphaKey, out, []int{}, []float64{alpha}); err != nil {
				return err
			}
		}
		if err := writeMatrix(w, aKey, out, A, aShape...); err != nil {
			return err
		}
		return writeMatrix(w, bKey, out, B, bShape...)
	}
	return e, nil
}

// fixedRank returns N of a --rank N policy (0 for the others).
func fixedRank(s *settings) int {
	r, ok := strings.CutPrefix(s.policy.String(), "rank=")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(r)
	return n
}
