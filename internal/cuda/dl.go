//go:build cgo

package cuda

/*
#cgo CFLAGS: -D_GNU_SOURCE
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

// lr_dlopen opens path and, on failure, copies dlerror's text into a new
// string *err (freed by the caller) in the same call, so that another
// thread's dl* call cannot replace it in between.
static void *lr_dlopen(const char *path, char **err) {
	void *h;
	*err = 0;
	dlerror();
	h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
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

static void lr_dlclose(void *h) { dlclose(h); }
*/
import "C"

import (
	"errors"
	"os"
	"path/filepath"
	"unsafe"
)

// dlLoader is the real Loader: dlopen(RTLD_NOW|RTLD_GLOBAL) and dlsym.
// RTLD_GLOBAL lets a library loaded later (cuSOLVER) resolve its
// dependencies (cuBLAS, cuBLASLt, nvJitLink, cuSPARSE) against the ones
// loaded first from the same folder.
type dlLoader struct{}

type dlLib struct {
	h    unsafe.Pointer
	path string
}

func (dlLoader) Open(path string) (Library, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var cerr *C.char
	h := C.lr_dlopen(cp, &cerr)
	if h == nil {
		msg := "dlopen " + path + " failed"
		if cerr != nil {
			msg = C.GoString(cerr)
			C.free(unsafe.Pointer(cerr))
		}
		return nil, errors.New(msg)
	}
	l := &dlLib{h: h, path: path}
	if p := C.lr_dlpath(h); p != nil {
		l.path = C.GoString(p)
		C.free(unsafe.Pointer(p))
	}
	if r, err := filepath.EvalSymlinks(l.path); err == nil {
		l.path = r
	}
	return l, nil
}

func (dlLoader) Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (dlLoader) Glob(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	return m
}

func (l *dlLib) Sym(name string) (unsafe.Pointer, error) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var cerr *C.char
	p := C.lr_dlsym(l.h, cn, &cerr)
	if cerr != nil {
		msg := C.GoString(cerr)
		C.free(unsafe.Pointer(cerr))
		return nil, errors.New(msg)
	}
	return p, nil
}

func (l *dlLib) Path() string { return l.path }

func (l *dlLib) Close() {
	if l.h != nil {
		C.lr_dlclose(l.h)
		l.h = nil
	}
}
