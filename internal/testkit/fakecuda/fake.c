//go:build cgo

/*
 * fake.c: a functional fake of the CUDA driver, cuBLAS and cuSOLVER that
 * runs on the host, for tests of lowrank/internal/cuda and lowrank/gpu on
 * machines without a GPU.
 *
 * Device memory is host memory: cuMemAlloc returns a malloc'd pointer as
 * the CUdeviceptr, filled with 0xff bytes (NaN in float and double) so
 * that reading memory nobody wrote shows up in results. The BLAS and
 * LAPACK routines lowrank calls are implemented by reference loops on
 * column-major data, as cuBLAS and cuSOLVER define them: single precision
 * routines accumulate in float, the solvers (one-sided Jacobi SVD,
 * Householder QR) compute in double. NVRTC and kernel launches are not
 * implemented (their entry points fail).
 *
 * The fake is strict where the real libraries are silent: every pointer
 * argument must lie inside one live allocation of the right kind, leading
 * dimensions and in-place rules are checked, and the one stream is
 * modelled asynchronously: its work is numbered (fk_seq), a memory block
 * remembers the last work that used it, and freeing a block before a
 * synchronization point has covered that work is a violation (the block
 * is poisoned and kept until then). A cuMemcpyHtoDAsync remembers its
 * source and checks at the next synchronization point that the host did
 * not change it meanwhile; a cuMemcpyDtoHAsync reads its source and
 * writes its destination only at that point (poisoning the destination
 * until then). Breaches are recorded as violations, which the tests
 * assert are absent.
 *
 * Everything is global state, touched only by the device's worker thread
 * while a test runs: one device at a time.
 */

#include "fake.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Status codes. */
#define CU_INVALID_VALUE 1
#define CU_OUT_OF_MEMORY 2
#define CU_INVALID_DEVICE 101
#define CU_INVALID_HANDLE 400
#define CU_LAUNCH_FAILED 719
#define CU_NOT_SUPPORTED 801
#define BL_NOT_INITIALIZED 1
#define BL_INVALID_VALUE 7
#define BL_EXECUTION_FAILED 13
#define BL_NOT_SUPPORTED 15
#define SO_NOT_INITIALIZED 1
#define SO_INVALID_VALUE 3
#define SO_INTERNAL_ERROR 7
#define SO_NOT_SUPPORTED 9
#define NV_INTERNAL_ERROR 11

enum { L_DRV, L_BLAS, L_SOLVER, L_OTHER };

static int fk_max(int a, int b) { return a > b ? a : b; }

/* ---- configuration and counters ---- */

static int fk_init_result = 0;
static int fk_driver_version = 13000;
static int fk_device_count = 1;
static unsigned long long fk_mem_limit = 1ULL << 34;
static int fk_retained, fk_handles, fk_events, fk_reclaimed;
#define FK_NKINDS 5 /* geqrf, orgqr, gesvd, gesvdj, gesvdp */
static int fk_lwork[FK_NKINDS] = {-1, -1, -1, -1, -1};
static int fk_devinfo[FK_NKINDS];

int fk_get_retained(void) { return fk_retained; }
int fk_get_handles(void) { return fk_handles; }
int fk_get_events(void) { return fk_events; }
int fk_get_reclaimed(void) { return fk_reclaimed; }
void fk_set_lwork(int kind, int lwork) {
	if (kind >= 0 && kind < FK_NKINDS) fk_lwork[kind] = lwork;
}
void fk_set_devinfo(int kind, int value) {
	if (kind >= 0 && kind < FK_NKINDS) fk_devinfo[kind] = value;
}

/* ---- violations ---- */

#define FK_MAXVIOL 64
static char *fk_viol[FK_MAXVIOL];
static int fk_nviol;

static void fk_violate(const char *fmt, ...) {
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (fk_nviol < FK_MAXVIOL) fk_viol[fk_nviol] = strdup(buf);
	fk_nviol++;
}
int fk_violations(void) { return fk_nviol; }
const char *fk_violation(int i) { return i >= 0 && i < fk_nviol && i < FK_MAXVIOL ? fk_viol[i] : ""; }

/* ---- calls and faults ---- */

#define FK_MAXNAMES 192
static struct {
	const char *name;
	int count;
} fk_callv[FK_MAXNAMES];
static int fk_ncallv;

typedef struct {
	char pat[96];
	int nth, status, sticky, repeat, seen;
} fk_fault;
#define FK_MAXFAULTS 16
static fk_fault fk_faultv[FK_MAXFAULTS];
static int fk_nfaults;
static int fk_sticky_status; /* CUresult every driver call returns once the context is lost */

static int fk_match(const char *pat, const char *name) {
	size_t n = strlen(pat);
	if (n > 0 && pat[n - 1] == '*') return strncmp(pat, name, n - 1) == 0;
	return strcmp(pat, name) == 0;
}

int fk_add_fault(const char *pattern, int nth, int status, int sticky, int repeat) {
	fk_fault *f;
	if (fk_nfaults >= FK_MAXFAULTS || strlen(pattern) >= sizeof f->pat) return -1;
	f = &fk_faultv[fk_nfaults++];
	strcpy(f->pat, pattern);
	f->nth = nth;
	f->status = status;
	f->sticky = sticky;
	f->repeat = repeat;
	f->seen = 0;
	return 0;
}
void fk_clear_faults(void) { fk_nfaults = 0; }
int fk_sticky(void) { return fk_sticky_status; }

int fk_calls(const char *pattern) {
	int i, n = 0;
	for (i = 0; i < fk_ncallv; i++)
		if (fk_match(pattern, fk_callv[i].name)) n += fk_callv[i].count;
	return n;
}
void fk_reset_calls(void) {
	int i;
	for (i = 0; i < fk_ncallv; i++) fk_callv[i].count = 0;
}

/* fk_enter records a call of name (a string literal) and returns the status
 * it must fail with, or 0. */
static int fk_enter(const char *name, int lib) {
	int i;
	for (i = 0; i < fk_ncallv; i++)
		if (strcmp(fk_callv[i].name, name) == 0) break;
	if (i == fk_ncallv && i < FK_MAXNAMES) {
		fk_callv[i].name = name;
		fk_callv[i].count = 0;
		fk_ncallv++;
	}
	if (i < FK_MAXNAMES) fk_callv[i].count++;
	if (fk_sticky_status) {
		switch (lib) {
		case L_DRV: return fk_sticky_status;
		case L_BLAS: return BL_EXECUTION_FAILED;
		case L_SOLVER: return SO_INTERNAL_ERROR;
		}
		return 0;
	}
	for (i = 0; i < fk_nfaults; i++) {
		fk_fault *f = &fk_faultv[i];
		if (!fk_match(f->pat, name)) continue;
		f->seen++;
		if (f->seen == f->nth || (f->repeat && f->seen > f->nth)) {
			if (f->sticky) fk_sticky_status = lib == L_DRV ? f->status : CU_LAUNCH_FAILED;
			return f->status;
		}
	}
	return 0;
}

/* ---- memory ---- */

typedef struct {
	char *base;
	size_t size;
	unsigned long long use; /* the stream position (fk_seq) of the last work that used it */
} fk_block;
typedef struct {
	fk_block *b;
	int n, cap;
} fk_table;
static fk_table fk_dev, fk_host;
static fk_table fk_quar; /* freed device blocks that queued work may still use: poisoned, kept until it completes */
static unsigned long long fk_used;

/* The stream. Work is numbered in queue order: fk_seq is the position of
 * the last work queued, fk_done that of the last work known complete (a
 * synchronization point). The fake runs kernels, cuBLAS and cuSOLVER at
 * once but frees as a GPU would: memory that queued work uses must not be
 * freed before that work completes. */
static unsigned long long fk_seq, fk_done;

int fk_get_live(void) { return fk_dev.n; }
int fk_get_pinned(void) { return fk_host.n; }
unsigned long long fk_get_live_bytes(void) { return fk_used; }

static void fk_table_add(fk_table *t, char *p, size_t n) {
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 64;
		t->b = realloc(t->b, (size_t)t->cap * sizeof *t->b);
	}
	t->b[t->n].base = p;
	t->b[t->n].size = n;
	t->b[t->n].use = 0;
	t->n++;
}

/* fk_table_find returns the block that contains p, or -1. */
static int fk_table_find(const fk_table *t, const void *p) {
	int i;
	for (i = 0; i < t->n; i++)
		if ((const char *)p >= t->b[i].base && (const char *)p < t->b[i].base + t->b[i].size) return i;
	return -1;
}

static int fk_table_exact(const fk_table *t, const void *p) {
	int i;
	for (i = 0; i < t->n; i++)
		if (t->b[i].base == (const char *)p) return i;
	return -1;
}

static void fk_table_del(fk_table *t, int i) { t->b[i] = t->b[--t->n]; }

static int fk_within(const fk_table *t, const void *p, size_t bytes) {
	int i;
	if (bytes == 0) return 1;
	i = fk_table_find(t, p);
	return i >= 0 && (const char *)p + bytes <= t->b[i].base + t->b[i].size;
}

static void fk_settle_dev(const void *p, size_t n);

/* fk_in checks that [p, p+bytes) lies inside one device allocation, which
 * the work being queued then uses: pending copies from it complete first
 * (stream order), and the block records the work's position. */
static int fk_in(const char *call, const char *what, const void *p, size_t bytes) {
	int i;
	if (!fk_within(&fk_dev, p, bytes)) {
		fk_violate("%s: %s [%p, +%zu bytes) is not inside one device allocation", call, what, p, bytes);
		return 0;
	}
	if (bytes == 0) return 1;
	fk_settle_dev(p, bytes);
	i = fk_table_find(&fk_dev, p);
	fk_dev.b[i].use = ++fk_seq;
	return 1;
}

/* fk_in_pinned checks that [p, p+bytes) lies inside one pinned host
 * allocation: lowrank must never hand Go memory to an asynchronous copy. */
static int fk_in_pinned(const char *call, const char *what, const void *p, size_t bytes) {
	if (fk_within(&fk_host, p, bytes)) return 1;
	fk_violate("%s: %s [%p, +%zu bytes) is not inside one pinned host allocation", call, what, p, bytes);
	return 0;
}

static int fk_overlap(const void *a, size_t an, const void *b, size_t bn) {
	const char *x = a, *y = b;
	return an > 0 && bn > 0 && x < y + bn && y < x + an;
}

/* fk_mat_overlap reports whether two column-major matrices share an
 * element: views of one parent (the same leading dimension) are
 * rectangles in that parent's rows×columns grid, which may interleave in
 * memory without sharing anything. Other cases compare address ranges. */
