package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lowrank-go/lowrank/safetensors"
)

// slowModel writes a model whose factorization with --method exact takes
// seconds: n matrices of d×k.
func slowModel(t *testing.T, path string, n, d, k int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	var ts []tensor
	for i := range n {
		ts = append(ts, tensor{name: "layer" + string(rune('a'+i)) + ".weight", dt: safetensors.F32, shape: []int{d, k}, vals: gauss(rng, d*k, 1)})
	}
	writeST(t, path, nil, ts...)
}

// waitFor polls dir until an entry whose name contains part appears.
func waitFor(t *testing.T, dir, part string) {
	t.Helper()
	for range 6000 { // up to a minute: a slow machine, not an assertion on time
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), part) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q appeared in %s", part, dir)
}

// A SIGINT or SIGTERM in the middle of a long run stops it with one
// "interrupted" line and exit 1, and leaves no output, no temporary file
// and no temporary folder.
func TestSignalLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the subprocess signal test")
	}
	src := t.TempDir()
	model := filepath.Join(src, "model.safetensors")
	slowModel(t, model, 8, 900, 700)
	tuned := filepath.Join(src, "tuned.safetensors")
	slowModel(t, tuned, 8, 900, 700)
	// tuned differs from model: a different seed is not needed, the
	// second call draws the same values, so perturb it.
	f, _ := safetensors.Open(tuned)
	var ts []tensor
	rng := rand.New(rand.NewPCG(9, 9))
	for _, ti := range f.Tensors() {
		v, _ := f.Float64s(ti.Name)
		for i := range v {
			v[i] += rng.NormFloat64()
		}
		ts = append(ts, tensor{name: ti.Name, dt: ti.DType, shape: ti.Shape, vals: v})
	}
	f.Close()
	writeST(t, tuned, nil, ts...)

	for _, c := range []struct {
		name    string
		sig     syscall.Signal
		args    func(out string) []string
		tmpPart string
	}{
		{"factorize SIGINT", syscall.SIGINT, func(out string) []string {
			return []string{"factorize", model, "-o", filepath.Join(out, "small.safetensors"), "--method", "exact", "--rank", "8", "--report", filepath.Join(out, "r.json")}
		}, ".small.safetensors.tmp-"},
		{"factorize --jobs 2 SIGTERM", syscall.SIGTERM, func(out string) []string {
			return []string{"factorize", model, "-o", filepath.Join(out, "small.safetensors"), "--method", "exact", "--jobs", "2"}
		}, ".small.safetensors.tmp-"},
		{"extract SIGTERM", syscall.SIGTERM, func(out string) []string {
			return []string{"extract", "--base", model, "--tuned", tuned, "-o", filepath.Join(out, "adapter"), "--method", "exact", "--rank", "4"}
		}, ".adapter.tmp-"},
		{"merge SIGINT", syscall.SIGINT, func(out string) []string {
			return []string{"merge", "--base", model, "--adapter", filepath.Join(src, "ad"), "-o", filepath.Join(out, "merged.safetensors")}
		}, ".merged.safetensors.tmp-"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if strings.HasPrefix(c.name, "merge") {
				// A rank-300 adapter for every layer, so that merging
				// takes a while.
				ad := filepath.Join(src, "ad")
				os.Mkdir(ad, 0o755)
				os.WriteFile(filepath.Join(ad, peftConfigName), []byte(`{"peft_type":"LORA","r":300,"lora_alpha":300}`), 0o644)
				var ts []tensor
				for i := range 8 {
					m := "layer" + string(rune('a'+i))
					ts = append(ts, tensor{name: peftKey(m, "A"), dt: safetensors.F32, shape: []int{300, 700}, vals: gauss(rng, 300*700, 0.01)},
						tensor{name: peftKey(m, "B"), dt: safetensors.F32, shape: []int{900, 300}, vals: gauss(rng, 900*300, 0.01)})
				}
				writeST(t, filepath.Join(ad, peftWeightsName), nil, ts...)
			}
			out := t.TempDir()
			cmd, _, stderr := lowrankProcess(t, nil, c.args(out)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, out, c.tmpPart)
			time.Sleep(100 * time.Millisecond) // into the computation
			cmd.Process.Signal(c.sig)
			err := cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			left := listDir(t, out)
			if code == 0 {
				// Finished before the signal (a fast machine): then the
				// output must be complete and nothing else left.
				t.Logf("finished before the signal; checking the output instead")
				for name := range left {
					if strings.Contains(name, ".tmp-") {
						t.Errorf("temporary %s left behind", name)
					}
				}
				return
			}
			if code != 1 || stderr.String() != "lowrank: interrupted; no output was written\n" {
				t.Errorf("exit %d (%v), stderr %q; want 1 and one \"interrupted\" line", code, err, stderr.String())
			}
			if len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// --force on an existing adapter folder written by extract replaces it
// whole: the new folder takes its place (one atomic exchange on Linux, two
// renames elsewhere) and nothing of the old one, or of the temporary
// names, is left. A folder holding anything else is never replaced.
func TestForceReplacesAdapterFolder(t *testing.T) {
	p := makePair(t, t.TempDir(), safetensors.F32)
	parent := t.TempDir()
	ad := filepath.Join(parent, "adapter")
	for _, c := range []struct {
		name     string
		exchange func(a, b string) error
	}{
		{"exchange", exchange},
		{"two renames", func(a, b string) error { return syscall.ENOSYS }},
	} {
		t.Run(c.name, func(t *testing.T) {
			saved := exchangeDirs
			exchangeDirs = c.exchange
			defer func() { exchangeDirs = saved }()
			os.RemoveAll(ad)
			os.Mkdir(ad, 0o755)
			// A previous adapter (of an older lowrank: no manifest).
			os.WriteFile(filepath.Join(ad, peftConfigName), []byte("old"), 0o644)
			os.WriteFile(filepath.Join(ad, peftWeightsName), []byte("old"), 0o644)
			assertFails(t, parent, nil, []string{"extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--quiet"}, ad, "exists", "--force")
			mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--quiet", "--force")
			got := listDir(t, parent)
			want := map[string]bool{"adapter": true, filepath.Join("adapter", peftConfigName): true, filepath.Join("adapter", peftWeightsName): true, filepath.Join("adapter", manifestName): true}
			if len(got) != len(want) {
				t.Errorf("after --force: %v; want %v", got, want)
			}
			for name := range want {
				if !got[name] {
					t.Errorf("after --force: %s missing", name)
				}
			}
			// Our own output, with its manifest, is replaced again.
			mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--quiet", "--force")
			if got := listDir(t, parent); len(got) != len(want) {
				t.Errorf("after a second --force: %v; want %v", got, want)
			}
			// Anything else in it: refused, and nothing touched.
			os.WriteFile(filepath.Join(ad, "notes.txt"), []byte("mine"), 0o644)
			assertFails(t, parent, nil, []string{"extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--quiet", "--force"}, ad, `holds "notes.txt"`, "does not write")
			if b, err := os.ReadFile(filepath.Join(ad, "notes.txt")); err != nil || string(b) != "mine" {
				t.Errorf("notes.txt: %q, %v", b, err)
			}
		})
	}
}

// Issue 9, point 8 (and the rule behind it): every command honours SIGINT
// and SIGTERM at once, also in the loops that are not tensor work: reading
// a header of 300 000 entries, and matching kohya names against a base of
// as many. The time from the signal to the exit is logged (not asserted).
func TestSignalDuringLongLoops(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the subprocess signal test")
	}
	dir := t.TempDir()
	many := filepath.Join(dir, "many.safetensors")
	manyTensors(t, many, 300_000)
	// A kohya adapter with a LoRA for each of those names would be as
	// large; the header read is the long loop here.
	for _, c := range []struct {
		name    string
		sig     syscall.Signal
		args    func(out string) []string
		tmpPart string
	}{
		{"factorize reading the header, SIGINT", syscall.SIGINT, func(out string) []string {
			return []string{"factorize", many, "-o", filepath.Join(out, "o.safetensors"), "--rank", "1"}
		}, ".o.safetensors.tmp-"},
		{"merge reading the header, SIGTERM", syscall.SIGTERM, func(out string) []string {
			return []string{"merge", many, "-o", filepath.Join(out, "o.safetensors")}
		}, ".o.safetensors.tmp-"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			cmd, _, stderr := lowrankProcess(t, nil, c.args(out)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, out, c.tmpPart)
			sent := time.Now()
			cmd.Process.Signal(c.sig)
			cmd.Wait()
			t.Logf("exited %v after the signal", time.Since(sent).Round(time.Millisecond))
			code := cmd.ProcessState.ExitCode()
			if code == 0 {
				t.Logf("finished before the signal")
				return
			}
			if code != 1 || stderr.String() != "lowrank: interrupted; no output was written\n" {
				t.Errorf("exit %d, stderr %q; want 1 and one \"interrupted\" line", code, stderr.String())
			}
			if left := listDir(t, out); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// "--force replaces only a previous output of the same kind": a model
// folder that lowrank factorize wrote (its manifest lists model.safetensors)
// is not a previous output of extract, whose folder is an adapter. extract
// --force emptied it, trusting the other command's manifest; it is now
// refused, and the model kept.
func TestForceKeepsAnotherCommandsFolder(t *testing.T) {
	p := makePair(t, t.TempDir(), safetensors.F32)
	parent := t.TempDir()
	in := filepath.Join(parent, "in")
	os.Mkdir(in, 0o755)
	b, _ := os.ReadFile(p.base)
	os.WriteFile(filepath.Join(in, "model.safetensors"), b, 0o644)
	fo := filepath.Join(parent, "factorized")
	mustCLI(t, "factorize", in, "-o", fo, "--rank", "2", "--min-saving", "0", "--quiet")
	before, err := os.ReadFile(filepath.Join(fo, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	assertFails(t, parent, nil, []string{"extract", "--base", p.base, "--tuned", p.tuned, "-o", fo, "--quiet", "--force"}, fo, "is the output of lowrank factorize, not of a previous extract")
	if after, err := os.ReadFile(filepath.Join(fo, "model.safetensors")); err != nil || !bytes.Equal(after, before) {
		t.Errorf("the factorized model was changed or removed by extract --force: %v", err)
	}
}

// factorize -o over extract's adapter folder names what wrote the folder.
func TestForceNamesTheOtherCommand(t *testing.T) {
	p := makePair(t, t.TempDir(), safetensors.F32)
	parent := t.TempDir()
	ad := filepath.Join(parent, "adapter")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--rank", "2", "--quiet")
	in := filepath.Join(parent, "in")
	os.Mkdir(in, 0o755)
	b, _ := os.ReadFile(p.base)
	os.WriteFile(filepath.Join(in, "model.safetensors"), b, 0o644)
	assertFails(t, parent, nil, []string{"factorize", in, "-o", ad, "--rank", "2", "--quiet", "--force"}, ad, "is the output of lowrank extract, not a model folder")
	if _, err := os.Stat(filepath.Join(ad, "adapter_config.json")); err != nil {
		t.Errorf("the adapter was changed by factorize --force: %v", err)
	}
}

// A SIGINT in a folder run with --resume keeps what was finished, and
// says so (not "no output was written"); the same command then finishes.
func TestSignalDuringResumableRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the subprocess signal test")
	}
	src := t.TempDir()
	slowModel(t, filepath.Join(src, "model.safetensors"), 8, 900, 700)
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"factorize", src, "-o", out, "--method", "exact", "--rank", "8", "--resume", "--quiet"}
	cmd, _, stderr := lowrankProcess(t, nil, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, planName)
	time.Sleep(100 * time.Millisecond) // into the computation
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code == 0 {
		t.Logf("finished before the signal")
	} else if code != 1 || stderr.String() != "lowrank: interrupted; the finished shard pieces are kept: run the same command with --resume to continue\n" {
		t.Errorf("exit %d, stderr %q; want 1 and the line saying what is kept", code, stderr.String())
	}
	mustCLI(t, args...)
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err != nil {
		t.Errorf("the resumed run did not finish the folder: %v", err)
	}
}
