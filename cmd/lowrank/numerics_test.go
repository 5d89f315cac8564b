package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// rank1 returns the d×k matrix scale·u·vᵀ with u, v of ±1 and 1…2 entries.
func rank1(d, k int, scale float64) []float64 {
	w := make([]float64, d*k)
	for i := range d {
		for j := range k {
			u := float64(1+i%2) * float64(1-2*(i%3%2))
			v := 1 + float64(j%4)/4
			w[i*k+j] = scale * u * v / 2
		}
	}
	return w
}

// roundTrip factorizes in (extra flags appended), checks that every
// computed output is finite, densifies the result and returns the largest
// relative error of the dense tensors against the input.
func roundTrip(t *testing.T, in string, extra ...string) map[string]float64 {
	t.Helper()
	dir := t.TempDir()
	fact, dense := filepath.Join(dir, "f.safetensors"), filepath.Join(dir, "d.safetensors")
	mustCLI(t, append([]string{"factorize", in, "-o", fact, "--quiet"}, extra...)...)
	checkFinite(t, fact)
	orig, _, _ := readST(t, in)
	got, _, _ := readST(t, fact)
	if _, err := os.Stat(fact); err == nil {
		code, _, stderr := cli("merge", fact, "-o", dense, "--quiet")
		switch {
		case code == 0:
			checkFinite(t, dense)
			got, _, _ = readST(t, dense)
		case !strings.Contains(stderr, "no NAME.A / NAME.B factor pairs"):
			t.Fatalf("merge: %s", stderr)
		}
	}
	errs := map[string]float64{}
	for name, v := range orig {
		if g, ok := got[name]; ok {
			errs[name] = relDiff(g, v)
		}
	}
	return errs
}

