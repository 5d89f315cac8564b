package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/safetensors"
)

// calibModel writes a model with three linear layers and a calibration
// file for two of them, from inputs with a large mean and very unequal
// channels: l0 (C and μ, with a bias: factorized about the mean, its bias
// shifted), l1 (C only, no bias), l2 (no statistics: plain SVD). It
// returns the inputs of each calibrated layer (n×k, row-major).
func calibModel(t *testing.T, dir string, calDT safetensors.DType) (model, stats string, inputs map[string][]float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(16, 1))
	const n = 400
	model = filepath.Join(dir, "model.safetensors")
	stats = filepath.Join(dir, "stats.safetensors")
	shapes := map[string][2]int{"l0.weight": {40, 30}, "l1.weight": {36, 24}, "l2.weight": {20, 16}}
	var mts, sts []tensor
	inputs = map[string][]float64{}
	for _, name := range []string{"l0.weight", "l1.weight", "l2.weight"} {
		d, k := shapes[name][0], shapes[name][1]
		mts = append(mts, tensor{name: name, dt: safetensors.F32, shape: []int{d, k}, vals: decaying(rng, d, k)})
		if name == "l2.weight" {
			continue
		}
		x := make([]float64, n*k)
		for i := range n {
			for j := range k {
				x[i*k+j] = 1 + rng.NormFloat64()*math.Pow(10, -2*float64(j)/float64(k))
			}
		}
		inputs[name] = x
		var c mat.SymDense
		c.SymOuterK(1/float64(n), mat.NewDense(n, k, x).T())
		cv := make([]float64, k*k)
		mu := make([]float64, k)
		for i := range k {
			for j := range k {
				cv[i*k+j] = c.At(i, j)
			}
			for r := range n {
				mu[i] += x[r*k+i] / n
			}
		}
		sts = append(sts, tensor{name: name, dt: calDT, shape: []int{k, k}, vals: cv})
		sts = append(sts, tensor{name: name + ".input_mean", dt: calDT, shape: []int{k}, vals: mu})
	}
	mts = append(mts, tensor{name: "l0.bias", dt: safetensors.F32, shape: []int{40}, vals: gauss(rng, 40, 1)})
	writeST(t, model, nil, mts...)
	writeST(t, stats, nil, sts...)
	return model, stats, inputs
}

// outputErr is ‖(W − B·A)·Xᵀ + δ‖/‖W·Xᵀ + …‖ on the inputs x, with the bias
// change δ: centred when shift is non-nil (the error about the mean).
func outputErr(w, ba, x, shift []float64, d, k int) float64 {
	n := len(x) / k
	mu := make([]float64, k)
	for i := range n {
		for j := range k {
			mu[j] += x[i*k+j] / float64(n)
		}
	}
	var num, den float64
	for i := range n {
		for r := range d {
			var e, y float64
			for j := range k {
				e += (w[r*k+j] - ba[r*k+j]) * x[i*k+j]
				xv := x[i*k+j]
				if shift != nil {
					xv -= mu[j]
				}
				y += w[r*k+j] * xv
			}
			if shift != nil {
				e -= shift[r]
			}
			num += e * e
			den += y * y
		}
	}
	return math.Sqrt(num / den)
}

