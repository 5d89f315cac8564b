package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/internal/finite"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// cmdContext is cancelled by SIGINT/SIGTERM (see main); the file commands
// check it between tensors and then discard their partial outputs, and a
// factorization in progress (lowrank.FactorizeContext) stops at its next
// block boundary instead of running to its end.
var cmdContext = context.Background()

// errInterrupted is returned when cmdContext is cancelled.
var errInterrupted = errors.New("lowrank: interrupted; no output was written")

// rankFlags are the flags factorize and extract share.
type rankFlags struct {
	fs                            *flag.FlagSet
	rank                          *int
	energy, tol, ratio            *float64
	round, oversample, powerIters *int
	seed                          *uint64
	method, split, backend        *string
	sketchPrec                    *string
	include, exclude              *string
	dtype, report                 *string
	output, maxMemory             *string
	force, quiet                  *bool
	jobs                          *int
}

func addRankFlags(fs *flag.FlagSet, defaultSplit, splitHelp string) *rankFlags {
	return &rankFlags{
		fs:         fs,
		rank:       fs.Int("rank", 0, "keep exactly `N` singular values per tensor"),
		energy:     fs.Float64("energy", 0.99, "keep the smallest rank holding the fraction `E` of ‖W‖_F² (default policy)"),
		tol:        fs.Float64("tol", 0, "keep the smallest rank with relative error ‖W−B·A‖_F/‖W‖_F ≤ `T`"),
		ratio:      fs.Float64("ratio", 0, "keep the largest rank with r·(d+k) ≤ `R`·d·k"),
		round:      fs.Int("round", 0, "round each rank up to a multiple of `M` (0: no rounding)"),
		method:     fs.String("method", "auto", "SVD method: auto, exact or randomized"),
		oversample: fs.Int("oversample", lowrank.DefaultOversampling, "randomized SVD: extra sketch columns `P`"),
		powerIters: fs.Int("power-iters", lowrank.DefaultPowerIters, "randomized SVD: power iterations `Q`"),
		seed:       fs.Uint64("seed", 0, "randomized SVD: seed `S`"),
		sketchPrec: fs.String("sketch-precision", "f32", "randomized SVD: precision `P` of the range finder's products with W: f32, tf32 or bf16 (tensor cores on a GPU; bf16 on a CPU with AVX512_BF16 runs a faster bfloat16 kernel, the rest is emulated, slower; float32 tensors only)"),
		split:      fs.String("split", defaultSplit, splitHelp),
		include:    fs.String("include", "", "only tensors whose name matches `REGEX` (Go's RE2 syntax: no lookahead, see --exclude; default: every weight, factorize keeping embeddings and output heads dense unless REGEX names them)"),
		exclude:    fs.String("exclude", "", "leave out tensors whose name matches `REGEX`, after --include"),
		backend:    fs.String("backend", "auto", "compute backend: auto, cpu or cuda"),
		dtype:      fs.String("dtype", "keep", "dtype of the tensors written for the selected tensors: keep, f32, f16 or bf16"),
		report:     fs.String("report", "", "also write the per-tensor table to `FILE`.json or FILE.csv"),
		output:     fs.String("o", "", "output `PATH`"),
		force:      fs.Bool("force", false, "overwrite existing outputs"),
		quiet:      fs.Bool("quiet", false, "no progress bar and no table"),
		jobs:       fs.Int("jobs", 1, "tensors processed in parallel; memory grows with `N` (about N tensors and their factors at once, one more where a GPU computes: the next is read meanwhile)"),
		maxMemory:  addMaxMemory(fs),
	}
}

