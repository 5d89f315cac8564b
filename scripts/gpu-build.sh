#!/usr/bin/env bash
# gpu-build.sh builds, on a machine without a GPU or any CUDA file, what
# scripts/gpu-check.sh runs on the GPU check machine (which has no Go):
# the test binaries of every package with GPU tests and the CLI, into the
# git-ignored folder .gpu/. CUDA is loaded at run time with dlopen, so the
# binaries need only glibc and libdl to start.
#
#   scripts/gpu-build.sh && <copy the tree with .gpu/ to the GPU machine>
#   scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=1
mkdir -p .gpu
go test -c -o .gpu/gpu.test ./gpu/                 # conformance, cross-check, kernels, benchmarks
go test -c -o .gpu/cuda.test ./internal/cuda/      # loader (runs the real dlopen path there too)
go test -c -o .gpu/lowrank.test .                  # the library's own tests, on the cuda backend
go test -c -o .gpu/kernels.test ./kernels/
go build -o .gpu/lowrank ./cmd/lowrank
git rev-parse --short HEAD > .gpu/COMMIT 2>/dev/null || true
ls -l .gpu