// TestCalibration: --calibration factorizes the weights that have
// statistics for their outputs (the recorded output error is the one
// measured on the inputs, and beats plain SVD's), shifts the bias of the
// one whose mean is known, falls back to plain SVD for the one without,
// and says so in the table, the report and the metadata.
func TestCalibration(t *testing.T) {
	for _, dt := range []safetensors.DType{safetensors.F64, safetensors.F32} {
		t.Run(string(dt), func(t *testing.T) {
			dir := t.TempDir()
			model, stats, inputs := calibModel(t, dir, dt)
			out := filepath.Join(dir, "out.safetensors")
			plain := filepath.Join(dir, "plain.safetensors")
			rep := filepath.Join(dir, "report.json")
			table := mustCLI(t, "factorize", model, "-o", out, "--rank", "4", "--calibration", stats, "--report", rep)
			mustCLI(t, "factorize", model, "-o", plain, "--rank", "4", "--quiet")
			for _, want := range []string{"out.err", "calibration", "calibrated", "plain (no statistics)", "bias shifted"} {
				if !strings.Contains(table, want) {
					t.Errorf("table lacks %q:\n%s", want, table)
				}
			}
			mv, _, _ := readST(t, model)
			ov, _, meta := readST(t, out)
			pv, _, _ := readST(t, plain)
			var fm factMeta
			if err := json.Unmarshal([]byte(meta[metaKey]), &fm); err != nil {
				t.Fatal(err)
			}
			if fm.Calibration != "stats.safetensors" {
				t.Errorf("metadata calibration %q", fm.Calibration)
			}
			for name, x := range inputs {
				tm := fm.Tensors[name]
				d, k := tm.Shape[0], tm.Shape[1]
				if tm.Calibrated == nil || !*tm.Calibrated || tm.OutputRelError == nil || tm.Ridge == nil {
					t.Fatalf("%s: metadata %+v; want calibrated with its output error and ridge", name, tm)
				}
				ba := matmul(ov[name+".B"], ov[name+".A"], d, 4, k)
				var shift []float64
				if name == "l0.weight" {
					if tm.BiasShifted != "l0.bias" {
						t.Errorf("l0: bias_shifted %q; want l0.bias", tm.BiasShifted)
					}
					shift = make([]float64, d)
					for i := range d {
						shift[i] = ov["l0.bias"][i] - mv["l0.bias"][i]
					}
				} else if tm.BiasShifted != "" {
					t.Errorf("%s has no bias but bias_shifted %q", name, tm.BiasShifted)
				}
				got := outputErr(mv[name], ba, x, shift, d, k)
				if math.Abs(got-*tm.OutputRelError) > 1e-5*got+1e-7 {
					t.Errorf("%s: output error on the inputs %.8g; recorded %.8g", name, got, *tm.OutputRelError)
				}
				pba := matmul(pv[name+".B"], pv[name+".A"], d, 4, k)
				var pshift []float64
				if shift != nil { // plain SVD with the best bias change for it
					pshift = make([]float64, d)
					for i := range d {
						for j := range k {
							var m float64
							for r := 0; r < len(x)/k; r++ {
								m += x[r*k+j]
							}
							pshift[i] += (mv[name][i*k+j] - pba[i*k+j]) * m / float64(len(x)/k)
						}
					}
				}
				if base := outputErr(mv[name], pba, x, pshift, d, k); got >= base {
					t.Errorf("%s: calibrated output error %.4g ≥ plain SVD's %.4g", name, got, base)
				}
			}
			if tm := fm.Tensors["l2.weight"]; tm.Calibrated == nil || *tm.Calibrated || tm.OutputRelError != nil {
				t.Errorf("l2 (no statistics): metadata %+v; want calibrated false", tm)
			}
			if relDiff(ov["l2.weight.A"], pv["l2.weight.A"]) > 1e-6 {
				t.Errorf("l2 without statistics differs from plain SVD")
			}
			r := readJSON(t, rep)
			cal := map[string]string{}
			for _, row := range r["tensors"].([]any) {
				m := row.(map[string]any)
				if c, ok := m["calibration"].(string); ok {
					cal[m["name"].(string)] = c
				}
			}
			if cal["l0.weight"] != "calibrated" || cal["l1.weight"] != "calibrated" || cal["l2.weight"] != "plain (no statistics)" {
				t.Errorf("report calibration column %v", cal)
			}
			// lowrank merge turns it back into a dense model, with the
			// shifted bias.
			dense := filepath.Join(dir, "dense.safetensors")
			mustCLI(t, "merge", out, "-o", dense, "--quiet")
			dv, _, _ := readST(t, dense)
			if relDiff(dv["l0.bias"], ov["l0.bias"]) != 0 || relDiff(dv["l0.weight"], matmul(ov["l0.weight.B"], ov["l0.weight.A"], 40, 4, 30)) > 1e-6 {
				t.Errorf("merge of a calibrated file")
			}
		})
	}
}

