package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/safetensors"
)

// metaKey is the __metadata__ key under which factorize records, as one
// JSON string, the rank and error of every factorized tensor.
const metaKey = "lowrank"

// factMeta is the JSON stored under metaKey.
type factMeta struct {
	Version int                   `json:"version"`
	Policy  string                `json:"policy"`
	Split   string                `json:"split"`
	Tensors map[string]tensorMeta `json:"tensors"`
	// Dense lists the selected tensors kept dense, with the reason.
	Dense map[string]string `json:"dense,omitempty"`
}

type tensorMeta struct {
	Shape    []int   `json:"shape"`
	Rank     int     `json:"rank"`
	RelError float64 `json:"rel_error"`
	Energy   float64 `json:"energy"`
	DType    string  `json:"dtype"`
}

// outcome is what the pipeline computed for one tensor: its report row and
// how to write it.
type outcome struct {
	row   row
	meta  *tensorMeta // factorized tensors
	dense string      // reason a selected tensor was kept dense
	write func(w *safetensors.Writer) error
}

func runFactorize(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("factorize", "factorize IN.safetensors -o OUT.safetensors [--rank N | --energy E | --tol T | --ratio R] [flags]", stderr)
	rf := addRankFlags(fs, "us", "how S is shared: us (B = U·S, A = Vᵀ) or sqrt (B = U·√S, A = √S·Vᵀ)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("factorize: expected one input file, got %d arguments %q", len(pos), pos)
	}
	s, err := rf.settings("factorize")
	if err != nil {
		return err
	}
	in := pos[0]
	outs := newOutputSet(s.force, in)
	out := outs.file(s.output, "the output")
	s.addReport(outs)
	if err := ready("factorize", s, outs); err != nil {
		return err
	}
	defer outs.abort()
	if s.mem, err = newBudget(s.maxMemory); err != nil {
		return err
	}
	defer s.mem.restore()
	f, err := s.mem.open(in)
	if err != nil {
		return err
	}
	defer f.Close()

	// Write tensors by decreasing element size, keeping the file's order
	// within a size, so that every tensor's data stays aligned.
	type item struct {
		t   safetensors.TensorInfo
		sel bool
		out safetensors.DType
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
	if err := checkNames(in, items, func(it item) (string, bool) { return it.t.Name, it.sel }); err != nil {
		return err
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].out.Bits() > items[j].out.Bits() })
	// The output's header must stay within the format's limit: check its
	// least possible size now rather than after the work. A selected
	// tensor becomes NAME.A and NAME.B (rank 1 at the least) with an entry
	// in the lowrank metadata, or stays dense with a reason there.
	copied := make([]safetensors.TensorInfo, 0, len(items))
	extra := 0
	for ti, it := range items {
		if err := tick(ti); err != nil {
			return err
		}
		t := it.t
		if !it.sel {
			copied = append(copied, safetensors.TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape})
			continue
		}
		d, k, _ := t.Matrix()
		fac := 2 + safetensors.EntryLen(safetensors.TensorInfo{Name: t.Name + ".A", DType: it.out, Shape: []int{1, k}}) +
			safetensors.EntryLen(safetensors.TensorInfo{Name: t.Name + ".B", DType: it.out, Shape: []int{d, 1}}) +
			metaEntryLen(t.Name, tensorMeta{Shape: t.Shape, Rank: 1, DType: string(it.out)})
		dense := 1 + safetensors.EntryLen(safetensors.TensorInfo{Name: t.Name, DType: it.out, Shape: t.Shape}) + metaEntryLen(t.Name, shortestReason(s, d, k))
		extra += min(fac, dense)
	}
	floorMeta := map[string]string{}
	for k, v := range f.Metadata() {
		floorMeta[k] = v
	}
	fj, _ := json.Marshal(factMeta{Version: 1, Policy: s.policy.String(), Split: s.split.String()})
	floorMeta[metaKey] = string(fj)
	if err := checkHeader(in, s.output, floorMeta, copied, extra); err != nil {
		return err
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
	if err := checkDisk(s.output, add(need, int64(safetensors.HeaderLen(floorMeta, copied)+extra))); err != nil {
		return err
	}
	plans := make([]factorPlan, len(items))
	for i, it := range items {
		if err := tick(i); err != nil {
			return err
		}
		if !it.sel || s.mem.total == 0 {
			continue
		}
		d, k, _ := it.t.Matrix()
		es := elemBytes(it.t.DType)
		if plans[i], err = planFactorize(s.mem, s, in, it.t.Name, d, k, es, mul(es, d, k)); err != nil {
			return err
		}
	}

	w, err := out.writer(2*f.HeaderEstimate() + 256*nsel)
	if err != nil {
		return err
	}
	defer w.Abort()
	meta := factMeta{Version: 1, Policy: s.policy.String(), Split: s.split.String(), Tensors: map[string]tensorMeta{}, Dense: map[string]string{}}
	rows := make([]row, 0, len(items))
	prog := newProgress(stderr, s.quiet, len(items), "factorize")
	err = pipeline(len(items), s.jobs, s.mem, func(i int) int64 { return plans[i].cost }, func(i int) (outcome, error) {
		it := items[i]
		if !it.sel {
			return copyOutcome(f, it.t), nil
		}
		if computesIn64(it.t.DType) {
			return factorizeOne[float64](f, it.t, it.out, s, plans[i])
		}
		return factorizeOne[float32](f, it.t, it.out, s, plans[i])
	}, func(i int, o outcome) error {
		if err := o.write(w); err != nil {
			return err
		}
		rows = append(rows, o.row)
		if o.meta != nil {
			meta.Tensors[o.row.Name] = *o.meta
		}
		if o.dense != "" {
			meta.Dense[o.row.Name] = o.dense
		}
		prog.step(o.row.Name)
		return nil
	})
	prog.done()
	if err != nil {
		return err
	}
	md := map[string]string{}
	for k, v := range f.Metadata() {
		md[k] = v
	}
	mj, _ := json.Marshal(meta)
	md[metaKey] = string(mj)
	w.SetMetadata(md)
	if err := w.Close(); err != nil {
		return err
	}
	if err := out.commit(); err != nil {
		return err
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
		printTable(stdout, rep.Tensors)
	}
	if s.rep != nil {
		return writeReport(s.rep, rep)
	}
	return nil
}

