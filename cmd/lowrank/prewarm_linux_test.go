//go:build linux && !race

package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// minorFaults returns the process's minor page faults so far.
func minorFaults(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip(err)
	}
	// Fields after the command name (which is in parentheses): minflt is
	// the 10th field of the line, the 8th after ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, err := strconv.Atoi(f[7])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPrewarmHeap: after prewarmHeap, allocating and touching the same
// amount again takes a fraction of the faults a fresh heap would (one per
// 4 KiB page: 8 192 for 32 MiB). It runs in a child process of its own:
// the package's other tests, running in parallel, would take the
// prewarmed memory first.
func TestPrewarmHeap(t *testing.T) {
	if os.Getenv("LOWRANK_PREWARM_CHILD") == "1" {
		prewarmChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestPrewarmHeap$", "-test.v")
	cmd.Env = append(os.Environ(), "LOWRANK_PREWARM_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if !strings.Contains(string(out), "faults touching") {
		t.Fatal("the child did not measure")
	}
}

func prewarmChild(t *testing.T) {
	const n = 32 << 20
	prewarmHeap(2 * n)
	before := minorFaults(t)
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	faults := minorFaults(t) - before
	t.Logf("%d faults touching %d MiB after prewarmHeap (a fresh heap: %d)", faults, n>>20, n/4096)
	if faults > n/4096/4 {
		t.Fatalf("%d faults touching %d MiB after prewarmHeap; want at most a quarter of %d", faults, n>>20, n/4096)
	}
}
