package blas

import (
	"errors"
	"strings"
	"testing"
)

func TestCandidates(t *testing.T) {
	if _, err := candidates("gonum"); !errors.Is(err, ErrDisabled) {
		t.Errorf("gonum: got %v, want ErrDisabled", err)
	}
	c, err := candidates("")
	if err != nil || len(c) < 4 || c[0][0] != "libopenblas.so.0" {
		t.Errorf("auto: got %v, %v", c, err)
	}
	c, err = candidates("/a/libblas.so: /b/liblapack.so")
	if err != nil || len(c) != 1 || len(c[0]) != 2 || c[0][1] != "/b/liblapack.so" {
		t.Errorf("paths: got %v, %v", c, err)
	}
	if _, err := candidates(" : "); err == nil {
		t.Error("empty path list: no error")
	}
}

func TestOpenblasCore(t *testing.T) {
	for in, want := range map[string]string{
		"processor : 0\nflags : fpu sse avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl\n": "SkylakeX",
		"flags\t\t: fpu sse avx avx2 fma\nflags : avx512f\n":                                    "Haswell",
		"flags : sse sse2 avx\n": "",
		"":                       "",
	} {
		if got := openblasCore(in); got != want {
			t.Errorf("openblasCore(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestErrorPrefix: the package's errors name it ("blas: …"); the packages
// above add their own prefixes, so none says "lowrank:" here.
func TestErrorPrefix(t *testing.T) {
	_, bad := candidates(":")
	for _, err := range []error{ErrDisabled, ErrNoCgo, ErrTooLarge, bad,
		&LoadError{Tried: []string{"libopenblas.so.0: not found"}},
		&Error{Routine: "sgesdd_", Info: 3, M: 4, N: 5}} {
		if err == nil {
			t.Fatal("candidates(\":\") returned no error")
		}
		if s := err.Error(); !strings.HasPrefix(s, "blas: ") || strings.Contains(s, "lowrank:") {
			t.Errorf("%q: want the prefix \"blas: \" and no \"lowrank:\"", s)
		}
	}
}
