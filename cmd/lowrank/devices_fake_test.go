//go:build cgo

package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/internal/testkit/fakecuda"
	"github.com/lowrank-go/lowrank/safetensors"
)

const fakeCUDADir = "/fake/cuda/lib"

// fakeDevices installs a fake CUDA with n devices for --devices.
func fakeDevices(t *testing.T, n int) {
	t.Helper()
	t.Setenv(cuda.LibDirEnv, fakeCUDADir)
	f := &fakecuda.Fake{Files: fakecuda.CUDA13(fakeCUDADir), DeviceCount: n}
	f.Install()
	deviceLoader = f
	t.Cleanup(func() {
		deviceLoader = nil
		fakecuda.ClearFaults()
		if v := fakecuda.Violations(); len(v) > 0 {
			t.Errorf("the fake saw violations of the CUDA contract:\n%s", strings.Join(v, "\n"))
		}
		if a, h, r := fakecuda.LiveAllocations(), fakecuda.Handles(), fakecuda.Retained(); a+h+r != 0 {
			t.Errorf("after the run: %d allocations, %d handles, %d context references; want none", a, h, r)
		}
	})
}

// devicesModel writes a folder of n F32 matrices.
func devicesModel(t *testing.T, dir string, n int) string {
	rng := rand.New(rand.NewPCG(21, 22))
	var ts []tensor
	for i := range n {
		ts = append(ts, tensor{name: fmt.Sprintf("layers.%d.weight", i), dt: safetensors.F32, shape: []int{72, 40 + 4*i}, vals: decaying(rng, 72, 40+4*i)})
	}
	in := filepath.Join(dir, "in")
	writeFolder(t, in, 2, ts)
	return in
}