static int fk_mat_overlap(const void *a, int ra, int ca, int lda, const void *b, int rb, int cb, int ldb, size_t es) {
	size_t ea, eb, oa, ob, ia, ja, ib, jb;
	const char *base;
	int k;
	if (ra <= 0 || ca <= 0 || rb <= 0 || cb <= 0) return 0;
	ea = ((size_t)(ca - 1) * lda + ra) * es;
	eb = ((size_t)(cb - 1) * ldb + rb) * es;
	if (!fk_overlap(a, ea, b, eb)) return 0;
	k = fk_table_find(&fk_dev, a);
	if (lda != ldb || k < 0) return 1;
	base = fk_dev.b[k].base;
	if (((const char *)a - base) % es != 0 || ((const char *)b - base) % es != 0) return 1;
	oa = (size_t)((const char *)a - base) / es;
	ob = (size_t)((const char *)b - base) / es;
	ia = oa % (size_t)lda;
	ja = oa / (size_t)lda;
	ib = ob % (size_t)ldb;
	jb = ob / (size_t)ldb;
	if (ia + ra > (size_t)lda || ib + rb > (size_t)ldb) return 1;
	return ia < ib + rb && ib < ia + ra && ja < jb + cb && jb < ja + ca;
}

/* Elements spanned by a column-major rows×cols matrix with leading
 * dimension ld, and by a vector of n elements with increment inc. */
static size_t fk_ext(int rows, int cols, int ld) {
	return rows <= 0 || cols <= 0 ? 0 : (size_t)(cols - 1) * (size_t)ld + (size_t)rows;
}
static size_t fk_vext(int n, int inc) { return n <= 0 ? 0 : (size_t)(n - 1) * (size_t)(inc < 0 ? -inc : inc) + 1; }

/* ---- the stream: pending copies that involve host memory ---- */

typedef struct {
	unsigned long long seq;
	int dtoh;   /* 1: device to host (read from dev and written at completion); 0: host to device */
	char *host; /* the host range */
	char *data; /* host to device: the source's snapshot */
	char *dev;  /* device to host: the source, read at completion */
	size_t n;
} fk_op;
static fk_op *fk_ops;
static int fk_nops, fk_capops;

int fk_get_pending(void) { return fk_nops; }

static void fk_finish(fk_op *o) {
	if (o->dtoh) {
		size_t k;
		for (k = 0; k < o->n; k++)
			if ((unsigned char)o->host[k] != 0xff) break;
		if (k < o->n)
			fk_violate("the host wrote to %p (byte %zu of %zu) while a cuMemcpyDtoHAsync into it was in flight",
			           (void *)o->host, k, o->n);
		memcpy(o->host, o->dev, o->n);
		free(o->data); /* a value the fake owns (gesvdp's error estimate), or NULL */
	} else {
		if (memcmp(o->host, o->data, o->n) != 0)
			fk_violate("the host changed %p (%zu bytes) while a cuMemcpyHtoDAsync from it was in flight",
			           (void *)o->host, o->n);
		free(o->data);
	}
}

/* fk_release frees the quarantined blocks whose work has completed. */
static void fk_release(void) {
	int i = 0;
	while (i < fk_quar.n) {
		if (fk_quar.b[i].use <= fk_done) {
			free(fk_quar.b[i].base);
			fk_table_del(&fk_quar, i);
		} else {
			i++;
		}
	}
}

/* fk_complete finishes, in stream order, the pending copies queued at or
 * before seq. */
static void fk_complete(unsigned long long seq) {
	int i, k = 0;
	for (i = 0; i < fk_nops; i++) {
		if (fk_ops[i].seq <= seq)
			fk_finish(&fk_ops[i]);
		else
			fk_ops[k++] = fk_ops[i];
	}
	fk_nops = k;
}

/* fk_sync is a synchronization point of the host with the stream: the
 * work queued at or before seq is complete (its copies are finished, the
 * memory freed while it still used it is released), and the host knows
 * it. */
static void fk_sync(unsigned long long seq) {
	fk_complete(seq);
	if (seq > fk_done) fk_done = seq;
	fk_release();
}

/* fk_settle finishes the pending copies queued before whose host range
 * overlaps [p, p+n): stream order puts them before the copy being queued. */
static void fk_settle(const void *p, size_t n) {
	int i, last = -1;
	for (i = 0; i < fk_nops; i++)
		if (fk_overlap(fk_ops[i].host, fk_ops[i].n, p, n)) last = i;
	if (last >= 0) fk_complete(fk_ops[last].seq);
}

/* fk_settle_dev finishes the pending device-to-host copies whose device
 * source overlaps [p, p+n): they come before the work being queued. */
static void fk_settle_dev(const void *p, size_t n) {
	int i, last = -1;
	for (i = 0; i < fk_nops; i++)
		if (fk_ops[i].dtoh && fk_overlap(fk_ops[i].dev, fk_ops[i].n, p, n)) last = i;
	if (last >= 0) fk_complete(fk_ops[last].seq);
}

/* fk_push queues a copy at the stream position of the work being queued
 * (fk_in advanced it). */
static void fk_push(int dtoh, char *host, char *data, char *dev, size_t n) {
	if (fk_nops == fk_capops) {
		fk_capops = fk_capops ? 2 * fk_capops : 16;
		fk_ops = realloc(fk_ops, (size_t)fk_capops * sizeof *fk_ops);
	}
	fk_ops[fk_nops].seq = fk_seq;
	fk_ops[fk_nops].dtoh = dtoh;
	fk_ops[fk_nops].host = host;
	fk_ops[fk_nops].data = data;
	fk_ops[fk_nops].dev = dev;
	fk_ops[fk_nops].n = n;
	fk_nops++;
}

static void fk_drop_pending(void) {
	int i;
	for (i = 0; i < fk_nops; i++) free(fk_ops[i].data);
	fk_nops = 0;
}

/* fk_reclaim destroys the context: its memory, pinned buffers and pending
 * work go, and a lost context is forgotten. */
static void fk_reclaim(void) {
	int i;
	fk_drop_pending();
	for (i = 0; i < fk_dev.n; i++) free(fk_dev.b[i].base);
	fk_reclaimed += fk_dev.n;
	fk_dev.n = 0;
	for (i = 0; i < fk_host.n; i++) free(fk_host.b[i].base);
	fk_host.n = 0;
	for (i = 0; i < fk_quar.n; i++) free(fk_quar.b[i].base);
	fk_quar.n = 0;
	fk_done = fk_seq;
	fk_used = 0;
	fk_sticky_status = 0;
}

/* ---- handles ---- */

#define FK_MAXHANDLES 64
static void *fk_live_handles[FK_MAXHANDLES];
static int fk_nlive_handles;

static void *fk_new_handle(size_t size) {
	void *h;
	if (fk_nlive_handles >= FK_MAXHANDLES) return 0;
	h = calloc(1, size);
	fk_live_handles[fk_nlive_handles++] = h;
	fk_handles++;
	return h;
}

static int fk_handle_ok(const void *h) {
	int i;
	for (i = 0; i < fk_nlive_handles; i++)
		if (fk_live_handles[i] == h) return 1;
	return 0;
}

static int fk_free_handle(void *h) {
	int i;
	for (i = 0; i < fk_nlive_handles; i++) {
		if (fk_live_handles[i] == h) {
			fk_live_handles[i] = fk_live_handles[--fk_nlive_handles];
			free(h);
			fk_handles--;
			return 1;
		}
	}
	return 0;
}

typedef struct {
	int ptrmode;
} fk_blas;
typedef struct {
	int maxsweeps;
} fk_gesvdj_info;
typedef struct {
	unsigned long long seq;
	int recorded;
} fk_event;

void fk_configure(int init, int ver, int count, unsigned long long limit) {
	int i;
	fk_reclaim();
	while (fk_nlive_handles > 0) free(fk_live_handles[--fk_nlive_handles]);
	fk_init_result = init;
	fk_driver_version = ver;
	fk_device_count = count;
	fk_mem_limit = limit;
	fk_retained = 0;
	fk_handles = 0;
	fk_events = 0;
	fk_reclaimed = 0;
	for (i = 0; i < FK_NKINDS; i++) {
		fk_lwork[i] = -1;
		fk_devinfo[i] = 0;
	}
	for (i = 0; i < fk_nviol && i < FK_MAXVIOL; i++) free(fk_viol[i]);
	fk_nviol = 0;
	fk_nfaults = 0;
	fk_ncallv = 0;
}

/* ---- element access: dt 0 is float, 1 is double ---- */

static double fk_ld(const void *p, size_t i, int dt) { return dt ? ((const double *)p)[i] : (double)((const float *)p)[i]; }
static void fk_st(void *p, size_t i, double v, int dt) {
	if (dt)
		((double *)p)[i] = v;
	else
		((float *)p)[i] = (float)v;
}
static double fk_rnd(double v, int dt) { return dt ? v : (double)(float)v; }
static size_t fk_es(int dt) { return dt ? 8 : 4; }

/* fk_load copies the column-major rows×cols matrix at a (leading dimension
 * ld) into new double storage with leading dimension rows. */
static double *fk_load(const void *a, int rows, int cols, int ld, int dt) {
	double *d = malloc((size_t)fk_max(rows * cols, 1) * sizeof *d);
	int i, j;
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) d[i + (size_t)j * rows] = fk_ld(a, i + (size_t)j * ld, dt);
	return d;
}

static void fk_store(void *a, int ld, const double *d, int rows, int cols, int dt) {
	int i, j;
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) fk_st(a, i + (size_t)j * ld, d[i + (size_t)j * rows], dt);
}

/* fk_spoil overwrites a matrix with NaN: what a routine destroys, or leaves
 * undefined, must not be read afterwards. */
static void fk_spoil(void *a, int rows, int cols, int ld, int dt) {
	int i, j;
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) fk_st(a, i + (size_t)j * ld, NAN, dt);
}

/* ====================================================================== */
/* Driver API                                                             */
/* ====================================================================== */

static int fk_unsupported(void) { return CU_NOT_SUPPORTED; }

