package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"testing"

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
