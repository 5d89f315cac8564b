//go:build cgo && (linux || freebsd)

package blas

/*
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

// Our own function-pointer types: no BLAS or LAPACK header is needed.
// CBLAS enums: CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112.
typedef void (*lr_sgemm_t)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*lr_dgemm_t)(int, int, int, int, int, int, double, const double *, int, const double *, int, double, double *, int);
typedef void (*lr_sgemv_t)(int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*lr_dgemv_t)(int, int, int, int, double, const double *, int, const double *, int, double, double *, int);
// Fortran LAPACK: every argument by pointer, then one hidden length per
// character argument (size_t with gfortran ≥ 8; ignored by the others).
typedef void (*lr_sgesdd_t)(const char *, const int *, const int *, float *, const int *, float *, float *, const int *, float *, const int *, float *, const int *, int *, int *, size_t);
typedef void (*lr_dgesdd_t)(const char *, const int *, const int *, double *, const int *, double *, double *, const int *, double *, const int *, double *, const int *, int *, int *, size_t);
typedef void (*lr_sqrf_t)(const int *, const int *, float *, const int *, float *, float *, const int *, int *);
typedef void (*lr_dqrf_t)(const int *, const int *, double *, const int *, double *, double *, const int *, int *);
typedef void (*lr_sorg_t)(const int *, const int *, const int *, float *, const int *, const float *, float *, const int *, int *);
typedef void (*lr_dorg_t)(const int *, const int *, const int *, double *, const int *, const double *, double *, const int *, int *);
typedef void (*lr_sgetrf_t)(const int *, const int *, float *, const int *, int *, int *);
typedef void (*lr_dgetrf_t)(const int *, const int *, double *, const int *, int *, int *);
typedef void (*lr_strmm_t)(int, int, int, int, int, int, int, float, const float *, int, float *, int);
typedef void (*lr_dtrmm_t)(int, int, int, int, int, int, int, double, const double *, int, double *, int);
typedef void (*lr_dpotrf_t)(const char *, const int *, double *, const int *, int *, size_t);
typedef void (*lr_dtrtri_t)(const char *, const char *, const int *, double *, const int *, int *, size_t, size_t);
typedef char *(*lr_cfg_t)(void);
typedef int (*lr_int_t)(void);
typedef void (*lr_setint_t)(int);
typedef void (*lr_mklver_t)(char *, int);

static void lr_sgemm(void *fn, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
	((lr_sgemm_t)fn)(101, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
static void lr_dgemm(void *fn, int ta, int tb, int m, int n, int k, double alpha, const double *a, int lda, const double *b, int ldb, double beta, double *c, int ldc) {
	((lr_dgemm_t)fn)(101, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
static void lr_sgemv(void *fn, int ta, int m, int n, float alpha, const float *a, int lda, const float *x, float beta, float *y) {
	((lr_sgemv_t)fn)(101, ta, m, n, alpha, a, lda, x, 1, beta, y, 1);
}
static void lr_dgemv(void *fn, int ta, int m, int n, double alpha, const double *a, int lda, const double *x, double beta, double *y) {
	((lr_dgemv_t)fn)(101, ta, m, n, alpha, a, lda, x, 1, beta, y, 1);
}
static int lr_sgesdd(void *fn, int m, int n, float *a, int lda, float *s, float *u, int ldu, float *vt, int ldvt, float *work, int lwork, int *iwork) {
	char jobz = 'S';
	int info = 0;
	((lr_sgesdd_t)fn)(&jobz, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, &info, 1);
	return info;
}
static int lr_dgesdd(void *fn, int m, int n, double *a, int lda, double *s, double *u, int ldu, double *vt, int ldvt, double *work, int lwork, int *iwork) {
	char jobz = 'S';
	int info = 0;
	((lr_dgesdd_t)fn)(&jobz, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, &info, 1);
	return info;
}
static int lr_sqrf(void *fn, int m, int n, float *a, int lda, float *tau, float *work, int lwork) {
	int info = 0;
	((lr_sqrf_t)fn)(&m, &n, a, &lda, tau, work, &lwork, &info);
	return info;
}
static int lr_dqrf(void *fn, int m, int n, double *a, int lda, double *tau, double *work, int lwork) {
	int info = 0;
	((lr_dqrf_t)fn)(&m, &n, a, &lda, tau, work, &lwork, &info);
	return info;
}
static int lr_sorg(void *fn, int m, int n, int k, float *a, int lda, const float *tau, float *work, int lwork) {
	int info = 0;
	((lr_sorg_t)fn)(&m, &n, &k, a, &lda, tau, work, &lwork, &info);
	return info;
}
static int lr_dorg(void *fn, int m, int n, int k, double *a, int lda, const double *tau, double *work, int lwork) {
	int info = 0;
	((lr_dorg_t)fn)(&m, &n, &k, a, &lda, tau, work, &lwork, &info);
	return info;
}
static int lr_sgetrf(void *fn, int m, int n, float *a, int lda, int *ipiv) {
	int info = 0;
	((lr_sgetrf_t)fn)(&m, &n, a, &lda, ipiv, &info);
	return info;
}
static int lr_dgetrf(void *fn, int m, int n, double *a, int lda, int *ipiv) {
	int info = 0;
	((lr_dgetrf_t)fn)(&m, &n, a, &lda, ipiv, &info);
	return info;
}
// b ← b·t (side CblasRight = 142, trans CblasNoTrans = 111) or
// b ← tᵀ·b (CblasLeft = 141, CblasTrans = 112) for the row-major m×n b
// and upper triangular t (CblasRowMajor, CblasUpper = 121, CblasNonUnit =
// 131).
static void lr_strmm(void *fn, int side, int trans, int m, int n, const float *t, int ldt, float *b, int ldb) {
	((lr_strmm_t)fn)(101, side, 121, trans, 131, m, n, 1.0f, t, ldt, b, ldb);
}
static void lr_dtrmm(void *fn, int side, int trans, int m, int n, const double *t, int ldt, double *b, int ldb) {
	((lr_dtrmm_t)fn)(101, side, 121, trans, 131, m, n, 1.0, t, ldt, b, ldb);
}
// b ← t·b for the row-major n×n b and upper triangular t (CblasLeft,
// CblasNoTrans).
static void lr_dtrmm_left(void *fn, int n, const double *t, double *b) {
	((lr_dtrmm_t)fn)(101, 141, 121, 111, 131, n, n, 1.0, t, n, b, n);
}
static int lr_dpotrf(void *fn, char uplo, int n, double *a, int lda) {
	int info = 0;
	((lr_dpotrf_t)fn)(&uplo, &n, a, &lda, &info, 1);
	return info;
}
static int lr_dtrtri(void *fn, char uplo, int n, double *a, int lda) {
	int info = 0;
	char diag = 'N';
	((lr_dtrtri_t)fn)(&uplo, &diag, &n, a, &lda, &info, 1, 1);
	return info;
}
static void lr_cfg(void *fn, char *buf, size_t len) {
	const char *s = ((lr_cfg_t)fn)();
	buf[0] = 0;
	if (s) {
		strncpy(buf, s, len - 1);
		buf[len - 1] = 0;
	}
}
static int lr_int(void *fn) { return ((lr_int_t)fn)(); }
static void lr_setint(void *fn, int n) { ((lr_setint_t)fn)(n); }
static void lr_mklver(void *fn, char *buf, int len) { buf[0] = 0; ((lr_mklver_t)fn)(buf, len); buf[len - 1] = 0; }
*/
import "C"

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"unsafe"

	"github.com/lowrank-go/lowrank/internal/dl"
)