static int fk_cuInit(unsigned int flags) {
	(void)flags;
	fk_enter("cuInit", L_OTHER);
	return fk_init_result;
}
static int fk_cuDriverGetVersion(int *v) {
	*v = fk_driver_version;
	return 0;
}
static int fk_cuDeviceGetCount(int *n) {
	*n = fk_device_count;
	return 0;
}
static int fk_cuDeviceGet(int *d, int ordinal) {
	if (ordinal < 0 || ordinal >= fk_device_count) return CU_INVALID_DEVICE;
	*d = ordinal;
	return 0;
}
static int fk_cuDeviceGetName(char *name, int len, int dev) {
	(void)dev;
	strncpy(name, "Fake GPU", (size_t)len);
	name[len - 1] = 0;
	return 0;
}
static int fk_cuDeviceGetAttribute(int *v, int attr, int dev) {
	(void)dev;
	switch (attr) {
	case 75: *v = 9; break;
	case 76: *v = 0; break;
	case 16: *v = 132; break;
	default: *v = 0;
	}
	return 0;
}
static int fk_cuDeviceTotalMem(size_t *b, int dev) {
	(void)dev;
	*b = (size_t)fk_mem_limit;
	return 0;
}
static int fk_cuDevicePrimaryCtxRetain(void **c, int dev) {
	int r = fk_enter("cuDevicePrimaryCtxRetain", L_DRV);
	(void)dev;
	if (r) return r;
	*c = (void *)0x1000;
	fk_retained++;
	return 0;
}
static int fk_cuDevicePrimaryCtxRelease(int dev) {
	int r = fk_enter("cuDevicePrimaryCtxRelease_v2", L_OTHER);
	(void)dev;
	if (fk_retained > 0 && --fk_retained == 0) fk_reclaim();
	return r;
}
static int fk_cuCtxSetCurrent(void *c) {
	(void)c;
	return fk_enter("cuCtxSetCurrent", L_DRV);
}
static int fk_cuCtxSynchronize(void) {
	int r = fk_enter("cuCtxSynchronize", L_DRV);
	if (r) return r;
	fk_sync(fk_seq);
	return 0;
}
static int fk_cuStreamCreate(void **s, unsigned int flags) {
	int r = fk_enter("cuStreamCreate", L_DRV);
	(void)flags;
	if (r) return r;
	*s = (void *)0x2000;
	fk_handles++;
	return 0;
}
static int fk_cuStreamDestroy(void *s) {
	int r = fk_enter("cuStreamDestroy_v2", L_OTHER);
	(void)s;
	fk_sync(fk_seq); /* the work queued still completes */
	fk_handles--;
	return r;
}
static int fk_cuStreamSynchronize(void *s) {
	int r = fk_enter("cuStreamSynchronize", L_DRV);
	(void)s;
	if (r) return r;
	fk_sync(fk_seq);
	return 0;
}
static int fk_cuMemGetInfo(size_t *f, size_t *t) {
	int r = fk_enter("cuMemGetInfo_v2", L_DRV);
	if (r) return r;
	*f = (size_t)(fk_mem_limit - fk_used);
	*t = (size_t)fk_mem_limit;
	return 0;
}
static int fk_cuMemAlloc(unsigned long long *p, size_t n) {
	void *m = 0;
	int r = fk_enter("cuMemAlloc_v2", L_DRV);
	if (r) return r;
	if (!p || n == 0) return CU_INVALID_VALUE;
	if (n > fk_mem_limit - fk_used) return CU_OUT_OF_MEMORY;
	if (posix_memalign(&m, 256, n) != 0) return CU_OUT_OF_MEMORY;
	memset(m, 0xff, n);
	fk_table_add(&fk_dev, m, n);
	fk_used += n;
	*p = (unsigned long long)(uintptr_t)m;
	return 0;
}
static int fk_cuMemFree(unsigned long long p) {
	int i, r = fk_enter("cuMemFree_v2", L_DRV);
	if (r) return r;
	if (p == 0) return 0;
	i = fk_table_exact(&fk_dev, (void *)(uintptr_t)p);
	if (i < 0) {
		fk_violate("cuMemFree_v2: %#llx is not a live allocation (freed twice?)", p);
		return CU_INVALID_VALUE;
	}
	fk_used -= fk_dev.b[i].size;
	/* Freed memory reads as NaN: work that still uses it gets garbage. */
	memset(fk_dev.b[i].base, 0xff, fk_dev.b[i].size);
	if (fk_dev.b[i].use > fk_done) {
		fk_violate("cuMemFree_v2: %#llx is used by work queued on the stream since the last synchronization "
		           "(cuMemFree is not stream-ordered: synchronize first)",
		           p);
		fk_table_add(&fk_quar, fk_dev.b[i].base, fk_dev.b[i].size);
		fk_quar.b[fk_quar.n - 1].use = fk_dev.b[i].use;
	} else {
		free(fk_dev.b[i].base);
	}
	fk_table_del(&fk_dev, i);
	return 0;
}
static int fk_cuMemAllocHost(void **pp, size_t n) {
	void *m = 0;
	int r = fk_enter("cuMemAllocHost_v2", L_DRV);
	if (r) return r;
	if (!pp || n == 0) return CU_INVALID_VALUE;
	if (posix_memalign(&m, 4096, n) != 0) return CU_OUT_OF_MEMORY;
	memset(m, 0xff, n); /* NaN, like fresh device memory */
	fk_table_add(&fk_host, m, n);
	*pp = m;
	return 0;
}
static int fk_cuMemFreeHost(void *p) {
	int i, r = fk_enter("cuMemFreeHost", L_DRV);
	if (r) return r;
	fk_sync(fk_seq); /* freeing pinned memory waits for the work in flight */
	i = fk_table_exact(&fk_host, p);
	if (i < 0) {
		fk_violate("cuMemFreeHost: %p is not a live pinned allocation", p);
		return CU_INVALID_VALUE;
	}
	free(fk_host.b[i].base);
	fk_table_del(&fk_host, i);
	return 0;
}
static int fk_cuMemcpyHtoDAsync(unsigned long long dst, const void *src, size_t n, void *s) {
	static const char *call = "cuMemcpyHtoDAsync_v2";
	char *d = (char *)(uintptr_t)dst, *snap;
	int r = fk_enter(call, L_DRV);
	(void)s;
	if (r) return r;
	if (n == 0) return 0;
	if (!fk_in(call, "destination", d, n) || !fk_in_pinned(call, "source", src, n)) return CU_INVALID_VALUE;
	fk_settle(src, n);
	memcpy(d, src, n);
	snap = malloc(n);
	memcpy(snap, src, n);
	fk_push(0, (char *)src, snap, 0, n);
	return 0;
}
static int fk_cuMemcpyDtoHAsync(void *dst, unsigned long long src, size_t n, void *s) {
	static const char *call = "cuMemcpyDtoHAsync_v2";
	char *sp = (char *)(uintptr_t)src;
	int r = fk_enter(call, L_DRV);
	(void)s;
	if (r) return r;
	if (n == 0) return 0;
	if (!fk_in_pinned(call, "destination", dst, n)) return CU_INVALID_VALUE;
	fk_settle(dst, n);
	if (!fk_in(call, "source", sp, n)) return CU_INVALID_VALUE;
	/* The source is read when the copy completes (a synchronization). */
	memset(dst, 0xff, n);
	fk_push(1, dst, 0, sp, n);
	return 0;
}
static int fk_cuMemcpyDtoDAsync(unsigned long long dst, unsigned long long src, size_t n, void *s) {
	static const char *call = "cuMemcpyDtoDAsync_v2";
	char *d = (char *)(uintptr_t)dst, *sp = (char *)(uintptr_t)src;
	int r = fk_enter(call, L_DRV);
	(void)s;
	if (r) return r;
	if (n == 0) return 0;
	if (!fk_in(call, "destination", d, n) || !fk_in(call, "source", sp, n)) return CU_INVALID_VALUE;
	if (fk_overlap(d, n, sp, n)) {
		fk_violate("%s: source and destination overlap", call);
		return CU_INVALID_VALUE;
	}
	memcpy(d, sp, n);
	return 0;
}
static int fk_cuMemsetD32Async(unsigned long long dst, unsigned int v, size_t n, void *s) {
	static const char *call = "cuMemsetD32Async";
	unsigned int *d = (unsigned int *)(uintptr_t)dst;
	size_t i;
	int r = fk_enter(call, L_DRV);
	(void)s;
	if (r) return r;
	if (n == 0) return 0;
	if ((dst & 3) != 0 || !fk_in(call, "destination", d, n * 4)) return CU_INVALID_VALUE;
	for (i = 0; i < n; i++) d[i] = v;
	return 0;
}
static int fk_cuEventCreate(void **e, unsigned int flags) {
	fk_event *ev;
	int r = fk_enter("cuEventCreate", L_DRV);
	(void)flags;
	if (r) return r;
	ev = calloc(1, sizeof *ev);
	fk_events++;
	*e = ev;
	return 0;
}
static int fk_cuEventRecord(void *e, void *s) {
	int r = fk_enter("cuEventRecord", L_DRV);
	(void)s;
	if (r) return r;
	((fk_event *)e)->seq = fk_seq;
	((fk_event *)e)->recorded = 1;
	return 0;
}
static int fk_cuEventSynchronize(void *e) {
	int r = fk_enter("cuEventSynchronize", L_DRV);
	if (r) return r;
	if (((fk_event *)e)->recorded) fk_sync(((fk_event *)e)->seq);
	return 0;
}
static int fk_cuEventElapsedTime(float *ms, void *a, void *b) {
	int r = fk_enter("cuEventElapsedTime", L_DRV);
	(void)a;
	(void)b;
	if (r) return r;
	*ms = 0;
	return 0;
}
static int fk_cuEventDestroy(void *e) {
	int r = fk_enter("cuEventDestroy_v2", L_OTHER);
	free(e);
	fk_events--;
	return r;
}
static int fk_cuGetErrorName(int e, const char **s) {
	(void)e;
	*s = "CUDA_ERROR_FAKE_UNKNOWN";
	return 0;
}

/* ====================================================================== */
/* cuBLAS                                                                 */
/* ====================================================================== */

static int fk_cublasCreate(void **h) {
	int r = fk_enter("cublasCreate_v2", L_BLAS);
	if (r) return r;
	*h = fk_new_handle(sizeof(fk_blas));
	return *h ? 0 : 3;
}
static int fk_cublasDestroy(void *h) {
	int r = fk_enter("cublasDestroy_v2", L_OTHER);
	if (!fk_free_handle(h)) return BL_NOT_INITIALIZED;
	return r;
}
static int fk_cublasSetStream(void *h, void *s) {
	int r = fk_enter("cublasSetStream_v2", L_BLAS);
	(void)s;
	if (r) return r;
	return fk_handle_ok(h) ? 0 : BL_NOT_INITIALIZED;
}
static int fk_cublasSetPointerMode(void *h, int mode) {
	int r = fk_enter("cublasSetPointerMode_v2", L_BLAS);
	if (r) return r;
	if (!fk_handle_ok(h)) return BL_NOT_INITIALIZED;
	if (mode != 0 && mode != 1) return BL_INVALID_VALUE;
	((fk_blas *)h)->ptrmode = mode;
	return 0;
}
static int fk_cublasSetMathMode(void *h, int mode) {
	int r = fk_enter("cublasSetMathMode", L_BLAS);
	(void)mode;
	if (r) return r;
	return fk_handle_ok(h) ? 0 : BL_NOT_INITIALIZED;
}

/* fk_scalar reads alpha or beta where the handle's pointer mode says it is. */
static int fk_scalar(const fk_blas *h, const void *p, int dt, const char *call, const char *what, double *out) {
	if (h->ptrmode == 1) {
		if (!fk_in(call, what, p, fk_es(dt))) return 0;
	} else if (fk_table_find(&fk_dev, p) >= 0) {
		fk_violate("%s: %s %p is device memory but the pointer mode is HOST", call, what, p);
		return 0;
	}
	*out = fk_ld(p, 0, dt);
	return 1;
}

