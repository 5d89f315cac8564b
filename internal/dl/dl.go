// Package dl opens shared libraries at run time and looks symbols up in
// them: dlopen, dlsym, dladdr and dlinfo, with dlerror's text read in the
// same C call as the function it describes, so that no other thread's dl*
// call can replace it in between. It is the one place in lowrank that
// talks to the dynamic linker; internal/cuda and internal/blas build on it
// and keep only the trampolines that call the functions they looked up.
//
// The Loader and Library interfaces are the test seam: System is the real
// loader, and a test substitutes its own (internal/testkit/fakecuda is a
// whole CUDA installation behind a Loader) so that every failure path of
// the code above runs without the real libraries.
//
// Built with CGO_ENABLED=0, or on a system other than Linux and FreeBSD,
// Open returns ErrNoCgo.
//
// Errors from Open and Sym are *Error values whose text is dlerror's own,
// which already names the file and the symbol ("libcuda.so.1: cannot open
// shared object file: No such file or directory"); the packages above add
// their own prefix and context.
//
// Model: NVIDIA/go-nvml's pkg/dl.
package dl

import (
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"unsafe"
)

// Loader opens shared libraries. System is the dynamic linker's; tests
// substitute their own.
type Loader interface {
	// Open opens the library at path, a file name (searched by the
	// dynamic linker) or an absolute path. Its error carries dlerror's text.
	Open(path string) (Library, error)
	// Exists reports whether the file path exists.
	Exists(path string) bool
	// Glob returns the files matching pattern (filepath.Glob syntax).
	Glob(pattern string) []string
}

// Library is an open shared library.
type Library interface {
	// Sym returns the address of the symbol name; its error carries
	// dlerror's text.
	Sym(name string) (unsafe.Pointer, error)
	// Path returns the file the library was loaded from.
	Path() string
	// Close unloads the library (dlclose).
	Close()
}

// NeededLister is implemented by a Library that can list the sonames its
// file depends on (the ELF DT_NEEDED entries), such as *Handle.
type NeededLister interface {
	Needed() ([]string, error)
}

// Error is a failed dlopen or dlsym.
type Error struct {
	Op   string // "dlopen" or "dlsym"
	Name string // the file or the symbol
	Msg  string // dlerror's text
}

func (e *Error) Error() string { return e.Msg }

// ErrNoCgo is returned by Open where the dynamic linker cannot be called:
// a binary built with CGO_ENABLED=0, or a system other than Linux or
// FreeBSD.
var ErrNoCgo = errors.New("dl: dlopen needs cgo on Linux or FreeBSD (this binary was built without it)")

// System is the real Loader: dlopen(path, RTLD_NOW|RTLD_GLOBAL). With
// RTLD_GLOBAL a library loaded later (cuSOLVER) resolves its dependencies
// (cuBLAS, cuBLASLt, nvJitLink, cuSPARSE) against the ones loaded first.
var System Loader = system{}

type system struct{}

func (system) Open(path string) (Library, error) {
	h, err := Open(path, Now|Global)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func (system) Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (system) Glob(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	return m
}

// Needed returns the sonames the ELF file at path depends on (its
// DT_NEEDED entries), in order.
func Needed(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ImportedLibraries()
}