// settings are the parsed and checked rank flags.
type settings struct {
	policy  lowrank.Policy
	opts    []lowrank.Option
	include *regexp.Regexp
	exclude *regexp.Regexp
	// conv: the command takes 4-D conv weights too (extract), as the
	// out × in·k_h·k_w matrices of model.WeightMatrix.
	conv   bool
	dtype  safetensors.DType // "" for keep
	report string
	rep    *output // the report's output, once prepared
	output string
	force  bool
	quiet  bool
	// allowExpand is merge's --allow-expand (densify).
	allowExpand bool
	jobs        int
	split       lowrank.Split
	method      lowrank.Method // as asked (Auto unless --method)
	// maxMemory is --max-memory in bytes (0: no limit); mem is the budget
	// made from it once the inputs are open.
	maxMemory int64
	mem       *budget
	// calib is factorize's --calibration file (calibration.go), or nil.
	calib *calibration
	// oversample and powerIters are the randomized SVD's settings (for
	// the work estimates of a folder output's layout).
	oversample, powerIters int
	// roundTo is --round (the ranks' multiple; 0: none).
	roundTo int
	// fold is set when the output is a model folder (folders.go).
	fold *folderOut
	// minSaving is factorize's --min-saving; dryRun its --dry-run.
	minSaving float64
	dryRun    bool
	// mergeDType is merge's --dtype: "" (auto), "keep", or a dtype.
	mergeDType string
	// backend is the one --backend (or its default) chose; it is also in
	// opts.
	backend lowrank.Backend
}

func (rf *rankFlags) settings(cmd string) (*settings, error) {
	set := map[string]bool{}
	rf.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var chosen []string
	for _, n := range []string{"rank", "energy", "tol", "ratio"} {
		if set[n] {
			chosen = append(chosen, "--"+n)
		}
	}
	if len(chosen) > 1 {
		return nil, usagef("%s: %s given; expected at most one of --rank, --energy, --tol, --ratio", cmd, strings.Join(chosen, " and "))
	}
	s := &settings{report: *rf.report, output: *rf.output, force: *rf.force, quiet: *rf.quiet, jobs: *rf.jobs, oversample: *rf.oversample, powerIters: *rf.powerIters}
	unit := func(name string, v float64) error {
		if !(v > 0 && v <= 1) {
			return usagef("%s: --%s %v; expected a value in (0, 1]", cmd, name, v)
		}
		return nil
	}
	switch {
	case set["rank"]:
		if *rf.rank < 1 {
			return nil, usagef("%s: --rank %d; expected ≥ 1", cmd, *rf.rank)
		}
		s.policy = lowrank.Rank(*rf.rank)
	case set["tol"]:
		if err := unit("tol", *rf.tol); err != nil {
			return nil, err
		}
		s.policy = lowrank.Tolerance(*rf.tol)
	case set["ratio"]:
		if err := unit("ratio", *rf.ratio); err != nil {
			return nil, err
		}
		s.policy = lowrank.Ratio(*rf.ratio)
	default:
		if err := unit("energy", *rf.energy); err != nil {
			return nil, err
		}
		s.policy = lowrank.Energy(*rf.energy)
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"round", *rf.round}, {"oversample", *rf.oversample}, {"power-iters", *rf.powerIters}} {
		if c.v < 0 {
			return nil, usagef("%s: --%s %d; expected ≥ 0", cmd, c.name, c.v)
		}
	}
	if s.jobs < 1 {
		return nil, usagef("%s: --jobs %d; expected ≥ 1", cmd, s.jobs)
	}
	m, err := lowrank.ParseMethod(*rf.method)
	if err != nil {
		return nil, usagef("%s: --method %q; expected auto, exact or randomized", cmd, *rf.method)
	}
	sp, err := lowrank.ParseSplit(*rf.split)
	if err != nil {
		return nil, usagef("%s: --split %q; expected us or sqrt", cmd, *rf.split)
	}
	s.split = sp
	s.method = m
	prec, err := lowrank.ParseSketchPrecision(*rf.sketchPrec)
	if err != nil {
		return nil, usagef("%s: --sketch-precision %q; expected f32, tf32 or bf16", cmd, *rf.sketchPrec)
	}
	if s.maxMemory, err = parseSize(*rf.maxMemory); err != nil {
		return nil, usagef("%s: %v", cmd, err)
	}
	if s.dtype, err = parseOutDType(*rf.dtype); err != nil {
		return nil, usagef("%s: %v", cmd, err)
	}
	for _, re := range []struct {
		name, expr string
		dst        **regexp.Regexp
	}{{"include", *rf.include, &s.include}, {"exclude", *rf.exclude, &s.exclude}} {
		if re.expr == "" {
			continue
		}
		if *re.dst, err = regexp.Compile(re.expr); err != nil {
			hint := ""
			if strings.Contains(err.Error(), "Perl syntax") {
				hint = "; Go regular expressions have no lookahead: use --exclude REGEX to leave names out"
			}
			return nil, usagef("%s: --%s %q: %v%s", cmd, re.name, re.expr, err, hint)
		}
	}
	if s.report != "" {
		if ext := strings.ToLower(filepath.Ext(s.report)); ext != ".json" && ext != ".csv" {
			return nil, usagef("%s: --report %q; expected a file name ending in .json or .csv", cmd, s.report)
		}
	}
	s.opts = []lowrank.Option{
		lowrank.WithMethod(m), lowrank.WithOversampling(*rf.oversample), lowrank.WithPowerIters(*rf.powerIters),
		lowrank.WithSeed(*rf.seed), lowrank.WithSplit(sp), lowrank.WithRoundTo(*rf.round),
	}
	s.roundTo = *rf.round
	if prec != lowrank.SketchF32 {
		s.opts = append(s.opts, lowrank.WithSketchPrecision(prec))
	}
	// Without --backend, the library's default: LOWRANK_BACKEND when set
	// (an unknown value, or cuda without a GPU, is an error), else auto.
	b, err := lowrank.DefaultBackend()
	if set["backend"] {
		b, err = lowrank.LookupBackend(*rf.backend)
	}
	if err != nil {
		return nil, err
	}
	s.opts = append(s.opts, lowrank.WithBackend(b))
	s.backend = b
	return s, nil
}

