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
// Tolerance or Ratio (FactorizeContext and SVDContext can be cancelled); EstimateMemory says beforehand how much memory that
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
// # Concurrency
//
// Every function and method is safe for concurrent use (a Factors may be
// applied from any number of goroutines; Close must not run beside an
// Apply), and many goroutines calling at once get at least the throughput
// of one caller. On the CPU the library owns its thread budget: it never
// computes on more threads than GOMAXPROCS, however many goroutines call
// it, and nothing needs to be configured (in particular not
// OPENBLAS_NUM_THREADS). The rules, in internal/sched:
//
//   - Every CPU computation of lowrank (a BLAS or LAPACK call, a pure-Go
//     product) holds cores of a budget of GOMAXPROCS while it runs.
//   - Small work, such as applying the factors to one vector (memory-bound),
//     runs single-threaded on the calling goroutine's thread. Concurrent
//     calls run side by side, one core each, up to GOMAXPROCS at once; the
//     others wait in line, first come first served.
//   - A large call (a product, QR or SVD of a big matrix, a large batch)
//     gets every core, the BLAS library's threads or the pure-Go product's
//     goroutines, only when it has the machine to itself: nothing else of
//     the library running or waiting, at most one factorization in
//     progress. It then holds the whole budget. Otherwise it runs
//     single-threaded beside the others: independent factorizations scale
//     with the cores instead of taking turns on all of them.
//   - With a system BLAS the library sets the BLAS's own thread count
//     (openblas_set_num_threads, MKL_Set_Num_Threads), and only while none
//     of its calls is inside the library; it never raises it above the
//     count the library started with. A library without such a control
//     (the reference BLAS) is used single-threaded.
//
// On the pure-Go path results are the same bit for bit however many
// calls run at once. A multi-threaded BLAS rounds differently from the
// same BLAS on one thread, so with a system BLAS a factorization made
// alone and the same one made among others agree to rounding, not to the
// bit. On a GPU, calls are queued to the device's own thread, one at a
// time, and do not take the CPU's cores.
//
// # Cancellation
//
// FactorizeContext and SVDContext take a context. A factorization stops
// at the next block boundary once its context ends (between the matrix
// products, sketch blocks and power iterations of the randomized method;
// a call waiting for a core stops waiting) and returns an error wrapping
// ctx.Err(), having released everything it held. The exact SVD is a
// single LAPACK or cuSOLVER call that cannot be interrupted: the context
// is checked before and after it. Factorize and SVD are the same calls
// with context.Background().
//
// # Backends
//
// A Backend does the dense linear algebra; the algorithms are written once
// against the la.Engine interface, so every backend computes the same
// factors (the randomized sketch is drawn on the host from the seed and
// uploaded). The backend is chosen lazily on first use, never at import:
// LOWRANK_BACKEND=cpu or cuda forces one; unset or "auto" takes cuda when
// a usable device exists and the CPU otherwise, remembering why the GPU
// was not used (see Backends and AutoReason). Where the machine certainly
// has no NVIDIA GPU (Linux on amd64 with no NVIDIA PCI device in sysfs),
// auto passes over cuda without loading the driver. WithBackend overrides
// the choice for one call.
package lowrank
