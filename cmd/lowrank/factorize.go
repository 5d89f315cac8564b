package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// metaKey is the __metadata__ key under which factorize records, as one
// JSON string, the rank and error of every factorized tensor.
const metaKey = "lowrank"

// factMeta is the JSON model.Writer stores under metaKey, for the least
// size of the output's header (checkHeader) before anything is written.
type factMeta struct {
	Version int                   `json:"version"`
	Policy  string                `json:"policy"`
	Split   string                `json:"split"`
	Tensors map[string]tensorMeta `json:"tensors"`
	// Calibration is the base name of the --calibration file, if any.
	Calibration string `json:"calibration,omitempty"`
	// Dense lists the selected tensors kept dense, with the reason.
	Dense map[string]string `json:"dense,omitempty"`
}

// tensorMeta is what the metadata records of one factorized tensor (or
// extracted module).
type tensorMeta = model.Record

// outcome is what the pipeline computed for one tensor: its report row and
// how to write it.
type outcome struct {
	row   row
	write func(w *safetensors.Writer) error
	// free, when set, gives the buffers write no longer needs to the
	// pool (pool.go); pipeline calls it once the outcome is written.
	free func()
}

func (o outcome) recycle() {
	if o.free != nil {
		o.free()
	}
}

func runFactorize(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("factorize", "factorize IN -o OUT [--rank N | --energy E | --tol T | --ratio R] [flags]\n\nIN is a .safetensors file (OUT: a file) or a model folder (OUT: a folder): model.safetensors,\nor shards with model.safetensors.index.json (diffusers' diffusion_pytorch_model names too),\nor such an index file", stderr)
	rf := addRankFlags(fs, "us", "how S is shared: us (B = U·S, A = Vᵀ) or sqrt (B = U·√S, A = √S·Vᵀ)")
	calPath := fs.String("calibration", "", "safetensors `FILE` of input statistics: for each weight, a tensor of its name holding the k×k second moment XᵀX/n of its inputs (and NAME.input_mean, their mean), as scripts/collect_stats.py writes; those weights are factorized for their outputs, the others with plain SVD")
	ff := addFolderFlags(fs)
	devSpec := addDevicesFlag(fs)
	minSaving := fs.Float64("min-saving", 0.1, "keep a tensor dense unless its factors save at least the fraction `F` of its parameters (0: whenever they save any)")
	refactorize := fs.Bool("force-refactorize", false, "factorize tensors that already are factors lowrank factorize wrote (NAME.A, NAME.B), which is refused by default")
	dryRun := fs.Bool("dry-run", false, "print the plan (rank, error from the real SVD, bytes saved, memory needed per tensor) and write nothing; -o is then optional")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("factorize: expected one input (a file or a model folder), got %d arguments %q%s", len(pos), pos, shardsHint(pos))
	}
	s, err := rf.settings("factorize")
	if err != nil {
		return err
	}
	fsx, err := ff.settings("factorize", os.Getenv)
	if err != nil {
		return err
	}
	if err := checkDevicesFlags("factorize", fs, *devSpec); err != nil { // devices.go
		return err
	}
	if !(*minSaving >= 0 && *minSaving < 1) {
		return usagef("factorize: --min-saving %v; expected a fraction in [0, 1)", *minSaving)
	}
	s.minSaving, s.dryRun = *minSaving, *dryRun
	if s.output == "" && !s.dryRun {
		return usagef("factorize: no output given; expected -o PATH (or --dry-run)")
	}
	in := pos[0]
	folderOut := isFolderModel(in) || fsx.maxShardGiven || fsx.distributed()
	if fsx.resume && !folderOut {
		return usagef("factorize: --resume with a single-file output; expected a folder output (a model folder as input, or --max-shard-size)")
	}
	inputs := []string{in}
	if *calPath != "" {
		inputs = append(inputs, *calPath) // no output may be it
	}
	outs := newOutputSet(s.force, inputs...)
	var out *output
	if folderOut && !s.dryRun {
		out = outs.modelFolder(s.output, "factorize")
	} else if !s.dryRun {
		out = outs.file(s.output, "the output")
	}
	s.addReport(outs)
	if err := ready("factorize", s, outs); err != nil {
		return err
	}
	defer outs.abort()
	if s.mem, err = newBudget(s.maxMemory); err != nil {
		return err
	}
	defer s.mem.restore()
	f, err := s.mem.openModel(in)
	if err != nil {
		return err
	}
	defer f.Close()
	if !s.dryRun {
		prewarm(s.mem, f.Size())
	}
	if *calPath != "" {
		if err := calibrationPathErr(*calPath); err != nil {
			return err
		}
		cf, err := s.mem.open(*calPath)
		if err != nil {
			return err
		}
		defer cf.Close()
		s.calib = newCalibration(cf)
	}

	// Write tensors by decreasing element size, keeping the file's order
	// within a size, so that every tensor's data stays aligned (a folder
	// output does so within each shard: layout.go).
	type item struct {
		t    safetensors.TensorInfo
		sel  bool
		out  safetensors.DType
		keep string // why a selected tensor is kept dense without an SVD (embeddings)
	}
	items := make([]item, 0, len(f.Tensors()))
	nsel := 0
	for ti, t := range f.Tensors() {
		if err := tick(ti); err != nil {
			return err
		}
		it := item{t: t, out: t.DType}
		if s.selected(t) {
			it.sel, it.out = true, s.outDType(t)
			nsel++
		}
		items = append(items, it)
	}
	if nsel == 0 {
		return fmt.Errorf("lowrank: %s: no tensor to factorize; expected 2-D F16, BF16, F32 or F64 tensors%s", in, includeHint(s))
	}
	if err := checkRefactorize(f, *refactorize, func(yield func(string) bool) {
		for _, it := range items {
			if it.sel && !yield(it.t.Name) {
				return
			}
		}
	}); err != nil {
		return err
	}
	// Embeddings and output heads stay dense unless --include names them.
	emb := newEmbeddings(f, func(msg string) {
		if !s.quiet {
			fmt.Fprintln(stderr, esc(msg))
		}
	})
	for i := range items {
		if it := &items[i]; it.sel && (s.include == nil || !s.include.MatchString(it.t.Name)) {
			it.keep = emb.reason(it.t)
		}
	}
	if err := checkNames(in, items, func(it item) (string, bool) { return it.t.Name, it.sel }); err != nil {
		return err
	}
	if !folderOut {
		sort.SliceStable(items, func(i, j int) bool { return items[i].out.Bits() > items[j].out.Bits() })
	}
	if s.calib != nil { // the statistics: checked before any work (calibration.go)
		if items, err = plan(s.calib, f, items, func(it item) (safetensors.TensorInfo, bool, safetensors.DType) {
			return it.t, it.sel && it.keep == "", it.out
		},
			func(t safetensors.TensorInfo) item { return item{t: t, out: t.DType} }); err != nil {
			return err
		}
	}
	// A folder output's layout: which shard each tensor goes to.
	var pitems []planItem
	var lay *layout
	if folderOut {
		pitems = make([]planItem, len(items))
		for i, it := range items {
			pi := planItem{name: it.t.Name, bound: it.t.Size(), bits: it.out.Bits(), work: ioWork(it.t.Size())}
			switch {
			case it.sel && it.keep != "": // kept dense (an embedding), in the output dtype
				d, k, _ := it.t.Matrix()
				pi.bound = mul(int64(it.out.Size()), d, k)
			case it.sel:
				d, k, _ := it.t.Matrix()
				pi.bound = mul(int64(it.out.Size()), outputElements(s, d, k))
				l := 0
				if r, ok := strings.CutPrefix(s.policy.String(), "rank="); ok && s.method != lowrank.Exact {
					l, _ = strconv.Atoi(r)
					l += s.oversample
				}
				pi.work = factorizeWork(d, k, l, s.powerIters, add(it.t.Size(), pi.bound))
			}
			pi.group = s.calib != nil && s.calib.biases[it.t.Name] != nil
			pitems[i] = pi
		}
		lay = planLayout(pitems, fsx.maxShard)
	}
	// The output's header must stay within the format's limit: check its
	// least possible size now rather than after the work (for a folder,
	// each shard's). A selected tensor becomes NAME.A and NAME.B (rank 1
	// at the least) with an entry in the lowrank metadata, or stays dense
	// with a reason there.
	floorMeta := map[string]string{}
	for k, v := range f.Metadata() {
		floorMeta[k] = v
	}
	fj, _ := json.Marshal(factMeta{Version: 1, Policy: s.policy.String(), Split: s.split.String()})
	floorMeta[metaKey] = string(fj)
	headerFloor := func(idx []int) ([]safetensors.TensorInfo, int, error) {
		copied := make([]safetensors.TensorInfo, 0, len(idx))
		extra := 0
		for ti, i := range idx {
			if err := tick(ti); err != nil {
				return nil, 0, err
			}
			t := items[i].t
			if !items[i].sel {
				copied = append(copied, safetensors.TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape})
				continue
			}
			d, k, _ := t.Matrix()
			fac := 2 + safetensors.EntryLen(safetensors.TensorInfo{Name: t.Name + ".A", DType: items[i].out, Shape: []int{1, k}}) +
				safetensors.EntryLen(safetensors.TensorInfo{Name: t.Name + ".B", DType: items[i].out, Shape: []int{d, 1}}) +
				metaEntryLen(t.Name, tensorMeta{Shape: t.Shape, Rank: 1, DType: string(items[i].out)})
			dense := 1 + safetensors.EntryLen(safetensors.TensorInfo{Name: t.Name, DType: items[i].out, Shape: t.Shape}) + metaEntryLen(t.Name, shortestReason(s, d, k))
			extra += min(fac, dense)
		}
		return copied, extra, nil
	}
	var headers int64
	groups := [][]int{make([]int, len(items))}
	for i := range items {
		groups[0][i] = i
	}
	if lay != nil {
		groups = groups[:0]
		for _, se := range lay.shards {
			groups = append(groups, lay.order[se[0]:se[1]])
		}
	}
	for g, idx := range groups {
		copied, extra, err := headerFloor(idx)
		if err != nil {
			return err
		}
		name := s.output
		if lay != nil {
			name = filepath.Join(s.output, lay.shardNames(f.Prefix(), true)[g])
		}
		if err := checkHeader(in, name, floorMeta, copied, extra); err != nil && !s.dryRun {
			return err
		}
		headers = add(headers, int64(safetensors.HeaderLen(floorMeta, copied)+extra))
	}
	// And its data the free space of its file system: the copied tensors,
	// and each selected one as the smaller of its factors at the least
	// rank the policy allows (--rank N: N, else 1) and its dense self.
	least := 1
	if r, ok := strings.CutPrefix(s.policy.String(), "rank="); ok {
		least, _ = strconv.Atoi(r)
	}
	var need int64
	for _, it := range items {
		if !it.sel {
			need = add(need, it.t.Size())
			continue
		}
		d, k, _ := it.t.Matrix()
		need = add(need, mul(int64(it.out.Size()), min(d*k, least*(d+k))))
	}
	if s.dryRun { // nothing is written
	} else if err := checkDisk(s.output, add(need, headers)); err != nil {
		return err
	}
	plans := make([]factorPlan, len(items))
	for i, it := range items {
		if err := tick(i); err != nil {
			return err
		}
		if !it.sel || it.keep != "" || (s.mem.total == 0 && !s.dryRun) {
			continue
		}
		d, k, _ := it.t.Matrix()
		es := elemBytes(it.t.DType)
		held := mul(es, d, k)
		var extra []lowrank.Option
		if s.calib != nil && s.calib.has[it.t.Name] { // C and μ, counted with the tensor
			held = add(held, calibrationBytes(k)+mul(8, k))
			extra = append(extra, shapeOnly(k))
		}
		if plans[i], err = planFactorize(s.mem, s, in, it.t.Name, d, k, es, held, extra...); err != nil {
			return err
		}
	}

	// The file is written as the model package writes factorized models:
	// NAME.A and NAME.B, tensors kept dense, the lowrank metadata; the
	// records of factors copied from a factorized input are kept.
	mo := model.WriterOptions{Policy: s.policy.String(), Split: s.split.String(), Metadata: f.Metadata()}
	if s.calib != nil {
		mo.Calibration = filepath.Base(s.calib.f.Path())
	}
	var devs *devicePool
	if *devSpec != "" {
		if devs, err = openDevices("factorize", *devSpec, stderr); err != nil {
			return err
		}
		defer devs.close()
		s.jobs = len(devs.all)
		if !s.quiet {
			defer func() { fmt.Fprintf(stderr, "lowrank: --devices: tensors factorized per device: %s\n", devs.summary()) }()
		}
	}
	var mw *model.Writer // the file's, or the shard's being written
	curMW := func() *model.Writer { return mw }
	sel := make(map[string]bool, nsel)
	for _, it := range items {
		if it.sel {
			sel[it.t.Name] = true
		}
	}
	// factorizes: item i is read and factorized (not a bias for the
	// calibration, a tensor copied as it is, or one kept dense unread).
	factorizes := func(it item) bool {
		return !(s.calib != nil && s.calib.biases[it.t.Name] != nil) && it.sel && it.keep == ""
	}
	compute := func(i int, in readTensor) (outcome, error) {
		it := items[i]
		var o outcome
		var err error
		run := func(plan factorPlan) (outcome, error) {
			if computesIn64(it.t.DType) {
				return factorizeRead(f, it.t, in.w64, it.out, s, plan, curMW)
			}
			return factorizeRead(f, it.t, in.w32, it.out, s, plan, curMW)
		}
		switch {
		case s.calib != nil && s.calib.biases[it.t.Name] != nil:
			o, err = biasOutcome(f, it.t, s.calib.biases[it.t.Name])
		case !it.sel:
			o = copyOutcome(f, it.t)
		case it.keep != "":
			o, err = keepOutcome(f, it.t, it.out, it.keep, s.mem, curMW)
		case devs != nil: // --devices: on a free GPU (devices.go)
			o, err = devs.run(it.t.Name, func(b lowrank.Backend) (outcome, error) { return run(plans[i].on(b)) })
		default:
			o, err = run(plans[i])
		}
		if err == nil && it.sel && (s.dryRun || s.mem.total > 0) {
			o.row.Memory = plans[i].cost
		}
		return o, err
	}
	// light: an item copied as it is (a bias, a norm), which takes no
	// place in the read-ahead window; one kept dense (an embedding) is
	// read and converted, and takes its place like a weight.
	light := func(i int) bool {
		it := items[i]
		return !it.sel || (s.calib != nil && s.calib.biases[it.t.Name] != nil)
	}
	// prepare is the pipeline's first stage: it reads (and converts) the
	// tensor of an item to factorize while the items before it compute.
	prepare := func(i int) (func() (outcome, error), error) {
		var in readTensor
		if it := items[i]; factorizes(it) {
			var err error
			if in, err = readTensorFrom(f, it.t, s.mem); err != nil {
				return nil, err
			}
		}
		return func() (outcome, error) { return compute(i, in) }, nil
	}
	var rows []row
	if folderOut && !s.dryRun {
		if _, ok := mo.Metadata["format"]; !ok {
			// transformers refuses a shard whose metadata lacks "format".
			md := map[string]string{"format": "pt"}
			for k, v := range mo.Metadata {
				md[k] = v
			}
			mo.Metadata = md
		}
		// The methods the memory budget changed: every part must share them.
		var budget []string
		for i, it := range items {
			if p := plans[i]; len(p.opts) > 0 {
				b := it.t.Name + ": randomized"
				if p.sketch > 0 {
					b += fmt.Sprintf(", sketch ≤ %d", p.sketch)
				}
				budget = append(budget, b)
			}
		}
		job := &folderJob{cmd: "factorize", src: f, extra: []string{*calPath}, flags: flagsString(fs), out: s.output, fs: fsx, s: s, policy: s.policy.String(), budget: budget,
			items: pitems, prefix: f.Prefix(), prepare: prepare, light: light, ahead: readAhead(s, devs != nil), cost: func(i int) int64 { return plans[i].cost },
			piece: func(w *safetensors.Writer, shard []string) pieceWriter {
				mw = model.NewWriter(w, mo)
				in := make(map[string]bool, len(shard))
				for _, n := range shard {
					in[n] = true
				}
				// The records of factors copied from a factorized input,
				// for this shard's tensors.
				carryRecords(f, mw, func(name string) bool { return sel[name] || !in[name] })
				return mw
			}}
		if rows, err = runFolder(job, lay, stderr); err != nil {
			return err
		}
	} else {
		var w *safetensors.Writer // nil for --dry-run: nothing is written
		if !s.dryRun {
			if w, err = out.writer(2*f.HeaderEstimate() + 256*nsel); err != nil {
				return err
			}
			defer w.Abort()
		}
		mw = model.NewWriter(w, mo)
		carryRecords(f, mw, func(name string) bool { return sel[name] })
		rows = make([]row, 0, len(items))
		var total int64
		for _, it := range items {
			total += it.t.Size()
		}
		prog := newProgress(stderr, s.quiet, total, "factorize")
		err = pipelineAhead(len(items), s.jobs, readAhead(s, devs != nil), s.mem, func(i int) int64 { return plans[i].cost }, light, prepare, func(i int, o outcome) error {
			if !s.dryRun {
				if err := o.write(w); err != nil {
					return err
				}
			}
			rows = append(rows, o.row)
			prog.step(o.row.Name, items[i].t.Size())
			return nil
		})
		prog.done()
		if err != nil {
			return err
		}
		if s.dryRun {
			return finish(stdout, s, reportFile{Command: "factorize --dry-run", Inputs: []string{in}, Output: s.output, Policy: s.policy.String(), Tensors: rows})
		}
		if err := mw.Close(); err != nil {
			return err
		}
		if err := out.commit(); err != nil {
			return err
		}
	}
	if s.calib != nil { // a warning, shown with --quiet too
		for _, n := range s.calib.note() {
			fmt.Fprintln(stderr, esc(n))
		}
	}
	return finish(stdout, s, reportFile{Command: "factorize", Inputs: []string{in}, Output: s.output, Policy: s.policy.String(), Tensors: rows})
}

