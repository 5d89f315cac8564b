package main

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// rankOnePair writes a factorized file holding w.A [1, k] and w.B [d, 1]
// (F32): what factorize writes for a rank-1 d×k matrix.
func rankOnePair(t *testing.T, path string, d, k int) ([]float64, []float64) {
	t.Helper()
	a, b := make([]float64, k), make([]float64, d)
	for j := range a {
		a[j] = 1 + float64(j%7)/8
	}
	for i := range b {
		b[i] = 0.5 - float64(i%5)/16
	}
	writeST(t, path, map[string]string{"format": "pt"},
		tensor{name: "w.A", dt: safetensors.F32, shape: []int{1, k}, vals: a},
		tensor{name: "w.B", dt: safetensors.F32, shape: []int{d, 1}, vals: b})
	return b, a
}

// Issue 9, point 10: a 320 KB factorized file (w.A [1, 40000], w.B [40000,
// 1]) densified to a 6.4 GB output at 6.36 GB RSS, without a word first.
// Densify now streams the product in pieces (memory: A, B and one piece),
// says the output's size first when it is more than 100× the input, needs
// --allow-expand beyond 10 GB, and refuses an output larger than the free
// disk before the work.
func TestDensifyBomb(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.safetensors")
	rankOnePair(t, huge, 60000, 60000) // 480 KB → 14.4 GB
	keep := []string{"huge.safetensors"}
	out := filepath.Join(dir, "dense.safetensors")
	assertFails(t, dir, keep, []string{"merge", huge, "-o", out, "--quiet"},
		huge, "densifying writes 13.4 GiB (14400000", "× the 468.9 KiB input", "expected --allow-expand")
	// With --allow-expand, an output larger than the free disk is refused
	// before the work.
	saved := diskFree
	diskFree = func(string) (int64, bool) { return 1 << 30, true }
	defer func() { diskFree = saved }()
	assertFails(t, dir, keep, []string{"merge", huge, "-o", out, "--quiet", "--allow-expand"},
		out, "the output needs 13.4 GiB but its file system has 1.0 GiB free")
	diskFree = saved

	// A 64 MB product of a 32 KB file: announced, streamed, correct.
	d, k := 4000, 4000
	small := filepath.Join(dir, "small.safetensors")
	b, a := rankOnePair(t, small, d, k)
	code, _, stderr := cli("merge", small, "-o", out, "--quiet")
	if code != 0 || !strings.HasPrefix(stderr, "densify: "+out+" will be 61.0 MiB (64000") || !strings.Contains(stderr, "× the 31.") {
		t.Fatalf("exit %d, stderr %q; want the output's size announced", code, stderr)
	}
	f, err := safetensors.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.Float32s("w")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, ij := range [][2]int{{0, 0}, {1, 2}, {d - 1, k - 1}, {2345, 17}, {d / 2, k - 3}} {
		i, j := ij[0], ij[1]
		if want := float32(b[i] * a[j]); math.Abs(float64(w[i*k+j]-want)) > 1e-6 {
			t.Errorf("w[%d, %d] = %v; want %v", i, j, w[i*k+j], want)
		}
	}
	if testing.Short() || peakRSS() < 0 {
		return
	}
	// Resident size of a process with a 64 MiB budget writing it.
	hwm := filepath.Join(dir, "hwm")
	cmd, _, errb := lowrankProcess(t, []string{"LOWRANK_TEST_HWM=" + hwm}, "merge", small, "-o", out, "--quiet", "--force", "--max-memory", "64MiB")
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, errb)
	}
	raw, _ := os.ReadFile(hwm)
	n, _ := strconv.ParseInt(string(raw), 10, 64)
	t.Logf("densify of a 4000×4000 rank-1 pair (61 MiB output), --max-memory 64MiB: peak RSS %s", humanBytes(n))
	if n > 64<<20 {
		t.Errorf("peak RSS %s > --max-memory 64MiB", humanBytes(n))
	}
}