/* fk_round_in rounds the float v to bits mantissa bits (ties to even), as
 * the tensor cores round GemmEx's inputs for CUBLAS_COMPUTE_32F_FAST_TF32
 * (10) and _16BF (7); 23 leaves it alone. */
static double fk_round_in(double v, int bits) {
	float f = (float)v;
	uint32_t b, drop = 23 - bits;
	if (bits >= 23) return v;
	memcpy(&b, &f, sizeof b);
	if ((b & 0x7f800000u) == 0x7f800000u) return v;
	b += ((1u << (drop - 1)) - 1) + ((b >> drop) & 1);
	b &= ~((1u << drop) - 1);
	memcpy(&f, &b, sizeof f);
	return f;
}

/* fk_gemm is ?gemm (bits 23, or 52 for double) and GemmEx (bits: the
 * mantissa bits the compute type keeps of float inputs). */
static int fk_gemm(int dt, const char *call, void *hv, int ta, int tb, int m, int n, int k, const void *alpha,
                   const void *A, int lda, const void *B, int ldb, const void *beta, void *C, int ldc, int bits) {
	int r = fk_enter(call, L_BLAS), ar, ac, br, bc, i, j, l, useAB;
	size_t es = fk_es(dt), ea, eb, ec;
	double al, be;
	if (r) return r;
	if (!fk_handle_ok(hv)) return BL_NOT_INITIALIZED;
	if (ta < 0 || ta > 2 || tb < 0 || tb > 2 || m < 0 || n < 0 || k < 0) return BL_INVALID_VALUE;
	ar = ta ? k : m;
	ac = ta ? m : k;
	br = tb ? n : k;
	bc = tb ? k : n;
	if (lda < fk_max(1, ar) || ldb < fk_max(1, br) || ldc < fk_max(1, m)) return BL_INVALID_VALUE;
	if (m == 0 || n == 0) return 0;
	if (!fk_scalar(hv, alpha, dt, call, "alpha", &al) || !fk_scalar(hv, beta, dt, call, "beta", &be))
		return BL_EXECUTION_FAILED;
	ea = fk_ext(ar, ac, lda) * es;
	eb = fk_ext(br, bc, ldb) * es;
	ec = fk_ext(m, n, ldc) * es;
	useAB = al != 0 && k > 0;
	if (!fk_in(call, "C", C, ec)) return BL_EXECUTION_FAILED;
	if (useAB && (!fk_in(call, "A", A, ea) || !fk_in(call, "B", B, eb))) return BL_EXECUTION_FAILED;
	if (useAB && (fk_mat_overlap(C, m, n, ldc, A, ar, ac, lda, es) || fk_mat_overlap(C, m, n, ldc, B, br, bc, ldb, es))) {
		fk_violate("%s: C overlaps A or B", call);
		return BL_EXECUTION_FAILED;
	}
	for (j = 0; j < n; j++) {
		for (i = 0; i < m; i++) {
			double acc = 0, v;
			if (useAB) {
				for (l = 0; l < k; l++) {
					double a = fk_ld(A, ta ? l + (size_t)i * lda : i + (size_t)l * lda, dt);
					double b = fk_ld(B, tb ? j + (size_t)l * ldb : l + (size_t)j * ldb, dt);
					if (bits < 23) {
						a = fk_round_in(a, bits);
						b = fk_round_in(b, bits);
					}
					acc = fk_rnd(acc + a * b, dt);
				}
			}
			v = fk_rnd(al * acc, dt);
			if (be != 0) v = fk_rnd(v + be * fk_ld(C, i + (size_t)j * ldc, dt), dt);
			fk_st(C, i + (size_t)j * ldc, v, dt);
		}
	}
	return 0;
}

static int fk_gemv(int dt, const char *call, void *hv, int trans, int m, int n, const void *alpha, const void *A,
                   int lda, const void *x, int incx, const void *beta, void *y, int incy) {
	int r = fk_enter(call, L_BLAS), lx, ly, i, j;
	size_t es = fk_es(dt), ea, ex, ey;
	double al, be;
	if (r) return r;
	if (!fk_handle_ok(hv)) return BL_NOT_INITIALIZED;
	if (trans < 0 || trans > 2 || m < 0 || n < 0 || lda < fk_max(1, m) || incx == 0 || incy == 0)
		return BL_INVALID_VALUE;
	if (m == 0 || n == 0) return 0;
	if (incx < 0 || incy < 0) {
		fk_violate("%s: negative increments are not implemented by the fake", call);
		return BL_INVALID_VALUE;
	}
	if (!fk_scalar(hv, alpha, dt, call, "alpha", &al) || !fk_scalar(hv, beta, dt, call, "beta", &be))
		return BL_EXECUTION_FAILED;
	lx = trans ? m : n;
	ly = trans ? n : m;
	ea = fk_ext(m, n, lda) * es;
	ex = fk_vext(lx, incx) * es;
	ey = fk_vext(ly, incy) * es;
	if (!fk_in(call, "A", A, ea) || !fk_in(call, "x", x, ex) || !fk_in(call, "y", y, ey)) return BL_EXECUTION_FAILED;
	if (fk_overlap(y, ey, A, ea) || fk_overlap(y, ey, x, ex)) {
		fk_violate("%s: y overlaps A or x", call);
		return BL_EXECUTION_FAILED;
	}
	for (i = 0; i < ly; i++) {
		double acc = 0, v;
		if (al != 0) {
			for (j = 0; j < lx; j++) {
				double a = fk_ld(A, trans ? j + (size_t)i * lda : i + (size_t)j * lda, dt);
				acc = fk_rnd(acc + a * fk_ld(x, (size_t)j * incx, dt), dt);
			}
		}
		v = fk_rnd(al * acc, dt);
		if (be != 0) v = fk_rnd(v + be * fk_ld(y, (size_t)i * incy, dt), dt);
		fk_st(y, (size_t)i * incy, v, dt);
	}
	return 0;
}

/* fk_geam: C = alpha·op(A) + beta·op(B). cuBLAS allows C = A only with
 * lda = ldc and transa = N, C = B only with ldb = ldc and transb = N, and
 * otherwise no overlap. Both operands are read whatever their scalar (the
 * cuBLAS documentation does not promise that an operand scaled by 0 is
 * left alone), in IEEE arithmetic: 0·NaN is NaN, so a B nobody wrote
 * (fresh memory is NaN) spoils C even with beta = 0. */
static int fk_geam(int dt, const char *call, void *hv, int ta, int tb, int m, int n, const void *alpha, const void *A,
                   int lda, const void *beta, const void *B, int ldb, void *C, int ldc) {
	int r = fk_enter(call, L_BLAS), ar, br, i, j;
	size_t es = fk_es(dt), ea, eb, ec;
	double al, be;
	if (r) return r;
	if (!fk_handle_ok(hv)) return BL_NOT_INITIALIZED;
	if (ta < 0 || ta > 2 || tb < 0 || tb > 2 || m < 0 || n < 0) return BL_INVALID_VALUE;
	ar = ta ? n : m;
	br = tb ? n : m;
	if (lda < fk_max(1, ar) || ldb < fk_max(1, br) || ldc < fk_max(1, m)) return BL_INVALID_VALUE;
	if ((C == A && (lda != ldc || ta != 0)) || (C == B && (ldb != ldc || tb != 0))) {
		fk_violate("%s: in place with a transposed operand or another leading dimension", call);
		return BL_INVALID_VALUE;
	}
	if (m == 0 || n == 0) return 0;
	if (!fk_scalar(hv, alpha, dt, call, "alpha", &al) || !fk_scalar(hv, beta, dt, call, "beta", &be))
		return BL_EXECUTION_FAILED;
	ea = fk_ext(ar, ta ? m : n, lda) * es;
	eb = fk_ext(br, tb ? m : n, ldb) * es;
	ec = fk_ext(m, n, ldc) * es;
	if (!fk_in(call, "C", C, ec) || !fk_in(call, "A", A, ea) || !fk_in(call, "B", B, eb)) return BL_EXECUTION_FAILED;
	if ((C != A && fk_mat_overlap(C, m, n, ldc, A, ar, ta ? m : n, lda, es)) ||
	    (C != B && fk_mat_overlap(C, m, n, ldc, B, br, tb ? m : n, ldb, es))) {
		fk_violate("%s: C partly overlaps an operand", call);
		return BL_EXECUTION_FAILED;
	}
	{
		/* Out of place into a scratch copy: C may be A or B. */
		double *out = malloc((size_t)m * n * sizeof *out);
		for (j = 0; j < n; j++) {
			for (i = 0; i < m; i++) {
				double a = fk_ld(A, ta ? j + (size_t)i * lda : i + (size_t)j * lda, dt);
				double b = fk_ld(B, tb ? j + (size_t)i * ldb : i + (size_t)j * ldb, dt);
				out[i + (size_t)j * m] = fk_rnd(fk_rnd(al * a, dt) + fk_rnd(be * b, dt), dt);
			}
		}
		fk_store(C, ldc, out, m, n, dt);
		free(out);
	}
	return 0;
}

static int fk_dgmm(int dt, const char *call, void *hv, int side, int m, int n, const void *A, int lda, const void *x,
                   int incx, void *C, int ldc) {
	int r = fk_enter(call, L_BLAS), i, j;
	size_t es = fk_es(dt), ea, ex, ec;
	if (r) return r;
	if (!fk_handle_ok(hv)) return BL_NOT_INITIALIZED;
	if ((side != 0 && side != 1) || m < 0 || n < 0 || lda < fk_max(1, m) || ldc < fk_max(1, m))
		return BL_INVALID_VALUE;
	if (m == 0 || n == 0) return 0;
	if (incx <= 0) {
		fk_violate("%s: increments below 1 are not implemented by the fake", call);
		return BL_INVALID_VALUE;
	}
	ea = fk_ext(m, n, lda) * es;
	ex = fk_vext(side ? n : m, incx) * es;
	ec = fk_ext(m, n, ldc) * es;
	if (!fk_in(call, "A", A, ea) || !fk_in(call, "x", x, ex) || !fk_in(call, "C", C, ec)) return BL_EXECUTION_FAILED;
	if ((C != A && fk_mat_overlap(C, m, n, ldc, A, m, n, lda, es)) || (C == A && lda != ldc) || fk_overlap(C, ec, x, ex)) {
		fk_violate("%s: C overlaps A or x", call);
		return BL_EXECUTION_FAILED;
	}
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++)
			fk_st(C, i + (size_t)j * ldc,
			      fk_rnd(fk_ld(A, i + (size_t)j * lda, dt) * fk_ld(x, (size_t)(side ? j : i) * incx, dt), dt), dt);
	return 0;
}