// addMaxMemory adds the --max-memory flag to fs.
func addMaxMemory(fs *flag.FlagSet) *string {
	return fs.String("max-memory", "0", "memory budget `SIZE` (512MiB, 2GiB, 1.5GB) for the whole process: what does not fit is given the randomized SVD or refused, naming what it needs; shared by --jobs. 0: the default, "+fmt.Sprintf("%d/%d", defaultNum, defaultDen)+" of the memory the process may use (cgroup limit or MemAvailable; here: "+defaultBudgetShort()+")")
}

func parseOutDType(s string) (safetensors.DType, error) {
	switch strings.ToLower(s) {
	case "keep", "":
		return "", nil
	case "f32", "float32":
		return safetensors.F32, nil
	case "f16", "float16":
		return safetensors.F16, nil
	case "bf16", "bfloat16":
		return safetensors.BF16, nil
	}
	return "", fmt.Errorf("--dtype %q; expected keep, f32, f16 or bf16", s)
}

// selected reports whether a tensor is one the command works on: a 2-D
// floating-point tensor (or, with s.conv, a 4-D conv weight) matching
// --include and not --exclude.
func (s *settings) selected(t safetensors.TensorInfo) bool {
	if _, _, kernel, ok := model.WeightMatrix(t); !ok || (kernel != nil && !s.conv) {
		return false
	}
	return s.named(t.Name)
}

// named reports whether a name passes --include and --exclude.
func (s *settings) named(name string) bool {
	return (s.include == nil || s.include.MatchString(name)) && (s.exclude == nil || !s.exclude.MatchString(name))
}

// outDType is the dtype the selected tensor t is written in.
func (s *settings) outDType(t safetensors.TensorInfo) safetensors.DType {
	if s.dtype == "" {
		return t.DType
	}
	return s.dtype
}

// strip removes a leading "lowrank: " so that an error can be quoted inside
// another one.
func strip(err error) string {
	return strings.TrimPrefix(err.Error(), "lowrank: ")
}

// tensorErr is an error about one tensor of one file.
func tensorErr(file, tensor, format string, args ...any) error {
	return fmt.Errorf("lowrank: %s: tensor %s: %s", file, strconv.Quote(tensor), fmt.Sprintf(format, args...))
}

// readMatrix reads the 2-D tensor name of f as a matrix of T (a 4-D
// conv weight as its out × in·k_h·k_w matrix, model.WeightMatrix). Its
// values are checked for NaN and ±Inf by the library call that uses them
// (one scan per tensor), whose error tensorFault reports.
func readMatrix[T lowrank.Float](f source, name string) (lowrank.Matrix[T], error) {
	return readMatrixFrom[T](f, name, nil)
}