// Indices into symbols.fn.
const (
	sSgemm = iota
	sDgemm
	sSgemv
	sDgemv
	sSgesdd
	sDgesdd
	sSgeqrf
	sDgeqrf
	sSorgqr
	sDorgqr
	sSgelqf
	sDgelqf
	sSorglq
	sDorglq
	nRequired
)

var required = [nRequired]string{
	"cblas_sgemm", "cblas_dgemm", "cblas_sgemv", "cblas_dgemv",
	"sgesdd_", "dgesdd_", "sgeqrf_", "dgeqrf_", "sorgqr_", "dorgqr_",
	"sgelqf_", "dgelqf_", "sorglq_", "dorglq_",
}

type symbols struct {
	fn      [nRequired]unsafe.Pointer
	handles []*dl.Handle
	// setThreads is the library's process-wide thread-count setter
	// (void f(int)), or nil.
	setThreads unsafe.Pointer
	// getThreads returns the current count (int f(void)), or nil.
	getThreads unsafe.Pointer
	// trmm is {cblas_strmm, cblas_dtrmm}, potrf dpotrf_ and trtri
	// dtrtri_, each nil when the library lacks it (optional: only
	// CholBasis needs them).
	trmm         [2]unsafe.Pointer
	potrf, trtri unsafe.Pointer
	// pool is a pthreads OpenBLAS's gotoblas_pthread, or nil (see
	// ThreadPool).
	pool unsafe.Pointer
	// getrf is {sgetrf_, dgetrf_}, each nil when the library lacks it
	// (optional: only LUBasis needs it, and it reports ErrNoLU then).
	getrf [2]unsafe.Pointer
}

var loaded struct {
	once sync.Once
	lib  *Lib
	err  error
}

// Load opens the system BLAS/LAPACK chosen by LOWRANK_BLAS on its first
// call and returns it, or why none can be used: ErrDisabled, a *LoadError
// listing every candidate tried and why it failed, or an error for a
// malformed LOWRANK_BLAS. Later calls return the same answer.
func Load() (*Lib, error) {
	loaded.once.Do(func() {
		loaded.lib, loaded.err = load(getenv())
	})
	return loaded.lib, loaded.err
}

func load(env string) (*Lib, error) {
	sets, err := candidates(env)
	if err != nil {
		return nil, err
	}
	// Before anything is opened: OpenBLAS reads the variable when loaded.
	core := chooseCore()
	le := &LoadError{}
	for _, set := range sets {
		lib, err := open(set)
		if err != nil {
			le.Tried = append(le.Tried, err.Error())
			continue
		}
		if lib.Vendor == "OpenBLAS" {
			lib.CoreSet = core
		}
		return lib, nil
	}
	if core != "" {
		os.Unsetenv(CoreTypeEnv)
	}
	return nil, le
}