// TestCalibrationBadInput: every bad entry is one lowrank: line naming the
// calibration file and the tensor, before any output exists.
func TestCalibrationBadInput(t *testing.T) {
	dir := t.TempDir()
	model, stats, _ := calibModel(t, dir, safetensors.F64)
	sv, shapes, _ := readST(t, stats)
	bad := func(name string, edit func(vals map[string][]float64, shapes map[string][]int, dts map[string]safetensors.DType)) string {
		vals := map[string][]float64{}
		sh := map[string][]int{}
		dts := map[string]safetensors.DType{}
		for n, v := range sv {
			vals[n] = append([]float64(nil), v...)
			sh[n] = shapes[n]
			dts[n] = safetensors.F64
		}
		edit(vals, sh, dts)
		var ts []tensor
		for n, v := range vals {
			ts = append(ts, tensor{name: n, dt: dts[n], shape: sh[n], vals: v})
		}
		p := filepath.Join(dir, name+".safetensors")
		writeST(t, p, nil, ts...)
		return p
	}
	const k = 30 // l0's inputs
	cases := []struct {
		name  string
		edit  func(map[string][]float64, map[string][]int, map[string]safetensors.DType)
		wants []string
	}{
		{"size", func(v map[string][]float64, s map[string][]int, _ map[string]safetensors.DType) {
			v["l0.weight"] = make([]float64, 29*29)
			s["l0.weight"] = []int{29, 29}
		}, []string{"shape [29 29]", "expected [30 30]"}},
		{"dtype", func(_ map[string][]float64, _ map[string][]int, d map[string]safetensors.DType) {
			d["l0.weight"] = safetensors.F16
		}, []string{"dtype F16", "expected F32 or F64"}},
		{"asymmetric", func(v map[string][]float64, _ map[string][]int, _ map[string]safetensors.DType) {
			v["l0.weight"][1] += 0.5
		}, []string{"not symmetric"}},
		{"negative", func(v map[string][]float64, _ map[string][]int, _ map[string]safetensors.DType) {
			for i := range k {
				v["l0.weight"][i*k+i] -= 3 // eigenvalues near −2
			}
		}, []string{"negative"}},
		{"nan", func(v map[string][]float64, _ map[string][]int, _ map[string]safetensors.DType) {
			v["l0.weight"][2*k+3] = math.NaN()
		}, []string{"[2, 3] is NaN"}},
		{"mean", func(v map[string][]float64, s map[string][]int, _ map[string]safetensors.DType) {
			v["l0.weight.input_mean"] = v["l0.weight.input_mean"][:5]
			s["l0.weight.input_mean"] = []int{5}
		}, []string{"l0.weight.input_mean", "expected F32 or F64 of shape [30]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := bad(tc.name, tc.edit)
			out := filepath.Join(dir, "out-"+tc.name+".safetensors")
			assertFails(t, dir, nil, []string{"factorize", model, "-o", out, "--rank", "4", "--calibration", p, "--quiet"},
				append([]string{p, "l0.weight"}, tc.wants...)...)
		})
	}
	// The calibration file is an input: no output may replace it.
	assertFails(t, dir, nil, []string{"factorize", model, "-o", stats, "--rank", "4", "--calibration", stats, "--force", "--quiet"}, stats)
	// A missing file.
	assertFails(t, dir, nil, []string{"factorize", model, "-o", filepath.Join(dir, "x.safetensors"), "--rank", "4", "--calibration", filepath.Join(dir, "none.safetensors")}, "none.safetensors")
}

