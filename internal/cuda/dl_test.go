//go:build cgo

package cuda

import (
	"strings"
	"testing"
)

// TestDlLoader checks the real dlopen/dlsym layer on the C library.
func TestDlLoader(t *testing.T) {
	var l dlLoader
	lib, err := l.Open("libc.so.6")
	if err != nil {
		t.Skipf("no libc.so.6 to test dlopen with: %v", err)
	}
	defer lib.Close()
	if p, err := lib.Sym("strlen"); err != nil || p == nil {
		t.Errorf("Sym(strlen) = %v, %v", p, err)
	}
	if _, err := lib.Sym("lowrank_no_such_symbol"); err == nil || !strings.Contains(err.Error(), "lowrank_no_such_symbol") {
		t.Errorf("Sym of a missing symbol: %v; want dlerror's text naming it", err)
	}
	if !strings.HasPrefix(lib.Path(), "/") {
		t.Errorf("Path() = %q; want the absolute file", lib.Path())
	}
	if _, err := l.Open("/nonexistent/libcublas.so.13"); err == nil || !strings.Contains(err.Error(), "No such file") {
		t.Errorf("Open of a missing file: %v", err)
	}
}

// TestOpenWithoutDriver runs the real loader where no driver is installed,
// as on CI.
func TestOpenWithoutDriver(t *testing.T) {
	if _, err := (dlLoader{}).Open("libcuda.so.1"); err == nil {
		t.Skip("this machine has libcuda.so.1")
	}
	_, err := Open(Config{})
	if err == nil || !strings.HasPrefix(err.Error(), NoDriverMessage) {
		t.Errorf("Open without a driver: %v; want %q", err, NoDriverMessage)
	}
}
