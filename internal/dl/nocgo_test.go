//go:build !cgo || !(linux || freebsd)

package dl

import (
	"errors"
	"testing"
)

func TestNoCgo(t *testing.T) {
	if _, err := System.Open("libc.so.6"); !errors.Is(err, ErrNoCgo) {
		t.Errorf("Open without cgo: %v; want ErrNoCgo", err)
	}
}