// TestCalibrationUnused: entries that match no selected tensor are noted
// on stderr, with --quiet too, and the run succeeds; a file that
// calibrates none of the selected tensors (names of another model, or of
// another prefix) is an error before any work, not a silent plain SVD.
func TestCalibrationUnused(t *testing.T) {
	dir := t.TempDir()
	model, stats, _ := calibModel(t, dir, safetensors.F32)
	out := filepath.Join(dir, "out.safetensors")
	code, _, errs := cli("factorize", model, "-o", out, "--rank", "4", "--calibration", stats, "--include", "^l[12]", "--quiet")
	if code != 0 || !strings.Contains(errs, "2 of the 4 matrices in stats.safetensors match no selected tensor") {
		t.Errorf("exit %d, stderr %q; want a note about the 2 unused entries", code, errs)
	}
	if _, err := os.Stat(out); err != nil {
		t.Error(err)
	}
	none := filepath.Join(dir, "none.safetensors")
	assertFails(t, dir, nil, []string{"factorize", model, "-o", none, "--rank", "4", "--calibration", stats, "--include", "^l2"},
		stats, "none of its 4 tensors calibrates a tensor to factorize", "not selected", `"l2.weight"`)
	empty := filepath.Join(dir, "empty.safetensors")
	writeST(t, empty, nil)
	assertFails(t, dir, nil, []string{"factorize", model, "-o", none, "--rank", "4", "--calibration", empty},
		empty, "holds no matrix")
}

// TestCalibrationPython: numpy, reading the files itself
// (scripts/st_check.py), finds the recorded output errors and the bias
// shift; the statistics come from scripts/collect_stats.py's own writer
// (numpy and json, no safetensors package) when PyTorch is there.
func TestCalibrationPython(t *testing.T) {
	py := pythonWithNumpy(t)
	check, _ := filepath.Abs("../../scripts/st_check.py")
	dir := t.TempDir()
	model, stats, _ := calibModel(t, dir, safetensors.F64)
	for _, dt := range []string{"keep", "f32"} {
		out := filepath.Join(dir, "out-"+dt+".safetensors")
		mustCLI(t, "factorize", model, "-o", out, "--rank", "5", "--calibration", stats, "--dtype", dt, "--quiet")
		for _, mode := range []string{"calibrated", "factorized"} {
			args := []string{check, mode, model, out}
			if mode == "calibrated" {
				args = append(args, stats)
			}
			if b, err := exec.Command(py, args...).CombinedOutput(); err != nil || !strings.Contains(string(b), "OK") {
				t.Errorf("st_check.py %s (--dtype %s): %v\n%s", mode, dt, err, b)
			}
		}
	}
}

// TestCollectStats: scripts/collect_stats.py, run on a small PyTorch
// model, writes statistics (with its numpy-and-json writer when the
// safetensors package is absent) that lowrank reads and uses, and numpy
// agrees with the outcome. It needs a python3 with torch (Debian's
// python3-torch); LOWRANK_REQUIRE_TORCH=1 makes its absence a failure.
func TestCollectStats(t *testing.T) {
	var py string
	for _, p := range []string{os.Getenv("LOWRANK_PYTHON"), "python3", "/usr/bin/python3"} {
		if p != "" && exec.Command(p, "-c", "import torch, numpy").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		if os.Getenv("LOWRANK_REQUIRE_TORCH") == "1" {
			t.Fatal("no python3 with torch and numpy (apt-get install python3-torch)")
		}
		t.Skip("no python3 with torch and numpy (apt-get install python3-torch)")
	}
	dir := t.TempDir()
	scripts, _ := filepath.Abs("../../scripts")
	prog := `
import sys, torch
sys.path.insert(0, sys.argv[1])
from collect_stats import collect, save
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Linear(24, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16)).double()
batches = [torch.rand(50, 24, dtype=torch.float64) * torch.linspace(0.01, 3, 24, dtype=torch.float64) for _ in range(4)]
stats, counts = collect(m, batches)
assert counts == {"0.weight": 200, "2.weight": 200}, counts
save(sys.argv[2] + "/stats.safetensors", stats, counts, dtype="F32")
save(sys.argv[2] + "/model.safetensors", {k: v.numpy() for k, v in m.state_dict().items()}, dtype="F32", metadata={})
`
	if b, err := exec.Command(py, "-c", prog, scripts, dir).CombinedOutput(); err != nil {
		t.Fatalf("collect_stats.py: %v\n%s", err, b)
	}
	model, stats := filepath.Join(dir, "model.safetensors"), filepath.Join(dir, "stats.safetensors")
	out := filepath.Join(dir, "out.safetensors")
	table := mustCLI(t, "factorize", model, "-o", out, "--rank", "3", "--calibration", stats)
	if strings.Count(table, "calibrated") != 2 || strings.Count(table, "bias shifted") != 3 || !strings.Contains(table, "total: 2 factorized, 2 bias shifted;") {
		t.Errorf("want both layers calibrated and both biases shifted:\n%s", table)
	}
	check, _ := filepath.Abs("../../scripts/st_check.py")
	if b, err := exec.Command(py, check, "calibrated", model, out, stats).CombinedOutput(); err != nil || !strings.Contains(string(b), "OK: 2") {
		t.Errorf("st_check.py calibrated: %v\n%s", err, b)
	}
}