static int fk_nrm2(int dt, const char *call, void *hv, int n, const void *x, int incx, void *result) {
	int r = fk_enter(call, L_BLAS), i;
	const fk_blas *h = hv;
	double scale = 0, ss = 0, v;
	if (r) return r;
	if (!fk_handle_ok(hv)) return BL_NOT_INITIALIZED;
	if (h->ptrmode == 1) {
		if (!fk_in(call, "result", result, fk_es(dt))) return BL_EXECUTION_FAILED;
	} else if (fk_table_find(&fk_dev, result) >= 0) {
		fk_violate("%s: result %p is device memory but the pointer mode is HOST", call, result);
		return BL_EXECUTION_FAILED;
	}
	if (n > 0 && incx > 0) {
		if (!fk_in(call, "x", x, fk_vext(n, incx) * fk_es(dt))) return BL_EXECUTION_FAILED;
		for (i = 0; i < n; i++) scale = fmax(scale, fabs(fk_ld(x, (size_t)i * incx, dt)));
		if (scale > 0)
			for (i = 0; i < n; i++) {
				v = fk_ld(x, (size_t)i * incx, dt) / scale;
				ss += v * v;
			}
	}
	fk_st(result, 0, scale > 0 ? scale * sqrt(ss) : 0, dt);
	return 0;
}

/* fk_cublasGemmEx accepts float A, B and C (CUDA_R_32F) in compute types
 * CUBLAS_COMPUTE_32F (68), _32F_FAST_16BF (75) and _32F_FAST_TF32 (77)
 * with CUBLAS_GEMM_DEFAULT, the calls lowrank makes, and emulates the
 * tensor cores' rounding of the inputs; anything else is
 * CUBLAS_STATUS_NOT_SUPPORTED. */
static int fk_cublasGemmEx(void *h, int ta, int tb, int m, int n, int k, const void *alpha, const void *A, int Atype,
                           int lda, const void *B, int Btype, int ldb, const void *beta, void *C, int Ctype, int ldc,
                           int compute, int algo) {
	int bits = compute == 68 ? 23 : compute == 77 ? 10 : compute == 75 ? 7 : -1;
	if (bits < 0 || Atype != 0 || Btype != 0 || Ctype != 0 || algo != -1) {
		int r = fk_enter("cublasGemmEx", L_BLAS);
		return r ? r : BL_NOT_SUPPORTED;
	}
	return fk_gemm(0, "cublasGemmEx", h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, bits);
}

#define FK_BLAS_WRAPPERS(P, T, DT)                                                                                     \
	static int fk_cublas##P##gemm(void *h, int ta, int tb, int m, int n, int k, const T *alpha, const T *A, int lda, \
	                              const T *B, int ldb, const T *beta, T *C, int ldc) {                               \
		return fk_gemm(DT, "cublas" #P "gemm_v2", h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, 52);      \
	}                                                                                                                  \
	static int fk_cublas##P##gemv(void *h, int t, int m, int n, const T *alpha, const T *A, int lda, const T *x,     \
	                              int incx, const T *beta, T *y, int incy) {                                         \
		return fk_gemv(DT, "cublas" #P "gemv_v2", h, t, m, n, alpha, A, lda, x, incx, beta, y, incy);                \
	}                                                                                                                  \
	static int fk_cublas##P##geam(void *h, int ta, int tb, int m, int n, const T *alpha, const T *A, int lda,        \
	                              const T *beta, const T *B, int ldb, T *C, int ldc) {                               \
		return fk_geam(DT, "cublas" #P "geam", h, ta, tb, m, n, alpha, A, lda, beta, B, ldb, C, ldc);                \
	}                                                                                                                  \
	static int fk_cublas##P##dgmm(void *h, int side, int m, int n, const T *A, int lda, const T *x, int incx, T *C,  \
	                              int ldc) {                                                                         \
		return fk_dgmm(DT, "cublas" #P "dgmm", h, side, m, n, A, lda, x, incx, C, ldc);                              \
	}                                                                                                                  \
	static int fk_cublas##P##nrm2(void *h, int n, const T *x, int incx, T *result) {                                 \
		return fk_nrm2(DT, "cublas" #P "nrm2_v2", h, n, x, incx, result);                                            \
	}

FK_BLAS_WRAPPERS(S, float, 0)
FK_BLAS_WRAPPERS(D, double, 1)

/* ====================================================================== */
/* cuSOLVER                                                               */
/* ====================================================================== */

enum { K_GEQRF, K_ORGQR, K_GESVD, K_GESVDJ, K_GESVDP };

static int fk_cusolverDnCreate(void **h) {
	int r = fk_enter("cusolverDnCreate", L_SOLVER);
	if (r) return r;
	*h = fk_new_handle(8);
	return *h ? 0 : 2;
}
static int fk_cusolverDnDestroy(void *h) {
	int r = fk_enter("cusolverDnDestroy", L_OTHER);
	if (!fk_free_handle(h)) return SO_NOT_INITIALIZED;
	return r;
}
static int fk_cusolverDnSetStream(void *h, void *s) {
	int r = fk_enter("cusolverDnSetStream", L_SOLVER);
	(void)s;
	if (r) return r;
	return fk_handle_ok(h) ? 0 : SO_NOT_INITIALIZED;
}
static int fk_cusolverDnCreateGesvdjInfo(void **info) {
	int r = fk_enter("cusolverDnCreateGesvdjInfo", L_SOLVER);
	if (r) return r;
	*info = fk_new_handle(sizeof(fk_gesvdj_info));
	return *info ? 0 : 2;
}
static int fk_cusolverDnDestroyGesvdjInfo(void *info) {
	int r = fk_enter("cusolverDnDestroyGesvdjInfo", L_OTHER);
	if (!fk_free_handle(info)) return SO_INVALID_VALUE;
	return r;
}
static int fk_cusolverDnXgesvdjSetTolerance(void *info, double tol) {
	int r = fk_enter("cusolverDnXgesvdjSetTolerance", L_SOLVER);
	(void)tol;
	if (r) return r;
	return fk_handle_ok(info) ? 0 : SO_INVALID_VALUE;
}
static int fk_cusolverDnXgesvdjSetMaxSweeps(void *info, int sweeps) {
	int r = fk_enter("cusolverDnXgesvdjSetMaxSweeps", L_SOLVER);
	if (r) return r;
	if (!fk_handle_ok(info) || sweeps < 0) return SO_INVALID_VALUE;
	((fk_gesvdj_info *)info)->maxsweeps = sweeps;
	return 0;
}

/* Workspace sizes in elements, as the fake's routines require them. */
static int fk_need(int kind, int m, int n) {
	switch (kind) {
	case K_GEQRF:
	case K_ORGQR: return fk_max(1, n);
	case K_GESVD: return fk_max(1, m + 5 * n);
	}
	return fk_max(1, 2 * m * n);
}
static int fk_reported(int kind, int m, int n) { return fk_lwork[kind] >= 0 ? fk_lwork[kind] : fk_need(kind, m, n); }

/* fk_solver_start checks the handle, the workspace and devInfo, and
 * fills the workspace with NaN, as a routine that uses it would. */
static int fk_solver_start(const char *call, void *h, int kind, int m, int n, void *work, int lwork, int dt,
                           int *info) {
	if (!fk_handle_ok(h)) return SO_NOT_INITIALIZED;
	if (lwork < fk_need(kind, m, n)) {
		fk_violate("%s: lwork %d is below the %d elements the routine needs", call, lwork, fk_need(kind, m, n));
		return SO_INVALID_VALUE;
	}
	if (!fk_in(call, "work", work, (size_t)lwork * fk_es(dt)) || !fk_in(call, "devInfo", info, sizeof(int)))
		return SO_INTERNAL_ERROR;
	fk_spoil(work, lwork, 1, lwork, dt);
	return 0;
}

/* fk_jacobi computes the thin SVD of the column-major m×n matrix a (m ≥ n,
 * leading dimension m) by one-sided Jacobi rotations in double: on return
 * a holds U (orthonormal columns, completed where a singular value is
 * zero), s the singular values in decreasing order and v the n×n V. */
static void fk_jacobi(int m, int n, double *a, double *s, double *v) {
	int i, j, p, q, sweep, *done;
	for (i = 0; i < n * n; i++) v[i] = 0;
	for (i = 0; i < n; i++) v[i + (size_t)i * n] = 1;
	for (sweep = 0; sweep < 100; sweep++) {
		int rotated = 0;
		for (p = 0; p < n - 1; p++) {
			for (q = p + 1; q < n; q++) {
				double al = 0, be = 0, ga = 0, zeta, t, c, sn;
				double *ap = a + (size_t)p * m, *aq = a + (size_t)q * m, *vp = v + (size_t)p * n, *vq = v + (size_t)q * n;
				for (i = 0; i < m; i++) {
					al += ap[i] * ap[i];
					be += aq[i] * aq[i];
					ga += ap[i] * aq[i];
				}
				if (ga == 0 || fabs(ga) <= 1e-15 * sqrt(al) * sqrt(be)) continue;
				rotated = 1;
				zeta = (be - al) / (2 * ga);
				t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1 + zeta * zeta));
				c = 1 / sqrt(1 + t * t);
				sn = c * t;
				for (i = 0; i < m; i++) {
					double x = ap[i], y = aq[i];
					ap[i] = c * x - sn * y;
					aq[i] = sn * x + c * y;
				}
				for (i = 0; i < n; i++) {
					double x = vp[i], y = vq[i];
					vp[i] = c * x - sn * y;
					vq[i] = sn * x + c * y;
				}
			}
		}
		if (!rotated) break;
	}
	for (j = 0; j < n; j++) {
		double ss = 0;
		for (i = 0; i < m; i++) ss += a[i + (size_t)j * m] * a[i + (size_t)j * m];
		s[j] = sqrt(ss);
	}
	/* Sort by decreasing singular value, moving the columns of a and v. */
	for (j = 0; j < n; j++) {
		int best = j;
		for (p = j + 1; p < n; p++)
			if (s[p] > s[best]) best = p;
		if (best != j) {
			double t = s[j];
			s[j] = s[best];
			s[best] = t;
			for (i = 0; i < m; i++) {
				t = a[i + (size_t)j * m];
				a[i + (size_t)j * m] = a[i + (size_t)best * m];
				a[i + (size_t)best * m] = t;
			}
			for (i = 0; i < n; i++) {
				t = v[i + (size_t)j * n];
				v[i + (size_t)j * n] = v[i + (size_t)best * n];
				v[i + (size_t)best * n] = t;
			}
		}
	}
	done = calloc((size_t)fk_max(n, 1), sizeof *done);
	for (j = 0; j < n; j++) {
		if (s[j] > 1e-290) {
			for (i = 0; i < m; i++) a[i + (size_t)j * m] /= s[j];
			done[j] = 1;
		}
	}
	/* Complete U where the singular value is zero: a unit vector with the
	 * other columns projected out (twice). */
	for (j = 0; j < n; j++) {
		int e;
		if (done[j]) continue;
		for (e = 0; e < m; e++) {
			double *w = a + (size_t)j * m, nrm = 0;
			int pass;
			for (i = 0; i < m; i++) w[i] = i == e;
			for (pass = 0; pass < 2; pass++) {
				for (p = 0; p < n; p++) {
					double d = 0, *u = a + (size_t)p * m;
					if (!done[p]) continue;
					for (i = 0; i < m; i++) d += u[i] * w[i];
					for (i = 0; i < m; i++) w[i] -= d * u[i];
				}
			}
			for (i = 0; i < m; i++) nrm += w[i] * w[i];
			nrm = sqrt(nrm);
			if (nrm > 0.5) {
				for (i = 0; i < m; i++) w[i] /= nrm;
				done[j] = 1;
				break;
			}
		}
	}
	free(done);
}

