#!/usr/bin/env bash
# One command for the whole benchmark: bash bench/run.sh [lowrank-bench flags]
#   bash bench/run.sh                   # everything (≈ 30–40 min on 2 cores)
#   bash bench/run.sh -skip-f64-4096    # without the ≈ 20 s/run 4096² float64 SVD
#   bash bench/run.sh -quick            # small sizes: checks the harness in ~2 min
#   bash bench/run.sh -only 'randomized 4096×4096'   # a subset (regexp)
#   bash bench/run.sh -threads 1 ...    # one thread per side (a busy machine)
# Writes bench/out/results.md, results.json and PNG plots.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3   # Debian's Python (a pyenv/venv python3 lacks Debian's packages)
pkgs=(python3-numpy python3-scipy python3-sklearn python3-torch libopenblas0-pthread)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "installing ${missing[*]} from Debian"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
$PY -c 'import numpy, scipy, sklearn, torch' 

# OpenBLAS picks its kernels from the CPU model; an unknown (virtual) model
# falls back to slow SSE3 "Prescott" kernels. lowrank chooses from the CPU
# flags when OPENBLAS_CORETYPE is unset; export the same choice here so that
# numpy, scipy and torch get the same kernels and the comparison is fair.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
	flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
	has() { [[ " $flags " == *" $1 "* ]]; }
	if has avx512f && has avx512cd && has avx512bw && has avx512dq && has avx512vl; then
		export OPENBLAS_CORETYPE=SkylakeX
	elif has avx2 && has fma; then
		export OPENBLAS_CORETYPE=Haswell
	fi
fi
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"

# -threads N (must come first): every side on N threads (BLAS, OpenMP, Go),
# for a machine shared with other work, where threaded BLAS that spins
# while its partner thread is descheduled makes 2-thread timings erratic.
if [ "${1:-}" = "-threads" ]; then
	export OPENBLAS_NUM_THREADS="$2" OMP_NUM_THREADS="$2" MKL_NUM_THREADS="$2" GOMAXPROCS="$2" LOWRANK_BENCH_THREADS="$2"
	echo "threads: $2 for every side"
	shift 2
fi

mkdir -p bench/out
go build -o bench/out/lowrank ./cmd/lowrank
(cd bench && go build -o out/lowrank-bench ./cmd/lowrank-bench)
exec bench/out/lowrank-bench -python "$PY" -ref bench/ref.py -lowrank bench/out/lowrank -out bench/out "$@"
