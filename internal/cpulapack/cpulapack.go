// Package cpulapack lets the lowrank package ask a cpu.Backend which LAPACK
// it runs on, without a public method on cpu.Backend: lowrank's memory
// estimate models the workspace of a system LAPACK (gesdd, float32 kept in
// float32) and of gonum's (gesvd, float32 widened to float64) differently.
// Package cpu sets System when it is initialized; nothing else should.
package cpulapack

// System reports whether b is a *cpu.Backend (ok) and, if so, whether it
// runs on a system BLAS/LAPACK rather than gonum (system). Asking loads
// the backend's library, as its first use would.
var System = func(b any) (system, ok bool) { return false, false }
