//go:build !cgo || !(linux || freebsd)

package dl

import "unsafe"

// dlopen flags (their Linux values; unused without cgo).
const (
	Lazy   = 0x1
	Now    = 0x2
	Global = 0x100
	Local  = 0
)

// Handle is a library opened with Open; without cgo there is none.
type Handle struct{}

// Open returns ErrNoCgo.
func Open(path string, flags int) (*Handle, error) { return nil, ErrNoCgo }

// Sym returns ErrNoCgo.
func (l *Handle) Sym(name string) (unsafe.Pointer, error) { return nil, ErrNoCgo }

// Path returns "".
func (l *Handle) Path() string { return "" }

// Needed returns ErrNoCgo.
func (l *Handle) Needed() ([]string, error) { return nil, ErrNoCgo }

// Close does nothing.
func (l *Handle) Close() {}

// Where returns "".
func Where(p unsafe.Pointer) string { return "" }
