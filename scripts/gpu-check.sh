#!/usr/bin/env bash
# gpu-check.sh: the check of the CUDA backend on a real GPU (see
# ../shared/GPU.md). Run it from the repository root on the GPU check
# machine, after scripts/gpu-build.sh has put the binaries in .gpu/ (that
# machine has no Go). It
#
#   1. prints nvidia-smi and the CUDA libraries it can find;
#   2. runs `lowrank backends`, which must report cuda available;
#   3. compiles internal/cuda/headercheck/check.c against the real CUDA
#      headers (every prototype internal/cuda declares must match);
#   4. runs the test binaries with -test.v and LOWRANK_REQUIRE_GPU=1, and
#      FAILS if a GPU test fails or skips;
#   5. runs the GPU benchmarks (CUDA events): apply cuBLAS vs fused,
#      randomized rank 64, exact SVD per solver;
#   6. runs scripts/gpu_torch_bench.py for the same problems with torch;
#   7. runs scripts/peft_check.py with the CLI when that script exists;
#
# and writes a markdown summary (plus the logs) to $OUT when it is set.
# Each step has a time limit so that the whole run stays within about
# 7 minutes. Exit status: 0 when every check passed.
set -uo pipefail
cd "$(dirname "$0")/.."

LOGS=$(mktemp -d)
SUM="$LOGS/gpu-summary.md"
FAILED=()
export LOWRANK_REQUIRE_GPU=1

say() { echo "$*" | tee -a "$SUM"; }
# step NAME LIMIT CMD...: runs CMD with a time limit, its output in
# $LOGS/NAME.log and on the terminal; returns its exit status.
step() {
	local name=$1 limit=$2
	shift 2
	echo
	echo "=== $name ($*)"
	local t0=$SECONDS
	timeout --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
	local rc=$?
	cat "$LOGS/$name.log"
	local msg="exit $rc, $((SECONDS - t0)) s"
	[ "$rc" = 124 ] && msg="TIMED OUT after $limit s"
	echo "=== $name: $msg"
	echo "- $name: $msg" >>"$SUM"
	return $rc
}
fail() { FAILED+=("$1"); say "  **FAILED: $1**"; }

