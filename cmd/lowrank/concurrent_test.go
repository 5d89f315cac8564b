package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lowrank-go/lowrank/safetensors"
)

// Commands with --jobs run concurrently in one process (as a service
// embedding the tool's pipeline would) give byte-identical outputs to
// sequential --jobs 1 runs; under -race this also checks the pipeline,
// the memory budget and the writers for data races.
func TestConcurrentCommands(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, safetensors.F32)
	ref := func(name string, args ...string) string {
		out := filepath.Join(dir, "ref-"+name)
		mustCLI(t, append(args, "-o", out, "--quiet")...)
		return out
	}
	adapter := ref("adapter", "extract", "--base", p.base, "--tuned", p.tuned, "--tol", "0.05", "--backend", "cpu")
	cases := []struct {
		name string
		args []string
		ref  string
	}{
		{"factorize", []string{"factorize", p.tuned, "--energy", "0.95", "--backend", "cpu"}, ""},
		{"merge", []string{"merge", "--base", p.base, "--adapter", adapter}, ""},
		{"extract-kohya", []string{"extract", "--base", p.base, "--tuned", p.tuned, "--rank", "4", "--format", "kohya", "--backend", "cpu"}, ""},
	}
	for i := range cases {
		cases[i].ref = ref(cases[i].name, cases[i].args...)
	}
	limit := debug.SetMemoryLimit(-1)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		for _, c := range cases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out := filepath.Join(dir, fmt.Sprintf("%s-%d", c.name, g))
				args := append(append([]string(nil), c.args...), "-o", out, "--quiet", "--jobs", "3", "--max-memory", "1GiB")
				if code, _, stderr := cli(args...); code != 0 {
					errs <- fmt.Errorf("%s: %s", c.name, stderr)
					return
				}
				a, _ := os.ReadFile(c.ref)
				b, _ := os.ReadFile(out)
				if len(a) == 0 || string(a) != string(b) {
					errs <- fmt.Errorf("%s #%d: output differs from the sequential run", c.name, g)
				}
			}()
		}
	}
	wg.Wait()
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Errorf("the runtime's memory limit is %d after the commands; want %d as before", got, limit)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Many runs of the --jobs pipeline, successful and failing half-way (a
// NaN in the third tensor), leave no goroutine and no live memory behind.
func TestPipelineNoLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping 400 command runs")
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "m.safetensors")
	modelFile(t, good)
	bad := filepath.Join(dir, "bad.safetensors")
	vals := make([]float64, 48*40)
	vals[7] = math.NaN()
	writeST(t, bad, nil,
		tensor{name: "a.weight", dt: safetensors.F32, shape: []int{64, 48}, vals: make([]float64, 64*48)},
		tensor{name: "b.weight", dt: safetensors.F32, shape: []int{64, 48}, vals: make([]float64, 64*48)},
		tensor{name: "c.weight", dt: safetensors.F32, shape: []int{48, 40}, vals: vals},
		tensor{name: "d.weight", dt: safetensors.F32, shape: []int{64, 48}, vals: make([]float64, 64*48)})
	out := filepath.Join(dir, "o.safetensors")
	round := func(n int) {
		for i := range n {
			mustCLI(t, "factorize", good, "-o", out, "--jobs", "3", "--force", "--quiet", "--max-memory", "256MiB", "--seed", fmt.Sprint(i))
			if code, _, _ := cli("factorize", bad, "-o", out+"2", "--jobs", "3", "--quiet"); code != 1 {
				t.Fatal("the NaN file did not fail")
			}
		}
	}
	live := func() (uint64, int) {
		// Goroutines of a failed run may still be finishing their tensor.
		for range 500 {
			if runtime.NumGoroutine() <= 2 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc, runtime.NumGoroutine()
	}
	round(20)
	heap0, g0 := live()
	round(200)
	heap1, g1 := live()
	t.Logf("400 runs (200 failing): live heap %d → %d bytes, goroutines %d → %d", heap0, heap1, g0, g1)
	if g1 > g0 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if heap1 > heap0+1<<20 {
		t.Errorf("live heap grew by %d bytes over 400 runs", heap1-heap0)
	}
}

// Several processes given one folder output at once (a retried job, two
// users, a script started twice) raced inside it: with --force each
// removed the others' unfinished parts and the last join assembled shards
// of different runs — a factorized model folder holding ranks 4 and 5
// side by side and 8 of its 40 tensors missing, exit 0. One run now holds
// the folder (a lock on it, shared by the parts of one --shard run): the
// others fail at once, naming it, and what is left is one run's output,
// whole.
func TestConcurrentRunsOnOneFolder(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.Mkdir(in, 0o755)
	rng := rand.New(rand.NewPCG(1, 2))
	var ts []tensor
	for i := range 24 {
		ts = append(ts, tensor{name: fmt.Sprintf("l%d.weight", i), dt: safetensors.F32, shape: []int{64, 48}, vals: gauss(rng, 64*48, 1)})
	}
	writeST(t, filepath.Join(in, "model.safetensors"), nil, ts...)
	out := filepath.Join(dir, "out")
	for round := range 4 {
		var wg sync.WaitGroup
		codes := make([]int, 6)
		errs := make([]string, 6)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _, errs[i] = cli("factorize", in, "-o", out, "--rank", fmt.Sprint(2+i), "--min-saving", "0", "--max-shard-size", "20KB", "--quiet", "--force")
			}()
		}
		wg.Wait()
		ok := -1
		for i, c := range codes {
			if c == 0 {
				ok = i
			} else if !strings.HasPrefix(errs[i], "lowrank: ") || strings.Count(errs[i], "\n") != 1 {
				t.Errorf("round %d, run %d: exit %d, %q; want one lowrank: line", round, i, c, errs[i])
			}
		}
		if ok < 0 {
			t.Fatalf("round %d: no run succeeded: %q", round, errs)
		}
		// What is there is one run's whole output.
		vals := map[string][]int{}
		ents, _ := os.ReadDir(out)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".safetensors") {
				_, shapes, _ := readST(t, filepath.Join(out, e.Name()))
				for n, s := range shapes {
					vals[n] = s
				}
			}
		}
		ranks := map[int]bool{}
		for n, s := range vals {
			if strings.HasSuffix(n, ".A") {
				ranks[s[0]] = true
			}
		}
		if len(vals) != 2*len(ts) || len(ranks) != 1 {
			t.Errorf("round %d: the folder holds %d tensors of ranks %v; want the %d factors of one run", round, len(vals), ranks, 2*len(ts))
		}
	}
}
