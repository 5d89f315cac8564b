package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/safetensors"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "512": 512, "512B": 512, "1k": 1024, "1KiB": 1024, "1KB": 1000, "2GiB": 2 << 30, "2g": 2 << 30,
		"1.5GB": 1.5e9, "1.5 gib": 3 << 29, "0.0001": 1, "0.5k": 512, "100M": 100 << 20, "100MB": 100e6, "1TiB": 1 << 40, " 64 MiB ": 64 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1G", "1X", "G", "NaN", "1e3GB", "1..5G", "9999999999TiB", "1 2G", "0x10"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d; want an error", in, got)
		}
	}
}

// With --jobs N and a budget, tensors start only when their estimates fit
// next to those in flight: here at most two of 40 bytes in a 100-byte
// budget, whatever N.
func TestBudgetSharedByJobs(t *testing.T) {
	b := &budget{total: 1 << 30, avail: 100, changed: make(chan struct{}), restore: func() {}}
	var inFlight, most atomic.Int64
	var mu sync.Mutex
	var order []int
	err := pipeline(12, 6, b, func(int) int64 { return 40 }, func(i int) (int, error) {
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond) // let the others try to start
		inFlight.Add(-1)
		return i, nil
	}, func(i, r int) error {
		mu.Lock()
		order = append(order, r)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if most.Load() > 2 {
		t.Errorf("%d tensors of 40 bytes ran at once in a 100-byte budget; want at most 2", most.Load())
	}
	for i, r := range order {
		if r != i {
			t.Fatalf("results written in order %v", order)
		}
	}
	if b.used != 0 {
		t.Errorf("budget not given back: %d bytes still used", b.used)
	}
	// Waiting for memory stops when the command is interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	b.used = 90
	go cancel()
	if err := b.acquire(ctx, 40); err == nil {
		t.Error("acquire did not stop on cancel")
	}
}

// memModel writes one d×k F32 tensor with a decaying spectrum and a small
// one, and returns the path and the header size.
func memModel(t *testing.T, dir string, d, k int) (string, int64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(21, 22))
	path := filepath.Join(dir, "model.safetensors")
	writeST(t, path, nil,
		tensor{name: "big.weight", dt: safetensors.F32, shape: []int{d, k}, vals: decaying(rng, d, k)},
		tensor{name: "small.weight", dt: safetensors.F32, shape: []int{16, 12}, vals: gauss(rng, 16*12, 1)})
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// What the budget takes before the tensors: the reserve, the header
	// and the bookkeeping of its two tensors.
	return path, reserveBytes + safetensors.HeaderMemory(f.HeaderSize()) + 2*perTensorBytes
}

// costOf is what the budget counts for factorizing the d×k F32 tensor
// with policy p and options.
func costOf(t *testing.T, d, k int, p lowrank.Policy, opts ...lowrank.Option) int64 {
	t.Helper()
	s := &settings{policy: p, opts: opts}
	pl, err := planFactorize(&budget{}, s, "f", "t", d, k, 4, int64(4*d*k))
	if err != nil {
		t.Fatal(err)
	}
	return pl.cost
}

// reportMethod returns the method the report gives for tensor name.
func reportMethod(t *testing.T, path, name string) string {
	t.Helper()
	var rep reportFile
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Tensors {
		if r.Name == name {
			return r.Method
		}
	}
	t.Fatalf("no row for %s in %s", name, path)
	return ""
}

