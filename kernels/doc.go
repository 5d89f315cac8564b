// Package kernels holds the CUDA C++ sources lowrank compiles at run time
// with NVRTC: one extern "C" __global__ kernel per .cu file, named like the
// file, embedded in the binary with go:embed. lowrank/gpu compiles each on
// first use for the device's own architecture (a cubin for sm_XY) and
// caches it for the life of the process.
//
// Kernels:
//
//	fused_apply  Y = X·Aᵀ·Bᵀ + bias for one vector or a small batch, in one
//	             launch (compiled with -DREAL=float or -DREAL=double)
package kernels

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.cu
var sources embed.FS

// Source returns the CUDA source of the kernel name (the file name without
// ".cu"), or an error for an unknown kernel.
func Source(name string) (string, error) {
	b, err := sources.ReadFile(name + ".cu")
	if err != nil {
		return "", fmt.Errorf("kernels: no kernel %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return string(b), nil
}

// Reals are the element types every kernel is compiled for, as the C type
// names Defines takes.
var Reals = []string{"float", "double"}

// Defines returns the NVRTC options that compile a kernel for the element
// type real ("float" or "double"): -DREAL=real.
func Defines(real string) []string { return []string{"-DREAL=" + real} }

// Names lists the kernels, sorted.
func Names() []string {
	ents, _ := fs.ReadDir(sources, ".")
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".cu"); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