// Values at the edges of the float types go through factorize, merge and
// extract without NaN or Inf in any output, and where the result cannot
// be stored the error says what to do.
func TestNumericsThroughCLI(t *testing.T) {
	dir := t.TempDir()
	path := func(n string) string { return filepath.Join(dir, n) }

	// Zero, rank-one, subnormal and vector-shaped matrices.
	sub32 := rank1(24, 16, 1e-41) // F32 subnormals
	sub16 := rank1(24, 16, 2e-6)  // F16 subnormals (< 6.1e-5)
	row, col := rank1(1, 100000, 1), rank1(100000, 1, 1)
	writeST(t, path("edge.safetensors"), nil,
		tensor{name: "zero.weight", dt: safetensors.F32, shape: []int{64, 48}, vals: make([]float64, 64*48)},
		tensor{name: "rank1.weight", dt: safetensors.F16, shape: []int{64, 48}, vals: rank1(64, 48, 3)},
		tensor{name: "sub32.weight", dt: safetensors.F32, shape: []int{24, 16}, vals: sub32},
		tensor{name: "sub16.weight", dt: safetensors.F16, shape: []int{24, 16}, vals: sub16},
		tensor{name: "row.weight", dt: safetensors.F16, shape: []int{1, 100000}, vals: row},
		tensor{name: "col.weight", dt: safetensors.BF16, shape: []int{100000, 1}, vals: col},
	)
	for _, flags := range [][]string{{"--rank", "1"}, {"--energy", "0.99"}, {"--tol", "0.001", "--method", "randomized"}, {"--ratio", "0.5", "--jobs", "3"}} {
		errs := roundTrip(t, path("edge.safetensors"), flags...)
		for name, tol := range map[string]float64{"zero.weight": 0, "rank1.weight": 2e-3, "sub32.weight": 1e-3, "sub16.weight": 2e-2, "row.weight": 0, "col.weight": 0} {
			if e, ok := errs[name]; !ok || !(e <= tol) {
				t.Errorf("%v: %s came back with relative error %v (present %v); want ≤ %g", flags, name, e, ok, tol)
			}
		}
	}

	// F16 at its largest finite value: U·S overflows F16, which is an
	// error naming the remedy; balanced factors or F32 factors are fine.
	writeST(t, path("f16max.safetensors"), nil, tensor{name: "w.weight", dt: safetensors.F16, shape: []int{8, 8}, vals: rank1(8, 8, 65504/1.75)})
	code, _, stderr := cli("factorize", path("f16max.safetensors"), "-o", path("x.safetensors"), "--rank", "1")
	if code != 1 || !strings.Contains(stderr, `tensor "w.weight": factor B`) || !strings.Contains(stderr, "exceeds the range of F16; expected --dtype f32 (or bf16)") {
		t.Errorf("F16 max, split us: exit %d, %q", code, stderr)
	}
	for _, flags := range [][]string{{"--rank", "1", "--split", "sqrt"}, {"--rank", "1", "--dtype", "f32"}} {
		if e := roundTrip(t, path("f16max.safetensors"), flags...)["w.weight"]; !(e <= 4e-3) {
			t.Errorf("F16 max %v: relative error %v", flags, e)
		}
	}
	// BF16 factors of F16's largest values: merge restores the recorded
	// source dtype, F16, which B·A (rounded to BF16) overflows: an error
	// naming --dtype; --dtype keep writes BF16.
	mustCLI(t, "factorize", path("f16max.safetensors"), "-o", path("fb.safetensors"), "--rank", "1", "--dtype", "bf16", "--quiet")
	code, _, stderr = cli("merge", path("fb.safetensors"), "-o", path("fbd.safetensors"), "--quiet")
	if code != 1 || !strings.Contains(stderr, "outside the range of F16; expected finite values: write it in a wider dtype with --dtype f32") {
		t.Errorf("F16 max through BF16 factors, merged to F16: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(path("fbd.safetensors")); err == nil {
		t.Errorf("a failed merge left its output")
	}
	mustCLI(t, "merge", path("fb.safetensors"), "-o", path("fbd.safetensors"), "--quiet", "--dtype", "keep")
	if got, _, _ := readST(t, path("fbd.safetensors")); relDiff(got["w.weight"], rank1(8, 8, 65504/1.75)) > 4e-3 {
		t.Errorf("F16 max through BF16 factors, --dtype keep: relative error %v", relDiff(got["w.weight"], rank1(8, 8, 65504/1.75)))
	}

	// BF16 near the float32 limit: ‖W‖ overflows float32, so U·S cannot
	// be held in float32 (error), √S can.
	writeST(t, path("bf16huge.safetensors"), nil, tensor{name: "w.weight", dt: safetensors.BF16, shape: []int{8, 8}, vals: rank1(8, 8, 1.9e38)})
	code, _, stderr = cli("factorize", path("bf16huge.safetensors"), "-o", path("x.safetensors"), "--rank", "1")
	if code != 1 || !strings.Contains(stderr, `tensor "w.weight"`) || !strings.Contains(stderr, "overflow") {
		t.Errorf("BF16 huge, split us: exit %d, %q", code, stderr)
	}
	if e := roundTrip(t, path("bf16huge.safetensors"), "--rank", "1", "--split", "sqrt")["w.weight"]; !(e <= 1e-2) {
		t.Errorf("BF16 huge, split sqrt: relative error %v", e)
	}
	if _, err := os.Stat(path("x.safetensors")); err == nil {
		t.Error("a failed factorize left its output")
	}

	// extract and merge on the same edge cases: zero ΔW is "unchanged";
	// tiny, huge and vector-shaped ΔW give finite adapters that merge back.
	tunedVals := func(base []float64, delta []float64) []float64 {
		o := make([]float64, len(base))
		for i := range o {
			o[i] = base[i] + delta[i]
		}
		return o
	}
	baseRow := rank1(1, 100000, 0.5)
	writeST(t, path("base.safetensors"), nil,
		tensor{name: "zero.weight", dt: safetensors.F32, shape: []int{64, 48}, vals: make([]float64, 64*48)},
		tensor{name: "row.weight", dt: safetensors.F32, shape: []int{1, 100000}, vals: baseRow},
		tensor{name: "sub.weight", dt: safetensors.F32, shape: []int{24, 16}, vals: make([]float64, 24*16)},
		tensor{name: "big.weight", dt: safetensors.F32, shape: []int{8, 8}, vals: make([]float64, 64)})
	writeST(t, path("tuned.safetensors"), nil,
		tensor{name: "zero.weight", dt: safetensors.F32, shape: []int{64, 48}, vals: make([]float64, 64*48)},
		tensor{name: "row.weight", dt: safetensors.F32, shape: []int{1, 100000}, vals: tunedVals(baseRow, rank1(1, 100000, 0.25))},
		tensor{name: "sub.weight", dt: safetensors.F32, shape: []int{24, 16}, vals: sub32},
		tensor{name: "big.weight", dt: safetensors.F32, shape: []int{8, 8}, vals: rank1(8, 8, 1e37)})
	ad := path("adapter")
	mustCLI(t, "extract", "--base", path("base.safetensors"), "--tuned", path("tuned.safetensors"), "-o", ad, "--rank", "1", "--report", path("ex.json"), "--quiet")
	checkFinite(t, filepath.Join(ad, peftWeightsName))
	if m := reportStatus(t, path("ex.json"), "zero.weight"); !strings.Contains(m, "unchanged") {
		t.Errorf("zero ΔW: status %q; want unchanged", m)
	}
	mustCLI(t, "merge", "--base", path("base.safetensors"), "--adapter", ad, "-o", path("merged.safetensors"), "--quiet")
	checkFinite(t, path("merged.safetensors"))
	want, _, _ := readST(t, path("tuned.safetensors"))
	got, _, _ := readST(t, path("merged.safetensors"))
	for name, tol := range map[string]float64{"zero.weight": 0, "row.weight": 1e-6, "sub.weight": 1e-3, "big.weight": 1e-6} {
		if e := relDiff(got[name], want[name]); !(e <= tol) || math.IsNaN(e) {
			t.Errorf("merge(extract): %s off by %v; want ≤ %g", name, e, tol)
		}
	}
}

// reportStatus returns the status the report gives for tensor name.
func reportStatus(t *testing.T, path, name string) string {
	t.Helper()
	m := readJSON(t, path)
	rows, _ := m["tensors"].([]any)
	for _, r := range rows {
		if row, _ := r.(map[string]any); row["name"] == name {
			s, _ := row["status"].(string)
			return s
		}
	}
	t.Fatalf("no row for %s in %s", name, path)
	return ""
}
