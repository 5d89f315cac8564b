package main

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestMain doubles as the lowrank command for tests that need a process of
// their own (signals, resident memory): with LOWRANK_TEST_MAIN set to the
// arguments separated by \x1f, it runs them as main does and, when
// LOWRANK_TEST_HWM names a file, writes the peak resident size there.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("LOWRANK_TEST_MAIN"); ok {
		code := mainCode(strings.Split(args, "\x1f"))
		if p := os.Getenv("LOWRANK_TEST_HWM"); p != "" {
			os.WriteFile(p, []byte(strconv.FormatInt(peakRSS(), 10)), 0o644)
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// peakRSS returns VmHWM, the process's peak resident size, in bytes (-1
// where /proc is missing).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return -1
}

// lowrankProcess returns the test binary set up to run lowrank with args.
func lowrankProcess(t *testing.T, env []string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "LOWRANK_TEST_MAIN="+strings.Join(args, "\x1f")), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return cmd, &out, &errb
}