// TestDevicesFake runs factorize --devices over a fake CUDA with three
// devices: the folder equals a one-device run's byte for byte, with all
// devices, with a subset, and when one device fails mid-run (its tensor is
// redone on another, with a warning); when every device fails the run
// fails cleanly.
func TestDevicesFake(t *testing.T) {
	fakeDevices(t, 3)
	dir := t.TempDir()
	in := devicesModel(t, dir, 9)
	flags := []string{"--rank", "5", "--quiet"}
	one := filepath.Join(dir, "one")
	mustCLI(t, append([]string{"factorize", in, "-o", one, "--devices", "0"}, flags...)...)
	_, want := folderTensors(t, one)
	for _, spec := range []string{"all", "0,2", "2,1"} {
		out := filepath.Join(dir, "out-"+strings.ReplaceAll(spec, ",", "-"))
		mustCLI(t, append([]string{"factorize", in, "-o", out, "--devices", spec}, flags...)...)
		sameFolders(t, "--devices "+spec, out, one)
	}
	// Every device did some of the work.
	code, _, errs := cli("factorize", in, "-o", filepath.Join(dir, "shown"), "--devices", "all", "--rank", "5")
	if code != 0 {
		t.Fatal(errs)
	}
	for _, d := range []string{"cuda:0 ", "cuda:1 ", "cuda:2 "} {
		if !strings.Contains(errs, d) || strings.Contains(errs, d+"0,") || strings.HasSuffix(strings.TrimSpace(errs), d+"0") {
			t.Errorf("%sdid no tensor:\n%s", d, errs)
		}
	}
	// On the CPU: the same ranks, values to rounding (another backend).
	cpuOut := filepath.Join(dir, "cpu")
	mustCLI(t, append([]string{"factorize", in, "-o", cpuOut, "--backend", "cpu"}, flags...)...)
	_, onCPU := folderTensors(t, cpuOut)
	if len(onCPU) != len(want) {
		t.Errorf("cpu run: %d tensors, devices %d", len(onCPU), len(want))
	}

	// One failed cuBLAS call (on whichever device makes it): that device
	// is left out, its tensor redone on another; same folder.
	fakecuda.SetFaults(fakecuda.Fault{Call: "cublas*", Nth: 7, Status: 13})
	out := filepath.Join(dir, "one-fails")
	code, _, errs = cli(append([]string{"factorize", in, "-o", out, "--devices", "all"}, flags...)...)
	if code != 0 {
		t.Fatalf("a device failing mid-run: exit %d\n%s", code, errs)
	}
	if !strings.Contains(errs, "lowrank: warning: cuda:") || !strings.Contains(errs, "devices left: 2") {
		t.Errorf("no warning naming the failed device:\n%s", errs)
	}
	sameFolders(t, "one device failed", out, one)

	// Every device fails (the fault repeats): a clean failure, nothing
	// left behind.
	fakecuda.SetFaults(fakecuda.Fault{Call: "cuMemAlloc_v2", Nth: 3, Status: 999, Repeat: true})
	before := listDir(t, dir)
	code, _, errs = cli(append([]string{"factorize", in, "-o", filepath.Join(dir, "all-fail"), "--devices", "all"}, flags...)...)
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	last := lines[len(lines)-1]
	if code == 0 || len(lines) != 3 || !strings.HasPrefix(last, "lowrank: every device of --devices failed") {
		t.Errorf("every device failing: exit %d, stderr\n%s\nwant two warnings and the error", code, errs)
	}
	for _, d := range []string{"cuda:0", "cuda:1", "cuda:2"} {
		if !strings.Contains(last, d) {
			t.Errorf("the error does not name %s: %s", d, last)
		}
	}
	for name := range listDir(t, dir) {
		if !before[name] {
			t.Errorf("%s left behind after the failure", name)
		}
	}
	fakecuda.ClearFaults()

	// With --shard: each part on all the devices, joined: the same folder.
	parts := filepath.Join(dir, "parts")
	for i := range 2 {
		mustCLI(t, append([]string{"factorize", in, "-o", parts, "--devices", "all", "--shard", fmt.Sprintf("%d/2", i)}, flags...)...)
	}
	mustCLI(t, "join", parts, "--quiet")
	sameFolders(t, "--devices all --shard I/2, joined", parts, one)

	// Bad --devices values.
	assertFails(t, dir, nil, []string{"factorize", in, "-o", filepath.Join(dir, "x"), "--devices", "0,0"}, "distinct device ordinals")
	assertFails(t, dir, nil, []string{"factorize", in, "-o", filepath.Join(dir, "x"), "--devices", "5"}, "device 5")
	assertFails(t, dir, nil, []string{"factorize", in, "-o", filepath.Join(dir, "x"), "--devices", "all", "--jobs", "2"}, "--jobs")
	assertFails(t, dir, nil, []string{"factorize", in, "-o", filepath.Join(dir, "x"), "--devices", "all", "--backend", "cpu"}, "--backend")
}

// TestExtractDevicesFake checks extract --devices over the fake: the
// adapter equals a one-device run's.
func TestExtractDevicesFake(t *testing.T) {
	fakeDevices(t, 2)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(31, 32))
	var base, tuned []tensor
	for i := range 6 {
		name := fmt.Sprintf("layers.%d.weight", i)
		b := decaying(rng, 48, 40)
		d := lowRankMat(rng, 48, 40, 2, 0.3)
		tv := make([]float64, len(b))
		for j := range b {
			tv[j] = b[j] + d[j]
		}
		base = append(base, tensor{name: name, dt: safetensors.F32, shape: []int{48, 40}, vals: b})
		tuned = append(tuned, tensor{name: name, dt: safetensors.F32, shape: []int{48, 40}, vals: tv})
	}
	bp, tp := filepath.Join(dir, "base"), filepath.Join(dir, "tuned")
	writeFolder(t, bp, 2, base)
	writeFolder(t, tp, 3, tuned)
	one, all := filepath.Join(dir, "one"), filepath.Join(dir, "all")
	mustCLI(t, "extract", "--base", bp, "--tuned", tp, "-o", one, "--rank", "2", "--quiet", "--devices", "0")
	mustCLI(t, "extract", "--base", bp, "--tuned", tp, "-o", all, "--rank", "2", "--quiet", "--devices", "all")
	sameTensors(t, "extract --devices all and 0", fileTensors(t, filepath.Join(all, "adapter_model.safetensors")), fileTensors(t, filepath.Join(one, "adapter_model.safetensors")))
}
