//go:build cgo && amd64 && !purego

package bf16

/*
#cgo CFLAGS: -O3 -fno-strict-aliasing
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

// The AVX-512 BF16 intrinsics need GCC 10 or clang 9; with an older
// compiler the package builds without the kernel (lr_bf16_built returns 0
// and Available reports false; so does CGO_CFLAGS=-DLR_NO_BF16). The
// instruction sets are enabled per function (LR_TARGET), not for the whole
// file, so that nothing here runs AVX-512 code before Available has
// checked the CPU.
#if !defined(LR_NO_BF16) && ((defined(__clang__) && __clang_major__ >= 9) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))
#define LR_BF16 1
#endif

#ifndef LR_BF16
static int lr_bf16_built(void) { return 0; }
static uint16_t lr_bf16(float f) { (void)f; return 0; }
static void lr_bf16_rows(const float *src, long lds, long i0, long i1, long cols, uint16_t *dst, long ldd) {}
static void lr_bf16_cols(const float *src, long lds, long rows, long j0, long j1, uint16_t *dst, long ldd) {}
static void lr_bf16_pack(const float *x, long ldx, int trans, long k, long n, uint16_t *xp, long np) {}
static void lr_bf16_gemm_n(const float *a, long lda, long i0, long i1, long k, const uint16_t *xp, long np,
                           long n, float *c, long ldc, float alpha, float beta, long kcp, uint16_t *buf) {}
static void lr_bf16_gemm_t(const float *b, long ldb, long m, long j0, long j1, const uint16_t *at, long ldat, long n,
                           float *c, long ldc, float alpha, float beta, long kcp, uint16_t *xp, float *tile) {}
#else
#include <immintrin.h>
#define LR_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

static int lr_bf16_built(void) { return 1; }

// lr_bf16 rounds one float32 to bfloat16 exactly as VCVTNEPS2BF16 does:
// denormal inputs as signed zero (DAZ), NaN kept quiet, otherwise round
// to nearest, ties to even (an overflow rounds to infinity).
LR_TARGET static inline uint16_t lr_bf16(float f) {
	uint32_t b;
	memcpy(&b, &f, 4);
	if ((b & 0x7f800000u) == 0) {
		return (uint16_t)((b >> 16) & 0x8000u);
	}
	if ((b & 0x7fffffffu) > 0x7f800000u) {
		return (uint16_t)((b >> 16) | 0x0040u);
	}
	b += 0x7fffu + ((b >> 16) & 1u);
	return (uint16_t)(b >> 16);
}

// lr_bf16_rows rounds rows [i0, i1) of src (cols columns, row stride lds)
// into dst (row stride ldd, even), zeroing the pad column of an odd cols.
LR_TARGET static void lr_bf16_rows(const float *src, long lds, long i0, long i1, long cols, uint16_t *dst, long ldd) {
	for (long i = i0; i < i1; i++) {
		const float *s = src + i * lds;
		uint16_t *d = dst + i * ldd;
		long j = 0;
		for (; j + 32 <= cols; j += 32) {
			__m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + j + 16), _mm512_loadu_ps(s + j));
			_mm512_storeu_si512((void *)(d + j), (__m512i)v);
		}
		for (; j < cols; j++) {
			d[j] = lr_bf16(s[j]);
		}
		for (; j < ldd; j++) {
			d[j] = 0;
		}
	}
}

// lr_bf16_cols rounds columns [j0, j1) of src (rows rows, row stride lds)
// into rows [j0, j1) of dst = srcᵀ (row stride ldd, even), by 32×32 tiles
// so that both sides are read and written a cache line at a time.
LR_TARGET static void lr_bf16_cols(const float *src, long lds, long rows, long j0, long j1, uint16_t *dst, long ldd) {
	enum { T = 32 };
	uint16_t tile[T][T];
	for (long jb = j0; jb < j1; jb += T) {
		long je = jb + T < j1 ? jb + T : j1;
		for (long ib = 0; ib < rows; ib += T) {
			long ie = ib + T < rows ? ib + T : rows;
			for (long i = ib; i < ie; i++) {
				const float *s = src + i * lds;
				for (long j = jb; j < je; j++) {
					tile[j - jb][i - ib] = lr_bf16(s[j]);
				}
			}
			for (long j = jb; j < je; j++) {
				memcpy(dst + j * ldd + ib, tile[j - jb], (size_t)(ie - ib) * 2);
			}
		}
		for (long j = jb; j < je; j++) {
			for (long i = rows; i < ldd; i++) {
				dst[j * ldd + i] = 0;
			}
		}
	}
}

// lr_bf16_pack rounds op(x) (k×n; x is n×k when trans) into pairs along
// k: xp[(p·np + j)·2 + t] = op(x)[2p + t][j], zero past k and n; np is n
// rounded up to a multiple of 16.
LR_TARGET static void lr_bf16_pairs(const float *b, long ldb, long m, long p0, long pe, long j0, long w, uint16_t *xp, long np);
LR_TARGET static void lr_bf16_pack(const float *x, long ldx, int trans, long k, long n, uint16_t *xp, long np) {
	long kp = (k + 1) / 2;
	if (!trans && np % 16 == 0) {
		lr_bf16_pairs(x, ldx, k, 0, kp, 0, n, xp, np); // the same layout, 16 columns at a time
		return;
	}
	for (long p = 0; p < kp; p++) {
		uint16_t *d = xp + p * np * 2;
		for (long t = 0; t < 2; t++) {
			long r = 2 * p + t;
			for (long j = 0; j < np; j++) {
				uint16_t v = 0;
				if (r < k && j < n) {
					v = lr_bf16(trans ? x[j * ldx + r] : x[r * ldx + j]);
				}
				d[2 * j + t] = v;
			}
		}
	}
}

// lr_pf describes the cache lines a kernel prefetches while it computes,
// one (two with pair) per pair of the inner dimension: at step p the line
// at base + (p >> sh)·step + (p & mask)·rowstride (and pair bytes on). It
// brings in the float32 block the next rounding reads, so that the
// rounding does not wait on memory.
typedef struct {
	const char *base;
	long step, mask, rowstride, pair;
	int sh;
} lr_pf;

// A kernel computes an R×(16·NV) block of C from R rows of A (kp pairs
// along the inner dimension, row stride lda) and one panel of xp (row
// stride np pairs), keeping the R·NV accumulators in registers, then
//   first block: C = alpha·acc + beta·C  (C not read when beta = 0)
//   later ones:  C = C + alpha·acc
// storing only the first n columns of the panel (mask on the last vector).
#define LR_KERNEL(R, NV)                                                                            \
	LR_TARGET static void lr_k##R##x##NV(const uint16_t *a, long lda, long kp, const uint16_t *xp, long np, \
	                           float *c, long ldc, long n, float alpha, float beta, int first,      \
	                           const lr_pf *pf) {                                                   \
		__m512 acc[R][NV];                                                                        \
		_Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                       \
		    _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps(); \
		for (long p = 0; p < kp; p++) {                                                           \
			const uint16_t *x = xp + p * np * 2;                                                  \
			if (pf) {                                                                             \
				const char *q = pf->base + (p >> pf->sh) * pf->step + (p & pf->mask) * pf->rowstride; \
				_mm_prefetch(q, _MM_HINT_T1);                                                     \
				if (pf->pair) {                                                                   \
					_mm_prefetch(q + pf->pair, _MM_HINT_T1);                                      \
				}                                                                                 \
			}                                                                                     \
			__m512bh xv[NV];                                                                      \
			_Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)                                  \
			    xv[v] = (__m512bh)_mm512_loadu_si512((const void *)(x + 32 * v));                 \
			_Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                 \
				int32_t pair;                                                                     \
				memcpy(&pair, a + r * lda + 2 * p, 4);                                            \
				__m512bh ar = (__m512bh)_mm512_set1_epi32(pair);                                  \
				_Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)                              \
				    acc[r][v] = _mm512_dpbf16_ps(acc[r][v], xv[v], ar);                           \
			}                                                                                     \
		}                                                                                         \
		__m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                             \
		_Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                     \
			_Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) {                                \
				long left = n - 16 * v;                                                           \
				__mmask16 m = left >= 16 ? (__mmask16)0xffff                                      \
				              : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);         \
				float *o = c + r * ldc + 16 * v;                                                  \
				__m512 y = _mm512_mul_ps(va, acc[r][v]);                                          \
				if (!first) {                                                                     \
					y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, o));                            \
				} else if (beta != 0) {                                                           \
					y = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, o), y);                      \
				}                                                                                 \
				_mm512_mask_storeu_ps(o, m, y);                                                   \
			}                                                                                     \
		}                                                                                         \
	}

LR_KERNEL(8, 1)
LR_KERNEL(8, 2)
LR_KERNEL(8, 3)
LR_KERNEL(4, 4)
LR_KERNEL(4, 5)
LR_KERNEL(1, 1)
LR_KERNEL(1, 2)
LR_KERNEL(1, 3)
LR_KERNEL(1, 4)
LR_KERNEL(1, 5)

typedef void (*lr_kern)(const uint16_t *, long, long, const uint16_t *, long, float *, long, long, float, float, int,
                        const lr_pf *);

static const lr_kern lr_main[6] = {0, lr_k8x1, lr_k8x2, lr_k8x3, lr_k4x4, lr_k4x5};
static const lr_kern lr_tail[6] = {0, lr_k1x1, lr_k1x2, lr_k1x3, lr_k1x4, lr_k1x5};
static const int lr_rows[6] = {0, 8, 8, 8, 4, 4};

// lr_bf16_gemm_n computes rows [i0, i1) of C (n columns, row stride ldc)
// = alpha·A·X + beta·C for a float32 A (k columns, row stride lda) and X
// packed by lr_bf16_pack (np columns). The inner dimension runs in blocks
// of kcp pairs (a block of X stays in L2); in each, 8 rows of A at a time
// are rounded into a small buffer and multiplied by every 80-column panel,
// so A is read once and no rounded copy of it is kept.
LR_TARGET static void lr_bf16_gemm_n(const float *a, long lda, long i0, long i1, long k, const uint16_t *xp, long np,
                           long n, float *c, long ldc, float alpha, float beta, long kcp, uint16_t *buf) {
	long kp = (k + 1) / 2;
	for (long p0 = 0; p0 < kp; p0 += kcp) {
		long pe = kp - p0 < kcp ? kp - p0 : kcp;
		long cols = 2 * pe < k - 2 * p0 ? 2 * pe : k - 2 * p0;
		int first = p0 == 0;
		for (long ib = i0; ib < i1; ib += 8) {
			long ie = ib + 8 < i1 ? ib + 8 : i1;
			lr_bf16_rows(a + ib * lda + 2 * p0, lda, 0, ie - ib, cols, buf, 2 * pe);
			// The next 8 rows' block: line p >> 3 of row p & 7 at step p.
			lr_pf next = {(const char *)(a + ie * lda + 2 * p0), 64, 7, lda * 4, 0, 3};
			for (long j0 = 0; j0 < n; j0 += 80) {
				long w = n - j0 < 80 ? n - j0 : 80;
				int nv = (int)((w + 15) / 16);
				int rr = lr_rows[nv];
				const uint16_t *x = xp + p0 * np * 2 + 2 * j0;
				long i = 0;
				for (; i + rr <= ie - ib; i += rr) {
					const lr_pf *f = i == 0 && j0 == 0 && ie < i1 ? &next : 0;
					lr_main[nv](buf + i * 2 * pe, 2 * pe, pe, x, np, c + (ib + i) * ldc + j0, ldc, w, alpha, beta, first, f);
				}
				for (; i < ie - ib; i++) {
					lr_tail[nv](buf + i * 2 * pe, 2 * pe, pe, x, np, c + (ib + i) * ldc + j0, ldc, w, alpha, beta, first, 0);
				}
			}
		}
	}
}

// lr_bf16_pairs rounds rows [2p0, 2p0 + 2pe) ∩ [0, m) and columns
// [j0, j0 + w) of the float32 B (row stride ldb) into pairs along the rows:
// xp[(p·np + j)·2 + t] = B[2(p0 + p) + t][j0 + j], zero past m and w (np ≥ w
// a multiple of 16). It is lr_bf16_pack's layout, made from a block of a
// large B with vector instructions.
LR_TARGET static void lr_bf16_pairs(const float *b, long ldb, long m, long p0, long pe, long j0, long w, uint16_t *xp, long np) {
	const __m512i mix = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
	                                     23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
	for (long p = 0; p < pe; p++) {
		long r = 2 * (p0 + p);
		const float *ra = b + r * ldb + j0;
		const float *rb = r + 1 < m ? ra + ldb : 0;
		uint16_t *d = xp + p * np * 2;
		for (long j = 0; j < np; j += 16) {
			long left = w - j;
			__mmask16 mk = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
			__m512 va = _mm512_maskz_loadu_ps(mk, ra + j);
			__m512 vb = rb ? _mm512_maskz_loadu_ps(mk, rb + j) : _mm512_setzero_ps();
			__m512i v = (__m512i)_mm512_cvtne2ps_pbh(vb, va);
			_mm512_storeu_si512((void *)(d + 2 * j), _mm512_permutexvar_epi16(mix, v));
		}
	}
}

// lr_bf16_gemm_t computes rows [j0, j1) of C (n columns, row stride ldc) =
// alpha·Bᵀ·Y + beta·C for a float32 B (m×k, row stride ldb) and Y given as
// at, Yᵀ rounded (n rows of m, row stride ldat, even). It computes the
// columns [j0, j1) of Cᵀ = Yᵀ·B, up to LR_TW at a time into tile (n×LR_TW
// float32, row stride LR_TWP), over blocks of kcp pairs of B's rows rounded into pairs (xp,
// kcp·LR_TW pairs) — rows read whole, a few KiB at a time, so that the
// TLB and the prefetchers see long runs — then transposes the tile into C.
// B is read once.
#define LR_TW 512
#define LR_TWP (LR_TW + 16)
LR_TARGET static void lr_bf16_gemm_t(const float *b, long ldb, long m, long j0, long j1, const uint16_t *at, long ldat, long n,
                           float *c, long ldc, float alpha, float beta, long kcp, uint16_t *xp, float *tile) {
	long kp = (m + 1) / 2;
	for (long js = j0; js < j1; js += LR_TW) {
		long ws = j1 - js < LR_TW ? j1 - js : LR_TW;
		// Rows of xp and of the tile a power of two apart would share
		// cache sets: pad them by a line.
		long np = ((ws + 15) & ~15L) + 16;
		for (long p0 = 0; p0 < kp; p0 += kcp) {
			long pe = kp - p0 < kcp ? kp - p0 : kcp;
			lr_bf16_pairs(b, ldb, m, p0, pe, js, ws, xp, np);
			int first = p0 == 0;
			// The next block to round: rows from pair np0 on, columns
			// from nj0 on; the first kernel calls of a panel fetch one
			// 64-byte line each of its columns in both rows of a pair.
			long np0 = p0 + pe, nj0 = js;
			if (np0 >= kp) {
				np0 = 0;
				nj0 = js + LR_TW;
			}
			int more = nj0 < j1;
			for (long jb = 0; jb < ws; jb += 80) {
				long w = ws - jb < 80 ? ws - jb : 80;
				int nv = (int)((w + 15) / 16), rr = lr_rows[nv];
				long i = 0;
				for (int ci = 0; i + rr <= n; i += rr, ci++) {
					lr_pf next = {(const char *)(b + 2 * np0 * ldb + nj0 + jb) + 64 * ci, 2 * ldb * 4, 0, 0, ldb * 4, 0};
					lr_main[nv](at + i * ldat + 2 * p0, ldat, pe, xp + 2 * jb, np, tile + i * LR_TWP + jb, LR_TWP, w,
					            alpha, 0, first, more && ci < nv && nj0 + jb < j1 ? &next : 0);
				}
				for (; i < n; i++) {
					lr_tail[nv](at + i * ldat + 2 * p0, ldat, pe, xp + 2 * jb, np, tile + i * LR_TWP + jb, LR_TWP, w,
					            alpha, 0, first, 0);
				}
			}
		}
		for (long j = 0; j < ws; j++) {
			float *o = c + (js + j) * ldc;
			for (long i = 0; i < n; i++) {
				o[i] = beta == 0 ? tile[i * LR_TWP + j] : tile[i * LR_TWP + j] + beta * o[i];
			}
		}
	}
}
#endif

// One worker's share of a product, for a thread pool outside Go (see
// runPool): lr_bf16_gemm_n's arguments (rows [i0, i1) of C), or with
// trans lr_bf16_gemm_t's (a is B, m its rows; x is Yᵀ rounded, ldx its
// stride; buf is the packed block, tile the tile).
typedef struct {
	int trans;
	const float *a;
	long lda, m, k, i0, i1;
	const uint16_t *x;
	long ldx, n;
	float *c;
	long ldc;
	float alpha, beta;
	long kcp;
	uint16_t *buf;
	float *tile;
} lr_task;

// lr_pool_tasks counts the tasks run through a pool, for the tests.
static long lr_pool_tasks;
static long lr_pool_count(void) { return __atomic_load_n(&lr_pool_tasks, __ATOMIC_RELAXED); }

static void lr_bf16_task(void *p) {
	const lr_task *t = p;
	__atomic_add_fetch(&lr_pool_tasks, 1, __ATOMIC_RELAXED);
	if (t->trans) {
		lr_bf16_gemm_t(t->a, t->lda, t->m, t->i0, t->i1, t->x, t->ldx, t->n, t->c, t->ldc, t->alpha, t->beta, t->kcp,
		               t->buf, t->tile);
	} else {
		lr_bf16_gemm_n(t->a, t->lda, t->i0, t->i1, t->k, t->x, t->ldx, t->n, t->c, t->ldc, t->alpha, t->beta, t->kcp,
		               t->buf);
	}
}

// lr_bf16_pool runs tasks[0..n) at once through fn, a pthreads OpenBLAS's
// gotoblas_pthread(int n, void (*f)(void *), void *args, int stride): the
// first on the calling thread, the others on the library's idle workers;
// it returns when all are done.
typedef int (*lr_pool_t)(int, void *, void *, int);
static void lr_bf16_pool(void *fn, int n, lr_task *tasks) {
	((lr_pool_t)fn)(n, (void *)lr_bf16_task, (void *)tasks, (int)sizeof(lr_task));
}
*/
import "C"

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasKernel reports whether the AVX-512 BF16 kernels can run: the C
// compiler knew the instructions, the CPU has AVX512_BF16 (with F, BW and
// VL) and the OS saves the ZMM registers (x/sys/cpu checks XGETBV).
var hasKernel = C.lr_bf16_built() != 0 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512BF16