// Why a selected tensor is kept dense (the "dense" entries of the lowrank
// metadata).
const reasonRatio = "ratio too small for rank 1"

func reasonRank(m int) string      { return fmt.Sprintf("rank above min(d,k) = %d", m) }
func reasonBreakEven(r int) string { return fmt.Sprintf("break-even at rank %d: r·(d+k) ≥ d·k", r) }

// shortestReason is the shortest reason a d×k tensor could be kept dense
// for under the command's policy (for the least size of the metadata).
func shortestReason(s *settings, d, k int) string {
	p := s.policy.String()
	if r, ok := strings.CutPrefix(p, "rank="); ok {
		n, _ := strconv.Atoi(r)
		if n > min(d, k) {
			return reasonRank(min(d, k))
		}
		return reasonBreakEven(n)
	}
	if strings.HasPrefix(p, "ratio=") && len(reasonRatio) < len(reasonBreakEven(1)) {
		return reasonRatio
	}
	return reasonBreakEven(1)
}

// checkNames refuses, before any work, inputs whose output names would
// clash: a selected tensor NAME may be written as NAME (kept dense) or as
// NAME.A and NAME.B, a copied one as its name, and no output name may come
// from two tensors ("w" beside a 1-D "w.A" failed after the work; beside a
// 2-D "w.A", factorize wrote a file that merge could not make dense again).
func checkNames[I any](in string, items []I, info func(I) (name string, selected bool)) error {
	owner := make(map[string]string, len(items))
	claim := func(out, from string) error {
		if other, dup := owner[out]; dup && other != from {
			a, b := other, from
			if a > b {
				a, b = b, a
			}
			return fmt.Errorf("lowrank: %s: tensors %q and %q would both be written as %q (factors are written as NAME.A and NAME.B); expected names that stay distinct: leave one out with --include or rename it",
				in, a, b, out)
		}
		owner[out] = from
		return nil
	}
	for i, it := range items {
		if err := tick(i); err != nil {
			return err
		}
		name, sel := info(it)
		outs := []string{name}
		if sel {
			outs = append(outs, name+".A", name+".B")
		}
		for _, o := range outs {
			if err := claim(o, name); err != nil {
				return err
			}
		}
	}
	return nil
}