// copyOutcome copies tensor t unchanged.
func copyOutcome(f *safetensors.File, t safetensors.TensorInfo) outcome {
	n := int64(t.NumElements())
	return outcome{
		row: row{Name: t.Name, Shape: t.Shape, DType: string(t.DType), Status: stCopied,
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
// when factors would save nothing. plan holds the options the memory
// budget adds for this tensor.
func factorizeOne[T lowrank.Float](f *safetensors.File, t safetensors.TensorInfo, out safetensors.DType, s *settings, plan factorPlan) (outcome, error) {
	W, err := readMatrix[T](f, t.Name)
	if err != nil {
		return outcome{}, err
	}
	d, k := W.Rows, W.Cols
	o := outcome{row: row{Name: t.Name, Shape: t.Shape, DType: string(t.DType), listed: true,
		ParamsBefore: int64(d) * int64(k), BytesBefore: t.Size()}}
	fac, err := lowrank.FactorizeContext(cmdContext, W, s.policy, append(s.opts[:len(s.opts):len(s.opts)], plan.opts...)...)
	switch {
	case plan.capped(s, err):
		return outcome{}, tensorErr(f.Path(), t.Name, "%s", budgetErr(s, plan))
	case errors.Is(err, lowrank.ErrRank):
		return denseOutcome(f, t, W, out, o, reasonRank(min(d, k)))
	case errors.Is(err, lowrank.ErrPolicy):
		return denseOutcome(f, t, W, out, o, reasonRatio)
	case err != nil:
		return outcome{}, tensorFault(err, f.Path(), t.Name)
	case !fac.Saves():
		return denseOutcome(f, t, W, out, o, reasonBreakEven(fac.Rank))
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
	o.meta = recordFactors(&o.row, stFactorized, fac, rel, out)
	A, B := fac.A, fac.B
	o.write = func(w *safetensors.Writer) error {
		if err := writeMatrix(w, t.Name+".A", out, A); err != nil {
			return err
		}
		return writeMatrix(w, t.Name+".B", out, B)
	}
	return o, nil
}

// denseOutcome keeps a selected tensor dense, converted to out.
func denseOutcome[T lowrank.Float](f *safetensors.File, t safetensors.TensorInfo, W lowrank.Matrix[T], out safetensors.DType, o outcome, why string) (outcome, error) {
	o.row.Status = stDense + ": " + why
	o.dense = why
	o.row.ParamsAfter = o.row.ParamsBefore
	o.row.BytesAfter = o.row.ParamsBefore * int64(out.Size())
	o.row.BytesSaved = o.row.BytesBefore - o.row.BytesAfter
	if out == t.DType {
		c := copyOutcome(f, t)
		o.write = c.write
		return o, nil
	}
	if i, ok := quantize(W.Data, out); !ok {
		return outcome{}, tensorErr(f.Path(), t.Name, "element [%d, %d] = %v exceeds the range of %s; expected --dtype f32 (or bf16)", i/W.Cols, i%W.Cols, W.Data[i], out)
	}
	o.write = func(w *safetensors.Writer) error { return writeMatrix(w, t.Name, out, W) }
	return o, nil
}