static int fk_gesvd_bufsize(const char *call, void *h, int m, int n, int *lwork) {
	int r = fk_enter(call, L_SOLVER);
	if (r) return r;
	if (!fk_handle_ok(h)) return SO_NOT_INITIALIZED;
	if (m < 0 || n < 0) return SO_INVALID_VALUE;
	*lwork = fk_reported(K_GESVD, m, n);
	return 0;
}

static int fk_gesvd(int dt, const char *call, void *h, signed char jobu, signed char jobvt, int m, int n, void *A,
                    int lda, void *S, void *U, int ldu, void *VT, int ldvt, void *work, int lwork, int *info) {
	int r = fk_enter(call, L_SOLVER), i, j;
	size_t es = fk_es(dt);
	double *a, *s, *v;
	if (r) return r;
	if (jobu == 'A' || jobu == 'O' || jobvt == 'A' || jobvt == 'O') return SO_NOT_SUPPORTED;
	if ((jobu != 'S' && jobu != 'N') || (jobvt != 'S' && jobvt != 'N')) return SO_INVALID_VALUE;
	/* cuSOLVER: "gesvd only supports m >= n". */
	if (m < n || n < 0 || lda < fk_max(1, m) || (jobu == 'S' && ldu < fk_max(1, m)) ||
	    (jobvt == 'S' && ldvt < fk_max(1, n)))
		return SO_INVALID_VALUE;
	if ((r = fk_solver_start(call, h, K_GESVD, m, n, work, lwork, dt, info)) != 0) return r;
	if (!fk_in(call, "A", A, fk_ext(m, n, lda) * es) || !fk_in(call, "S", S, (size_t)n * es) ||
	    (jobu == 'S' && !fk_in(call, "U", U, fk_ext(m, n, ldu) * es)) ||
	    (jobvt == 'S' && !fk_in(call, "VT", VT, fk_ext(n, n, ldvt) * es)))
		return SO_INTERNAL_ERROR;
	if (fk_devinfo[K_GESVD] != 0) {
		fk_spoil(A, m, n, lda, dt);
		fk_spoil(S, n, 1, n, dt);
		if (jobu == 'S') fk_spoil(U, m, n, ldu, dt);
		if (jobvt == 'S') fk_spoil(VT, n, n, ldvt, dt);
		*info = fk_devinfo[K_GESVD];
		return 0;
	}
	a = fk_load(A, m, n, lda, dt);
	s = malloc((size_t)fk_max(n, 1) * sizeof *s);
	v = malloc((size_t)fk_max(n * n, 1) * sizeof *v);
	fk_jacobi(m, n, a, s, v);
	fk_store(S, n, s, n, 1, dt);
	if (jobu == 'S') fk_store(U, ldu, a, m, n, dt);
	if (jobvt == 'S')
		for (j = 0; j < n; j++)
			for (i = 0; i < n; i++) fk_st(VT, i + (size_t)j * ldvt, v[j + (size_t)i * n], dt);
	fk_spoil(A, m, n, lda, dt); /* A is destroyed */
	free(a);
	free(s);
	free(v);
	*info = 0;
	return 0;
}

static int fk_gesvdj_bufsize(const char *call, void *h, int jobz, int econ, int m, int n, int *lwork, void *params) {
	int r = fk_enter(call, L_SOLVER);
	(void)jobz;
	(void)econ;
	if (r) return r;
	if (!fk_handle_ok(h) || !fk_handle_ok(params)) return SO_NOT_INITIALIZED;
	if (m < 0 || n < 0) return SO_INVALID_VALUE;
	*lwork = fk_reported(K_GESVDJ, m, n);
	return 0;
}

static int fk_gesvdj(int dt, const char *call, void *h, int jobz, int econ, int m, int n, void *A, int lda, void *S,
                     void *U, int ldu, void *V, int ldv, void *work, int lwork, int *info, void *params) {
	int r = fk_enter(call, L_SOLVER), p = m < n ? m : n, i, j, tall = m >= n;
	size_t es = fk_es(dt);
	double *a, *s, *v;
	if (r) return r;
	if (!fk_handle_ok(params)) return SO_INVALID_VALUE;
	if (jobz != 1 || econ != 1) return SO_NOT_SUPPORTED; /* the fake does the economy SVD with vectors only */
	if (m < 0 || n < 0 || lda < fk_max(1, m) || ldu < fk_max(1, m) || ldv < fk_max(1, n)) return SO_INVALID_VALUE;
	if ((r = fk_solver_start(call, h, K_GESVDJ, m, n, work, lwork, dt, info)) != 0) return r;
	if (!fk_in(call, "A", A, fk_ext(m, n, lda) * es) || !fk_in(call, "S", S, (size_t)p * es) ||
	    !fk_in(call, "U", U, fk_ext(m, p, ldu) * es) || !fk_in(call, "V", V, fk_ext(n, p, ldv) * es))
		return SO_INTERNAL_ERROR;
	if (fk_devinfo[K_GESVDJ] != 0) {
		fk_spoil(A, m, n, lda, dt);
		fk_spoil(S, p, 1, p, dt);
		fk_spoil(U, m, p, ldu, dt);
		fk_spoil(V, n, p, ldv, dt);
		*info = fk_devinfo[K_GESVDJ];
		return 0;
	}
	/* For m < n, the SVD of Aᵀ = U'·S·V'ᵀ gives U = V' and V = U'. */
	if (tall) {
		a = fk_load(A, m, n, lda, dt);
	} else {
		a = malloc((size_t)n * m * sizeof *a);
		for (j = 0; j < n; j++)
			for (i = 0; i < m; i++) a[j + (size_t)i * n] = fk_ld(A, i + (size_t)j * lda, dt);
	}
	s = malloc((size_t)fk_max(p, 1) * sizeof *s);
	v = malloc((size_t)fk_max(p * p, 1) * sizeof *v);
	fk_jacobi(tall ? m : n, p, a, s, v);
	fk_store(S, p, s, p, 1, dt);
	if (tall) {
		fk_store(U, ldu, a, m, p, dt);
		fk_store(V, ldv, v, n, p, dt);
	} else {
		fk_store(U, ldu, v, m, p, dt);
		fk_store(V, ldv, a, n, p, dt);
	}
	fk_spoil(A, m, n, lda, dt);
	free(a);
	free(s);
	free(v);
	*info = 0;
	return 0;
}

static int fk_geqrf_bufsize(const char *call, void *h, int m, int n, int lda, int *lwork) {
	int r = fk_enter(call, L_SOLVER);
	if (r) return r;
	if (!fk_handle_ok(h)) return SO_NOT_INITIALIZED;
	if (m < 0 || n < 0 || lda < fk_max(1, m)) return SO_INVALID_VALUE;
	*lwork = fk_reported(K_GEQRF, m, n);
	return 0;
}

/* fk_geqrf: Householder QR as LAPACK's geqr2 (v(0) = 1 implicit). */
static int fk_geqrf(int dt, const char *call, void *h, int m, int n, void *A, int lda, void *tau, void *work,
                    int lwork, int *info) {
	int r = fk_enter(call, L_SOLVER), kmax = m < n ? m : n, i, j, c;
	size_t es = fk_es(dt);
	double *a, *t;
	if (r) return r;
	if (m < 0 || n < 0 || lda < fk_max(1, m)) return SO_INVALID_VALUE;
	if ((r = fk_solver_start(call, h, K_GEQRF, m, n, work, lwork, dt, info)) != 0) return r;
	if (!fk_in(call, "A", A, fk_ext(m, n, lda) * es) || !fk_in(call, "tau", tau, (size_t)kmax * es))
		return SO_INTERNAL_ERROR;
	if (fk_devinfo[K_GEQRF] != 0) {
		*info = fk_devinfo[K_GEQRF];
		return 0;
	}
	a = fk_load(A, m, n, lda, dt);
	t = malloc((size_t)fk_max(kmax, 1) * sizeof *t);
	for (j = 0; j < kmax; j++) {
		double *x = a + j + (size_t)j * m, alpha = x[0], xn = 0, beta, sc;
		int len = m - j;
		for (i = 1; i < len; i++) xn += x[i] * x[i];
		xn = sqrt(xn);
		if (xn == 0) {
			t[j] = 0;
			continue;
		}
		beta = -copysign(hypot(alpha, xn), alpha);
		t[j] = (beta - alpha) / beta;
		sc = 1 / (alpha - beta);
		for (i = 1; i < len; i++) x[i] *= sc;
		x[0] = beta;
		for (c = j + 1; c < n; c++) {
			double *y = a + j + (size_t)c * m, w = y[0];
			for (i = 1; i < len; i++) w += x[i] * y[i];
			w *= t[j];
			y[0] -= w;
			for (i = 1; i < len; i++) y[i] -= w * x[i];
		}
	}
	fk_store(A, lda, a, m, n, dt);
	fk_store(tau, kmax, t, kmax, 1, dt);
	free(a);
	free(t);
	*info = 0;
	return 0;
}

static int fk_orgqr_bufsize(const char *call, void *h, int m, int n, int k, int lda, int *lwork) {
	int r = fk_enter(call, L_SOLVER);
	if (r) return r;
	if (!fk_handle_ok(h)) return SO_NOT_INITIALIZED;
	if (m < n || n < k || k < 0 || lda < fk_max(1, m)) return SO_INVALID_VALUE;
	*lwork = fk_reported(K_ORGQR, m, n);
	return 0;
}