func includeHint(s *settings) string {
	if s.include != nil {
		return fmt.Sprintf(" matching --include %q", s.include.String())
	}
	return ""
}

// finish prints the table and writes the report.
func finish(stdout io.Writer, s *settings, rep reportFile) error {
	if !s.quiet {
		printTable(stdout, rep)
	}
	if s.rep != nil {
		return writeReport(s.rep, rep)
	}
	return nil
}

// copyOutcome copies tensor t unchanged.
func copyOutcome(f source, t safetensors.TensorInfo) outcome {
	n := int64(t.NumElements())
	return outcome{
		row: row{Name: t.Name, Shape: t.Shape, DType: string(t.DType), SourceDType: string(t.DType), Status: stCopied,
			ParamsBefore: n, ParamsAfter: n, BytesBefore: t.Size(), BytesAfter: t.Size()},
		write: func(w *safetensors.Writer) error {
			sec, err := f.Section(t.Name)
			if err != nil {
				return err
			}
			return w.WriteFrom(t.Name, t.DType, t.Shape, sec)
		},
	}
}

// factorizeOne factorizes tensor t of f in precision T and returns how to
// write NAME.A and NAME.B in dtype out, or the tensor itself (in dtype out)
// when factors would save nothing, through mw. plan holds the options the
// memory budget adds for this tensor.
func factorizeOne[T lowrank.Float](f source, t safetensors.TensorInfo, out safetensors.DType, s *settings, plan factorPlan, mw func() *model.Writer) (outcome, error) {
	W, err := readMatrixFrom[T](f, t.Name, s.mem)
	if err != nil {
		return outcome{}, err
	}
	return factorizeRead(f, t, W, out, s, plan, mw)
}