// TestCalibrationBudget: a calibrated tensor's plan counts C (float64,
// k×k) and the whitening the library estimates (W·L, the factor of C),
// so the memory budget sees them before any work.
func TestCalibrationBudget(t *testing.T) {
	s := &settings{policy: lowrank.Rank(64)}
	b := &budget{total: 1 << 40, avail: 1 << 40}
	const d, k = 4096, 2048
	held := mul(4, d, k)
	plain, err := planFactorize(b, s, "m", "w", d, k, 4, held)
	if err != nil {
		t.Fatal(err)
	}
	cal, err := planFactorize(b, s, "m", "w", d, k, 4, add(held, calibrationBytes(k)), shapeOnly(k))
	if err != nil {
		t.Fatal(err)
	}
	// C, its Cholesky factor and working copy (3·8k²) and W·L (4dk) at least.
	if want := plain.cost + 3*8*k*k + 4*d*k; cal.cost < want {
		t.Errorf("calibrated plan %d bytes; plain %d; want ≥ %d", cal.cost, plain.cost, want)
	}
	// A budget between the two refuses the calibrated tensor, naming it.
	b = &budget{total: plain.cost + 1<<20, avail: plain.cost + 1<<20}
	s.method = lowrank.Exact
	if _, err := planFactorize(b, s, "m", "w", d, k, 4, add(held, calibrationBytes(k)), shapeOnly(k)); err == nil || !strings.Contains(err.Error(), `"w"`) {
		t.Errorf("calibrated tensor over the budget: %v; want an error naming it", err)
	}
}