func roundRows(src []float32, lds, i0, i1, cols int, dst []uint16, ldd int) {
	C.lr_bf16_rows((*C.float)(unsafe.Pointer(&src[0])), C.long(lds), C.long(i0), C.long(i1), C.long(cols),
		(*C.uint16_t)(unsafe.Pointer(&dst[0])), C.long(ldd))
}

func roundCols(src []float32, lds, rows, j0, j1 int, dst []uint16, ldd int) {
	C.lr_bf16_cols((*C.float)(unsafe.Pointer(&src[0])), C.long(lds), C.long(rows), C.long(j0), C.long(j1),
		(*C.uint16_t)(unsafe.Pointer(&dst[0])), C.long(ldd))
}

func pack(x []float32, ldx int, trans bool, k, n int, xp []uint16, np int) {
	t := C.int(0)
	if trans {
		t = 1
	}
	C.lr_bf16_pack((*C.float)(unsafe.Pointer(&x[0])), C.long(ldx), t, C.long(k), C.long(n),
		(*C.uint16_t)(unsafe.Pointer(&xp[0])), C.long(np))
}

func gemmN(a []float32, lda, i0, i1, k int, xp []uint16, np, n int, c []float32, ldc int, alpha, beta float32, kcp int, buf []uint16) {
	C.lr_bf16_gemm_n((*C.float)(unsafe.Pointer(&a[0])), C.long(lda), C.long(i0), C.long(i1), C.long(k),
		(*C.uint16_t)(unsafe.Pointer(&xp[0])), C.long(np), C.long(n), (*C.float)(unsafe.Pointer(&c[0])), C.long(ldc),
		C.float(alpha), C.float(beta), C.long(kcp), (*C.uint16_t)(unsafe.Pointer(&buf[0])))
}

