/*
 * fake.h: the control interface of the fake CUDA installation in fake.c.
 * The entry points themselves (fk_cuMemAlloc, fk_cublasSgemm, ...) are
 * static in fake.c and reached only through fk_sym, the way dlsym reaches
 * the real ones.
 */
#ifndef LOWRANK_FAKECUDA_FAKE_H
#define LOWRANK_FAKECUDA_FAKE_H

#include <stddef.h>

/* fk_configure resets the whole fake: driver answers, memory, counters,
 * faults, knobs and recorded violations. */
void fk_configure(int init, int ver, int count, unsigned long long limit);

/* Entry point named name, or NULL when the fake does not export it. */
void *fk_sym(const char *name);

/* The version call name (cublasGetProperty, nvrtcVersion, ...) of the
 * library whose soname has major version major, or NULL. */
void *fk_version_sym(const char *name, int major);

/* Faults: the nth call (1-based, counted from fk_add_fault) whose name
 * matches pattern (exact, or a prefix ending in '*') returns status; with
 * repeat every later matching call does too; with sticky the context is
 * lost from then on (every later call fails, as after a kernel fault). */
int fk_add_fault(const char *pattern, int nth, int status, int sticky, int repeat);
void fk_clear_faults(void);
int fk_sticky(void);

/* Knobs. kind: 0 geqrf, 1 orgqr, 2 gesvd, 3 gesvdj. A negative lwork
 * restores the fake's own workspace size; devinfo is written by the
 * solver instead of 0 (it then also spoils its outputs). */
void fk_set_lwork(int kind, int lwork);
void fk_set_devinfo(int kind, int value);

/* Counters. */
int fk_get_retained(void);
int fk_get_live(void);
unsigned long long fk_get_live_bytes(void);
int fk_get_pinned(void);
int fk_get_events(void);
int fk_get_handles(void);
int fk_get_pending(void);
int fk_get_reclaimed(void);
int fk_calls(const char *pattern);
void fk_reset_calls(void);

/* Violations of the CUDA contract seen by the fake (an access outside
 * every allocation, a host buffer changed while an asynchronous copy
 * from it was in flight, ...). */
int fk_violations(void);
const char *fk_violation(int i);

#endif