// open loads one set of libraries and looks every symbol up in them, in
// order; it closes them again on any failure.
func open(set []string) (_ *Lib, err error) {
	name := strings.Join(set, "+")
	var hs []*dl.Handle
	defer func() {
		if err != nil {
			for _, h := range hs {
				h.Close()
			}
		}
	}()
	for _, path := range set {
		h, err := dl.Open(path, dl.Now|dl.Global)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		hs = append(hs, h)
	}
	lookup := func(sym string) unsafe.Pointer {
		for _, h := range hs {
			if p, err := h.Sym(sym); err == nil && p != nil {
				return p
			}
		}
		return nil
	}
	lib := &Lib{Vendor: "BLAS/LAPACK"}
	lib.sym.handles = hs
	var missing []string
	for i, s := range required {
		if lib.sym.fn[i] = lookup(s); lib.sym.fn[i] == nil {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: lacks %s", name, strings.Join(missing, ", "))
	}
	lib.sym.getrf = [2]unsafe.Pointer{lookup("sgetrf_"), lookup("dgetrf_")}
	lib.sym.trmm = [2]unsafe.Pointer{lookup("cblas_strmm"), lookup("cblas_dtrmm")}
	lib.sym.potrf, lib.sym.trtri = lookup("dpotrf_"), lookup("dtrtri_")
	seen := map[string]bool{}
	for _, i := range []int{sSgemm, sSgesdd} {
		if p := dl.Where(lib.sym.fn[i]); p != "" && !seen[p] {
			seen[p] = true
			lib.Paths = append(lib.Paths, p)
		}
	}
	if p := lookup("openblas_get_config"); p != nil {
		buf := make([]byte, 512)
		C.lr_cfg(p, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
		lib.Vendor, lib.Version = "OpenBLAS", strings.TrimSpace(cstr(buf))
		if p := lookup("openblas_get_corename"); p != nil {
			C.lr_cfg(p, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
			lib.Core = cstr(buf)
		}
		lib.setThreads(lookup, "openblas_get_num_threads", "openblas_set_num_threads")
		lib.findPool(lookup)
	} else if p := lookup("MKL_Get_Version_String"); p != nil {
		buf := make([]byte, 512)
		C.lr_mklver(p, (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
		lib.Vendor, lib.Version = "MKL", strings.TrimSpace(cstr(buf))
		lib.setThreads(lookup, "mkl_get_max_threads", "MKL_Set_Num_Threads", "mkl_set_num_threads")
	} else if p := lookup("openblas_set_num_threads"); p != nil {
		// An OpenBLAS behind a generic name (Debian's libblas.so.3
		// alternative) without openblas_get_config: unusual, but its
		// threads are OpenBLAS's all the same.
		lib.setThreads(lookup, "openblas_get_num_threads", "openblas_set_num_threads")
	}
	if err := lib.selfTest(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return lib, nil
}

// setThreads binds get, the library's thread-count query, and the first
// of names it exports as its process-wide thread-count setter, and reads
// the count.
//
// The per-thread setters some libraries also have (MKL's
// mkl_set_num_threads_local, OpenBLAS ≥ 0.3.27's
// openblas_set_num_threads_local) are deliberately not used: lowrank's
// scheduler (internal/sched) never runs a multi-threaded call beside
// another of its calls, and changes the count only while none of its
// calls is in the library, so the one process-wide setting every vendor
// has is enough, and behaves the same everywhere.
func (l *Lib) setThreads(lookup func(string) unsafe.Pointer, get string, names ...string) {
	if p := lookup(get); p != nil {
		l.sym.getThreads = p
		l.Threads = int(C.lr_int(p))
	}
	for _, n := range names {
		if p := lookup(n); p != nil {
			l.sym.setThreads = p
			l.ThreadControl = n
			return
		}
	}
}

// findPool binds OpenBLAS's gotoblas_pthread when the library runs its
// own pthreads pool (openblas_get_parallel() = 1; 0 is a sequential
// build, 2 an OpenMP one, whose threads are OpenMP's) of at least two
// threads.
func (l *Lib) findPool(lookup func(string) unsafe.Pointer) {
	par, fn := lookup("openblas_get_parallel"), lookup("gotoblas_pthread")
	if par != nil && fn != nil && C.lr_int(par) == 1 && l.Threads >= 2 {
		l.sym.pool = fn
	}
}

// ThreadPool returns a pthreads OpenBLAS's gotoblas_pthread(int n, void
// (*f)(void *), void *args, int stride), which runs f(args + i·stride)
// for i < n at once, the first on the calling thread and the others on
// the library's worker threads (n at most Threads), or nil for any other
// library. Code of our own that runs there keeps the workers busy instead
// of spinning beside it.
func (l *Lib) ThreadPool() unsafe.Pointer { return l.sym.pool }

// SetThreads sets the number of threads the library's later calls use,
// process-wide, and reports whether it could (false for a library with no
// such control, such as the reference BLAS, which is single-threaded).
// Calls already running keep the count they started with.
func (l *Lib) SetThreads(n int) bool {
	if l.sym.setThreads == nil || n < 1 {
		return false
	}
	C.lr_setint(l.sym.setThreads, C.int(n))
	return true
}

// CurrentThreads returns the library's thread count now, or 0 when it
// cannot be asked.
func (l *Lib) CurrentThreads() int {
	if l.sym.getThreads == nil {
		return 0
	}
	return int(C.lr_int(l.sym.getThreads))
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// selfTest checks a tiny product and QR so that a library with another
// integer width or a broken build is rejected instead of used.
func (l *Lib) selfTest() error {
	a := []float32{1, 2, 3, 4, 5, 6} // 2×3
	x := []float32{1, 1, 1}
	y := []float32{0, 0}
	l.Sgemv(false, 2, 3, 1, a, 3, x, 0, y)
	c := make([]float64, 4)
	l.Dgemm(false, true, 2, 2, 3, 1, []float64{1, 2, 3, 4, 5, 6}, 3, []float64{1, 2, 3, 4, 5, 6}, 3, 0, c, 2)
	if y[0] != 6 || y[1] != 15 || c[0] != 14 || c[1] != 32 || c[3] != 77 {
		return fmt.Errorf("self-test gave %v and %v, want [6 15] and [14 32 32 77]", y, c)
	}
	q := []float64{3, 4, 0, 5} // column-major 2×2, first column (3, 4)
	if err := l.OrthQR(2, 2, q, 2); err != nil {
		return err
	}
	if d := q[0]*q[0] + q[1]*q[1]; d < 0.999999 || d > 1.000001 || q[0]*q[2]+q[1]*q[3] > 1e-12 || q[0]*q[2]+q[1]*q[3] < -1e-12 {
		return fmt.Errorf("self-test QR gave %v", q)
	}
	return nil
}

func cbool(t bool) C.int {
	if t {
		return 112
	}
	return 111
}

// Sgemm computes c = alpha·op(a)·op(b) + beta·c on row-major matrices,
// op(a) m×k and op(b) k×n.
func (l *Lib) Sgemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	C.lr_sgemm(l.sym.fn[sSgemm], cbool(tA), cbool(tB), C.int(m), C.int(n), C.int(k), C.float(alpha),
		(*C.float)(unsafe.SliceData(a)), C.int(lda), (*C.float)(unsafe.SliceData(b)), C.int(ldb), C.float(beta), (*C.float)(unsafe.SliceData(c)), C.int(ldc))
}

// Dgemm is Sgemm in float64.
func (l *Lib) Dgemm(tA, tB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	C.lr_dgemm(l.sym.fn[sDgemm], cbool(tA), cbool(tB), C.int(m), C.int(n), C.int(k), C.double(alpha),
		(*C.double)(unsafe.SliceData(a)), C.int(lda), (*C.double)(unsafe.SliceData(b)), C.int(ldb), C.double(beta), (*C.double)(unsafe.SliceData(c)), C.int(ldc))
}

// Sgemv computes y = alpha·op(a)·x + beta·y for the row-major m×n a.
func (l *Lib) Sgemv(tA bool, m, n int, alpha float32, a []float32, lda int, x []float32, beta float32, y []float32) {
	C.lr_sgemv(l.sym.fn[sSgemv], cbool(tA), C.int(m), C.int(n), C.float(alpha), (*C.float)(unsafe.SliceData(a)), C.int(lda),
		(*C.float)(unsafe.SliceData(x)), C.float(beta), (*C.float)(unsafe.SliceData(y)))
}

// Dgemv is Sgemv in float64.
func (l *Lib) Dgemv(tA bool, m, n int, alpha float64, a []float64, lda int, x []float64, beta float64, y []float64) {
	C.lr_dgemv(l.sym.fn[sDgemv], cbool(tA), C.int(m), C.int(n), C.double(alpha), (*C.double)(unsafe.SliceData(a)), C.int(lda),
		(*C.double)(unsafe.SliceData(x)), C.double(beta), (*C.double)(unsafe.SliceData(y)))
}

// Gesdd computes the thin SVD a = u·diag(s)·vt of the column-major m×n
// matrix a (destroyed) with LAPACK ?gesdd (JOBZ='S', divide and conquer):
// u is m×p, vt is p×n, s has p = min(m, n) values.
func Gesdd[T float32 | float64](l *Lib, m, n int, a []T, lda int, s, u []T, ldu int, vt []T, ldvt int) error {
	return gesddAlloc(l, m, n, a, lda, s, u, ldu, vt, ldvt, func(k int) []T { return make([]T, k) })
}

func gesddAlloc[T float32 | float64](l *Lib, m, n int, a []T, lda int, s, u []T, ldu int, vt []T, ldvt int, alloc func(int) []T) error {
	p := min(m, n)
	if !fits(m, n, lda, ldu, ldvt, 8*p) {
		return ErrTooLarge
	}
	name := prefix[T]() + "gesdd_"
	if bad := firstBad(
		check{lda < max(1, m), 5}, check{len(a) < need(m, n, lda), 4},
		check{len(s) < p, 6}, check{ldu < max(1, m), 8}, check{len(u) < need(m, p, ldu), 7},
		check{ldvt < max(1, p), 10}, check{len(vt) < need(p, n, ldvt), 9},
	); bad != 0 {
		return &Error{Routine: name, Info: -bad, M: m, N: n}
	}
	iwork := make([]C.int, max(8*p, 1))
	var q [1]T
	call := func(work []T, lw int) int {
		switch any(q[0]).(type) {
		case float32:
			f := func(x []T) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(x))) }
			return int(C.lr_sgesdd(l.sym.fn[sSgesdd], C.int(m), C.int(n), f(a), C.int(lda), f(s), f(u), C.int(ldu), f(vt), C.int(ldvt), f(work), C.int(lw), &iwork[0]))
		default:
			f := func(x []T) *C.double { return (*C.double)(unsafe.Pointer(unsafe.SliceData(x))) }
			return int(C.lr_dgesdd(l.sym.fn[sDgesdd], C.int(m), C.int(n), f(a), C.int(lda), f(s), f(u), C.int(ldu), f(vt), C.int(ldvt), f(work), C.int(lw), &iwork[0]))
		}
	}
	if info := call(q[:], -1); info != 0 {
		return &Error{Routine: name, Info: info, M: m, N: n}
	}
	lw := lwork(float64(q[0]))
	if !fits(lw) {
		return ErrTooLarge
	}
	if info := call(alloc(lw), lw); info != 0 {
		return &Error{Routine: name, Info: info, M: m, N: n}
	}
	return nil
}

func prefix[T float32 | float64]() string {
	var z T
	if _, ok := any(z).(float32); ok {
		return "s"
	}
	return "d"
}

// OrthQR overwrites the column-major m×n matrix a (m ≥ n) with the Q
// factor of its thin QR decomposition (?geqrf, ?orgqr).
func OrthQR[T float32 | float64](l *Lib, m, n int, a []T, lda int) error {
	return orth(l, true, m, n, a, lda)
}

// OrthLQ overwrites the column-major m×n matrix a (m ≤ n) with the Q
// factor of its LQ decomposition a = L·Q (?gelqf, ?orglq): its rows become
// orthonormal and span the rows of a. On a row-major n×m matrix, which is
// the same memory, this is the thin QR.
func OrthLQ[T float32 | float64](l *Lib, m, n int, a []T, lda int) error {
	return orth(l, false, m, n, a, lda)
}

// OrthQR on a float64 matrix, for the self-test.
func (l *Lib) OrthQR(m, n int, a []float64, lda int) error { return OrthQR(l, m, n, a, lda) }

func orth[T float32 | float64](l *Lib, qr bool, m, n int, a []T, lda int) error {
	k := min(m, n)
	if k == 0 {
		return nil
	}
	if !fits(m, n, lda) {
		return ErrTooLarge
	}
	if bad := firstBad(
		check{qr && m < n || !qr && m > n, 2}, // orgqr needs m ≥ n, orglq m ≤ n
		check{lda < max(1, m), 4}, check{len(a) < need(m, n, lda), 3},
	); bad != 0 {
		r := "geqrf_"
		if !qr {
			r = "gelqf_"
		}
		return &Error{Routine: prefix[T]() + r, Info: -bad, M: m, N: n}
	}
	fac, gen := sSgeqrf, sSorgqr
	names := [2]string{"geqrf_", "orgqr_"}
	if !qr {
		fac, gen = sSgelqf, sSorglq
		names = [2]string{"gelqf_", "orglq_"}
	}
	var z T
	_, single := any(z).(float32)
	if !single {
		fac, gen = fac+1, gen+1
	}
	tau := make([]T, k)
	factor := func(work []T, lw int) int {
		if single {
			f := func(x []T) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(x))) }
			return int(C.lr_sqrf(l.sym.fn[fac], C.int(m), C.int(n), f(a), C.int(lda), f(tau), f(work), C.int(lw)))
		}
		f := func(x []T) *C.double { return (*C.double)(unsafe.Pointer(unsafe.SliceData(x))) }
		return int(C.lr_dqrf(l.sym.fn[fac], C.int(m), C.int(n), f(a), C.int(lda), f(tau), f(work), C.int(lw)))
	}
	generate := func(work []T, lw int) int {
		if single {
			f := func(x []T) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(x))) }
			return int(C.lr_sorg(l.sym.fn[gen], C.int(m), C.int(n), C.int(k), f(a), C.int(lda), f(tau), f(work), C.int(lw)))
		}
		f := func(x []T) *C.double { return (*C.double)(unsafe.Pointer(unsafe.SliceData(x))) }
		return int(C.lr_dorg(l.sym.fn[gen], C.int(m), C.int(n), C.int(k), f(a), C.int(lda), f(tau), f(work), C.int(lw)))
	}
	p := prefix[T]()
	var q [1]T
	if info := factor(q[:], -1); info != 0 {
		return &Error{Routine: p + names[0], Info: info, M: m, N: n}
	}
	lw := lwork(float64(q[0]))
	if info := generate(q[:], -1); info != 0 {
		return &Error{Routine: p + names[1], Info: info, M: m, N: n}
	}
	lw = max(lw, lwork(float64(q[0])))
	if !fits(lw) {
		return ErrTooLarge
	}
	work := make([]T, lw)
	if info := factor(work, lw); info != 0 {
		return &Error{Routine: p + names[0], Info: info, M: m, N: n}
	}
	if info := generate(work, lw); info != 0 {
		return &Error{Routine: p + names[1], Info: info, M: m, N: n}
	}
	return nil
}