func gemmT(b []float32, ldb, m, j0, j1 int, at []uint16, ldat, n int, c []float32, ldc int, alpha, beta float32, kcp int, xp []uint16, tile []float32) {
	C.lr_bf16_gemm_t((*C.float)(unsafe.Pointer(&b[0])), C.long(ldb), C.long(m), C.long(j0), C.long(j1),
		(*C.uint16_t)(unsafe.Pointer(&at[0])), C.long(ldat), C.long(n), (*C.float)(unsafe.Pointer(&c[0])), C.long(ldc),
		C.float(alpha), C.float(beta), C.long(kcp), (*C.uint16_t)(unsafe.Pointer(&xp[0])), (*C.float)(unsafe.Pointer(&tile[0])))
}

// poolTasks returns how many parts have run through a thread pool.
func poolTasks() int { return int(C.lr_pool_count()) }

// roundOne is the scalar rounding of the C side, for tests.
func roundOne(f float32) uint16 { return uint16(C.lr_bf16(C.float(f))) }

// runPool runs one lr_bf16_gemm_n (or with trans lr_bf16_gemm_t) per
// range of ps on the thread pool set by UseThreadPool, and reports false
// without running anything when none is set or it has too few threads.
// a, x, c and each range's buffers are pinned for the call: the tasks
// are C memory that holds their addresses.
func runPool(ps []part, trans bool, a []float32, lda, m, k int, x []uint16, ldx, n int, c []float32, ldc int, alpha, beta float32, kcp int) bool {
	p := threadPool.Load()
	if p == nil || len(ps) < 2 || len(ps) > p.threads {
		return false
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(&a[0])
	pin.Pin(&x[0])
	pin.Pin(&c[0])
	tasks := (*[1 << 20]C.lr_task)(C.calloc(C.size_t(len(ps)), C.size_t(unsafe.Sizeof(C.lr_task{}))))[:len(ps):len(ps)]
	defer C.free(unsafe.Pointer(&tasks[0]))
	for i, r := range ps {
		pin.Pin(&r.buf[0])
		t := &tasks[i]
		*t = C.lr_task{
			a: (*C.float)(unsafe.Pointer(&a[0])), lda: C.long(lda), m: C.long(m), k: C.long(k),
			i0: C.long(r.i0), i1: C.long(r.i1),
			x: (*C.uint16_t)(unsafe.Pointer(&x[0])), ldx: C.long(ldx), n: C.long(n),
			c: (*C.float)(unsafe.Pointer(&c[0])), ldc: C.long(ldc),
			alpha: C.float(alpha), beta: C.float(beta), kcp: C.long(kcp),
			buf: (*C.uint16_t)(unsafe.Pointer(&r.buf[0])),
		}
		if trans {
			pin.Pin(&r.tile[0])
			t.trans = 1
			t.tile = (*C.float)(unsafe.Pointer(&r.tile[0]))
		}
	}
	C.lr_bf16_pool(p.fn, C.int(len(ps)), &tasks[0])
	return true
}
