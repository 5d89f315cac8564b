//go:build cgo && (linux || freebsd)

package dl

/*
#cgo CFLAGS: -D_GNU_SOURCE
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

// lr_dlopen opens path and, on failure, copies dlerror's text into a new
// string *err (freed by the caller) in the same call, so that another
// thread's dl* call cannot replace it in between.
static void *lr_dlopen(const char *path, int flags, char **err) {
	void *h;
	*err = 0;
	dlerror();
	h = dlopen(path, flags);
	if (!h) {
		const char *e = dlerror();
		*err = strdup(e ? e : "dlopen failed");
	}
	return h;
}

// lr_dlsym looks name up in h, reading dlerror in the same call.
static void *lr_dlsym(void *h, const char *name, char **err) {
	void *p;
	const char *e;
	*err = 0;
	dlerror();
	p = dlsym(h, name);
	e = dlerror();
	if (e || !p) *err = strdup(e ? e : "symbol is NULL");
	return e ? 0 : p;
}

// lr_dlpath returns the file h was loaded from (a new string), or NULL.
static char *lr_dlpath(void *h) {
	struct link_map *lm = 0;
	if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || !lm || !lm->l_name) return 0;
	return strdup(lm->l_name);
}

// lr_dladdr returns the file that holds the address p (a new string), or NULL.
static char *lr_dladdr(void *p) {
	Dl_info info;
	if (!dladdr(p, &info) || !info.dli_fname) return 0;
	return strdup(info.dli_fname);
}

static int lr_dlclose(void *h) { return dlclose(h); }
*/
import "C"

import (
	"path/filepath"
	"unsafe"
)

// dlopen flags.
const (
	Lazy   = C.RTLD_LAZY
	Now    = C.RTLD_NOW
	Global = C.RTLD_GLOBAL
	Local  = C.RTLD_LOCAL
)

// Handle is a library opened with Open. It implements Library and
// NeededLister.
type Handle struct {
	h    unsafe.Pointer
	path string
}

// Open calls dlopen(path, flags). The error is a *Error carrying
// dlerror's text.
func Open(path string, flags int) (*Handle, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var cerr *C.char
	h := C.lr_dlopen(cp, C.int(flags), &cerr)
	if h == nil {
		msg := "dlopen " + path + " failed"
		if cerr != nil {
			msg = C.GoString(cerr)
			C.free(unsafe.Pointer(cerr))
		}
		return nil, &Error{Op: "dlopen", Name: path, Msg: msg}
	}
	l := &Handle{h: h, path: path}
	if p := C.lr_dlpath(h); p != nil {
		l.path = C.GoString(p)
		C.free(unsafe.Pointer(p))
	}
	if r, err := filepath.EvalSymlinks(l.path); err == nil {
		l.path = r
	}
	return l, nil
}

// Sym returns the address of name in the library. The error is a *Error
// carrying dlerror's text.
func (l *Handle) Sym(name string) (unsafe.Pointer, error) {
	if l.h == nil {
		return nil, &Error{Op: "dlsym", Name: name, Msg: l.path + ": library closed"}
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var cerr *C.char
	p := C.lr_dlsym(l.h, cn, &cerr)
	if cerr != nil {
		msg := C.GoString(cerr)
		C.free(unsafe.Pointer(cerr))
		return nil, &Error{Op: "dlsym", Name: name, Msg: msg}
	}
	return p, nil
}

// Path returns the file the library was loaded from, symbolic links
// resolved.
func (l *Handle) Path() string { return l.path }

// Needed returns the sonames the library's file depends on.
func (l *Handle) Needed() ([]string, error) { return Needed(l.path) }

// Close calls dlclose. Closing twice does nothing.
func (l *Handle) Close() {
	if l.h != nil {
		C.lr_dlclose(l.h)
		l.h = nil
	}
}

// Where returns the file of the loaded object that holds the address p (a
// symbol returned by Sym), symbolic links resolved, or "" (dladdr).
func Where(p unsafe.Pointer) string {
	if p == nil {
		return ""
	}
	cp := C.lr_dladdr(p)
	if cp == nil {
		return ""
	}
	s := C.GoString(cp)
	C.free(unsafe.Pointer(cp))
	if r, err := filepath.EvalSymlinks(s); err == nil {
		s = r
	}
	return s
}
