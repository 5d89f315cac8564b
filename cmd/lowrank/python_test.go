package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// requirePython is the environment variable that makes a missing
// python3/numpy a failure instead of a skip (CI sets it).
const requirePython = "LOWRANK_REQUIRE_PYTHON"

// pythonWithNumpy returns a python3 that can import numpy: $LOWRANK_PYTHON,
// python3 on PATH, or Debian's /usr/bin/python3.
func pythonWithNumpy(t *testing.T) string {
	t.Helper()
	var tried []string
	for _, p := range []string{os.Getenv("LOWRANK_PYTHON"), "python3", "/usr/bin/python3"} {
		if p == "" {
			continue
		}
		if out, err := exec.Command(p, "-c", "import numpy").CombinedOutput(); err == nil {
			return p
		} else {
			tried = append(tried, p+": "+strings.TrimSpace(lastLine(string(out))+" "+err.Error()))
		}
	}
	msg := "no python3 with numpy (apt-get install python3-numpy): " + strings.Join(tried, "; ")
	if os.Getenv(requirePython) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Our files are read by an independent implementation (scripts/st_check.py,
// numpy only), and the maths holds there: B·A ≈ W within the recorded
// error, and base + scale·B·A ≈ tuned.
func TestIndependentPythonReader(t *testing.T) {
	py := pythonWithNumpy(t)
	script, _ := filepath.Abs("../../scripts/st_check.py")
	dir := t.TempDir()
	in := filepath.Join(dir, "model.safetensors")
	modelFile(t, in)
	check := func(args ...string) {
		t.Helper()
		out, err := exec.Command(py, append([]string{script}, args...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Errorf("st_check.py %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, dt := range []string{"keep", "f16", "bf16", "f32"} {
		fact := filepath.Join(dir, "fact-"+dt+".safetensors")
		mustCLI(t, "factorize", in, "-o", fact, "--energy", "0.95", "--dtype", dt, "--quiet")
		check("factorized", in, fact)
	}
	p := makePair(t, dir, safetensors.F32)
	ad := filepath.Join(dir, "adapter")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--tol", "1e-5", "--quiet")
	check("adapter", p.base, p.tuned, ad)
	ad16 := filepath.Join(dir, "adapter16")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad16, "--rank", "2", "--dtype", "f16", "--quiet")
	check("adapter", p.base, p.tuned, ad16)
}