// HasLU reports whether the library exports ?getrf for T.
func HasLU[T float32 | float64](l *Lib) bool {
	var z T
	_, single := any(z).(float32)
	if single {
		return l.sym.getrf[0] != nil
	}
	return l.sym.getrf[1] != nil
}

// LUBasis overwrites the column-major m×n matrix a (m ≥ n) with P·L from
// its LU factorization with partial pivoting, a = P·L·U (?getrf): L is
// unit lower trapezoidal with entries of magnitude ≤ 1, so P·L has full
// column rank and, when a has full column rank, the same column span as
// a. It is the cheap normalization between the power iterations of the
// randomized range finder (Halko, Martinsson and Tropp 2011, §4.5;
// scikit-learn's randomized_svd and fbpca do the same): ?getrf on a tall,
// thin matrix runs 7–16× faster than ?geqrf + ?orgqr (OpenBLAS 0.3.21,
// 4096×272 float32: 3.5 ms against 55 ms). A zero pivot (a rank-deficient
// a) is not an error: its column of P·L is then a unit vector, so the
// basis still has full rank. It returns ErrNoLU when the library lacks
// ?getrf, and ErrLUBreakdown when L came out with entries that are not
// finite or not bounded by 1 (a has then been overwritten: the caller falls
// back to a QR of its own copy).
func LUBasis[T float32 | float64](l *Lib, m, n int, a []T, lda int) error {
	if n == 0 {
		return nil
	}
	if !HasLU[T](l) {
		return ErrNoLU
	}
	if !fits(m, n, lda) {
		return ErrTooLarge
	}
	if bad := firstBad(check{m < n, 1}, check{lda < max(1, m), 4}, check{len(a) < need(m, n, lda), 3}); bad != 0 {
		return &Error{Routine: prefix[T]() + "getrf_", Info: -bad, M: m, N: n}
	}
	ipiv := make([]C.int, n)
	var info C.int
	switch a := any(a).(type) {
	case []float32:
		info = C.lr_sgetrf(l.sym.getrf[0], C.int(m), C.int(n), (*C.float)(unsafe.Pointer(unsafe.SliceData(a))), C.int(lda), &ipiv[0])
	case []float64:
		info = C.lr_dgetrf(l.sym.getrf[1], C.int(m), C.int(n), (*C.double)(unsafe.Pointer(unsafe.SliceData(a))), C.int(lda), &ipiv[0])
	}
	if info < 0 {
		return &Error{Routine: prefix[T]() + "getrf_", Info: int(info), M: m, N: n}
	}
	// info > 0 is an exactly zero pivot: L is complete all the same. A
	// subnormal pivot is not: OpenBLAS's own ?getrf scales by its
	// reciprocal, which overflows (found by FuzzFactorize on a matrix
	// with one entry 10³⁰⁵ times the others). L's entries are bounded by
	// 1 otherwise, so anything else means the factorization broke down.
	for j := range n {
		for _, v := range a[j*lda+j+1 : j*lda+m] {
			if !(v <= 2 && v >= -2) {
				return ErrLUBreakdown
			}
		}
	}
	// Keep L: the unit diagonal, zeros above it.
	for j := range n {
		col := a[j*lda : j*lda+m]
		clear(col[:j])
		col[j] = 1
	}
	// a's rows were interchanged row i ↔ ipiv[i] (1-based) for i = 0, 1,
	// …: P·L undoes them, last first.
	for i := n - 1; i >= 0; i-- {
		p := int(ipiv[i]) - 1
		if p == i {
			continue
		}
		if p < 0 || p >= m {
			return &Error{Routine: prefix[T]() + "getrf_", Info: int(ipiv[i]), M: m, N: n}
		}
		for j := range n {
			a[j*lda+i], a[j*lda+p] = a[j*lda+p], a[j*lda+i]
		}
	}
	return nil
}

