package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// --calibration takes the one statistics file collect_stats.py writes: a
// folder or an index file is refused saying so (an index file was read
// as a safetensors header: "header length is 7017841271895827067 bytes").
func TestCalibrationPathNotAFile(t *testing.T) {
	dir := t.TempDir()
	model, _, _ := calibModel(t, dir, safetensors.F64)
	idx := filepath.Join(dir, "model.safetensors.index.json")
	if err := os.WriteFile(idx, []byte(`{"metadata":{},"weight_map":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, idx} {
		out := filepath.Join(t.TempDir(), "out.safetensors")
		code, _, stderr := runCLI(t, "factorize", model, "-o", out, "--rank", "2", "--calibration", p, "--quiet")
		if code == 0 || !strings.HasPrefix(stderr, "lowrank: ") || !strings.Contains(stderr, "expected the one .safetensors file of statistics") || strings.Contains(stderr, "header length") {
			t.Errorf("--calibration %s: code %d, stderr %q", p, code, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("--calibration %s: %s written", p, out)
		}
	}
}
