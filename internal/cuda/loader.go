package cuda

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/lowrank-go/lowrank/internal/dl"
)

// Loader opens shared libraries. The default (nil in Config) is
// dl.System, which calls dlopen and dlsym; tests substitute a fake
// (internal/testkit/fakecuda) so that the loader's failure paths run
// without a GPU.
type Loader = dl.Loader

// Library is an open shared library.
type Library = dl.Library

// symbol is one entry point to look up: the first of names that the
// library exports is stored in *dst.
type symbol struct {
	dst      *unsafe.Pointer
	names    []string
	optional bool
}

func sym(dst *unsafe.Pointer, names ...string) symbol { return symbol{dst: dst, names: names} }
func optSym(dst *unsafe.Pointer, names ...string) symbol {
	return symbol{dst: dst, names: names, optional: true}
}

// bind looks up every symbol of syms in lib. It fails on the first required
// symbol that the library does not export, naming it.
func bind(lib Library, soname string, syms []symbol) error {
	for _, s := range syms {
		*s.dst = nil
		var firstErr error
		for _, n := range s.names {
			p, err := lib.Sym(n)
			if err == nil && p != nil {
				*s.dst = p
				break
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		if *s.dst == nil && !s.optional {
			msg := fmt.Sprintf("%s (%s) has no symbol %s", soname, lib.Path(), strings.Join(s.names, " or "))
			if firstErr != nil {
				msg += ": " + firstErr.Error()
			}
			return &LoadError{Msg: msg, Err: firstErr}
		}
	}
	return nil
}