// HasChol reports whether the library exports what CholBasis needs for T
// (cblas_?trmm, dpotrf_ and dtrtri_).
func HasChol[T float32 | float64](l *Lib) bool {
	var z T
	i := 1
	if _, single := any(z).(float32); single {
		i = 0
	}
	return l.sym.trmm[i] != nil && l.sym.potrf != nil && l.sym.trtri != nil
}

// cholPivotMin is the smallest ratio of a squared pivot of the Gram
// matrix's Cholesky factor to the diagonal entry it came from that
// CholBasis accepts: about cond(a)⁻², so cond(a) ≲ 300.
const cholPivotMin = 1e-5

// CholBasis overwrites the row-major m×n matrix a (m ≥ n, row stride
// lda) with a·R⁻¹, where RᵀR = aᵀa is the Cholesky factorization of its
// Gram matrix (one pass of CholeskyQR): a basis of a's column span that is
// nearly orthonormal when a is well conditioned. It is the normalization
// between the power iterations of the randomized range finder where it
// is safe: in place, with no column-major copy, in two level-3 calls, the
// Gram matrix aᵀa and a triangular product a·R⁻¹ (?trmm with R inverted
// in float64; OpenBLAS's ?trsm on a row-major a is 2–5× slower than
// its ?trmm). Cholesky and inverse are float64 LAPACK on the n×n Gram
// matrix.
//
// The Gram matrix is computed in T: in float32 its smallest eigenvalues
// are accurate only while cond(a)² ≪ 1/ε. CholBasis returns
// ErrCholBreakdown, leaving a untouched, when a Cholesky pivot falls below
// cholPivotMin of its diagonal entry (a column nearly in the span of the
// earlier ones: cond(a) ≳ 300), when the Gram matrix is not finite or not
// positive definite; the caller then uses LUBasis, which has no such
// limit. It returns ErrNoChol when the library lacks ?trmm, dpotrf or
// dtrtri.
func CholBasis[T float32 | float64](l *Lib, m, n int, a []T, lda int) error {
	if n == 0 {
		return nil
	}
	if !HasChol[T](l) {
		return ErrNoChol
	}
	if !fits(m, n, lda, n*n) {
		return ErrTooLarge
	}
	if bad := firstBad(check{m < n, 1}, check{lda < max(1, n), 4}, check{len(a) < need(n, m, lda), 3}); bad != 0 {
		return &Error{Routine: "cholbasis", Info: -bad, M: m, N: n}
	}
	_, err := cholPass(l, m, n, a, lda, false)
	return err
}

