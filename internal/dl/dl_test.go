//go:build cgo && (linux || freebsd)

package dl

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestSystem checks the real dlopen/dlsym/dladdr layer on the C library.
func TestSystem(t *testing.T) {
	lib, err := System.Open("libc.so.6")
	if err != nil {
		t.Skipf("no libc.so.6 to test dlopen with: %v", err)
	}
	defer lib.Close()
	p, err := lib.Sym("strlen")
	if err != nil || p == nil {
		t.Fatalf("Sym(strlen) = %v, %v", p, err)
	}
	if !strings.HasPrefix(lib.Path(), "/") {
		t.Errorf("Path() = %q; want the absolute file", lib.Path())
	}
	if w := Where(p); w != lib.Path() {
		t.Errorf("Where(strlen) = %q; want %q", w, lib.Path())
	}
	_, err = lib.Sym("lowrank_no_such_symbol")
	var de *Error
	if !errors.As(err, &de) || de.Op != "dlsym" || !strings.Contains(err.Error(), "lowrank_no_such_symbol") {
		t.Errorf("Sym of a missing symbol: %v; want a *dl.Error with dlerror's text naming it", err)
	}
	_, err = System.Open("/nonexistent/libcublas.so.13")
	if !errors.As(err, &de) || de.Op != "dlopen" || !strings.Contains(err.Error(), "No such file") {
		t.Errorf("Open of a missing file: %v", err)
	}
	if !System.Exists(lib.Path()) || System.Exists("/nonexistent/x") {
		t.Error("Exists is wrong")
	}
	if m := System.Glob(lib.Path()); !slices.Equal(m, []string{lib.Path()}) {
		t.Errorf("Glob(%s) = %q", lib.Path(), m)
	}
	lib.Close()
	lib.Close() // a second Close does nothing
	if _, err := lib.Sym("strlen"); err == nil {
		t.Error("Sym after Close succeeded")
	}
}

// TestNeeded reads the DT_NEEDED entries of the C math library, which
// depends on the C library.
func TestNeeded(t *testing.T) {
	h, err := Open("libm.so.6", Now|Local)
	if err != nil {
		t.Skipf("no libm.so.6: %v", err)
	}
	defer h.Close()
	var lister NeededLister = h
	need, err := lister.Needed()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(need, "libc.so.6") {
		t.Errorf("libm.so.6 (%s) needs %q; want libc.so.6 among them", h.Path(), need)
	}
	if _, err := Needed("/nonexistent/libx.so"); err == nil {
		t.Error("Needed of a missing file succeeded")
	}
}
