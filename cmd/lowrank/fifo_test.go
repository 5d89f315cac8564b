//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliOrHang runs the tool in-process and fails the test if it has not
// returned after a minute (a hang: the limit is not a timing assertion).
func cliOrHang(t *testing.T, args ...string) (int, string) {
	t.Helper()
	type res struct {
		code   int
		stderr string
	}
	done := make(chan res, 1)
	go func() {
		code, _, stderr := cli(args...)
		done <- res{code, stderr}
	}()
	select {
	case r := <-done:
		return r.code, r.stderr
	case <-time.After(time.Minute):
		t.Fatalf("lowrank %s hangs", strings.Join(args, " "))
	}
	return 0, ""
}

// Issue 9, point 8: a FIFO given as a model, as adapter_config.json or as
// adapter_model.safetensors hung forever (open waits for a writer) and
// SIGINT was ignored. Inputs must be regular files: a FIFO or a device is
// refused at open, without reading from it or waiting on it.
func TestFIFOAndDeviceInputsRefused(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, "F32")
	fifo := filepath.Join(dir, "pipe.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	ad := filepath.Join(dir, "ad")
	mustCLI(t, "extract", "--base", p.base, "--tuned", p.tuned, "-o", ad, "--rank", "2", "--quiet")
	cfgFIFO := filepath.Join(dir, "ad-cfg")
	os.Mkdir(cfgFIFO, 0o755)
	syscall.Mkfifo(filepath.Join(cfgFIFO, peftConfigName), 0o644)
	b, _ := os.ReadFile(filepath.Join(ad, peftWeightsName))
	os.WriteFile(filepath.Join(cfgFIFO, peftWeightsName), b, 0o644)
	wFIFO := filepath.Join(dir, "ad-weights")
	os.Mkdir(wFIFO, 0o755)
	b, _ = os.ReadFile(filepath.Join(ad, peftConfigName))
	os.WriteFile(filepath.Join(wFIFO, peftConfigName), b, 0o644)
	syscall.Mkfifo(filepath.Join(wFIFO, peftWeightsName), 0o644)
	out := filepath.Join(dir, "out.safetensors")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"info", fifo}, fifo + ": invalid safetensors file: is a FIFO (named pipe); expected a regular .safetensors file"},
		{[]string{"factorize", fifo, "-o", out}, "is a FIFO (named pipe)"},
		{[]string{"merge", fifo, "-o", out}, "is a FIFO (named pipe)"},
		{[]string{"extract", "--base", p.base, "--tuned", fifo, "-o", filepath.Join(dir, "x")}, "is a FIFO (named pipe)"},
		{[]string{"merge", "--base", p.base, "--adapter", fifo, "-o", out}, "is a FIFO (named pipe)"},
		{[]string{"merge", "--base", p.base, "--adapter", cfgFIFO, "-o", out}, filepath.Join(cfgFIFO, peftConfigName) + ": is a FIFO (named pipe); expected a regular JSON file"},
		{[]string{"info", cfgFIFO}, "is a FIFO (named pipe); expected a regular JSON file"},
		{[]string{"merge", "--base", p.base, "--adapter", wFIFO, "-o", out}, filepath.Join(wFIFO, peftWeightsName) + ": invalid safetensors file: is a FIFO"},
		{[]string{"info", wFIFO}, "is a FIFO"},
		{[]string{"info", "/dev/zero"}, "/dev/zero: invalid safetensors file: is a character device"},
		{[]string{"factorize", "/dev/zero", "-o", out}, "is a character device"},
	} {
		args := c.args
		if args[0] != "info" {
			args = append(args, "--quiet")
		}
		code, stderr := cliOrHang(t, args...)
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("lowrank %s: exit %d, %q; want exit 1 and one line containing %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
	if _, err := os.Lstat(out); err == nil {
		t.Errorf("an output was left")
	}
}

// The files read beside an input are inputs too: a FIFO as the config.json
// beside a model (read for the vocabulary size) hung factorize in open,
// deaf to SIGTERM; a FIFO in the place of the plan of a folder output hung
// --resume and join. Each is now refused (or, for config.json, noted and
// passed over) without waiting on it.
func TestFIFOSideFilesNeverWaitedOn(t *testing.T) {
	dir := t.TempDir()
	p := makePair(t, dir, "F32")
	m := filepath.Join(dir, "m")
	os.Mkdir(m, 0o755)
	b, _ := os.ReadFile(p.base)
	os.WriteFile(filepath.Join(m, "model.safetensors"), b, 0o644)
	if err := syscall.Mkfifo(filepath.Join(m, "config.json"), 0o644); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	out := filepath.Join(dir, "out.safetensors")
	code, stderr := cliOrHang(t, "factorize", filepath.Join(m, "model.safetensors"), "-o", out, "--rank", "2")
	if code != 0 || !strings.Contains(stderr, "config.json not read") || !strings.Contains(stderr, "FIFO") {
		t.Errorf("factorize beside a FIFO config.json: exit %d, %q; want exit 0 and a note that it is a FIFO, not read", code, stderr)
	}

	m2 := filepath.Join(dir, "m2")
	os.Mkdir(m2, 0o755)
	os.WriteFile(filepath.Join(m2, "model.safetensors"), b, 0o644)
	for i, args := range [][]string{
		{"factorize", m2, "--rank", "2", "--quiet", "--resume", "-o"},
		{"factorize", m2, "--rank", "2", "--quiet", "--shard", "0/2", "-o"},
		{"join"},
	} {
		fo := filepath.Join(dir, fmt.Sprintf("fo%d", i))
		os.Mkdir(fo, 0o755)
		syscall.Mkfifo(filepath.Join(fo, planName), 0o644)
		args = append(args, fo)
		code, stderr := cliOrHang(t, args...)
		if code != 0 && (!strings.HasPrefix(stderr, "lowrank: ") || strings.Count(stderr, "\n") != 1) {
			t.Errorf("lowrank %s with a FIFO as %s: exit %d, %q; want one lowrank: line", strings.Join(args, " "), planName, code, stderr)
		}
	}
}
