package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procRoot and cgroupRoot are where systemMemory looks (variables for
// tests).
var procRoot, cgroupRoot = "/proc", "/sys/fs/cgroup"

// systemMemory returns the memory this process may really use, and a
// phrase saying how it was found: the smaller of the system's MemAvailable
// and the memory limit of the process's cgroup (v2 memory.max or v1
// memory.limit_in_bytes, the tightest on the path from the process's cgroup
// up to the root). It returns 0 when neither can be read (then there is no
// default budget).
func systemMemory() (int64, string) {
	avail := memAvailable()
	lim, file := cgroupLimit()
	switch {
	case avail <= 0 && lim <= 0:
		return 0, "neither /proc/meminfo nor a cgroup memory limit could be read"
	case lim > 0 && (avail <= 0 || lim < avail):
		return lim, fmt.Sprintf("the cgroup memory limit %s in %s", humanBytes(lim), file)
	}
	return avail, fmt.Sprintf("the %s MemAvailable", humanBytes(avail))
}

// memAvailable returns MemAvailable from /proc/meminfo in bytes, or 0.
func memAvailable() int64 {
	f, err := os.Open(filepath.Join(procRoot, "meminfo"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb <= 0 || kb > math.MaxInt64/1024 {
			return 0
		}
		return kb * 1024
	}
	return 0
}

// cgroupLimit returns the tightest memory limit on the path of the
// process's cgroup, and the file it is in, or 0.
func cgroupLimit() (int64, string) {
	b, err := os.ReadFile(filepath.Join(procRoot, "self", "cgroup"))
	if err != nil {
		return 0, ""
	}
	var best int64
	var bestFile string
	consider := func(dir, name string) {
		for d := dir; ; d = filepath.Dir(d) {
			p := filepath.Join(d, name)
			if v, ok := readLimit(p); ok && (best == 0 || v < best) {
				best, bestFile = v, p
			}
			if len(d) <= len(cgroupRoot) || d == filepath.Dir(d) {
				return
			}
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		path := filepath.Clean("/" + parts[2])
		switch {
		case parts[0] == "0" && parts[1] == "": // cgroup v2
			consider(filepath.Join(cgroupRoot, path), "memory.max")
		case hasController(parts[1], "memory"): // cgroup v1
			consider(filepath.Join(cgroupRoot, "memory", path), "memory.limit_in_bytes")
		}
	}
	return best, bestFile
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// readLimit reads a cgroup memory limit: a byte count, or "max" (v2) or
// a value near 2⁶³ (v1) for none.
func readLimit(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v >= 1<<62 {
		return 0, false
	}
	return v, true
}

// budgetLine describes the default memory budget, for lowrank backends
// and -h.
func budgetLine() string {
	avail, how := systemMemory()
	if avail <= 0 {
		return "no default memory budget (" + how + "): give --max-memory"
	}
	return fmt.Sprintf("default memory budget (--max-memory 0): %s, %d/%d of %s", humanBytes(avail/defaultDen*defaultNum), defaultNum, defaultDen, how)
}

// defaultBudgetShort is the default budget in a few words.
func defaultBudgetShort() string {
	avail, _ := systemMemory()
	if avail <= 0 {
		return "unknown, no budget"
	}
	return humanBytes(avail / defaultDen * defaultNum)
}
