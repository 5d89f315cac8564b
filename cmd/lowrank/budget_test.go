package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSystem makes systemMemory read a MemAvailable of availKB and the
// given cgroup files (path under the cgroup root → content), with
// /proc/self/cgroup holding selfCgroup.
func fakeSystem(t *testing.T, availKB int64, selfCgroup string, files map[string]string) {
	t.Helper()
	root := t.TempDir()
	proc, cg := filepath.Join(root, "proc"), filepath.Join(root, "cgroup")
	os.MkdirAll(filepath.Join(proc, "self"), 0o755)
	os.WriteFile(filepath.Join(proc, "meminfo"), []byte(fmt.Sprintf("MemTotal:       99999999 kB\nMemFree:  1 kB\nMemAvailable:   %d kB\n", availKB)), 0o644)
	os.WriteFile(filepath.Join(proc, "self", "cgroup"), []byte(selfCgroup), 0o644)
	for p, c := range files {
		full := filepath.Join(cg, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte(c), 0o644)
	}
	savedP, savedC := procRoot, cgroupRoot
	procRoot, cgroupRoot = proc, cg
	t.Cleanup(func() { procRoot, cgroupRoot = savedP, savedC })
}

// The default budget is 3/4 of the smaller of MemAvailable and the
// tightest cgroup limit on the process's path (v2 and v1).
func TestDefaultBudget(t *testing.T) {
	for _, c := range []struct {
		name    string
		availKB int64
		self    string
		files   map[string]string
		want    int64
		how     string
	}{
		{"MemAvailable only", 8 << 20, "0::/\n", nil, 8 << 30, "MemAvailable"},
		{"v2 limit below MemAvailable, on a parent", 8 << 20, "0::/a/b\n", map[string]string{"a/memory.max": "1073741824\n", "a/b/memory.max": "max\n"}, 1 << 30, "memory.max"},
		{"v2 tightest of two", 8 << 20, "0::/a/b\n", map[string]string{"a/memory.max": "3221225472\n", "a/b/memory.max": "2147483648\n"}, 2 << 30, "a/b/memory.max"},
		{"v2 limit above MemAvailable", 1 << 20, "0::/a\n", map[string]string{"a/memory.max": "4294967296\n"}, 1 << 30, "MemAvailable"},
		{"v1", 8 << 20, "4:memory:/x\n3:cpu,cpuacct:/\n", map[string]string{"memory/x/memory.limit_in_bytes": "536870912\n", "memory/memory.limit_in_bytes": "9223372036854771712\n"}, 512 << 20, "memory.limit_in_bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fakeSystem(t, c.availKB, c.self, c.files)
			got, how := systemMemory()
			if got != c.want || !strings.Contains(how, c.how) {
				t.Errorf("systemMemory() = %d, %q; want %d from %s", got, how, c.want, c.how)
			}
			b, err := newBudget(0)
			if err != nil {
				t.Fatal(err)
			}
			defer b.restore()
			if b.total != c.want/4*3 || !strings.Contains(b.source, "the default memory budget") {
				t.Errorf("default budget %d (%s); want %d", b.total, b.source, c.want/4*3)
			}
		})
	}
	// Shown by lowrank backends.
	fakeSystem(t, 8<<20, "0::/\n", nil)
	if out := mustCLI(t, "backends"); !strings.Contains(out, "default memory budget (--max-memory 0): 6.0 GiB, 3/4 of the 8.0 GiB MemAvailable") {
		t.Errorf("lowrank backends does not show the default budget:\n%s", out)
	}
}

// sparseF32 writes a safetensors file holding one F32 tensor of the given
// shape whose data is a hole (a sparse file: nothing is written).
func sparseF32(t *testing.T, path, name string, shape ...int) {
	t.Helper()
	n := int64(4)
	dims := make([]string, len(shape))
	for i, d := range shape {
		n *= int64(d)
		dims[i] = fmt.Sprint(d)
	}
	h := fmt.Sprintf(`{"%s":{"dtype":"F32","shape":[%s],"data_offsets":[0,%d]}}`, name, strings.Join(dims, ","), n)
	for len(h)%8 != 0 {
		h += " "
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var nb [8]byte
	binary.LittleEndian.PutUint64(nb[:], uint64(len(h)))
	f.Write(nb[:])
	f.WriteString(h)
	if err := f.Truncate(int64(8+len(h)) + n); err != nil {
		t.Fatal(err)
	}
}

// Issue 9, point 7: out of memory was a Go runtime crash (fatal error:
// runtime: out of memory, 189 lines, a .tmp-* left): a [1, 2³¹] F32 tensor
// factorized without --max-memory. The budget is now always on, so the
// same command, with no flag, is refused before the work by one lowrank:
// line naming the tensor and what it needs. (The system's memory is faked
// at 4 GiB so that the test means the same on any machine.)
func TestDefaultBudgetRefusesInsteadOfCrashing(t *testing.T) {
	fakeSystem(t, 4<<20, "0::/\n", nil)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.safetensors")
	sparseF32(t, big, "w", 1, 1<<31)
	keep := []string{"big.safetensors"}
	out := filepath.Join(dir, "out.safetensors")
	assertFails(t, dir, keep, []string{"factorize", big, "-o", out, "--quiet"},
		big, `tensor "w"`, "1×2147483648 needs about", "the default memory budget 3.0 GiB (3/4 of the 4.0 GiB MemAvailable)", "expected a larger --max-memory")
	// merge --adapter holds W, B and A at once.
	ad := filepath.Join(dir, "ad")
	os.Mkdir(ad, 0o755)
	os.WriteFile(filepath.Join(ad, peftConfigName), []byte(`{"peft_type":"LORA","r":1,"lora_alpha":1,"target_modules":["w"]}`), 0o644)
	keep = append(keep, "ad", filepath.Join("ad", peftConfigName), filepath.Join("ad", peftWeightsName))
	base := filepath.Join(dir, "base.safetensors")
	keep = append(keep, "base.safetensors")
	sparseF32(t, base, "m.weight", 1<<16, 1<<15)
	writeST(t, filepath.Join(ad, peftWeightsName), nil,
		tensor{name: peftKey("m", "A"), dt: "F32", shape: []int{1, 1 << 15}, vals: make([]float64, 1<<15)},
		tensor{name: peftKey("m", "B"), dt: "F32", shape: []int{1 << 16, 1}, vals: make([]float64, 1<<16)})
	assertFails(t, dir, keep, []string{"merge", "--base", base, "--adapter", ad, "-o", out, "--quiet", "--max-memory", "1GiB"},
		base, `tensor "m.weight"`, "65536×32768 needs about 8.0 GiB to merge but --max-memory 1.0 GiB leaves")
}

// testBudget is a 256 MiB budget that leaves the runtime's memory limit
// alone (for unit tests of what takes from it).
func testBudget() *budget {
	return &budget{total: 256 << 20, avail: 256 << 20, source: "a 256 MiB test budget", changed: make(chan struct{}), restore: func() {}}
}