// factorizeRead is factorizeOne once W is read (into a buffer of the
// pool, which it returns once the outcome is written).
func factorizeRead[T lowrank.Float](f source, t safetensors.TensorInfo, W lowrank.Matrix[T], out safetensors.DType, s *settings, plan factorPlan, mw func() *model.Writer) (outcome, error) {
	// W's buffer goes back to the pool once the outcome is written
	// (denseOutcome writes W itself; the factors are copies).
	o, err := factorizeMatrix(f, t, W, out, s, plan, mw)
	if err == nil {
		o.free = func() { putFloats(s.mem, W.Data) }
	}
	return o, err
}

// factorizeMatrix is factorizeOne once W is read.
func factorizeMatrix[T lowrank.Float](f source, t safetensors.TensorInfo, W lowrank.Matrix[T], out safetensors.DType, s *settings, plan factorPlan, mw func() *model.Writer) (outcome, error) {
	d, k := W.Rows, W.Cols
	o := outcome{row: row{Name: t.Name, Shape: t.Shape, DType: string(out), SourceDType: string(t.DType), listed: true,
		ParamsBefore: int64(d) * int64(k), BytesBefore: t.Size()}}
	var ab *absorb // the bias that takes the mean error, if any
	if s.calib != nil {
		if ab = s.calib.absorbs[t.Name]; ab != nil {
			defer close(ab.done)
		}
	}
	opts := append(s.opts[:len(s.opts):len(s.opts)], plan.opts...)
	cal := "" // with --calibration: calibrated, or plain for want of statistics
	if s.calib != nil {
		cal = calPlain
		if s.calib.has[t.Name] {
			c, err := s.calib.option(t.Name)
			if err != nil {
				return outcome{}, err
			}
			opts, cal = append(opts, c), calCalibrated
		}
	}
	fac, err := lowrank.FactorizeContext(cmdContext, W, s.policy, opts...)
	if s.calib != nil && err != nil {
		if e := s.calib.fault(err, t.Name); e != nil {
			return outcome{}, e
		}
	}
	switch {
	case plan.capped(s, err):
		return outcome{}, tensorErr(f.Path(), t.Name, "%s", budgetErr(s, plan))
	case errors.Is(err, lowrank.ErrRank):
		return denseOutcome(f, t, W, out, o, reasonRank(min(d, k)), mw)
	case errors.Is(err, lowrank.ErrPolicy):
		return denseOutcome(f, t, W, out, o, reasonRatio, mw)
	case err != nil:
		return outcome{}, tensorFault(err, f.Path(), t.Name)
	case !fac.Saves():
		return denseOutcome(f, t, W, out, o, reasonBreakEven(fac.Rank), mw)
	case saving(fac) < s.minSaving:
		return denseOutcome(f, t, W, out, o, reasonMinSaving(fac.Rank, saving(fac), s.minSaving), mw)
	}
	r := fac.Rank
	rel := fac.RelError
	if narrower[T](out) {
		// What is stored is rounded: report the error of the stored factors.
		if i, ok := quantize(fac.B.Data, out); !ok {
			return outcome{}, tensorErr(f.Path(), t.Name, "factor B[%d, %d] = %v exceeds the range of %s; expected --dtype f32 (or bf16)", i/r, i%r, fac.B.Data[i], out)
		}
		if i, ok := quantize(fac.A.Data, out); !ok {
			return outcome{}, tensorErr(f.Path(), t.Name, "factor A[%d, %d] = %v exceeds the range of %s; expected --dtype f32 (or bf16)", i/k, i%k, fac.A.Data[i], out)
		}
		if rel, err = relResidual(W, fac, fac.Norm); err != nil {
			return outcome{}, tensorFault(err, f.Path(), t.Name)
		}
	}
	recordFactors(&o.row, stFactorized, fac, rel, out)
	// What the file records is the error of the factors as stored.
	if err := fac.SetRecorded(rel, fac.Energy); err != nil {
		return outcome{}, tensorFault(err, f.Path(), t.Name)
	}
	var amend func(r *model.Record) // what --calibration adds to the record
	if cal != "" {
		o.row.Calibration = cal
		calibrated := cal == calCalibrated
		var outErr, ridge *float64
		if calibrated {
			o.row.OutputRelError = f64p(fac.OutputRelError)
			outErr, ridge = f64p(fac.OutputRelError), f64p(fac.Ridge)
		}
		shifted := ""
		if ab != nil {
			ab.shift = fac.BiasShift
			shifted = ab.bias.Name
		}
		amend = func(r *model.Record) {
			r.Calibrated, r.OutputRelError, r.Ridge, r.BiasShifted = &calibrated, outErr, ridge, shifted
		}
	}
	o.write = func(*safetensors.Writer) error {
		if err := model.AddFactors(mw(), t.Name, fac, out); err != nil {
			return err
		}
		if out != t.DType {
			if err := mw().SetSourceDType(t.Name, t.DType); err != nil {
				return err
			}
		}
		if amend != nil {
			return mw().Amend(t.Name, amend)
		}
		return nil
	}
	return o, nil
}