/* fk_orgqr builds the m×n Q of k reflectors from geqrf, as LAPACK's org2r. */
static int fk_orgqr(int dt, const char *call, void *h, int m, int n, int k, void *A, int lda, const void *tau,
                    void *work, int lwork, int *info) {
	int r = fk_enter(call, L_SOLVER), i, j, l, c;
	size_t es = fk_es(dt);
	double *a, *t;
	if (r) return r;
	if (m < n || n < k || k < 0 || lda < fk_max(1, m)) return SO_INVALID_VALUE;
	if ((r = fk_solver_start(call, h, K_ORGQR, m, n, work, lwork, dt, info)) != 0) return r;
	if (!fk_in(call, "A", A, fk_ext(m, n, lda) * es) || !fk_in(call, "tau", tau, (size_t)k * es))
		return SO_INTERNAL_ERROR;
	if (fk_devinfo[K_ORGQR] != 0) {
		fk_spoil(A, m, n, lda, dt);
		*info = fk_devinfo[K_ORGQR];
		return 0;
	}
	a = fk_load(A, m, n, lda, dt);
	t = malloc((size_t)fk_max(k, 1) * sizeof *t);
	for (i = 0; i < k; i++) t[i] = fk_ld(tau, i, dt);
	for (j = k; j < n; j++) {
		for (l = 0; l < m; l++) a[l + (size_t)j * m] = 0;
		a[j + (size_t)j * m] = 1;
	}
	for (i = k - 1; i >= 0; i--) {
		double *vi = a + (size_t)i * m;
		if (i < n - 1) {
			vi[i] = 1;
			for (c = i + 1; c < n; c++) {
				double *y = a + (size_t)c * m, w = 0;
				for (l = i; l < m; l++) w += vi[l] * y[l];
				w *= t[i];
				for (l = i; l < m; l++) y[l] -= w * vi[l];
			}
		}
		for (l = i + 1; l < m; l++) vi[l] *= -t[i];
		vi[i] = 1 - t[i];
		for (l = 0; l < i; l++) vi[l] = 0;
	}
	fk_store(A, lda, a, m, n, dt);
	free(a);
	free(t);
	*info = 0;
	return 0;
}

#define FK_SOLVER_WRAPPERS(P, T, DT)                                                                                    \
	static int fk_cusolverDn##P##geqrf_bufferSize(void *h, int m, int n, T *A, int lda, int *lwork) {                  \
		(void)A;                                                                                                        \
		return fk_geqrf_bufsize("cusolverDn" #P "geqrf_bufferSize", h, m, n, lda, lwork);                              \
	}                                                                                                                   \
	static int fk_cusolverDn##P##geqrf(void *h, int m, int n, T *A, int lda, T *tau, T *work, int lwork, int *info) {  \
		return fk_geqrf(DT, "cusolverDn" #P "geqrf", h, m, n, A, lda, tau, work, lwork, info);                         \
	}                                                                                                                   \
	static int fk_cusolverDn##P##orgqr_bufferSize(void *h, int m, int n, int k, const T *A, int lda, const T *tau,     \
	                                              int *lwork) {                                                         \
		(void)A;                                                                                                        \
		(void)tau;                                                                                                      \
		return fk_orgqr_bufsize("cusolverDn" #P "orgqr_bufferSize", h, m, n, k, lda, lwork);                           \
	}                                                                                                                   \
	static int fk_cusolverDn##P##orgqr(void *h, int m, int n, int k, T *A, int lda, const T *tau, T *work, int lwork,  \
	                                   int *info) {                                                                     \
		return fk_orgqr(DT, "cusolverDn" #P "orgqr", h, m, n, k, A, lda, tau, work, lwork, info);                      \
	}                                                                                                                   \
	static int fk_cusolverDn##P##gesvd_bufferSize(void *h, int m, int n, int *lwork) {                                 \
		return fk_gesvd_bufsize("cusolverDn" #P "gesvd_bufferSize", h, m, n, lwork);                                   \
	}                                                                                                                   \
	static int fk_cusolverDn##P##gesvd(void *h, signed char jobu, signed char jobvt, int m, int n, T *A, int lda, T *S, \
	                                   T *U, int ldu, T *VT, int ldvt, T *work, int lwork, T *rwork, int *info) {       \
		(void)rwork;                                                                                                    \
		return fk_gesvd(DT, "cusolverDn" #P "gesvd", h, jobu, jobvt, m, n, A, lda, S, U, ldu, VT, ldvt, work, lwork,   \
		                info);                                                                                          \
	}                                                                                                                   \
	static int fk_cusolverDn##P##gesvdj_bufferSize(void *h, int jobz, int econ, int m, int n, const T *A, int lda,     \
	                                               const T *S, const T *U, int ldu, const T *V, int ldv, int *lwork,    \
	                                               void *params) {                                                      \
		(void)A;                                                                                                        \
		(void)lda;                                                                                                      \
		(void)S;                                                                                                        \
		(void)U;                                                                                                        \
		(void)ldu;                                                                                                      \
		(void)V;                                                                                                        \
		(void)ldv;                                                                                                      \
		return fk_gesvdj_bufsize("cusolverDn" #P "gesvdj_bufferSize", h, jobz, econ, m, n, lwork, params);             \
	}                                                                                                                   \
	static int fk_cusolverDn##P##gesvdj(void *h, int jobz, int econ, int m, int n, T *A, int lda, T *S, T *U, int ldu,  \
	                                    T *V, int ldv, T *work, int lwork, int *info, void *params) {                   \
		return fk_gesvdj(DT, "cusolverDn" #P "gesvdj", h, jobz, econ, m, n, A, lda, S, U, ldu, V, ldv, work, lwork,    \
		                 info, params);                                                                                 \
	}

FK_SOLVER_WRAPPERS(S, float, 0)
FK_SOLVER_WRAPPERS(D, double, 1)


/* cusolverDnXgesvdp (the 64-bit API): the economy SVD with vectors of an
 * m×n A, m ≥ n, returning V (not Vᵀ) like gesvdj. Its last argument,
 * h_err_sigma, is a host pointer that cuSOLVER may write after the call
 * returns: the fake requires pinned memory there and writes it only at the
 * next synchronization point, so a caller that reads it early, or passes
 * Go memory, is caught. */
static int fk_cusolverDnCreateParams(void **p) {
	int r = fk_enter("cusolverDnCreateParams", L_SOLVER);
	if (r) return r;
	*p = fk_new_handle(8);
	return *p ? 0 : 2;
}
static int fk_cusolverDnDestroyParams(void *p) {
	int r = fk_enter("cusolverDnDestroyParams", L_OTHER);
	if (!fk_free_handle(p)) return SO_INVALID_VALUE;
	return r;
}
static size_t fk_gesvdp_dev_bytes(int64_t m, int64_t n, int dt) { return (size_t)(2 * m * n + 1) * fk_es(dt); }
#define FK_GESVDP_HOST_BYTES 64
static int fk_gesvdp_types(int a, int s, int u, int v, int c) {
	return (a == 0 || a == 1) && s == a && u == a && v == a && c == a;
}
static int fk_cusolverDnXgesvdp_bufferSize(void *h, void *params, int jobz, int econ, int64_t m, int64_t n, int ta,
                                           const void *A, int64_t lda, int ts, const void *S, int tu, const void *U,
                                           int64_t ldu, int tv, const void *V, int64_t ldv, int tc, size_t *dev,
                                           size_t *host) {
	int r = fk_enter("cusolverDnXgesvdp_bufferSize", L_SOLVER);
	(void)A, (void)lda, (void)S, (void)U, (void)ldu, (void)V, (void)ldv;
	if (r) return r;
	if (!fk_handle_ok(h) || !fk_handle_ok(params)) return SO_NOT_INITIALIZED;
	if (jobz != 1 || econ != 1) return SO_NOT_SUPPORTED;
	if (m < n || n < 0 || !fk_gesvdp_types(ta, ts, tu, tv, tc)) return SO_INVALID_VALUE;
	*dev = fk_lwork[K_GESVDP] >= 0 ? (size_t)fk_lwork[K_GESVDP] : fk_gesvdp_dev_bytes(m, n, ta);
	*host = FK_GESVDP_HOST_BYTES;
	return 0;
}
static int fk_cusolverDnXgesvdp(void *h, void *params, int jobz, int econ, int64_t m64, int64_t n64, int ta, void *A,
                                int64_t lda64, int ts, void *S, int tu, void *U, int64_t ldu64, int tv, void *V,
                                int64_t ldv64, int tc, void *work, size_t devBytes, void *hostWork, size_t hostBytes,
                                int *info, double *errSigma) {
	static const char *call = "cusolverDnXgesvdp";
	int r = fk_enter(call, L_SOLVER), m = (int)m64, n = (int)n64, lda = (int)lda64, ldu = (int)ldu64,
	    ldv = (int)ldv64, dt = ta;
	size_t es;
	double *a, *s, *v, *est;
	if (r) return r;
	if (!fk_handle_ok(h) || !fk_handle_ok(params)) return SO_NOT_INITIALIZED;
	if (jobz != 1 || econ != 1) return SO_NOT_SUPPORTED;
	if (m < n || n < 0 || !fk_gesvdp_types(ta, ts, tu, tv, tc) || lda < fk_max(1, m) || ldu < fk_max(1, m) ||
	    ldv < fk_max(1, n))
		return SO_INVALID_VALUE;
	es = fk_es(dt);
	if (devBytes < fk_gesvdp_dev_bytes(m, n, dt) || hostBytes < FK_GESVDP_HOST_BYTES || !hostWork) {
		fk_violate("%s: workspace of %zu device and %zu host bytes is below the %zu and %d it needs", call, devBytes,
		           hostBytes, fk_gesvdp_dev_bytes(m, n, dt), FK_GESVDP_HOST_BYTES);
		return SO_INVALID_VALUE;
	}
	if (!fk_in(call, "work", work, devBytes) || !fk_in(call, "devInfo", info, sizeof(int)) ||
	    !fk_in(call, "A", A, fk_ext(m, n, lda) * es) || !fk_in(call, "S", S, (size_t)n * es) ||
	    !fk_in(call, "U", U, fk_ext(m, n, ldu) * es) || !fk_in(call, "V", V, fk_ext(n, n, ldv) * es))
		return SO_INTERNAL_ERROR;
	if (!fk_in_pinned(call, "h_err_sigma", errSigma, sizeof(double))) return SO_INVALID_VALUE;
	fk_spoil(work, (int)(devBytes / es), 1, (int)(devBytes / es), dt);
	memset(hostWork, 0xff, hostBytes);
	est = malloc(sizeof *est);
	if (fk_devinfo[K_GESVDP] != 0) {
		fk_spoil(A, m, n, lda, dt);
		fk_spoil(S, n, 1, n, dt);
		fk_spoil(U, m, n, ldu, dt);
		fk_spoil(V, n, n, ldv, dt);
		*info = fk_devinfo[K_GESVDP];
		*est = NAN;
	} else {
		a = fk_load(A, m, n, lda, dt);
		s = malloc((size_t)fk_max(n, 1) * sizeof *s);
		v = malloc((size_t)fk_max(n * n, 1) * sizeof *v);
		fk_jacobi(m, n, a, s, v);
		fk_store(S, n, s, n, 1, dt);
		fk_store(U, ldu, a, m, n, dt);
		fk_store(V, ldv, v, n, n, dt);
		fk_spoil(A, m, n, lda, dt);
		*est = (dt ? 2.2e-16 : 1.2e-7) * (n > 0 ? s[0] : 0);
		free(a);
		free(s);
		free(v);
		*info = 0;
	}
	/* The estimate reaches the host at the next synchronization point. */
	fk_settle(errSigma, sizeof(double));
	memset(errSigma, 0xff, sizeof(double));
	fk_push(1, (char *)errSigma, (char *)est, (char *)est, sizeof(double));
	return 0;
}