// cholPass runs one pass of CholeskyQR on the row-major m×n a: on its
// columns (rows false, m ≥ n: G = aᵀa = RᵀR, a ← a·R⁻¹) or on its rows
// (rows true, m ≤ n: G = a·aᵀ = RᵀR, a ← R⁻ᵀ·a, whose rows are then
// orthonormal). It returns R (row-major, upper triangular, zeros below),
// or ErrCholBreakdown with a untouched (see CholBasis).
func cholPass[T float32 | float64](l *Lib, m, n int, a []T, lda int, rows bool) ([]float64, error) {
	k, side, trans := n, C.int(142), C.int(111)
	if rows {
		k, side, trans = m, 141, 112
	}
	g := make([]T, k*k)
	switch a := any(a).(type) {
	case []float32:
		if rows {
			l.Sgemm(false, true, k, k, n, 1, a, lda, a, lda, 0, any(g).([]float32), k)
		} else {
			l.Sgemm(true, false, k, k, m, 1, a, lda, a, lda, 0, any(g).([]float32), k)
		}
	case []float64:
		if rows {
			l.Dgemm(false, true, k, k, n, 1, a, lda, a, lda, 0, any(g).([]float64), k)
		} else {
			l.Dgemm(true, false, k, k, m, 1, a, lda, a, lda, 0, any(g).([]float64), k)
		}
	}
	r := make([]float64, k*k)
	diag := make([]float64, k)
	for i := range k {
		for j := i; j < k; j++ {
			v := float64(g[i*k+j])
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, ErrCholBreakdown
			}
			r[i*k+j] = v
		}
		if diag[i] = r[i*k+i]; !(diag[i] > 0) {
			return nil, ErrCholBreakdown
		}
	}
	// dpotrf with uplo 'L' on the column-major view of r (its upper
	// triangle, row-major, is the lower triangle there) leaves L with
	// G = L·Lᵀ there: row-major, the upper triangle is R = Lᵀ. dtrtri
	// then turns L into L⁻¹ = (R⁻¹)ᵀ: row-major, R⁻¹.
	if info := C.lr_dpotrf(l.sym.potrf, 'L', C.int(k), (*C.double)(unsafe.Pointer(&r[0])), C.int(k)); info != 0 {
		if info < 0 {
			return nil, &Error{Routine: "dpotrf_", Info: int(info), M: k, N: k}
		}
		return nil, ErrCholBreakdown
	}
	for i := range k {
		if p := r[i*k+i]; !(p*p >= cholPivotMin*diag[i]) {
			return nil, ErrCholBreakdown
		}
	}
	rf := append([]float64(nil), r...)
	if info := C.lr_dtrtri(l.sym.trtri, 'L', C.int(k), (*C.double)(unsafe.Pointer(&r[0])), C.int(k)); info != 0 {
		if info < 0 {
			return nil, &Error{Routine: "dtrtri_", Info: int(info), M: k, N: k}
		}
		return nil, ErrCholBreakdown
	}
	for i := range k {
		for j := i; j < k; j++ {
			g[i*k+j] = T(r[i*k+j])
		}
	}
	switch a := any(a).(type) {
	case []float32:
		C.lr_strmm(l.sym.trmm[0], side, trans, C.int(m), C.int(n), (*C.float)(unsafe.Pointer(&g[0])), C.int(k), (*C.float)(unsafe.Pointer(unsafe.SliceData(a))), C.int(lda))
	case []float64:
		C.lr_dtrmm(l.sym.trmm[1], side, trans, C.int(m), C.int(n), (*C.double)(unsafe.Pointer(&g[0])), C.int(k), (*C.double)(unsafe.Pointer(unsafe.SliceData(a))), C.int(lda))
	}
	for i := range k { // R: zeros below the diagonal
		clear(rf[i*k : i*k+i])
	}
	return rf, nil
}

