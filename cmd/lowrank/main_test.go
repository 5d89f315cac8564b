package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
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

// TestBackendEnvironment checks that factorize and extract honour
// LOWRANK_BACKEND (as merge, densify and 'lowrank backends' do, and as the
// usage says) when --backend is not given: an unknown value is an error,
// not a silent run on whatever auto picks; --backend, when given, wins.
func TestBackendEnvironment(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	ts := modelFile(t, in)
	for i := range ts {
		for j := range ts[i].vals {
			ts[i].vals[j] *= 1.5
		}
	}
	tuned := filepath.Join(dir, "t.safetensors")
	writeST(t, tuned, nil, ts...)
	run := func(env string, args ...string) (error, string) {
		t.Helper()
		cmd, _, errb := lowrankProcess(t, []string{"LOWRANK_BACKEND=" + env}, args...)
		err := cmd.Run()
		return err, errb.String()
	}
	for _, c := range [][]string{
		{"factorize", in, "-o", filepath.Join(dir, "f.safetensors"), "--rank", "2", "--quiet"},
		{"extract", "--base", in, "--tuned", tuned, "-o", filepath.Join(dir, "ad"), "--rank", "2", "--quiet"},
	} {
		err, stderr := run("bogus", c...)
		if err == nil || !strings.HasPrefix(stderr, "lowrank: ") || !strings.Contains(stderr, `LOWRANK_BACKEND="bogus"`) {
			t.Errorf("%s with LOWRANK_BACKEND=bogus: %v, %q; expected a lowrank: error naming LOWRANK_BACKEND", c[0], err, stderr)
		}
		if err, stderr := run("bogus", append(c, "--backend", "cpu", "--force")...); err != nil {
			t.Errorf("%s --backend cpu with LOWRANK_BACKEND=bogus: %v %s; expected the flag to win", c[0], err, stderr)
		}
		if err, stderr := run("cpu", append(c, "--force")...); err != nil {
			t.Errorf("%s with LOWRANK_BACKEND=cpu: %v %s", c[0], err, stderr)
		}
	}
}