{
	echo "# lowrank GPU check"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- commit: $(cat .gpu/COMMIT 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
	echo
	echo "## Steps"
} >"$SUM"

for b in gpu.test cuda.test lowrank.test kernels.test lowrank; do
	if [ ! -x ".gpu/$b" ]; then
		echo "missing .gpu/$b: run scripts/gpu-build.sh on a machine with Go first" >&2
		exit 2
	fi
done

# 1. Environment.
{
	nvidia-smi
	echo
	echo "--- libraries known to ldconfig"
	ldconfig -p | grep -E 'libcuda\.so|libcublas|libcusolver|libcusparse|libnvJitLink|libnvrtc' || true
	echo "--- /usr/local/cuda"
	ls -l /usr/local/cuda 2>/dev/null
	ls /usr/local/cuda/lib64 2>/dev/null | grep -E 'cublas|cusolver|cusparse|nvJitLink|nvrtc' || true
	echo "--- pip wheels"
	python3 - <<'PY' 2>/dev/null || true
import glob, site, sys
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    for d in sorted(glob.glob(sp + "/nvidia/*/lib")):
        print(d)
PY
	echo "--- LOWRANK_CUDA_LIB_DIR=${LOWRANK_CUDA_LIB_DIR:-}"
} >"$LOGS/env.log" 2>&1
cat "$LOGS/env.log"

# 2. The CLI must pick cuda.
if step backends 60 .gpu/lowrank backends; then
	grep -q '^cuda  *available' "$LOGS/backends.log" || fail "lowrank backends does not report cuda available"
	{ echo; echo '```'; cat "$LOGS/backends.log"; echo '```'; } >>"$SUM"
else
	fail "lowrank backends"
fi

# 3. Header cross-check against the real headers.
INC=""
for d in "${CUDA_HOME:-/nonexistent}/include" /usr/local/cuda/include $(ls -d /usr/local/cuda-*/include 2>/dev/null) \
	$(python3 -c 'import site,glob;print(" ".join(glob.glob(site.getsitepackages()[0]+"/nvidia/cu13/include")))' 2>/dev/null); do
	if [ -f "$d/cuda.h" ] && [ -f "$d/cusolverDn.h" ]; then INC=$d; break; fi
done
if [ -z "$INC" ]; then
	fail "header check: no folder with cuda.h and cusolverDn.h found"
elif step headercheck 60 gcc -std=c11 -Wall -fsyntax-only -I"$INC" internal/cuda/headercheck/check.c; then
	say "  headers: $INC ($(grep -m1 '#define CUDA_VERSION' "$INC/cuda.h"))"
else
	fail "header check against $INC"
fi

# 4. Tests. Tests that only make sense without a GPU skip here by design.
CI_ONLY='TestInitReason|TestFallbackToCPU|TestOpenWithoutDriver|TestNoCgo'
tests() {
	local name=$1 limit=$2 bin=$3
	shift 3
	step "$name" "$limit" "$bin" -test.v -test.count=1 "$@" || fail "$name"
	local skips
	skips=$(grep -E -- '--- SKIP' "$LOGS/$name.log" | grep -Ev -- "--- SKIP: ($CI_ONLY) " || true)
	if [ -n "$skips" ]; then
		fail "$name: GPU tests skipped"
		echo "$skips" | sed 's/^/    /' | tee -a "$SUM"
	fi
	say "  $(grep -c -- '--- PASS' "$LOGS/$name.log") passed, $(grep -c -- '--- FAIL' "$LOGS/$name.log") failed"
}
tests cuda-tests 60 .gpu/cuda.test
tests kernels-tests 30 .gpu/kernels.test
# The TestFake* tests run the backend over the fake CUDA of cudatest; CI runs
# them, and here they would only spend the GPU's time.
tests gpu-tests 240 .gpu/gpu.test -test.run 'Test' -test.skip '^TestFake' -test.timeout 230s
LOWRANK_BACKEND=cuda tests lowrank-tests-on-cuda 150 .gpu/lowrank.test -test.timeout 140s

# 5. Benchmarks (Go's ns/op is wall time; gpu-ms/op comes from CUDA events).
bench() {
	local name=$1 limit=$2 pattern=$3 benchtime=$4
	step "$name" "$limit" .gpu/gpu.test -test.run '^$' -test.bench "$pattern" -test.benchtime "$benchtime" -test.benchmem=false ||
		fail "$name"
	{ echo; echo '```'; grep -E '^Benchmark' "$LOGS/$name.log"; echo '```'; } >>"$SUM"
}
bench bench-apply 90 'BenchmarkApply' 300x
bench bench-randomized 120 'BenchmarkRandomized' 2x

# 6. torch on the same GPU.
if step torch 150 python3 scripts/gpu_torch_bench.py --json "$LOGS/torch.json"; then
	{ echo; echo '```'; cat "$LOGS/torch.log"; echo '```'; } >>"$SUM"
else
	fail "torch benchmark"
fi

# The exact SVD sweep comes last among the benchmarks: gesvdj on 4096x4096
# is the slowest thing here and its time limit must not cost the rest.
bench bench-exact-svd 180 'BenchmarkExactSVD' 1x

# 7. PEFT interoperability, when another engineer's script is present.
if [ -f scripts/peft_check.py ]; then
	if step peft 120 python3 scripts/peft_check.py .gpu/lowrank; then
		say "  peft_check.py passed"
	else
		fail "peft_check.py"
	fi
	{ echo; echo '```'; tail -n 30 "$LOGS/peft.log"; echo '```'; } >>"$SUM"
else
	say "- peft: scripts/peft_check.py not present, not run"
fi

echo >>"$SUM"
if [ ${#FAILED[@]} -eq 0 ]; then
	say "## Result: PASS"
else
	say "## Result: FAIL (${#FAILED[@]}): ${FAILED[*]}"
fi

if [ -n "${OUT:-}" ]; then
	mkdir -p "$OUT"
	cp "$SUM" "$OUT/gpu-summary.md"
	cat "$LOGS"/cuda-tests.log "$LOGS"/kernels-tests.log "$LOGS"/gpu-tests.log >"$OUT/tests.log" 2>/dev/null
	cp "$LOGS/lowrank-tests-on-cuda.log" "$OUT/lowrank-tests.log" 2>/dev/null
	cat "$LOGS"/bench-*.log >"$OUT/bench.log" 2>/dev/null
	cp "$LOGS/torch.json" "$OUT/torch.json" 2>/dev/null
	cat "$LOGS/env.log" "$LOGS/headercheck.log" >"$OUT/env.log" 2>/dev/null
	[ -f "$LOGS/peft.log" ] && cp "$LOGS/peft.log" "$OUT/peft.log"
fi
echo
cat "$SUM"
[ ${#FAILED[@]} -eq 0 ]
