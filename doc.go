// Package lowrank turns weight matrices into their best low-rank factors
// and applies them, on an NVIDIA GPU through CUDA when one is usable and on
// the CPU otherwise: through a system BLAS/LAPACK (OpenBLAS, MKL, or the
// reference libblas/liblapack) loaded at run time when one is installed,
// and through gonum's pure-Go BLAS and LAPACK when none is (or in a
// CGO_ENABLED=0 build).
//
// # The maths
//
// Given W (d×k) with singular value decomposition W = U·S·Vᵀ, the
// truncated SVD keeps the r largest singular triplets:
//
//	W ≈ B·A,   B = U_r·S_r (d×r),   A = V_rᵀ (r×k)
//	y = W·x + b  ≈  B·(A·x) + b     costs (d+k)·r instead of d·k
//
// By Eckart–Young this is the best rank-r approximation in the Frobenius
// norm, and its error is known from the singular values alone:
//
//	‖W − B·A‖_F = sqrt(σ_{r+1}² + … + σ_n²)
//
// # The three jobs
//
// Factorize computes the factors (exact SVD or a seeded randomized range
// finder, chosen by Auto), with the rank chosen by a Policy: Rank, Energy,
// Tolerance or Ratio; EstimateMemory says beforehand how much memory that
// takes. Factors.Apply, ApplyTo, ApplyBatch and ApplyBatchTo evaluate the
// factorized layer; Factors.Reconstruct, AddTo, AddTransposedTo and
// Residual multiply the factors out against a dense matrix (merging an
// adapter into a weight, measuring the error of rounded factors). Reading and writing model files is the
// safetensors package's job; the lowrank command (cmd/lowrank) builds on
// it to factorize model files and to extract and merge PEFT and kohya LoRA
// adapters.
//
// # Errors
//
// Bad input from a caller (wrong shapes, a rank outside [1, min(d,k)], NaN
// or ±Inf, an empty matrix, a policy parameter out of range) returns an
// error whose text starts with "lowrank:" and says what was expected. It
// wraps one of the sentinels ErrEmpty, ErrShape, ErrNonFinite, ErrRank,
// ErrPolicy, ErrOption or ErrBackend, for errors.Is. A NaN or ±Inf in an
// input matrix or vector is a *NonFiniteError, which names the input and
// the element. lowrank never panics on caller input.
//
// # Backends
//
// A Backend does the dense linear algebra; the algorithms are written once
// against the la.Engine interface, so every backend computes the same
// factors (the randomized sketch is drawn on the host from the seed and
// uploaded). The backend is chosen lazily on first use, never at import:
// LOWRANK_BACKEND=cpu or cuda forces one; unset or "auto" takes cuda when
// a usable device exists and the CPU otherwise, remembering why the GPU
// was not used (see Backends and AutoReason). WithBackend overrides the
// choice for one call.
package lowrank