// readMatrixFrom is readMatrix into a buffer of mem's pool (pool.go):
// give it back with putFloats once the matrix is no longer used.
func readMatrixFrom[T lowrank.Float](f source, name string, mem *budget) (lowrank.Matrix[T], error) {
	t, _ := f.Tensor(name)
	d, k, _, ok := model.WeightMatrix(t)
	if !ok {
		return lowrank.Matrix[T]{}, tensorErr(f.Path(), name, "%s %v; expected a 2-D F16, BF16, F32 or F64 tensor", t.DType, t.Shape)
	}
	data := getFloats[T](mem, t.NumElements())
	var err error
	switch v := any(data).(type) {
	case []float32:
		err = f.ReadFloat32s(name, v)
	case []float64:
		err = f.ReadFloat64s(name, v)
	}
	if err != nil {
		return lowrank.Matrix[T]{}, err
	}
	return lowrank.Matrix[T]{Rows: d, Cols: k, Data: data}, nil
}

// readAhead is how many items beyond --jobs a file command reads (and
// converts) ahead while the others compute (pipelineAhead): one where a
// GPU computes (--devices, or a backend other than the CPU), so that the
// host reads the next tensor meanwhile; none on the CPU, where the
// computation already keeps every core busy: there the read only took
// cores from it, and the second tensor buffer its page faults (on two
// cores, `factorize --rank 64` of a 256 MiB model was 2% slower with
// it, alternated: docs/performance.md).
func readAhead(s *settings, devices bool) int {
	if devices || (s.backend != nil && s.backend.Name() != "cpu") {
		return 1
	}
	return 0
}

// readTensor is a weight read into the precision it is computed in:
// w64 for F64 tensors (computesIn64), w32 for the others.
type readTensor struct {
	w32 lowrank.Matrix[float32]
	w64 lowrank.Matrix[float64]
}

// readTensorFrom reads the weight t of f in the precision it is computed
// in, into a buffer of mem's pool.
func readTensorFrom(f source, t safetensors.TensorInfo, mem *budget) (in readTensor, err error) {
	if computesIn64(t.DType) {
		in.w64, err = readMatrixFrom[float64](f, t.Name, mem)
	} else {
		in.w32, err = readMatrixFrom[float32](f, t.Name, mem)
	}
	return in, err
}

// firstNonFinite returns the index of the first NaN or ±Inf in v, or -1:
// a vectorized check of the whole slice first (internal/finite), the
// element loop only when it found one.
func firstNonFinite[T lowrank.Float](v []T) int {
	var has bool
	switch v := any(v).(type) {
	case []float32:
		has = finite.Has32(v)
	case []float64:
		has = finite.Has64(v)
	}
	if !has {
		return -1
	}
	for i, x := range v {
		if x-x != 0 {
			return i
		}
	}
	return -1
}

// computesIn64 reports whether tensors of these dtypes are computed in
// float64 (any F64) rather than float32.
func computesIn64(dts ...safetensors.DType) bool {
	for _, d := range dts {
		if d == safetensors.F64 {
			return true
		}
	}
	return false
}

// quantize rounds v in place to the values dtype dt can hold, as writing
// them would, and reports the first finite value that overflowed to ±Inf.
func quantize[T lowrank.Float](v []T, dt safetensors.DType) (int, bool) {
	for i, x := range v {
		var q float64
		switch dt {
		case safetensors.F16:
			q = float64(safetensors.F16ToFloat32(safetensors.Float64ToF16(float64(x))))
		case safetensors.BF16:
			q = float64(safetensors.BF16ToFloat32(safetensors.Float64ToBF16(float64(x))))
		case safetensors.F32:
			q = float64(float32(x))
		default:
			continue
		}
		if math.IsInf(q, 0) {
			return i, false
		}
		v[i] = T(q)
	}
	return -1, true
}

// narrower reports whether writing T values as dt loses precision.
func narrower[T lowrank.Float](dt safetensors.DType) bool {
	var z T
	bits := 64
	if _, ok := any(z).(float32); ok {
		bits = 32
	}
	return dt.Bits() < bits
}

