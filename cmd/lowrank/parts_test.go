package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWorkersJoinEqualsOneProcess runs the parts of a factorize as local
// processes, as a Kubernetes Indexed Job, a Slurm array or --shard would,
// joins them, and checks the folder against a one-process run: the same
// files, tensor for tensor and byte for byte.
func TestWorkersJoinEqualsOneProcess(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	shardedModel(t, in, 3, 6)
	flags := []string{"--rank", "3", "--method", "randomized", "--seed", "9", "--max-shard-size", "4KB", "--quiet"} // 4 shards
	one := filepath.Join(dir, "one")
	mustCLI(t, append([]string{"factorize", in, "-o", one}, flags...)...)
	_, want := folderTensors(t, one)
	oneFiles := listDir(t, one)

	const n = 3
	for _, how := range []string{"flag", "kubernetes", "slurm"} {
		t.Run(how, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+how)
			var procs []*procRun
			for i := range n {
				args := append([]string{"factorize", in, "-o", out}, flags...)
				var env []string
				switch how {
				case "flag":
					args = append(args, "--shard", fmt.Sprintf("%d/%d", i, n))
				case "kubernetes":
					env = []string{fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i), fmt.Sprintf("LOWRANK_SHARDS=%d", n)}
				case "slurm":
					env = []string{fmt.Sprintf("SLURM_ARRAY_TASK_ID=%d", 10+i), fmt.Sprintf("SLURM_ARRAY_TASK_COUNT=%d", n), "SLURM_ARRAY_TASK_MIN=10", fmt.Sprintf("SLURM_ARRAY_TASK_MAX=%d", 10+n-1)}
				}
				procs = append(procs, startProc(t, env, args...))
			}
			for i, p := range procs {
				if err := p.wait(); err != nil {
					t.Fatalf("worker %d: %v\n%s", i, err, p.stderr())
				}
			}
			// Before the join: no index, a clear refusal to read it as a model.
			if _, err := os.Stat(filepath.Join(out, "model.safetensors.index.json")); err == nil {
				t.Error("index written before the join")
			}
			mustCLI(t, "join", out, "--quiet")
			_, got := folderTensors(t, out)
			sameTensors(t, how+" workers joined and one process", got, want)
			gotFiles := listDir(t, out)
			for f := range oneFiles {
				if !gotFiles[f] {
					t.Errorf("%s: %s missing", how, f)
				}
				if strings.HasSuffix(f, ".safetensors") || strings.HasSuffix(f, ".json") {
					a, _ := os.ReadFile(filepath.Join(one, f))
					b, _ := os.ReadFile(filepath.Join(out, f))
					if string(a) != string(b) {
						t.Errorf("%s: %s differs from the one-process run's", how, f)
					}
				}
			}
			if len(gotFiles) != len(oneFiles) {
				t.Errorf("%s: files %v; one process wrote %v", how, gotFiles, oneFiles)
			}
		})
	}
}