// denseOutcome keeps a selected tensor dense, converted to out, and
// records why in mw's metadata.
func denseOutcome[T lowrank.Float](f source, t safetensors.TensorInfo, W lowrank.Matrix[T], out safetensors.DType, o outcome, why string, mw func() *model.Writer) (outcome, error) {
	o.row.Status = stDense + ": " + why
	o.row.ParamsAfter = o.row.ParamsBefore
	o.row.BytesAfter = o.row.ParamsBefore * int64(out.Size())
	o.row.BytesSaved = o.row.BytesBefore - o.row.BytesAfter
	if out == t.DType {
		o.write = func(*safetensors.Writer) error {
			sec, err := f.Section(t.Name)
			if err != nil {
				return err
			}
			mw().MarkDense(t.Name, why)
			return mw().CopyFrom(t.Name, t.DType, t.Shape, sec)
		}
		return o, nil
	}
	if i, ok := quantize(W.Data, out); !ok {
		return outcome{}, tensorErr(f.Path(), t.Name, "element [%d, %d] = %v exceeds the range of %s; expected --dtype f32 (or bf16)", i/W.Cols, i%W.Cols, W.Data[i], out)
	}
	o.write = func(*safetensors.Writer) error {
		mw().MarkDense(t.Name, why)
		if err := mw().SetSourceDType(t.Name, t.DType); err != nil {
			return err
		}
		return model.AddDense(mw(), t.Name, W, out)
	}
	return o, nil
}

