package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lowrankScript writes an executable script that runs this test binary as
// lowrank with its arguments (for shell scripts that call lowrank).
func lowrankScript(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "lowrank")
	script := fmt.Sprintf("#!/bin/sh\nargs=$(printf '%%s\\037' \"$@\")\nLOWRANK_TEST_MAIN=\"${args%%?}\" exec %q -test.run='^$'\n", os.Args[0])
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSlurmExample runs examples/slurm-array.sh with an sbatch that runs
// the array's tasks as local processes (with the variables Slurm sets) and
// the dependent join after them, and checks the folder against one
// process's.
func TestSlurmExample(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	shardedModel(t, in, 3, 4)
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	lr := lowrankScript(t, bin)
	// sbatch: --array=A-B runs the --wrap command once per task, at once;
	// a --dependency job runs when called (after the array, which this
	// sbatch finished before returning).
	sbatch := `#!/bin/bash
set -eu
array= wrap=
for a in "$@"; do
	case "$a" in
	--array=*) array=${a#--array=} ;;
	--wrap=*) wrap=${a#--wrap=} ;;
	esac
done
if [ -n "$array" ]; then
	lo=${array%-*} hi=${array#*-} pids=
	for i in $(seq "$lo" "$hi"); do
		SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=$((hi - lo + 1)) SLURM_ARRAY_TASK_MIN=$lo SLURM_ARRAY_TASK_MAX=$hi bash -c "$wrap" >"$SBATCH_LOG.$i" 2>&1 &
		pids="$pids $!"
	done
	for p in $pids; do wait "$p" || { echo "task failed" >&2; cat "$SBATCH_LOG".* >&2; exit 1; }; done
	echo 100
else
	bash -c "$wrap" >&2
	echo 101
fi
`
	if err := os.WriteFile(filepath.Join(bin, "sbatch"), []byte(sbatch), 0o755); err != nil {
		t.Fatal(err)
	}
	flags := "--rank 3 --seed 4 --method randomized --max-shard-size 4KB"
	out := filepath.Join(dir, "out")
	cmd := exec.Command("bash", "../../examples/slurm-array.sh", in, out, "3")
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "LOWRANK="+lr, "LOWRANK_FLAGS="+flags, "SBATCH_LOG="+filepath.Join(dir, "task"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("slurm-array.sh: %v\n%s", err, b)
	}
	one := filepath.Join(dir, "one")
	mustCLI(t, append([]string{"factorize", in, "-o", one, "--quiet"}, strings.Fields(flags)...)...)
	sameFolders(t, "slurm array", out, one)
	if _, err := os.Stat(out + ".report.csv"); err != nil {
		t.Errorf("the join step wrote no report: %v", err)
	}
}

// TestKubernetesExample runs the Jobs of examples/kubernetes-indexed-job.yaml
// as local processes: every index of the Indexed Job with the container's
// arguments and environment and JOB_COMPLETION_INDEX, the join Job's init
// container (which must find every part complete), then its join; /models
// is a temporary folder. The folder must equal one process's.
func TestKubernetesExample(t *testing.T) {
	py := "/usr/bin/python3"
	if p := os.Getenv("LOWRANK_PYTHON"); p != "" {
		py = p
	}
	if err := exec.Command(py, "-c", "import yaml").Run(); err != nil {
		if os.Getenv("LOWRANK_REQUIRE_PYTHON") != "" {
			t.Fatalf("python3 with yaml (apt-get install python3-yaml): %v", err)
		}
		t.Skip("no python3 with yaml (apt-get install python3-yaml)")
	}
	b, err := exec.Command(py, "-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))", "../../examples/kubernetes-indexed-job.yaml").Output()
	if err != nil {
		t.Fatal(err)
	}
	type container struct {
		Command   []string `json:"command"`
		Args      []string `json:"args"`
		Env       []struct{ Name, Value string }
		Resources struct {
			Limits map[string]any `json:"limits"`
		} `json:"resources"`
	}
	var docs []struct {
		Kind     string `json:"kind"`
		Metadata struct{ Name string }
		Spec     struct {
			CompletionMode string `json:"completionMode"`
			Completions    int    `json:"completions"`
			Template       struct {
				Spec struct {
					InitContainers []container `json:"initContainers"`
					Containers     []container `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(b, &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Spec.CompletionMode != "Indexed" || docs[0].Spec.Completions < 2 {
		t.Fatalf("expected an Indexed Job of ≥ 2 completions and a join Job; got %+v", docs)
	}
	work := docs[0].Spec.Template.Spec.Containers[0]
	if work.Resources.Limits["nvidia.com/gpu"] == nil {
		t.Error("the workers ask for no nvidia.com/gpu")
	}
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	sub := func(s string) string { return strings.ReplaceAll(s, "/models", models) }
	in, out := "", ""
	for i, a := range work.Args {
		if i == 1 {
			in = sub(a)
		}
		if a == "-o" {
			out = sub(work.Args[i+1])
		}
	}
	shardedModel(t, in, 3, 4)
	n := docs[0].Spec.Completions
	var procs []*procRun
	for i := range n {
		var args []string
		for _, a := range work.Args {
			args = append(args, sub(a))
		}
		args = append(args, "--max-shard-size", "4KB", "--rank", "3") // a small model: small shards, rank < 40
		env := []string{fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i)}
		for _, e := range work.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		procs = append(procs, startProc(t, env, args...))
	}
	for i, p := range procs {
		if err := p.wait(); err != nil {
			t.Fatalf("index %d: %v\n%s", i, err, p.stderr())
		}
	}
	join := docs[1].Spec.Template.Spec
	for _, ic := range join.InitContainers {
		cmd := exec.Command(ic.Command[0], append(ic.Command[1:], sub(strings.Join(ic.Args, "\n")))...)
		done := make(chan error, 1)
		go func() { done <- cmd.Run() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("init container %v: %v", ic.Command, err)
			}
		case <-timeAfter(60):
			cmd.Process.Kill()
			t.Fatal("the join Job's init container still waits with every part complete")
		}
	}
	var jargs []string
	for _, a := range join.Containers[0].Args {
		jargs = append(jargs, sub(a))
	}
	if code, _, errs := cli(jargs...); code != 0 {
		t.Fatalf("join: %s", errs)
	}
	one := filepath.Join(dir, "one")
	var args []string
	for _, a := range work.Args {
		if a != "--resume" {
			args = append(args, sub(a))
		}
	}
	args[3] = one
	mustCLI(t, append(args, "--max-shard-size", "4KB", "--rank", "3")...)
	sameFolders(t, "kubernetes indexed job", out, one)
}

// sameFolders fails unless folders a and b hold the same files with the
// same bytes.
func sameFolders(t *testing.T, what, a, b string) {
	t.Helper()
	fa, fb := listDir(t, a), listDir(t, b)
	if len(fa) != len(fb) {
		t.Errorf("%s: files %v; one process wrote %v", what, fa, fb)
	}
	for f := range fb {
		x, err1 := os.ReadFile(filepath.Join(a, f))
		y, err2 := os.ReadFile(filepath.Join(b, f))
		if err1 != nil || err2 != nil || string(x) != string(y) {
			t.Errorf("%s: %s differs from one process's (%v, %v)", what, f, err1, err2)
		}
	}
	_, raw := folderTensors(t, a)
	if len(raw) == 0 {
		t.Errorf("%s: no tensors", what)
	}
}

// timeAfter is time.After in seconds.
func timeAfter(s int) <-chan time.Time { return time.After(time.Duration(s) * time.Second) }