// TestJoinRefusesIncompleteOrMixedParts checks join's refusals: a part
// missing, a part from other flags.
func TestJoinRefusesIncompleteOrMixedParts(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	shardedModel(t, in, 2, 3)
	out := filepath.Join(dir, "out")
	mustCLI(t, "factorize", in, "-o", out, "--rank", "2", "--shard", "0/2", "--quiet")
	assertFails(t, dir, nil, []string{"join", out}, "part 1 of 2 is missing")
	// Part 1 with other flags: refused before any work.
	assertFails(t, dir, nil, []string{"factorize", in, "-o", out, "--rank", "3", "--shard", "1/2", "--quiet"}, "another input, other flags")
	// A part of another split.
	assertFails(t, dir, nil, []string{"factorize", in, "-o", out, "--rank", "2", "--shard", "1/3", "--quiet"}, "same N")
	mustCLI(t, "factorize", in, "-o", out, "--rank", "2", "--shard", "1/2", "--quiet")
	// Part 0 run again without --resume: refused.
	assertFails(t, dir, nil, []string{"factorize", in, "-o", out, "--rank", "2", "--shard", "0/2", "--quiet"}, "--resume")
	// A piece changed after its part finished: join refuses it; the part
	// run again with --resume redoes it.
	pieces, _ := filepath.Glob(filepath.Join(out, partDirName(1, 2), "*.safetensors"))
	if len(pieces) == 0 {
		t.Fatal("part 1 wrote no piece")
	}
	b, err := os.ReadFile(pieces[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(pieces[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	assertFails(t, dir, nil, []string{"join", out}, "expected intact pieces", "--resume")
	mustCLI(t, "factorize", in, "-o", out, "--rank", "2", "--shard", "1/2", "--quiet", "--resume")
	mustCLI(t, "join", out, "--quiet")
	if _, err := os.Stat(filepath.Join(out, "model.safetensors.index.json")); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "ref")
	mustCLI(t, "factorize", in, "-o", ref, "--rank", "2", "--quiet")
	sameFolders(t, "joined after a piece was redone", out, ref)
	// Bad environment values.
	for _, env := range [][]string{
		{"JOB_COMPLETION_INDEX=2"},
		{"JOB_COMPLETION_INDEX=2", "LOWRANK_SHARDS=2"},
		{"JOB_COMPLETION_INDEX=x", "LOWRANK_SHARDS=2"},
		{"SLURM_ARRAY_TASK_ID=3", "SLURM_ARRAY_TASK_COUNT=2", "SLURM_ARRAY_TASK_MIN=0"},
	} {
		p := startProc(t, env, "factorize", in, "-o", filepath.Join(dir, "env-out"), "--rank", "2", "--quiet")
		if err := p.wait(); err == nil {
			t.Errorf("%v: exit 0; want a refusal", env)
		} else if s := p.stderr(); !strings.HasPrefix(s, "lowrank: ") || strings.Count(strings.TrimSpace(s), "\n") > 0 {
			t.Errorf("%v: stderr %q; want one lowrank: line", env, s)
		}
	}
}

// TestResumeAfterKill kills a worker at random points and resumes it with
// the same command and --resume: the joined folder equals an
// uninterrupted run's, byte for byte.
func TestResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	rng := rand.New(rand.NewPCG(3, 4))
	var all []tensor
	for l := range 12 {
		all = append(all, tensor{name: fmt.Sprintf("layers.%d.weight", l), dt: "F32", shape: []int{160, 120}, vals: decaying(rng, 160, 120)})
	}
	writeFolder(t, in, 3, all)
	flags := []string{"--rank", "8", "--max-shard-size", "10KB"} // factors of 8·280·4 = 8960 bytes: one tensor a shard
	ref := filepath.Join(dir, "ref")
	mustCLI(t, append([]string{"factorize", in, "-o", ref, "--quiet"}, flags...)...)
	_, want := folderTensors(t, ref)

	for trial := range 4 {
		out := filepath.Join(dir, fmt.Sprintf("out%d", trial))
		args := append([]string{"factorize", in, "-o", out, "--resume"}, flags...)
		killed, logs := 0, ""
		man := filepath.Join(out, partDirName(0, 1), partManifest)
		for attempt := 0; ; attempt++ {
			p := startProc(t, nil, args...)
			switch {
			case attempt == 0:
				// Killed once some pieces are finished: the next run
				// must reuse them.
				for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
					var m partMan
					if readJSONFile(man, &m) == nil && len(m.Pieces) > trial%3 {
						break
					}
				}
				p.cmd.Process.Signal(syscall.SIGKILL)
			case attempt < 3:
				time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
				p.cmd.Process.Signal(syscall.SIGKILL)
			}
			err := p.wait()
			if attempt > 0 {
				logs += p.stderr()
			}
			if err == nil {
				break
			}
			if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
				t.Fatalf("trial %d attempt %d: %v\n%s", trial, attempt, err, p.stderr())
			}
			killed++
		}
		if !strings.Contains(logs, "pieces of part 0 of 1 reused") {
			t.Errorf("trial %d: no run after the first kill reused a piece:\n%s", trial, logs)
		}
		_, got := folderTensors(t, out)
		sameTensors(t, fmt.Sprintf("trial %d (%d kills)", trial, killed), got, want)
		for f := range listDir(t, ref) {
			a, _ := os.ReadFile(filepath.Join(ref, f))
			b, _ := os.ReadFile(filepath.Join(out, f))
			if string(a) != string(b) {
				t.Errorf("trial %d: %s differs from the uninterrupted run's", trial, f)
			}
		}
		if got, want := len(listDir(t, out)), len(listDir(t, ref)); got != want {
			t.Errorf("trial %d: %d entries, uninterrupted run %d", trial, got, want)
		}
	}
}

// procRun is a lowrank process started by startProc.
type procRun struct {
	cmd  *exec.Cmd
	errb *bytes.Buffer
}

