// Command lowrank-bench runs lowrank and its references (numpy, torch,
// scikit-learn, through bench/ref.py) on the same matrices in one session,
// alternating call by call, and writes a markdown table, a JSON file and
// PNG plots. Run it through bench/run.sh, which installs the references.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
)

// Impl names.
const (
	ours      = "ours"
	oursGonum = "ours (pure Go)"
	oursBF16  = "ours (bf16 sketch)" // WithSketchPrecision(SketchBF16): the AVX-512 BF16 kernel where the CPU has it
)

type workload struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // exact, randomized, apply, model
	D        int    `json:"d"`
	K        int    `json:"k"`
	R        int    `json:"r,omitempty"`
	N        int    `json:"n,omitempty"` // apply batch
	DType    string `json:"dtype"`
	Spectrum string `json:"spectrum,omitempty"`
	Reps     int    `json:"reps"`
	refs     []string
	gonum    bool // also time the pure-Go path
}

type result struct {
	Workload workload           `json:"workload"`
	Impl     string             `json:"impl"`
	Median   float64            `json:"median_s"`
	Samples  []float64          `json:"samples_s"`
	Err      float64            `json:"err,omitempty"`     // ‖W − B·A‖_F (randomized, exact) or max rel diff (apply)
	Optimal  float64            `json:"optimal,omitempty"` // Eckart–Young optimum for the rank
	Extra    map[string]float64 `json:"extra,omitempty"`
	Note     string             `json:"note,omitempty"`
}

type env struct {
	out, data, tmp string
	w              *worker
	gonum          *cpu.Backend
	sys            lowrank.Backend // the default CPU backend
	sleep          time.Duration
	lowrankCLI     string
	log            *os.File
}

func main() {
	var (
		out      = flag.String("out", "bench/out", "output folder (results.md, results.json, PNG plots, data/ cache)")
		reps     = flag.Int("reps", 5, "timed runs per implementation and workload (after one warm-up run)")
		quick    = flag.Bool("quick", false, "small sizes, to check the harness itself")
		skipF64  = flag.Bool("skip-f64-4096", false, "skip the exact 4096² float64 SVD (≈ 20 s per run per implementation)")
		noGonum  = flag.Bool("no-gonum", false, "do not time the pure-Go path")
		only     = flag.String("only", "", "run only workloads whose name matches this regular expression")
		python   = flag.String("python", "/usr/bin/python3", "Python with numpy, scipy, torch and scikit-learn")
		script   = flag.String("ref", "bench/ref.py", "the reference worker")
		cli      = flag.String("lowrank", "", "lowrank command for the whole-model workload (built by run.sh)")
		sleepMS  = flag.Int("sleep-ms", 250, "pause between calls, so that one side's idle BLAS threads stop spinning before the other runs")
		modelMiB = flag.Int("model-mib", 256, "size of the generated model file")
		replot   = flag.Bool("replot", false, "only rewrite results.md and the plots from -out's results.json")
		conc     = flag.Bool("concurrency", false, "only the concurrency mode: applies/s from 1, 8, 64 goroutines and factorizations/s from 1, 2, 4 callers (writes concurrency.md; no Python)")
		concDur  = flag.Duration("concurrency-time", 2*time.Second, "time per configuration and round in the concurrency mode")
	)
	flag.Parse()
	if *conc {
		if err := runConcurrency(*out, *reps, *concDur, *quick); err != nil {
			fmt.Fprintln(os.Stderr, "lowrank-bench:", err)
			os.Exit(1)
		}
		return
	}
	if *replot {
		if err := rewrite(*out); err != nil {
			fmt.Fprintln(os.Stderr, "lowrank-bench:", err)
			os.Exit(1)
		}
		return
	}
	if *quick {
		*modelMiB = 16
	}
	if err := run(*out, *reps, *quick, *skipF64, !*noGonum, *only, *python, *script, *cli, time.Duration(*sleepMS)*time.Millisecond, *modelMiB); err != nil {
		fmt.Fprintln(os.Stderr, "lowrank-bench:", err)
		os.Exit(1)
	}
}