// keepOutcome keeps a selected tensor dense without factorizing it (an
// embedding or output head), converted to out, and records why.
func keepOutcome(f source, t safetensors.TensorInfo, out safetensors.DType, why string, mem *budget, mw func() *model.Writer) (outcome, error) {
	d, k, _ := t.Matrix()
	o := outcome{row: row{Name: t.Name, Shape: t.Shape, DType: string(out), SourceDType: string(t.DType), listed: true,
		ParamsBefore: int64(d) * int64(k), BytesBefore: t.Size()}}
	switch {
	case out == t.DType: // copied as it is
		return denseOutcome(f, t, lowrank.Matrix[float32]{}, out, o, why, mw)
	case computesIn64(t.DType):
		return keepMatrix[float64](f, t, out, o, why, mem, mw)
	}
	return keepMatrix[float32](f, t, out, o, why, mem, mw)
}

// keepMatrix is keepOutcome's conversion: the tensor read in T into a
// buffer of mem's pool, given back once written.
func keepMatrix[T lowrank.Float](f source, t safetensors.TensorInfo, out safetensors.DType, o outcome, why string, mem *budget, mw func() *model.Writer) (outcome, error) {
	W, err := readMatrixFrom[T](f, t.Name, mem)
	if err != nil {
		return outcome{}, err
	}
	o, err = denseOutcome(f, t, W, out, o, why, mw)
	if err == nil {
		o.free = func() { putFloats(mem, W.Data) }
	}
	return o, err
}

