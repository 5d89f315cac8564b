package cuda

import (
	"strings"
	"testing"
)

func TestNoGPU(t *testing.T) {
	other := map[string]string{
		"/sys/bus/pci/devices/0000:00:00.0/vendor": "0x8086\n",
		"/sys/bus/pci/devices/0000:00:01.0/vendor": "0x1af4\n",
	}
	withNVIDIA := map[string]string{"/sys/bus/pci/devices/0000:3b:00.0/vendor": "0x10de\n"}
	for k, v := range other {
		withNVIDIA[k] = v
	}
	wsl := map[string]string{"/dev/dxg": ""}
	for k, v := range other {
		wsl[k] = v
	}
	unreadable := map[string]string{"/sys/bus/pci/devices/0000:00:00.0/vendor": "0x8086\n"}
	cases := []struct {
		name         string
		vars         map[string]string
		files        map[string]string
		extraVendors []string // listed but unreadable
		goos, goarch string
		absent       bool
	}{
		{name: "no NVIDIA device", files: other, goos: "linux", goarch: "amd64", absent: true},
		{name: "an NVIDIA device", files: withNVIDIA, goos: "linux", goarch: "amd64"},
		{name: "WSL 2", files: wsl, goos: "linux", goarch: "amd64"},
		{name: "no sysfs", goos: "linux", goarch: "amd64"},
		{name: "a vendor file unreadable", files: unreadable, extraVendors: []string{"/sys/bus/pci/devices/0000:00:02.0/vendor"}, goos: "linux", goarch: "amd64"},
		{name: "a configured CUDA", vars: map[string]string{LibDirEnv: "/opt/cuda/lib"}, files: other, goos: "linux", goarch: "amd64"},
		{name: "arm64 (Jetson)", files: other, goos: "linux", goarch: "arm64"},
		{name: "not Linux", files: other, goos: "windows", goarch: "amd64"},
	}
	for _, c := range cases {
		e := fakeEnv(c.vars, nil, c.files)
		if len(c.extraVendors) > 0 {
			glob := e.glob
			e.glob = func(p string) []string { return append(glob(p), c.extraVendors...) }
		}
		why, absent := noGPU(e, c.goos, c.goarch)
		if absent != c.absent {
			t.Errorf("%s: noGPU = %q, %v; want %v", c.name, why, absent, c.absent)
		}
		if absent && (!strings.Contains(why, "no NVIDIA GPU") || !strings.Contains(why, "2 PCI devices") || !strings.Contains(why, "LOWRANK_BACKEND=cuda")) {
			t.Errorf("%s: reason %q; want the devices counted and the way to ask the driver anyway", c.name, why)
		}
		if !absent && why != "" {
			t.Errorf("%s: reason %q without an answer", c.name, why)
		}
	}
}