func run(out string, reps int, quick, skipF64, gonum bool, only, python, script, cli string, sleep time.Duration, modelMiB int) error {
	var err error
	e := &env{out: out, data: filepath.Join(out, "data"), tmp: filepath.Join(out, "tmp"), gonum: cpu.NewGonum(), sleep: sleep, lowrankCLI: cli}
	for _, d := range []string{e.data, e.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if e.sys, err = lowrank.LookupBackend("cpu"); err != nil {
		return err
	}
	w, err := startWorker(python, script)
	if err != nil {
		return err
	}
	defer w.close()
	e.w = w
	var vers map[string]any
	if err := w.call(map[string]any{"cmd": "versions"}, &vers); err != nil {
		return err
	}
	machine := describeMachine(vers)
	for _, l := range machine {
		fmt.Println(l)
	}
	bw := copyBandwidth()
	fmt.Printf("copy bandwidth: %.1f GB/s (STREAM convention: 2 bytes moved per byte copied)\n", bw/1e9)

	var re *regexp.Regexp
	if only != "" {
		if re, err = regexp.Compile(only); err != nil {
			return err
		}
	}
	// The randomized rows' arithmetic floor needs this machine's SGEMM
	// rate, measured once through numpy on the same OpenBLAS and threads.
	var peak float64
	for _, wl := range workloads(quick, skipF64, gonum, reps, modelMiB) {
		if wl.Kind == "randomized" && wl.DType == "float32" && (re == nil || re.MatchString(wl.Name)) {
			var p struct {
				Flops float64 `json:"flops"`
			}
			if err := w.call(map[string]any{"cmd": "sgemm_peak", "n": 4096}, &p); err != nil {
				return err
			}
			peak = p.Flops
			line := fmt.Sprintf("SGEMM peak (numpy float32 4096³, best of 3, the run's threads): %.1f GFLOP/s", peak/1e9)
			fmt.Println(line)
			machine = append(machine, line)
			break
		}
	}
	var results []result
	for _, wl := range workloads(quick, skipF64, gonum, reps, modelMiB) {
		if re != nil && !re.MatchString(wl.Name) {
			continue
		}
		fmt.Printf("== %s\n", wl.Name)
		var rs []result
		var err error
		switch wl.Kind {
		case "exact", "randomized":
			if wl.DType == "float32" {
				rs, err = factorWorkload[float32](e, wl)
			} else {
				rs, err = factorWorkload[float64](e, wl)
			}
		case "apply":
			rs, err = applyWorkload(e, wl, bw)
		case "model":
			rs, err = modelWorkload(e, wl, modelMiB)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", wl.Name, err)
		}
		if wl.Kind == "randomized" && peak > 0 {
			// Six passes over W (sketch, 2·2 power iterations, B = Qᵀ·W)
			// with l = r + 10 columns, at the SGEMM peak.
			floor := 6 * 2 * float64(wl.D) * float64(wl.K) * float64(wl.R+10) / peak
			for i := range rs {
				if rs[i].Extra == nil {
					rs[i].Extra = map[string]float64{}
				}
				rs[i].Extra["floor_s"] = floor
			}
		}
		for _, r := range rs {
			fmt.Printf("   %-16s median %9s  %s\n", r.Impl, fmtTime(r.Median), r.Note)
		}
		results = append(results, rs...)
		// Written after every workload, so an interrupted run keeps what
		// it measured.
		if err := writeResults(out, machine, bw, results); err != nil {
			return err
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		machine = append(machine, "load average at the end: "+strings.Join(strings.Fields(string(b))[:3], ", "))
		if err := writeResults(out, machine, bw, results); err != nil {
			return err
		}
	}
	if err := plots(out, results); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", filepath.Join(out, "results.md"))
	return nil
}

func workloads(quick, skipF64, gonum bool, reps, modelMiB int) []workload {
	var ws []workload
	exact := []int{1024, 2048, 4096}
	shapes := [][2]int{{4096, 4096}, {4096, 11008}}
	ranks := []int{16, 64, 256}
	if quick {
		exact = []int{256, 512}
		shapes = [][2]int{{512, 512}, {512, 1376}}
		ranks = []int{16, 64}
	}
	for _, dt := range []string{"float32", "float64"} {
		for _, n := range exact {
			if dt == "float64" && n == 4096 && skipF64 {
				continue
			}
			r := reps
			if n >= 4096 {
				r = min(reps, 3)
			}
			ws = append(ws, workload{Name: fmt.Sprintf("exact %d×%d %s", n, n, dt), Kind: "exact", D: n, K: n, DType: dt, Reps: r,
				refs: []string{"numpy", "scipy", "torch"}, gonum: gonum && n <= 1024})
		}
	}
	for _, sh := range shapes {
		for _, sp := range []string{"gaussian", "decay"} {
			for _, r := range ranks {
				ws = append(ws, workload{Name: fmt.Sprintf("randomized %d×%d r=%d %s", sh[0], sh[1], r, sp), Kind: "randomized",
					D: sh[0], K: sh[1], R: r, DType: "float32", Spectrum: sp, Reps: reps, refs: []string{"torch", "sklearn"}, gonum: gonum})
			}
		}
	}
	for _, sh := range shapes {
		for _, n := range []int{1, 64} {
			ws = append(ws, workload{Name: fmt.Sprintf("apply %d×%d r=64 n=%d", sh[0], sh[1], n), Kind: "apply", D: sh[0], K: sh[1], R: 64, N: n,
				DType: "float32", Reps: max(reps, 7), refs: []string{"numpy", "torch"}, gonum: gonum})
		}
	}
	ws = append(ws, workload{Name: fmt.Sprintf("model factorize %d MiB r=64", modelMiB), Kind: "model", R: 64, DType: "float32", Reps: min(reps, 3), refs: []string{"torch"}})
	return ws
}

func (e *env) pause() { time.Sleep(e.sleep) }

// alternate runs warm-up and reps rounds of every implementation, rotating
// the order each round so that no side always runs first.
//
// After the warm-up round it runs one garbage collection in this process
// (the Go side's). A Go heap grows into fresh memory — a page fault per
// 4 KiB — until its live size has doubled and it collects; a long-running
// program is past that point, a benchmark's first workloads are not: the
// first workload of a run measured 187 ms for lowrank where the same
// shape second measured 130 ms, while torch measured 185 and 189 ms. The
// collection, outside the timed calls, lets the timed calls reuse the
// memory the warm-up faulted in, as they would in a program that has run
// for a while. The Python side frees memory as it goes and needs none.
func alternate(e *env, impls []string, reps int, one func(impl string, rep int) (float64, error)) (map[string][]float64, error) {
	times := map[string][]float64{}
	for rep := -1; rep < reps; rep++ {
		if rep == 0 {
			runtime.GC()
		}
		for i := range impls {
			impl := impls[(i+max(rep, 0))%len(impls)]
			e.pause()
			t, err := one(impl, rep)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", impl, err)
			}
			if rep >= 0 { // rep -1 is the warm-up
				times[impl] = append(times[impl], t)
			}
		}
	}
	return times, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func dataPath(e *env, wl workload) string {
	sp := wl.Spectrum
	if sp == "" {
		sp = "gaussian"
	}
	return filepath.Join(e.data, fmt.Sprintf("w_%dx%d_%s_%s.npy", wl.D, wl.K, wl.DType, sp))
}

func factorWorkload[T lowrank.Float](e *env, wl workload) ([]result, error) {
	path := dataPath(e, wl)
	spectrum := wl.Spectrum
	if spectrum == "" {
		spectrum = "gaussian"
	}
	var spec struct {
		Norm2 float64   `json:"norm2"`
		Sigma []float64 `json:"sigma"`
	}
	top := 0
	if wl.Kind == "randomized" {
		top = 512
	}
	if err := e.w.call(map[string]any{"cmd": "gen", "path": path, "d": wl.D, "k": wl.K, "dtype": wl.DType, "spectrum": spectrum, "seed": wl.D*31 + wl.K, "top": top}, &spec); err != nil {
		return nil, err
	}
	data, _, err := readNpy[T](path)
	if err != nil {
		return nil, err
	}
	w := lowrank.Matrix[T]{Rows: wl.D, Cols: wl.K, Data: data}
	if err := e.w.call(map[string]any{"cmd": "load", "path": path}, nil); err != nil {
		return nil, err
	}
	impls := []string{ours}
	if wl.Kind == "randomized" && wl.DType == "float32" {
		impls = append(impls, oursBF16)
	}
	if wl.gonum {
		impls = append(impls, oursGonum)
	}
	impls = append(impls, wl.refs...)
	errs := map[string]float64{}
	// ours runs the library; the factors of the first timed run are
	// evaluated by the worker with the same code as the references'.
	runOurs := func(b lowrank.Backend, evaluate bool, extra ...lowrank.Option) (secs, errF float64, err error) {
		var bm, am lowrank.Matrix[T]
		var t time.Duration
		if wl.Kind == "exact" {
			start := time.Now()
			res, err := lowrank.SVD(w, lowrank.WithBackend(b))
			t = time.Since(start)
			if err != nil {
				return 0, 0, err
			}
			if evaluate {
				p := len(res.S)
				for i := range res.U.Rows {
					for j := range p {
						res.U.Data[i*p+j] *= res.S[j]
					}
				}
				bm, am = res.U, res.Vt
			}
		} else {
			start := time.Now()
			opts := append([]lowrank.Option{lowrank.WithMethod(lowrank.Randomized),
				lowrank.WithPowerIters(2), lowrank.WithOversampling(10), lowrank.WithBackend(b)}, extra...)
			f, err := lowrank.Factorize(w, lowrank.Rank(wl.R), opts...)
			t = time.Since(start)
			if err != nil {
				return 0, 0, err
			}
			bm, am = f.B, f.A
		}
		if evaluate {
			bp, ap := filepath.Join(e.tmp, "B.npy"), filepath.Join(e.tmp, "A.npy")
			if err := writeNpy(bp, bm.Rows, bm.Cols, bm.Data); err != nil {
				return 0, 0, err
			}
			if err := writeNpy(ap, am.Rows, am.Cols, am.Data); err != nil {
				return 0, 0, err
			}
			var r struct{ Err float64 }
			if err := e.w.call(map[string]any{"cmd": "eval", "path": path, "b": bp, "a": ap}, &r); err != nil {
				return 0, 0, err
			}
			return t.Seconds(), r.Err, nil
		}
		return t.Seconds(), 0, nil
	}
	op := "rsvd"
	if wl.Kind == "exact" {
		op = "svd"
	}
	times, err := alternate(e, impls, wl.Reps, func(impl string, rep int) (float64, error) {
		evaluate := rep == 0
		switch impl {
		case ours, oursGonum, oursBF16:
			var b lowrank.Backend = e.sys
			if impl == oursGonum {
				b = e.gonum
			}
			var extra []lowrank.Option
			if impl == oursBF16 {
				extra = append(extra, lowrank.WithSketchPrecision(lowrank.SketchBF16))
			}
			t, ef, err := runOurs(b, evaluate, extra...)
			if evaluate {
				errs[impl] = ef
			}
			return t, err
		default:
			var r struct {
				Seconds float64
				Err     float64
			}
			if err := e.w.call(map[string]any{"cmd": "run", "path": path, "lib": impl, "op": op, "r": wl.R, "eval": evaluate}, &r); err != nil {
				return 0, err
			}
			if evaluate {
				errs[impl] = r.Err
			}
			return r.Seconds, nil
		}
	})
	if err != nil {
		return nil, err
	}
	var opt float64
	if wl.Kind == "randomized" {
		kept := 0.0
		for _, s := range spec.Sigma[:wl.R] {
			kept += s * s
		}
		opt = math.Sqrt(math.Max(spec.Norm2-kept, 0))
	}
	var norm float64
	for _, v := range data {
		norm += float64(v) * float64(v)
	}
	norm = math.Sqrt(norm)
	var rs []result
	for _, impl := range impls {
		r := result{Workload: wl, Impl: impl, Median: median(times[impl]), Samples: times[impl], Err: errs[impl], Optimal: opt}
		if wl.Kind == "randomized" {
			r.Note = fmt.Sprintf("error/optimal %.4f", r.Err/opt)
		} else {
			r.Err /= norm
			r.Note = fmt.Sprintf("‖W−USVᵀ‖/‖W‖ %.1e", r.Err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func applyWorkload(e *env, wl workload, bw float64) ([]result, error) {
	rng := newRand(11)
	d, k, r, n := wl.D, wl.K, wl.R, wl.N
	bm := lowrank.Matrix[float32]{Rows: d, Cols: r, Data: rng.f32(d * r)}
	am := lowrank.Matrix[float32]{Rows: r, Cols: k, Data: rng.f32(r * k)}
	bp, ap := filepath.Join(e.tmp, "applyB.npy"), filepath.Join(e.tmp, "applyA.npy")
	if err := writeNpy(bp, d, r, bm.Data); err != nil {
		return nil, err
	}
	if err := writeNpy(ap, r, k, am.Data); err != nil {
		return nil, err
	}
	if err := e.w.call(map[string]any{"cmd": "factors", "b": bp, "a": ap}, nil); err != nil {
		return nil, err
	}
	x := lowrank.Matrix[float32]{Rows: n, Cols: k, Data: rng.f32(n * k)}
	y := lowrank.Matrix[float32]{Rows: n, Cols: d, Data: make([]float32, n*d)}
	mk := func(b lowrank.Backend) (func() error, error) {
		// Factors made by NewFactors apply on the default backend; the
		// pure-Go path is timed through its engine's applier, which is
		// what Factors.Apply calls.
		if b == lowrank.Backend(e.gonum) {
			app, err := e.gonum.Float32().NewApplier(d, r, k, bm.Data, am.Data)
			if err != nil {
				return nil, err
			}
			return func() error { return app.Apply(y.Data, x.Data, n, nil) }, nil
		}
		f, err := lowrank.NewFactors(bm, am)
		if err != nil {
			return nil, err
		}
		if n == 1 {
			return func() error { return f.ApplyTo(y.Data, x.Data, nil) }, nil
		}
		return func() error { return f.ApplyBatchTo(y, x, nil) }, nil
	}
	impls := []string{ours}
	if wl.gonum {
		impls = append(impls, oursGonum)
	}
	impls = append(impls, wl.refs...)
	calls := map[string]func() error{}
	for _, impl := range impls[:len(impls)-len(wl.refs)] {
		var b lowrank.Backend = e.sys
		if impl == oursGonum {
			b = e.gonum
		}
		f, err := mk(b)
		if err != nil {
			return nil, err
		}
		calls[impl] = f
	}
	times, err := alternate(e, impls, 1, func(impl string, rep int) (float64, error) {
		if f, ok := calls[impl]; ok {
			return timeCalls(f, wl.Reps)
		}
		var res struct{ Seconds float64 }
		if err := e.w.call(map[string]any{"cmd": "apply", "lib": impl, "n": n, "reps": wl.Reps}, &res); err != nil {
			return 0, err
		}
		return res.Seconds, nil
	})
	if err != nil {
		return nil, err
	}
	flops := float64(2 * n * (d + k) * r)
	bound := float64((d+k)*r*4) / bw
	var rs []result
	for _, impl := range impls {
		t := median(times[impl])
		res := result{Workload: wl, Impl: impl, Median: t, Samples: times[impl], Extra: map[string]float64{"gflops": flops / t / 1e9}}
		res.Note = fmt.Sprintf("%.1f GFLOP/s", flops/t/1e9)
		if n == 1 {
			res.Extra["bandwidth_bound_s"] = bound
			res.Note += fmt.Sprintf(", %.2f× the bandwidth bound %.1f µs", t/bound, bound*1e6)
		}
		rs = append(rs, res)
	}
	return rs, nil
}

// timeCalls returns the median seconds per call over reps samples of
// enough calls to last ≈ 20 ms each.
func timeCalls(f func() error, reps int) (float64, error) {
	if err := f(); err != nil {
		return 0, err
	}
	start := time.Now()
	f()
	one := max(time.Since(start).Seconds(), 1e-7)
	inner := max(1, int(0.02/one))
	var s []float64
	for range reps {
		start := time.Now()
		for range inner {
			if err := f(); err != nil {
				return 0, err
			}
		}
		s = append(s, time.Since(start).Seconds()/float64(inner))
	}
	return median(s), nil
}

// copyBandwidth measures memory bandwidth with copy() of 256 MiB, best of
// five, counting read and write (STREAM's convention).
func copyBandwidth() float64 {
	const n = 256 << 20
	src := make([]byte, n)
	dst := make([]byte, n)
	for i := range src {
		src[i] = byte(i)
	}
	copy(dst, src)
	best := math.Inf(1)
	for range 5 {
		start := time.Now()
		copy(dst, src)
		best = min(best, time.Since(start).Seconds())
	}
	return 2 * n / best
}

func modelWorkload(e *env, wl workload, mib int) ([]result, error) {
	if e.lowrankCLI == "" {
		return []result{{Workload: wl, Impl: ours, Median: 0, Note: "skipped: no lowrank command given (-lowrank)"}}, nil
	}
	// Does this build have `lowrank factorize` yet (issue 4)?
	if out, err := exec.Command(e.lowrankCLI, "factorize", "-h").CombinedOutput(); err != nil && strings.Contains(strings.ToLower(string(out)), "unknown") {
		return []result{{Workload: wl, Impl: ours, Median: 0, Note: "skipped: this build has no `lowrank factorize` command yet"}}, nil
	}
	// Layers of a d×k and a k×d weight: 2·d·k·4 bytes each.
	d, k := 1024, 4096
	if mib < 64 {
		d, k = 512, 1024
	}
	layers := max(1, mib<<20/(2*d*k*4))
	wl.D, wl.K = d, k
	in := filepath.Join(e.data, fmt.Sprintf("model_%dx%d_x%d.safetensors", d, k, layers))
	if err := e.w.call(map[string]any{"cmd": "gen_model", "path": in, "layers": layers, "d": d, "k": k, "seed": 7}, nil); err != nil {
		return nil, err
	}
	outOurs := filepath.Join(e.tmp, "model_ours.safetensors")
	outRef := filepath.Join(e.tmp, "model_torch.safetensors")
	times, err := alternate(e, []string{ours, oursBF16, "torch"}, wl.Reps, func(impl string, rep int) (float64, error) {
		if impl == ours || impl == oursBF16 {
			args := []string{"factorize", in, "-o", outOurs, "--rank", fmt.Sprint(wl.R), "--method", "randomized", "--quiet", "--force"}
			if impl == oursBF16 {
				args = append(args, "--sketch-precision", "bf16")
			}
			cmd := exec.Command(e.lowrankCLI, args...)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				return 0, fmt.Errorf("lowrank factorize: %v: %s", err, out)
			}
			return time.Since(start).Seconds(), nil
		}
		var r struct{ Seconds float64 }
		err := e.w.call(map[string]any{"cmd": "model", "path": in, "out": outRef, "r": wl.R}, &r)
		return r.Seconds, err
	})
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%d layers of %d×%d and %d×%d float32", layers, d, k, k, d)
	return []result{
		{Workload: wl, Impl: ours, Median: median(times[ours]), Samples: times[ours], Note: note},
		{Workload: wl, Impl: oursBF16, Median: median(times[oursBF16]), Samples: times[oursBF16], Note: note + ", --sketch-precision bf16"},
		{Workload: wl, Impl: "torch", Median: median(times["torch"]), Samples: times["torch"], Note: "torch.svd_lowrank per tensor, q=r+10, niter=2"},
	}, nil
}

func describeMachine(vers map[string]any) []string {
	var l []string
	l = append(l, "date: "+time.Now().UTC().Format("2006-01-02 15:04 MST"))
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				_, v, _ := strings.Cut(line, ":")
				l = append(l, "CPU: "+strings.TrimSpace(v))
				break
			}
		}
	}
	l = append(l, fmt.Sprintf("cores: %d (runtime.NumCPU)", runtime.NumCPU()))
	if t := os.Getenv("LOWRANK_BENCH_THREADS"); t != "" {
		l = append(l, "threads: "+t+" for every side (bench/run.sh -threads)")
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		l = append(l, "load average at start (1, 5, 15 min; other processes make timings noisy): "+strings.Join(strings.Fields(string(b))[:3], ", "))
	}
	if v := os.Getenv("OPENBLAS_CORETYPE"); v != "" {
		l = append(l, "OPENBLAS_CORETYPE="+v+" for both sides")
	}
	for _, b := range lowrank.Backends() {
		if b.Name == "cpu" {
			for _, d := range b.Details {
				l = append(l, "lowrank cpu: "+d)
			}
		}
	}
	l = append(l, "go: "+runtime.Version())
	for _, k := range []string{"python", "numpy", "scipy", "sklearn", "torch", "torch_threads", "blas"} {
		l = append(l, fmt.Sprintf("%s: %v", k, vers[k]))
	}
	return l
}

func writeResults(out string, machine []string, bw float64, rs []result) error {
	b, err := json.MarshalIndent(map[string]any{"machine": machine, "copy_bandwidth_Bps": bw, "results": rs}, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "results.json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "results.md"), []byte(markdown(machine, bw, rs)), 0o644)
}

// rewrite regenerates results.md and the plots from results.json.
func rewrite(out string) error {
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		return err
	}
	var saved struct {
		Machine []string `json:"machine"`
		BW      float64  `json:"copy_bandwidth_Bps"`
		Results []result `json:"results"`
	}
	if err := json.Unmarshal(b, &saved); err != nil {
		return err
	}
	if err := writeResults(out, saved.Machine, saved.BW, saved.Results); err != nil {
		return err
	}
	return plots(out, saved.Results)
}