// startProc starts lowrank with args in a process of its own.
func startProc(t *testing.T, env []string, args ...string) *procRun {
	t.Helper()
	cmd, _, errb := lowrankProcess(t, env, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &procRun{cmd: cmd, errb: errb}
}

func (p *procRun) wait() error    { return p.cmd.Wait() }
func (p *procRun) stderr() string { return p.errb.String() }

// TestResumeOfAFinishedRun runs the same command with --resume after the
// run finished (a worker killed after its join, before it exited; a job
// restarted as a whole): it has nothing to do and succeeds, the folder
// unchanged. A finished folder of other flags is still refused.
func TestResumeOfAFinishedRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	shardedModel(t, in, 2, 2)
	out := filepath.Join(dir, "out")
	args := []string{"factorize", in, "-o", out, "--rank", "3", "--max-shard-size", "4KB", "--quiet", "--resume"}
	mustCLI(t, args...)
	before := map[string]string{}
	for f := range listDir(t, out) {
		b, _ := os.ReadFile(filepath.Join(out, f))
		before[f] = string(b)
	}
	code, _, errs := cli(args...)
	if code != 0 {
		t.Fatalf("--resume of a finished run: exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "already complete") {
		t.Errorf("--resume of a finished run says %q; expected that it is already complete", errs)
	}
	after := listDir(t, out)
	if len(after) != len(before) {
		t.Errorf("%d entries after, %d before", len(after), len(before))
	}
	for f, b := range before {
		if a, _ := os.ReadFile(filepath.Join(out, f)); string(a) != b {
			t.Errorf("%s changed", f)
		}
	}
	// A part of a distributed run of the same command, rerun after the
	// join: done too (the joined folder is what one process writes).
	if code, _, errs := cli(append(args, "--shard", "1/2")...); code != 0 {
		t.Errorf("--shard 1/2 --resume after the join: exit %d: %s", code, errs)
	}
	// Other flags: refused as before.
	assertFails(t, dir, nil, []string{"factorize", in, "-o", out, "--rank", "4", "--max-shard-size", "4KB", "--quiet", "--resume"}, "output exists")
	// A finished folder that lost a shard is not complete.
	if err := os.Remove(filepath.Join(out, "model-00001-of-00002.safetensors")); err != nil {
		t.Fatal(err)
	}
	assertFails(t, dir, nil, args, "output exists")
}

// TestConcurrentJoins runs several joins of one folder at once (a join
// Job retried while the first still runs, a script that joins from every
// worker): one joins; each other one is refused at once (another process
// holds the folder) or, coming later, finds the folder joined and exits
// 0; and the folder is the one-process folder. Before, the others failed
// with "no such file or directory" as the first removed the parts under
// them.
func TestConcurrentJoins(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	shardedModel(t, in, 3, 6)
	flags := []string{"--rank", "3", "--max-shard-size", "2KB", "--quiet"}
	one := filepath.Join(dir, "one")
	mustCLI(t, append([]string{"factorize", in, "-o", one}, flags...)...)
	_, want := folderTensors(t, one)
	for trial := range 3 {
		out := filepath.Join(dir, fmt.Sprintf("out%d", trial))
		for i := range 2 {
			mustCLI(t, append([]string{"factorize", in, "-o", out, "--shard", fmt.Sprintf("%d/2", i)}, flags...)...)
		}
		var procs []*procRun
		for range 4 {
			procs = append(procs, startProc(t, nil, "join", out, "--quiet"))
		}
		ok := 0
		for i, p := range procs {
			if err := p.wait(); err == nil {
				ok++
			} else if e := p.stderr(); !strings.HasPrefix(e, "lowrank: ") || !strings.Contains(e, "another lowrank process is writing this folder") {
				t.Errorf("trial %d: join %d of 4 at once: %v\n%s", trial, i, err, e)
			}
		}
		if ok == 0 {
			t.Errorf("trial %d: no join of 4 succeeded", trial)
		}
		_, got := folderTensors(t, out)
		sameTensors(t, "joined at once", got, want)
		for n := range listDir(t, dir) {
			if strings.HasPrefix(n, ".out") {
				t.Errorf("trial %d: %s left beside the output", trial, n)
			}
		}
	}
}

// TestJoinRemovesWhatAKilledJoinLeft: a join killed while it built the
// final folder beside OUT (hard links of every piece, or copies of the
// shards split between parts: gigabytes) or while it removed the parts
// it had swapped out left a hidden folder .OUT.tmp-* that nothing removed.
// The next join removes such folders (what a join writes in them, and
// only that).
func TestJoinRemovesWhatAKilledJoinLeft(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	shardedModel(t, in, 2, 2)
	out := filepath.Join(dir, "out")
	flags := []string{"--rank", "3", "--max-shard-size", "2KB", "--quiet"}
	for i := range 2 {
		mustCLI(t, append([]string{"factorize", in, "-o", out, "--shard", fmt.Sprintf("%d/2", i)}, flags...)...)
	}
	// A join killed while building: shards and the index so far.
	building := filepath.Join(dir, ".out.tmp-111")
	os.Mkdir(building, 0o755)
	var piece string
	filepath.Walk(filepath.Join(out, partDirName(0, 2)), func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".safetensors") && piece == "" {
			piece = p
		}
		return nil
	})
	if piece == "" {
		t.Fatal("no piece in part 0")
	}
	os.Link(piece, filepath.Join(building, filepath.Base(piece)))
	os.WriteFile(filepath.Join(building, "config.json"), []byte("{}"), 0o644)
	// A join killed after the exchange: the parts swapped out.
	swapped := filepath.Join(dir, ".out.tmp-222")
	os.MkdirAll(filepath.Join(swapped, partDirName(1, 2)), 0o755)
	os.WriteFile(filepath.Join(swapped, planName), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(swapped, partDirName(1, 2), partManifest), []byte("{}"), 0o644)
	// Not a join's: kept.
	foreign := filepath.Join(dir, ".out.tmp-333")
	os.Mkdir(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine"), 0o644)

	mustCLI(t, "join", out, "--quiet")
	for _, p := range []string{building, swapped} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s, left by a killed join, is still there", filepath.Base(p))
		}
	}
	if b, err := os.ReadFile(filepath.Join(foreign, "notes.txt")); err != nil || string(b) != "mine" {
		t.Errorf("a folder that is not a join's lost its file: %v", err)
	}
	folderTensors(t, out)
}

