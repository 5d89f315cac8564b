package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// Issue 9, point 12: w beside a 1-D w.A failed after the work, naming an
// output that did not exist; beside a 2-D w.A, factorize succeeded but
// merge could not make its output dense again. Clashing output names are
// now refused before the work, naming the input and both tensors.
func TestFactorNamesClashRefusedFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, c := range []struct {
		name  string
		other tensor
	}{
		{"1-D w.A", tensor{name: "w.A", dt: safetensors.F32, shape: []int{6}, vals: gauss(rng, 6, 1)}},
		{"2-D w.A", tensor{name: "w.A", dt: safetensors.F32, shape: []int{5, 6}, vals: gauss(rng, 30, 1)}},
		{"2-D w.B", tensor{name: "w.B", dt: safetensors.F32, shape: []int{8, 3}, vals: gauss(rng, 24, 1)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.safetensors")
			writeST(t, in, nil, tensor{name: "w", dt: safetensors.F32, shape: []int{8, 6}, vals: gauss(rng, 48, 1)}, c.other)
			out := filepath.Join(dir, "out.safetensors")
			assertFails(t, dir, []string{"in.safetensors"}, []string{"factorize", in, "-o", out, "--rank", "1", "--quiet"},
				"lowrank: "+in+": ", `tensors "w" and "`+c.other.name+`" would both be written as "`+c.other.name+`"`, "--include")
			if len(c.other.shape) == 1 {
				return
			}
			// Leaving w out works, and the result densifies again.
			mustCLI(t, "factorize", in, "-o", out, "--rank", "1", "--include", `^w\.`, "--quiet", "--force")
			mustCLI(t, "merge", out, "-o", filepath.Join(dir, "dense.safetensors"), "--quiet", "--force")
		})
	}
}

// Issue 9, point 13: the remaining rough edges, each before any work.
func TestRoughEdgesBeforeWork(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, safetensors.F32)

	// An unwritable report path is found before the output is written.
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o555)
		assertFails(t, dir, []string{"ro"}, []string{"factorize", p.base, "-o", filepath.Join(dir, "o.safetensors"), "--rank", "2", "--report", filepath.Join(ro, "r.json")},
			filepath.Join(ro, "r.json")+": cannot create the report")
	}
	assertFails(t, dir, nil, []string{"factorize", p.base, "-o", filepath.Join(dir, "o.safetensors"), "--rank", "2", "--report", filepath.Join(dir, "no", "such", "r.json")},
		filepath.Join(dir, "no", "such", "r.json")+": cannot create the report: no such file or directory")

	// -o . is refused before the work with a clear message.
	for _, cmd := range [][]string{
		{"factorize", p.base, "-o", ".", "--rank", "2"},
		{"merge", p.base, "-o", "."},
		{"extract", "--base", p.base, "--tuned", p.tuned, "-o", "."},
	} {
		assertFails(t, dir, nil, cmd, "lowrank: .: . is a reference to a folder, not a name; expected a new name for the output")
	}

	// Legal 250-byte names work (the temporary name stays short enough).
	long := strings.Repeat("x", 240)
	mustCLI(t, "factorize", p.base, "-o", filepath.Join(dir, long+".safetensors"), "--rank", "2", "--quiet", "--report", filepath.Join(dir, long+".csv"))
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", filepath.Join(dir, long+"-peft"), "--rank", "2", "--quiet")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", filepath.Join(dir, long+".kohya"), "--rank", "2", "--format", "kohya", "--quiet")
	mustCLI(t, "merge", "--base", p.base, "--adapter", filepath.Join(dir, long+"-peft"), "-o", filepath.Join(dir, long+".merged"), "--quiet")
	for _, n := range []string{long + ".safetensors", long + ".csv", long + "-peft", long + ".kohya", long + ".merged"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%.20s…: %v", n, err)
		}
	}

	// lora_alpha 0 and alpha_pattern 0 are both accepted, as PEFT accepts
	// them (scaling 0), and the table says the tensor is unchanged.
	ad := filepath.Join(dir, long+"-peft")
	cfgPath := filepath.Join(ad, peftConfigName)
	cfg, _ := os.ReadFile(cfgPath)
	for _, alpha := range []string{`"lora_alpha": 0,`, `"alpha_pattern": {"fc1": 0, "encoder.fc1": 0, "encoder.layers.0.proj": 0},`} {
		c := string(cfg)
		if strings.HasPrefix(alpha, `"lora_alpha"`) {
			c = strings.Replace(c, `"lora_alpha": `, `"lora_alpha": 0, "x": `, 1)
		} else {
			c = strings.Replace(c, `"alpha_pattern": {},`, alpha, 1)
		}
		os.WriteFile(cfgPath, []byte(c), 0o644)
		merged := filepath.Join(dir, "zero.safetensors")
		table := mustCLI(t, "merge", "--base", p.base, "--adapter", ad, "-o", merged, "--force")
		if !strings.Contains(table, "merged: scaling 0 (alpha 0), tensor unchanged") {
			t.Errorf("%s: the table does not say the tensors are unchanged:\n%s", alpha, table)
		}
		mv, _, _ := readST(t, merged)
		if relDiff(mv["fc1.weight"], p.bt["fc1.weight"]) != 0 {
			t.Errorf("%s: fc1.weight changed", alpha)
		}
	}
}

// Errors about what is written name the output's real path, never its
// temporary name (issue 9, point 13).
func TestWriteErrorsNameTheOutput(t *testing.T) {
	dir := t.TempDir()
	set := newOutputSet(false)
	file := set.file(filepath.Join(dir, "out.safetensors"), "the output")
	folder := set.folder(filepath.Join(dir, "adapter"), "extract", peftWeightsName)
	if err := set.prepare(); err != nil {
		t.Fatal(err)
	}
	defer set.abort()
	w1, err := file.writer(0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := folder.create(peftWeightsName)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := safetensors.NewWriter(f, filepath.Join(folder.path, peftWeightsName), safetensors.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		w    *safetensors.Writer
		want string
	}{{w1, file.path}, {w2, filepath.Join(folder.path, peftWeightsName)}} {
		c.w.WriteFloat64("x", safetensors.F32, []int{1}, []float64{1})
		err := c.w.WriteFloat64("x", safetensors.F32, []int{1}, []float64{1})
		if err == nil || !strings.HasPrefix(err.Error(), "lowrank: "+c.want+": ") || strings.Contains(err.Error(), ".tmp-") {
			t.Errorf("error %v; want one naming %s", err, c.want)
		}
		c.w.Abort()
	}
}
