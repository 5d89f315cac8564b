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

// A statistics file whose entries name the model's conv weights only
// (collect_stats.py writes them for Conv2d layers) is refused saying that
// factorize takes 2-D weights, not that its names are not the model's.
func TestCalibrationConvOnly(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "unet.safetensors")
	writeST(t, m, nil,
		tensor{name: "conv.weight", dt: safetensors.F32, shape: []int{4, 2, 3, 3}, vals: make([]float64, 72)},
		tensor{name: "fc.weight", dt: safetensors.F32, shape: []int{6, 6}, vals: make([]float64, 36)})
	eye := make([]float64, 18*18)
	for i := 0; i < 18; i++ {
		eye[i*18+i] = 1
	}
	stats := filepath.Join(dir, "stats.safetensors")
	writeST(t, stats, nil, tensor{name: "conv.weight", dt: safetensors.F64, shape: []int{18, 18}, vals: eye})
	code, _, stderr := runCLI(t, "factorize", m, "-o", filepath.Join(dir, "out.safetensors"), "--rank", "1", "--min-saving", "0", "--calibration", stats, "--quiet")
	if code == 0 || !strings.HasPrefix(stderr, "lowrank: ") || !strings.Contains(stderr, "factorize takes 2-D weights only") {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
}