// TestJoinReportHasThePolicy: join's --report gives factorize's policy, as
// a one-process run's does (it had none).
func TestJoinReportHasThePolicy(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	shardedModel(t, in, 2, 2)
	out := filepath.Join(dir, "out")
	for i := range 2 {
		mustCLI(t, "factorize", in, "-o", out, "--rank", "3", "--quiet", "--shard", fmt.Sprintf("%d/2", i))
	}
	rep := filepath.Join(dir, "r.json")
	mustCLI(t, "join", out, "--quiet", "--report", rep)
	b, err := os.ReadFile(rep)
	if err != nil || !strings.Contains(string(b), `"policy": "rank=3"`) {
		t.Errorf("join's report lacks the policy rank=3 (%v):\n%.400s", err, b)
	}
}

// TestPartsWithOtherMemoryBudgets: the memory budget (by default a share
// of each machine's free memory) may give a tensor the randomized SVD
// instead of the exact one. Parts whose budgets chose differently were
// joined without a word into a folder that matched no one-process run;
// the plan now records the budget's choices, and such a part is refused,
// naming them.
func TestPartsWithOtherMemoryBudgets(t *testing.T) {
	if testing.Short() {
		t.Skip("exact SVDs of 1024×768")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 9))
	var all []tensor
	for l := range 2 {
		all = append(all, tensor{name: fmt.Sprintf("layers.%d.weight", l), dt: "F32", shape: []int{1024, 768}, vals: decaying(rng, 1024, 768)})
	}
	in := filepath.Join(dir, "in")
	writeFolder(t, in, 2, all)
	out := filepath.Join(dir, "out")
	flags := []string{"--rank", "300", "--min-saving", "0", "--quiet"}
	// 52 MiB: too little for the exact SVD the automatic method picks at
	// rank 300, enough for the randomized one.
	mustCLI(t, append([]string{"factorize", in, "-o", out, "--shard", "0/2", "--max-memory", "52MiB"}, flags...)...)
	assertFails(t, dir, nil, append([]string{"factorize", in, "-o", out, "--shard", "1/2"}, flags...),
		"memory budget", "layers.0.weight: randomized", "--max-memory")
	// The same budget: accepted.
	mustCLI(t, append([]string{"factorize", in, "-o", out, "--shard", "1/2", "--max-memory", "52MiB"}, flags...)...)
	mustCLI(t, "join", out, "--quiet")
}