// writeMatrix writes m as tensor name of type dt (with the given shape,
// of m's size, when one is given: a conv factor's 4-D shape).
func writeMatrix[T lowrank.Float](w *safetensors.Writer, name string, dt safetensors.DType, m lowrank.Matrix[T], shape ...int) error {
	if shape == nil {
		shape = []int{m.Rows, m.Cols}
	}
	switch v := any(m.Data).(type) {
	case []float32:
		return w.WriteFloat32(name, dt, shape, v)
	case []float64:
		return w.WriteFloat64(name, dt, shape, v)
	}
	return nil
}

// ready runs what every file command does once its flags are parsed and
// before any work: the test hook, then the checks of its inputs and
// outputs, and the creation of the outputs' temporaries (outputSet.prepare).
// The caller defers outs.abort().
func ready(cmd string, s *settings, outs *outputSet) error {
	if err := parsed(cmd, s); err != nil {
		return err
	}
	return outs.prepare()
}

// addReport adds the --report output to outs, if there is one.
func (s *settings) addReport(outs *outputSet) {
	if s.report != "" {
		s.rep = outs.file(s.report, "the report")
	}
}

// maxOutputHeader is the largest output header a command writes: the
// format's limit (a variable for tests).
var maxOutputHeader = safetensors.MaxHeaderSize

// checkHeader refuses, before any work, an output whose header could not
// stay within maxOutputHeader: ts are the tensors known already (offsets 0
// give a lower bound), meta the metadata, and extra the least bytes the
// entries not known yet add.
func checkHeader(in, out string, meta map[string]string, ts []safetensors.TensorInfo, extra int) error {
	n := safetensors.HeaderLen(meta, ts) + extra
	if n > maxOutputHeader {
		return fmt.Errorf("lowrank: %s: the output %s would need a header of at least %d bytes for its tensors and their metadata; expected at most %d (the safetensors limit): leave tensors out with --include, or split the model",
			in, out, n, maxOutputHeader)
	}
	return nil
}

// metaEntryLen returns the bytes one entry "name": v of the lowrank
// metadata adds to a header (where the metadata is a JSON string, so its
// quotes are escaped), with its comma.
func metaEntryLen(name string, v any) int {
	nj, _ := json.Marshal(name)
	vj, _ := json.Marshal(v)
	inner, _ := json.Marshal(string(nj) + ":" + string(vj))
	return len(inner) - 2 + 1
}

// recordFactors fills rw for a tensor written as the factors fac (stored
// in dtype out, with relative error rel as stored) and returns the
// tensor's metadata entry.
func recordFactors[T lowrank.Float](rw *row, status string, fac *lowrank.Factors[T], rel float64, out safetensors.DType) *tensorMeta {
	d, k := fac.Dims()
	rw.Status = status
	rw.Rank = fac.Rank
	rw.RelError = f64p(rel)
	rw.Energy = f64p(fac.Energy)
	rw.Method = fac.Method.String()
	rw.Backend = fac.Backend.Name()
	rw.ParamsAfter = int64(fac.Rank) * int64(d+k)
	rw.BytesAfter = rw.ParamsAfter * int64(out.Size())
	rw.BytesSaved = rw.BytesBefore - rw.BytesAfter
	return &tensorMeta{Shape: []int{d, k}, Rank: fac.Rank, RelError: rel, Energy: fac.Energy, DType: string(out)}
}

// flagsString is the command line's settings that shape the output, for
// the plan of a folder output (every part of a distributed run must give
// the same): every flag of fs with its value, but those that do not
// change what is written (-o, --force, --quiet, --report, --jobs,
// --max-memory, --backend, --devices, --shard, --shards, --resume) and
// input paths (whose contents the plan identifies instead).
func flagsString(fs *flag.FlagSet) string {
	skip := map[string]bool{"o": true, "force": true, "quiet": true, "report": true, "jobs": true, "max-memory": true, "backend": true,
		"devices": true, "shard": true, "shards": true, "resume": true, "calibration": true, "base": true, "adapter": true, "tuned": true}
	var parts []string
	fs.VisitAll(func(f *flag.Flag) {
		if !skip[f.Name] {
			parts = append(parts, "--"+f.Name+"="+f.Value.String())
		}
	})
	return strings.Join(parts, " ")
}