// TestCollectStatsSharedInput: layers fed the very same tensor share one
// accumulator in scripts/collect_stats.py only when they see the same rows
// (q/k/v Linears; not a 3×3 conv and the 1×1 stride-2 shortcut conv of a
// ResNet-style block, whose unfolded patches differ): every entry equals
// XᵀX/n of the layer's own rows, computed here with unfold. And a conv's
// rows are its patches for every padding (padding "same" and "valid" made
// unfold fail; reflect and circular padding gave zero-padded patches).
func TestCollectStatsSharedInput(t *testing.T) {
	var py string
	for _, p := range []string{os.Getenv("LOWRANK_PYTHON"), "python3", "/usr/bin/python3"} {
		if p != "" && exec.Command(p, "-c", "import torch, numpy").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		if os.Getenv("LOWRANK_REQUIRE_TORCH") == "1" {
			t.Fatal("no python3 with torch and numpy (apt-get install python3-torch)")
		}
		t.Skip("no python3 with torch and numpy (apt-get install python3-torch)")
	}
	scripts, _ := filepath.Abs("../../scripts")
	prog := `
import sys, torch
import torch.nn.functional as F
sys.path.insert(0, sys.argv[1])
from collect_stats import collect
torch.manual_seed(0)
class Net(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.c1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        s.c2 = torch.nn.Conv2d(4, 6, 3, padding=1, stride=2)
        s.short = torch.nn.Conv2d(4, 6, 1, stride=2)
        s.q = torch.nn.Linear(6 * 16, 5)
        s.k = torch.nn.Linear(6 * 16, 5)
    def forward(s, x):
        h = torch.relu(s.c1(x))
        h = torch.relu(s.c2(h) + s.short(h)).flatten(1)
        return s.q(h) + s.k(h)
m = Net().double()
xs = [torch.rand(7, 2, 8, 8, dtype=torch.float64) for _ in range(3)]
stats, counts = collect(m, xs)
x = torch.cat(xs)
with torch.no_grad():
    h = torch.relu(m.c1(x))
    flat = torch.relu(m.c2(h) + m.short(h)).flatten(1)
def rows(mod, inp):
    if isinstance(mod, torch.nn.Conv2d):
        c = F.unfold(inp, mod.kernel_size, padding=mod.padding, stride=mod.stride)
        return c.transpose(1, 2).reshape(-1, c.shape[1])
    return inp
for name, mod, inp in (("c1", m.c1, x), ("c2", m.c2, h), ("short", m.short, h), ("q", m.q, flat), ("k", m.k, flat)):
    r = rows(mod, inp)
    want = (r.T @ r / r.shape[0]).numpy()
    got = stats[name + ".weight"]
    assert got.shape == want.shape, (name, got.shape, want.shape)
    assert abs(got - want).max() <= 1e-12 * abs(want).max(), name
    assert counts[name + ".weight"] == r.shape[0], (name, counts[name + ".weight"], r.shape[0])
# Every padding a Conv2d takes: the rows, times the weight, are its outputs.
from collect_stats import _rows
for kw in (dict(padding="same"), dict(padding="valid"), dict(padding=1, padding_mode="reflect"),
           dict(padding=(1, 2), padding_mode="circular"), dict(padding=2, dilation=2, padding_mode="replicate")):
    c = torch.nn.Conv2d(3, 5, 3, bias=False, **kw).double()
    x = torch.rand(2, 3, 9, 9, dtype=torch.float64)
    y = (_rows(c, x) @ c.weight.reshape(5, -1).T).reshape(2, -1, 5)
    assert torch.allclose(y, c(x).flatten(2).transpose(1, 2)), kw
print("OK")
`
	if b, err := exec.Command(py, "-c", prog, scripts).CombinedOutput(); err != nil || !strings.Contains(string(b), "OK") {
		t.Fatalf("collect_stats.py: %v\n%s", err, b)
	}
}

// TestCalibrationInfo: lowrank info shows the output error a calibrated
// file records beside the weight error, and "- (plain)" for a tensor that
// had no statistics.
func TestCalibrationInfo(t *testing.T) {
	dir := t.TempDir()
	model, stats, _ := calibModel(t, dir, safetensors.F64)
	out := filepath.Join(dir, "out.safetensors")
	mustCLI(t, "factorize", model, "-o", out, "--rank", "4", "--calibration", stats, "--quiet")
	info := mustCLI(t, "info", out)
	_, _, meta := readST(t, out)
	var md struct {
		Tensors map[string]struct {
			OutputRelError *float64 `json:"output_rel_error"`
		} `json:"tensors"`
	}
	if err := json.Unmarshal([]byte(meta["lowrank"]), &md); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%.2e", *md.Tensors["l0.weight"].OutputRelError)
	if !strings.Contains(info, "out.err") || !strings.Contains(info, want) || !strings.Contains(info, "- (plain)") {
		t.Errorf("info of a calibrated file lacks the out.err column, l0's %s or l2's plain mark:\n%s", want, info)
	}
}

// TestCalibrationMeanUnused: an input mean whose bias cannot take the
// mean error (the weights written in another dtype than the bias, with
// --dtype) is not used, and stderr says so (it was silently dropped).
func TestCalibrationMeanUnused(t *testing.T) {
	dir := t.TempDir()
	model, stats, _ := calibModel(t, dir, safetensors.F32)
	out := filepath.Join(dir, "out.safetensors")
	code, table, errs := cli("factorize", model, "-o", out, "--rank", "4", "--calibration", stats, "--dtype", "bf16")
	if code != 0 || !strings.Contains(errs, `"l0.weight.input_mean"`) || !strings.Contains(errs, `"l0.bias" is F32`) || strings.Contains(table, "bias shifted") {
		t.Errorf("exit %d, stderr %q; want a note that l0's input mean was not used (its bias is F32, the weight BF16)\n%s", code, errs, table)
	}
}