// WideSVD computes the thin SVD a = u·diag(s)·vt of the row-major m×n
// matrix a with m ≤ n (destroyed) by CholeskyQR2 on its rows first:
// a = Rᵀ·Q with Q's rows orthonormal (two passes of cholPass, R = R₂·R₁),
// then the m×m SVD Rᵀ = Ũ·Σ·Ṽᵀ (?gesdd in T: dgesdd of 266×266 takes
// 29 ms here, sgesdd 10 ms), so u = Ũ, s = Σ and
// vt = Ṽᵀ·Q (one product). For the randomized method's l×k projection
// (float32, 266×11008 and 266×4096) that is ≈ 56 and 34 ms against ≈ 87
// and 47 ms for sgesdd on the whole, whose own QR and back-transformation
// dominate. u is m×m (row
// stride ldu), s m values in decreasing order, vt vtRows×n (ldvt): the
// first vtRows ≤ m right singular vectors (the rest cost their share of
// the product and their memory when a caller keeps a leading few).
//
// It returns ErrCholBreakdown where CholeskyQR would be inaccurate (cond(a)
// ≳ 300, see CholBasis) with a as it was (to rounding), for the caller's
// ?gesdd; ErrNoChol without the library routines it needs.
func WideSVD[T float32 | float64](l *Lib, m, n int, a []T, lda int, s []float64, u []T, ldu int, vt []T, ldvt, vtRows int) error {
	if m == 0 {
		return nil
	}
	if !HasChol[T](l) || !HasChol[float64](l) {
		return ErrNoChol
	}
	if !fits(m, n, lda, ldu, ldvt, m*m) {
		return ErrTooLarge
	}
	if bad := firstBad(check{m > n, 1}, check{lda < max(1, n), 4}, check{len(a) < need(n, m, lda), 3},
		check{len(s) < m, 5}, check{ldu < max(1, m), 7}, check{len(u) < need(m, m, ldu), 6},
		check{ldvt < max(1, n), 9}, check{len(vt) < need(n, vtRows, ldvt), 8}, check{vtRows < 1 || vtRows > m, 11}); bad != 0 {
		return &Error{Routine: "widesvd", Info: -bad, M: m, N: n}
	}
	r1, err := cholPass(l, m, n, a, lda, true)
	if err != nil {
		return err
	}
	r2, err := cholPass(l, m, n, a, lda, true)
	if err != nil {
		// Not expected after a first pass that passed its checks (its
		// rows are then nearly orthonormal); undo it: a = R₁ᵀ·Q₁.
		rt := make([]T, m*m)
		for i, v := range r1 {
			rt[i] = T(v)
		}
		switch a := any(a).(type) {
		case []float32:
			C.lr_strmm(l.sym.trmm[0], 141, 112, C.int(m), C.int(n), (*C.float)(unsafe.Pointer(&rt[0])), C.int(m), (*C.float)(unsafe.Pointer(unsafe.SliceData(a))), C.int(lda))
		case []float64:
			C.lr_dtrmm(l.sym.trmm[1], 141, 112, C.int(m), C.int(n), (*C.double)(unsafe.Pointer(&rt[0])), C.int(m), (*C.double)(unsafe.Pointer(unsafe.SliceData(a))), C.int(lda))
		}
		return err
	}
	// R = R₂·R₁ (upper triangular), in r1: r1 ← r2·r1 is a left
	// product by an upper triangular matrix (side Left, no transpose).
	C.lr_dtrmm_left(l.sym.trmm[1], C.int(m), (*C.double)(unsafe.Pointer(&r2[0])), (*C.double)(unsafe.Pointer(&r1[0])))
	// a = Rᵀ·Q, and with the SVD R = U_R·Σ·V_Rᵀ, a = V_R·Σ·(U_Rᵀ·Q). dgesdd
	// reads and writes column-major: given R column-major, it writes U_R
	// and V_Rᵀ column-major, which read row-major are U_Rᵀ and V_R.
	rc := make([]T, m*m)
	for i := range m {
		for j := i; j < m; j++ {
			rc[j*m+i] = T(r1[i*m+j])
		}
	}
	st, uR, vRt := make([]T, m), make([]T, m*m), make([]T, m*m)
	if err := Gesdd(l, m, m, rc, m, st, uR, m, vRt, m); err != nil {
		return err
	}
	for i, v := range st {
		s[i] = float64(v)
	}
	for i := range m {
		copy(u[i*ldu:i*ldu+m], vRt[i*m:(i+1)*m])
	}
	vs := uR
	switch a := any(a).(type) {
	case []float32:
		l.Sgemm(false, false, vtRows, n, m, 1, any(vs).([]float32), m, a, lda, 0, any(vt).([]float32), ldvt)
	case []float64:
		l.Dgemm(false, false, vtRows, n, m, 1, any(vs).([]float64), m, a, lda, 0, any(vt).([]float64), ldvt)
	}
	return nil
}