/* ====================================================================== */
/* NVRTC: present, so that the loader finds it, but unable to compile.    */
/* ====================================================================== */

static const char *fk_nvrtcGetErrorString(int r) {
	(void)r;
	return "NVRTC_FAKE";
}
static int fk_nvrtc_unavailable(void) { return NV_INTERNAL_ERROR; }

/* ====================================================================== */
/* The symbol table                                                       */
/* ====================================================================== */

struct fk_entry {
	const char *name;
	void *fn;
};
#define E(name, fn) {name, (void *)fn}
static const struct fk_entry fk_symbols[] = {
	E("cuInit", fk_cuInit),
	E("cuDriverGetVersion", fk_cuDriverGetVersion),
	E("cuDeviceGetCount", fk_cuDeviceGetCount),
	E("cuDeviceGet", fk_cuDeviceGet),
	E("cuDeviceGetName", fk_cuDeviceGetName),
	E("cuDeviceGetAttribute", fk_cuDeviceGetAttribute),
	E("cuDeviceTotalMem_v2", fk_cuDeviceTotalMem),
	E("cuDevicePrimaryCtxRetain", fk_cuDevicePrimaryCtxRetain),
	E("cuDevicePrimaryCtxRelease_v2", fk_cuDevicePrimaryCtxRelease),
	E("cuCtxSetCurrent", fk_cuCtxSetCurrent),
	E("cuCtxSynchronize", fk_cuCtxSynchronize),
	E("cuMemAlloc_v2", fk_cuMemAlloc),
	E("cuMemFree_v2", fk_cuMemFree),
	E("cuMemGetInfo_v2", fk_cuMemGetInfo),
	E("cuMemAllocHost_v2", fk_cuMemAllocHost),
	E("cuMemFreeHost", fk_cuMemFreeHost),
	E("cuMemcpyHtoDAsync_v2", fk_cuMemcpyHtoDAsync),
	E("cuMemcpyDtoHAsync_v2", fk_cuMemcpyDtoHAsync),
	E("cuMemcpyDtoDAsync_v2", fk_cuMemcpyDtoDAsync),
	E("cuMemsetD32Async", fk_cuMemsetD32Async),
	E("cuStreamCreate", fk_cuStreamCreate),
	E("cuStreamDestroy_v2", fk_cuStreamDestroy),
	E("cuStreamSynchronize", fk_cuStreamSynchronize),
	E("cuEventCreate", fk_cuEventCreate),
	E("cuEventRecord", fk_cuEventRecord),
	E("cuEventSynchronize", fk_cuEventSynchronize),
	E("cuEventElapsedTime", fk_cuEventElapsedTime),
	E("cuEventDestroy_v2", fk_cuEventDestroy),
	E("cuModuleLoadData", fk_unsupported),
	E("cuModuleGetFunction", fk_unsupported),
	E("cuModuleUnload", fk_unsupported),
	E("cuLaunchKernel", fk_unsupported),
	E("cuGetErrorName", fk_cuGetErrorName),

	E("cublasCreate_v2", fk_cublasCreate),
	E("cublasDestroy_v2", fk_cublasDestroy),
	E("cublasSetStream_v2", fk_cublasSetStream),
	E("cublasSetPointerMode_v2", fk_cublasSetPointerMode),
	E("cublasSetMathMode", fk_cublasSetMathMode),
	E("cublasSgemm_v2", fk_cublasSgemm),
	E("cublasDgemm_v2", fk_cublasDgemm),
	E("cublasGemmEx", fk_cublasGemmEx),
	E("cublasSgemv_v2", fk_cublasSgemv),
	E("cublasDgemv_v2", fk_cublasDgemv),
	E("cublasSgeam", fk_cublasSgeam),
	E("cublasDgeam", fk_cublasDgeam),
	E("cublasSdgmm", fk_cublasSdgmm),
	E("cublasDdgmm", fk_cublasDdgmm),
	E("cublasSnrm2_v2", fk_cublasSnrm2),
	E("cublasDnrm2_v2", fk_cublasDnrm2),

	E("cusolverDnCreate", fk_cusolverDnCreate),
	E("cusolverDnDestroy", fk_cusolverDnDestroy),
	E("cusolverDnSetStream", fk_cusolverDnSetStream),
	E("cusolverDnSgeqrf_bufferSize", fk_cusolverDnSgeqrf_bufferSize),
	E("cusolverDnDgeqrf_bufferSize", fk_cusolverDnDgeqrf_bufferSize),
	E("cusolverDnSgeqrf", fk_cusolverDnSgeqrf),
	E("cusolverDnDgeqrf", fk_cusolverDnDgeqrf),
	E("cusolverDnSorgqr_bufferSize", fk_cusolverDnSorgqr_bufferSize),
	E("cusolverDnDorgqr_bufferSize", fk_cusolverDnDorgqr_bufferSize),
	E("cusolverDnSorgqr", fk_cusolverDnSorgqr),
	E("cusolverDnDorgqr", fk_cusolverDnDorgqr),
	E("cusolverDnSgesvd_bufferSize", fk_cusolverDnSgesvd_bufferSize),
	E("cusolverDnDgesvd_bufferSize", fk_cusolverDnDgesvd_bufferSize),
	E("cusolverDnSgesvd", fk_cusolverDnSgesvd),
	E("cusolverDnDgesvd", fk_cusolverDnDgesvd),
	E("cusolverDnCreateGesvdjInfo", fk_cusolverDnCreateGesvdjInfo),
	E("cusolverDnDestroyGesvdjInfo", fk_cusolverDnDestroyGesvdjInfo),
	E("cusolverDnXgesvdjSetTolerance", fk_cusolverDnXgesvdjSetTolerance),
	E("cusolverDnXgesvdjSetMaxSweeps", fk_cusolverDnXgesvdjSetMaxSweeps),
	E("cusolverDnSgesvdj_bufferSize", fk_cusolverDnSgesvdj_bufferSize),
	E("cusolverDnDgesvdj_bufferSize", fk_cusolverDnDgesvdj_bufferSize),
	E("cusolverDnSgesvdj", fk_cusolverDnSgesvdj),
	E("cusolverDnDgesvdj", fk_cusolverDnDgesvdj),
	E("cusolverDnCreateParams", fk_cusolverDnCreateParams),
	E("cusolverDnDestroyParams", fk_cusolverDnDestroyParams),
	E("cusolverDnXgesvdp_bufferSize", fk_cusolverDnXgesvdp_bufferSize),
	E("cusolverDnXgesvdp", fk_cusolverDnXgesvdp),

	E("nvrtcGetErrorString", fk_nvrtcGetErrorString),
	E("nvrtcCreateProgram", fk_nvrtc_unavailable),
	E("nvrtcDestroyProgram", fk_nvrtc_unavailable),
	E("nvrtcCompileProgram", fk_nvrtc_unavailable),
	E("nvrtcGetPTXSize", fk_nvrtc_unavailable),
	E("nvrtcGetPTX", fk_nvrtc_unavailable),
	E("nvrtcGetProgramLogSize", fk_nvrtc_unavailable),
	E("nvrtcGetProgramLog", fk_nvrtc_unavailable),
	{0, 0},
};

/* ====================================================================== */
/* Version calls: each library reports the version of the CUDA release   */
/* its soname's major belongs to (fk_version_sym).                        */
/* ====================================================================== */

#define FK_PROP(NAME, MAJ, MIN, PAT)                                                                                   \
	static int fk_##NAME##_##MAJ(int type, int *v) {                                                                    \
		*v = type == 0 ? MAJ : type == 1 ? MIN : PAT;                                                                   \
		return 0;                                                                                                       \
	}
#define FK_VER(NAME, MAJ, MIN)                                                                                         \
	static int fk_##NAME##_##MAJ(int *a, int *b) {                                                                      \
		*a = MAJ;                                                                                                       \
		*b = MIN;                                                                                                       \
		return 0;                                                                                                       \
	}
FK_PROP(cublasGetProperty, 11, 11, 3)
FK_PROP(cublasGetProperty, 12, 9, 1)
FK_PROP(cublasGetProperty, 13, 0, 2)
FK_PROP(cublasLtGetProperty, 11, 11, 3)
FK_PROP(cublasLtGetProperty, 12, 9, 1)
FK_PROP(cublasLtGetProperty, 13, 0, 2)
FK_PROP(cusparseGetProperty, 11, 7, 5)
FK_PROP(cusparseGetProperty, 12, 5, 10)
FK_PROP(cusolverGetProperty, 11, 7, 5)
FK_PROP(cusolverGetProperty, 12, 0, 4)
FK_VER(nvrtcVersion, 11, 8)
FK_VER(nvrtcVersion, 12, 9)
FK_VER(nvrtcVersion, 13, 0)
FK_VER(nvJitLinkVersion, 12, 9)
FK_VER(nvJitLinkVersion, 13, 0)

static const struct {
	const char *name;
	int major;
	void *fn;
} fk_versions[] = {
	{"cublasGetProperty", 11, (void *)fk_cublasGetProperty_11},
	{"cublasGetProperty", 12, (void *)fk_cublasGetProperty_12},
	{"cublasGetProperty", 13, (void *)fk_cublasGetProperty_13},
	{"cublasLtGetProperty", 11, (void *)fk_cublasLtGetProperty_11},
	{"cublasLtGetProperty", 12, (void *)fk_cublasLtGetProperty_12},
	{"cublasLtGetProperty", 13, (void *)fk_cublasLtGetProperty_13},
	{"cusparseGetProperty", 11, (void *)fk_cusparseGetProperty_11},
	{"cusparseGetProperty", 12, (void *)fk_cusparseGetProperty_12},
	{"cusolverGetProperty", 11, (void *)fk_cusolverGetProperty_11},
	{"cusolverGetProperty", 12, (void *)fk_cusolverGetProperty_12},
	{"nvrtcVersion", 11, (void *)fk_nvrtcVersion_11},
	{"nvrtcVersion", 12, (void *)fk_nvrtcVersion_12},
	{"nvrtcVersion", 13, (void *)fk_nvrtcVersion_13},
	{"nvJitLinkVersion", 12, (void *)fk_nvJitLinkVersion_12},
	{"nvJitLinkVersion", 13, (void *)fk_nvJitLinkVersion_13},
	{0, 0, 0},
};

void *fk_version_sym(const char *name, int major) {
	int i;
	for (i = 0; fk_versions[i].name; i++)
		if (fk_versions[i].major == major && strcmp(fk_versions[i].name, name) == 0) return fk_versions[i].fn;
	return 0;
}

void *fk_sym(const char *name) {
	const struct fk_entry *e;
	for (e = fk_symbols; e->name; e++)
		if (strcmp(e->name, name) == 0) return e->fn;
	return 0;
}
