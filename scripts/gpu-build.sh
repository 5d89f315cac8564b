#!/usr/bin/env bash
# gpu-build.sh builds, on a machine with Go and without a GPU, everything
# scripts/gpu-check.sh runs on the GPU machine (which has no Go): into the
# git-ignored folder .gpu/,
#
#   gpu.test cuda.test kernels.test   test binaries (go test -c), stripped
#   lowrank                           the CLI
#   include/                          the CUDA headers headercheck/check.c
#                                     includes, when this machine has them
#                                     (LOWRANK_CUDA_INCLUDE, /usr/local/cuda,
#                                     /usr/include), for a GPU machine
#                                     without headers of its own
#   BUILD                             the commit, Go version and headers
#
# CUDA is loaded at run time with dlopen, so the binaries need only glibc
# to start. The whole folder stays under 60 MiB, so that it can travel to
# the GPU machine with the tree (scripts/gpu-check.sh's header explains).
#
#   scripts/gpu-build.sh && <copy the tree with .gpu/ to the GPU machine>
#   scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=1
rm -rf .gpu
mkdir -p .gpu
flags=(-trimpath -ldflags='-s -w')
go test -c "${flags[@]}" -o .gpu/gpu.test ./gpu/         # GPU tests, conformance, cross-check, faults, benchmarks
go test -c "${flags[@]}" -o .gpu/cuda.test ./internal/cuda/ # loader, real libraries, NVRTC, status names, header check
go test -c "${flags[@]}" -o .gpu/kernels.test ./kernels/
go build "${flags[@]}" -o .gpu/lowrank ./cmd/lowrank

# The headers check.c needs, with their folder layout, from the first
# folder that has them all.
hdr=""
for d in ${LOWRANK_CUDA_INCLUDE:-} /usr/local/cuda/include /usr/include; do
	if [ -f "$d/cuda.h" ] && [ -f "$d/cusolverDn.h" ] && [ -f "$d/cublasLt.h" ] && [ -f "$d/cusparse.h" ] && [ -f "$d/nvrtc.h" ]; then
		hdr=$d
		break
	fi
done
headers="none (the GPU machine's own are used, if it has them)"
if [ -n "$hdr" ]; then
	mkdir -p .gpu/include
	gcc -std=c11 -M -I"$hdr" internal/cuda/headercheck/check.c | sed 's/ *\\$//' | tr ' ' '\n' | grep "^$hdr/" | sort -u |
		while read -r f; do
			rel=${f#"$hdr"/}
			mkdir -p ".gpu/include/$(dirname "$rel")"
			cp "$f" ".gpu/include/$rel"
		done
	headers="$hdr ($(grep -m1 '#define CUDA_VERSION' "$hdr/cuda.h"))"
fi
{
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
	echo "built: $(date -u +%Y-%m-%dT%H:%MZ) with $(go version)"
	echo "headers: $headers"
} >.gpu/BUILD
cat .gpu/BUILD
ls -l .gpu
size=$(du -sm .gpu | cut -f1)
echo ".gpu: $size MiB"
if [ "$size" -ge 60 ]; then
	echo "gpu-build.sh: .gpu is $size MiB; it must stay under 60 MiB to travel with the tree" >&2
	exit 1
fi