// saving is the fraction of the dense tensor's parameters the factors
// save: 1 − r·(d+k)/(d·k).
// outputElements bounds the elements a selected d×k tensor is written
// with, for a folder's shard layout, which is planned before the work:
// d·k (kept dense), unless the policy fixes the rank (--rank N). Then the
// rank is at most N rounded up to --round, capped at min(d, k), and a rank
// that low saves at least as much as that bound does (factorizeOne's tests
// only keep a tensor dense when the factors save too little): when factors
// of the bound rank would be written, no outcome is larger than them.
func outputElements(s *settings, d, k int) int {
	dense := d * k
	n, ok := strings.CutPrefix(s.policy.String(), "rank=")
	if !ok || s.calib != nil {
		return dense
	}
	r, err := strconv.Atoi(n)
	if err != nil || r < 1 {
		return dense
	}
	if m := s.roundTo; m > 1 {
		r = (r + m - 1) / m * m
	}
	r = min(r, d, k)
	fac := r * (d + k)
	if fac >= dense || 1-float64(fac)/float64(dense) < s.minSaving {
		return dense
	}
	return fac
}

func saving[T lowrank.Float](f *lowrank.Factors[T]) float64 {
	return 1 - float64(f.Params())/float64(f.DenseParams())
}

func reasonMinSaving(r int, saved, minSaving float64) string {
	return fmt.Sprintf("rank %d saves %.1f%% of the parameters, below --min-saving %g", r, 100*saved, minSaving)
}