// --max-memory is honoured in-process: a budget that cannot hold a tensor
// refuses it up front, naming it, its estimate and the budget; one that
// holds the randomized SVD but not the exact one gets the randomized SVD
// (for --energy, with a capped sketch); --method exact is not overridden.
func TestMaxMemoryPlans(t *testing.T) {
	dir := t.TempDir()
	d, k := 700, 600
	model, reserve := memModel(t, dir, d, k)
	out := filepath.Join(dir, "out.safetensors")
	rep := filepath.Join(dir, "r.json")
	size := func(n int64) string { return strconv.FormatInt(n, 10) }
	keep := []string{"model.safetensors"}

	// Refused: not even W and a minimal sketch fit.
	tiny := reserve + int64(4*d*k)
	assertFails(t, dir, keep, []string{"factorize", model, "-o", out, "--max-memory", size(tiny)},
		model, `tensor "big.weight"`, "needs about", "--max-memory "+humanBytes(tiny), "--rank N")
	assertFails(t, dir, keep, []string{"factorize", model, "-o", out, "--max-memory", "1MiB"}, "--max-memory 1.0 MiB is below")
	assertFails(t, dir, keep, []string{"factorize", model, "-o", out, "--max-memory", size(reserveBytes + 1000)}, model, "reading its header needs up to", "expected a larger --max-memory")

	exact := costOf(t, d, k, lowrank.Rank(20), lowrank.WithMethod(lowrank.Exact))
	rnd := costOf(t, d, k, lowrank.Rank(20), lowrank.WithMethod(lowrank.Randomized))
	if rnd >= exact {
		t.Fatalf("randomized %d ≥ exact %d bytes", rnd, exact)
	}
	between := reserve + (exact+rnd)/2
	// Exact asked for explicitly: refused rather than overridden.
	assertFails(t, dir, keep, []string{"factorize", model, "-o", out, "--rank", "20", "--method", "exact", "--max-memory", size(between)},
		`tensor "big.weight"`, "--method exact")
	// Auto: the randomized SVD to fit.
	for _, policy := range [][]string{{"--rank", "20"}, {"--energy", "0.6"}} {
		args := append([]string{"factorize", model, "-o", out, "--max-memory", size(between), "--report", rep, "--force", "--quiet"}, policy...)
		mustCLI(t, args...)
		if m := reportMethod(t, rep, "big.weight"); m != "randomized" {
			t.Errorf("%v: method %q; want randomized", policy, m)
		}
		checkFinite(t, out)
	}
	// Without a budget, a rank too large for Auto's sketch runs the exact
	// SVD.
	mustCLI(t, "factorize", model, "-o", out, "--rank", "200", "--report", rep, "--force", "--quiet")
	if m := reportMethod(t, rep, "big.weight"); m != "exact" {
		t.Errorf("no budget, rank 200: method %q; want exact", m)
	}
	// An --energy target that the capped sketch cannot reach is an error
	// that says so, not a larger computation.
	capOnly := reserve + costOf(t, d, k, lowrank.Energy(0.999999), lowrank.WithMethod(lowrank.Randomized), lowrank.WithMaxSketch(minSketch))
	code, _, stderr := cli("factorize", model, "-o", out, "--energy", "0.999999", "--max-memory", size(capOnly), "--force", "--quiet")
	if code == 0 || !strings.Contains(stderr, `tensor "big.weight"`) || !strings.Contains(stderr, "sketch columns that fit in the") {
		t.Errorf("unreachable energy under a budget: exit %d, %q", code, stderr)
	}
}

// The resident size of a real process stays under --max-memory, measured
// as VmHWM in a subprocess: once with the exact SVD fitting the budget,
// once with a budget that only the randomized SVD fits.
func TestMaxMemoryResident(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the subprocess memory measurement")
	}
	if peakRSS() < 0 {
		t.Skip("no /proc/self/status here")
	}
	dir := t.TempDir()
	d, k := 1000, 800
	model, reserve := memModel(t, dir, d, k)
	exact := costOf(t, d, k, lowrank.Rank(20), lowrank.WithMethod(lowrank.Exact))
	rnd := costOf(t, d, k, lowrank.Rank(20), lowrank.WithMethod(lowrank.Randomized))
	measure := func(name string, budget int64, gogc string, args ...string) int64 {
		hwm := filepath.Join(dir, name+".hwm")
		out := filepath.Join(dir, name+".safetensors")
		all := append([]string{"factorize", model, "-o", out, "--rank", "20", "--quiet", "--report", filepath.Join(dir, name+".json")}, args...)
		if budget > 0 {
			all = append(all, "--max-memory", strconv.FormatInt(budget, 10))
		}
		cmd, _, stderr := lowrankProcess(t, []string{"LOWRANK_TEST_HWM=" + hwm, "GOGC=" + gogc}, all...)
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v: %s", name, err, stderr)
		}
		b, _ := os.ReadFile(hwm)
		n, _ := strconv.ParseInt(string(b), 10, 64)
		t.Logf("%-32s budget %9s  peak RSS %9s  method %s", name, humanBytes(budget), humanBytes(n), reportMethod(t, filepath.Join(dir, name+".json"), "big.weight"))
		return n
	}
	measure("exact, no budget", 0, "100", "--method", "exact")
	b1 := reserve + exact
	// GOGC=off: only the budget (the runtime's memory limit) makes the
	// garbage collector run, so the process grows up to it.
	for _, gogc := range []string{"100", "off"} {
		if got := measure("exact within budget, GOGC="+gogc, b1, gogc, "--method", "exact"); got > b1 {
			t.Errorf("exact SVD, GOGC=%s: peak RSS %d > --max-memory %d", gogc, got, b1)
		}
	}
	b2 := reserve + (exact+rnd)/2
	if got := measure("auto, randomized to fit", b2, "off"); got > b2 {
		t.Errorf("randomized SVD: peak RSS %d > --max-memory %d", got, b2)
	}
	if m := reportMethod(t, filepath.Join(dir, "auto, randomized to fit.json"), "big.weight"); m != "randomized" {
		t.Errorf("budget %d: method %s; want randomized", b2, m)
	}
}
