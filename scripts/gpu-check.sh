#!/usr/bin/env bash
# gpu-check.sh: the whole check of the CUDA backend on a real GPU, in one
# command and under 6 minutes. It builds nothing: it runs what
# scripts/gpu-build.sh put in .gpu/ (test binaries, the CLI, CUDA headers)
# with what the GPU machine has (an NVIDIA driver and GPU, Python with
# torch, peft and transformers, a C compiler for the header check).
#
#   scripts/gpu-build.sh                 # on a machine with Go
#   scripts/gpu-check.sh                 # on the GPU machine, from the tree
#
# Stages, each time-boxed, each run whatever the others gave:
#
#   env            nvidia-smi, the CUDA libraries found, torch's view
#   backends       `lowrank backends` must report cuda available
#   headers        internal/cuda/headercheck/check.c against the machine's
#                  CUDA headers wherever they are (toolkit, /usr/include,
#                  pip wheels), else against the ones carried in .gpu/include
#   cuda-tests     internal/cuda's tests on the real driver and libraries:
#                  every symbol, loading, NVRTC on every kernel, status names
#   kernels-tests  the kernels package's tests
#   conformance    the conformance suite on the real device
#   cross-check    CPU↔GPU: square, tall, wide, 1×n, n×1, rank-deficient,
#                  float32 and float64, exact and randomized
#   faults         the faults a real GPU can show: out of memory by a huge
#                  request, a full device (CPU fallback), the workspace plan
#   gpu-tests      every other GPU test (solvers, apply paths and the fused
#                  kernel, leaks, concurrency, strided views, allocations)
#   peft           PEFT's PeftModel.from_pretrained on an adapter lowrank
#                  extracted on the GPU (scripts/peft_check.py)
#   bench-go       lowrank's GPU benchmarks (gpu/bench_test.go): randomized
#                  r ∈ {16, 64, 256} on 4096², 4096×11008 and 8192² with the
#                  F32, TF32 and BF16 sketch and error/optimal; apply of 1, 8,
#                  64 and 512 vectors with the fused kernel on and off; the
#                  exact SVD, float32 and float64, 1024² to 8192² and
#                  8192×1024 / 1024×8192, with gesvd, gesvdj and gesvdp
#   bench-torch    the same problems with torch on the same GPU
#                  (scripts/gpu_torch_bench.py), when torch sees the GPU
#
# The benchmark stages get what the tests leave of the budget (at least
# RESERVE seconds); each benchmark predicts its time from the previous
# size and is skipped when it would end past the stage's deadline, so the
# largest problems are the ones cut. scripts/gpu_bench_table.py merges
# both into the tables of the "Benchmarks" section.
#
# GPU_CHECK_DRY=1 runs only the benchmark stages, over the fake CUDA at
# small sizes (LOWRANK_BENCH_FAKE=1), and the table: a check of this script
# on a machine without a GPU (after scripts/gpu-build.sh).
#
# GPU tests run with LOWRANK_REQUIRE_GPU=1 and LOWRANK_REQUIRE_CUDA_LIBS=1,
# so that they fail instead of skipping, and a stage whose tests skip
# anyway fails (except the tests that exist for machines without a GPU).
# The run writes one results file, $OUT/gpu-check.md (OUT defaults to
# ./gpu-results): a summary table, then every stage's log. Exit status 0
# when every stage passed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD

OUTDIR=${OUT:-$ROOT/gpu-results}
mkdir -p "$OUTDIR"
RESULT=$OUTDIR/gpu-check.md
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
PY=${PYTHON:-python3}
export PY ROOT
export LOWRANK_REQUIRE_GPU=1 LOWRANK_REQUIRE_CUDA_LIBS=1

# The whole run stays under 6 minutes: each stage gets its own limit or
# what is left of BUDGET, whichever is less; a stage that would get less
# than 5 s is not run.
BUDGET=${GPU_CHECK_BUDGET:-360}
START=$SECONDS
# Seconds kept for the benchmark stages while the tests run.
RESERVE=${GPU_CHECK_BENCH_RESERVE:-170}
DRY=${GPU_CHECK_DRY:-0}
if [ "$DRY" = 1 ]; then
	unset LOWRANK_REQUIRE_GPU LOWRANK_REQUIRE_CUDA_LIBS
	export LOWRANK_BENCH_FAKE=1
	RESERVE=0
fi

# Tests that exist for machines without a GPU, and skip here by design.
NO_GPU_ONLY='TestInitReason|TestFallbackToCPU|TestRealOpen|TestNoCgo'

NAMES=()
STATES=()
TIMES=()
NOTES=()
record() { NAMES+=("$1"); STATES+=("$2"); TIMES+=("$3"); NOTES+=("$4"); }

# stage NAME LIMIT DIR CMD...: runs CMD in DIR (relative to the tree) with
# a time limit; its output goes to $LOGS/NAME.log and the terminal. Sets
# RC (124 on a timeout) and DUR.
stage() {
	local name=$1 limit=$2 dir=$3
	shift 3
	local left=$((BUDGET - (SECONDS - START) - RESERVE))
	[ "$limit" -gt "$left" ] && limit=$left
	if [ "$limit" -lt 5 ]; then
		RC=125
		DUR=0
		echo "(not run: the ${BUDGET} s budget is spent)" >"$LOGS/$name.log"
		return
	fi
	echo
	echo "=== $name (limit ${limit} s): $*"
	local t0=$SECONDS
	(cd "$ROOT/$dir" && timeout --kill-after=5 "$limit" "$@") >"$LOGS/$name.log" 2>&1
	RC=$?
	DUR=$((SECONDS - t0))
	tail -n 40 "$LOGS/$name.log"
	echo "=== $name: exit $RC, $DUR s"
}

# verdict NAME [NOTE]: records the stage from RC.
verdict() {
	local name=$1 note=${2:-}
	case $RC in
	0) record "$name" PASS "$DUR" "$note" ;;
	200) record "$name" ABSENT "$DUR" "$note" ;;
	124 | 137) record "$name" TIMEOUT "$DUR" "time limit reached${note:+; $note}" ;;
	125) record "$name" "NOT RUN" 0 "out of time" ;;
	*) record "$name" FAIL "$DUR" "exit $RC${note:+; $note}" ;;
	esac
}

# gotest NAME LIMIT DIR BINARY ARGS...: runs a test binary verbosely and
# fails the stage when a test fails or skips (but for NO_GPU_ONLY).
gotest() {
	local name=$1 limit=$2 dir=$3 bin=$4
	shift 4
	if [ ! -x "$ROOT/.gpu/$bin" ]; then
		RC=1 DUR=0
		echo "missing .gpu/$bin: run scripts/gpu-build.sh" >"$LOGS/$name.log"
		verdict "$name" "missing .gpu/$bin"
		return
	fi
	stage "$name" "$limit" "$dir" "$ROOT/.gpu/$bin" -test.v -test.count=1 "$@"
	local log=$LOGS/$name.log skips pass fail
	pass=$(grep -c -- '--- PASS' "$log")
	fail=$(grep -c -- '--- FAIL' "$log")
	skips=$(grep -E -- '--- SKIP' "$log" | grep -Ev -- "--- SKIP: ($NO_GPU_ONLY) " || true)
	local note="$pass passed, $fail failed"
	if [ -n "$skips" ]; then
		note="$note; SKIPPED: $(echo "$skips" | sed -E 's/.*--- SKIP: ([^ ]+).*/\1/' | tr '\n' ' ')"
		[ "$RC" = 0 ] && RC=1
	fi
	if [ "$RC" = 0 ] && [ "$pass" = 0 ]; then
		note="$note; no test ran"
		RC=1
	fi
	verdict "$name" "$note"
}

if [ "$DRY" != 1 ]; then
# --- env ---------------------------------------------------------------
envinfo() {
	echo "--- nvidia-smi"
	nvidia-smi || return 1
	echo "--- .gpu/BUILD"
	cat .gpu/BUILD 2>/dev/null || echo "(no .gpu/BUILD: run scripts/gpu-build.sh)"
	echo "--- /proc/driver/nvidia/version"
	cat /proc/driver/nvidia/version 2>/dev/null
	echo "--- CUDA libraries known to ldconfig"
	ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libcublas|libcusolver|libcusparse|libnvJitLink|libnvrtc' || true
	echo "--- /usr/local/cuda*"
	ls -d /usr/local/cuda* 2>/dev/null || true
	echo "--- Python: $PY"
	"$PY" - <<'PY' 2>&1 || true
import glob, site
try:
    import torch
    print("torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as e:
    print("torch:", e)
for m in ("peft", "transformers", "safetensors"):
    try:
        print(m, __import__(m).__version__)
    except Exception as e:
        print(m + ":", e)
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    for d in sorted(glob.glob(sp + "/nvidia/*/lib")) + sorted(glob.glob(sp + "/nvidia/cu*/lib")):
        print("wheel:", d)
PY
	echo "--- LOWRANK_CUDA_LIB_DIR=${LOWRANK_CUDA_LIB_DIR:-} CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-}"
}
export -f envinfo
stage env 30 . bash -c envinfo
verdict env

# --- backends ----------------------------------------------------------
stage backends 30 . "$ROOT/.gpu/lowrank" backends
if [ "$RC" = 0 ] && ! grep -Eq '^cuda +available' "$LOGS/backends.log"; then
	RC=1
	verdict backends "cuda is not available: $(grep -m1 '^cuda' "$LOGS/backends.log")"
else
	verdict backends
fi

# --- headers -----------------------------------------------------------
# The folders of one set of CUDA headers: a single folder with them all,
# or NVIDIA's pip wheels, whose headers are spread over nvidia/*/include.
find_headers() {
	local d sp
	local versioned
	versioned=$(printf '%s\n' /usr/local/cuda-*/include | sort -rV)
	for d in "${CUDA_HOME:-/nonexistent}/include" "${CUDA_PATH:-/nonexistent}/include" /usr/local/cuda/include \
		$versioned /usr/include /opt/conda/include "${CONDA_PREFIX:-/nonexistent}/include"; do
		if [ -f "$d/cuda.h" ] && [ -f "$d/cusolverDn.h" ] && [ -f "$d/cublasLt.h" ] && [ -f "$d/cusparse.h" ] && [ -f "$d/nvrtc.h" ]; then
			echo "$d"
			return
		fi
	done
	for sp in $("$PY" -c 'import site; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null); do
		local dirs="" inc
		for inc in "$sp"/nvidia/*/include; do
			[ -d "$inc" ] && dirs="$dirs:$inc"
		done
		dirs=${dirs#:}
		if [ -n "$dirs" ] && ls "$sp"/nvidia/*/include/cuda.h "$sp"/nvidia/*/include/cusolverDn.h >/dev/null 2>&1; then
			echo "$dirs"
			return
		fi
	done
}
INC=$(find_headers)
WHICH="the machine's"
if [ -z "$INC" ] && [ -f .gpu/include/cuda.h ]; then
	INC=$ROOT/.gpu/include
	WHICH="the ones carried in .gpu/include (the machine has none)"
fi
if ! command -v "${CC:-gcc}" >/dev/null; then
	record headers "NOT RUN" 0 "no C compiler (${CC:-gcc}) on this machine; headers: ${INC:-none}"
elif [ -z "$INC" ]; then
	record headers FAIL 0 "no CUDA headers here, and none in .gpu/include"
else
	export LOWRANK_CUDA_INCLUDE=$INC
	gotest headers 30 internal/cuda cuda.test -test.run '^TestHeaderCheck'
	unset LOWRANK_CUDA_INCLUDE
	NOTES[${#NOTES[@]} - 1]="${NOTES[${#NOTES[@]} - 1]}; $WHICH: $INC"
fi

# --- tests -------------------------------------------------------------
gotest cuda-tests 90 internal/cuda cuda.test -test.skip '^TestHeaderCheck$'
gotest kernels-tests 20 kernels kernels.test
# TestFake* run the backend over the fake CUDA; CI runs them.
gotest conformance 90 gpu gpu.test -test.run '^TestConformance$'
gotest cross-check 90 gpu gpu.test -test.run '^(TestCrossCheckCPU|TestCrossCheckShapes)$'
gotest faults 60 gpu gpu.test -test.run '^(TestOutOfMemoryReal|TestOutOfMemoryFallsBack|TestNoLeaks)$'
gotest gpu-tests 90 gpu gpu.test -test.skip '^(TestFake|TestConformance$|TestCrossCheckCPU$|TestCrossCheckShapes$|TestOutOfMemoryReal$|TestOutOfMemoryFallsBack$|TestNoLeaks$)'

# --- PEFT --------------------------------------------------------------
# The adapter is extracted on the GPU (LOWRANK_BACKEND=cuda fails rather
# than fall back to the CPU).
stage peft 75 . env LOWRANK_BACKEND=cuda "$PY" scripts/peft_check.py "$ROOT/.gpu/lowrank"
verdict peft "$(grep -m1 -E '^PEFT check' "$LOGS/peft.log" || true)"

fi # DRY

# --- benchmarks ----------------------------------------------------------
# In order of importance: the randomized method (the tensor-core sketch),
# apply, then the exact SVD, whose largest sizes the deadline may cut.
bench() {
	local t="$ROOT/.gpu/gpu.test" rc=0
	"$t" -test.run '^$' -test.bench '^BenchmarkRandomized$' -test.benchtime 3x || rc=1
	"$t" -test.run '^$' -test.bench '^BenchmarkApply$' -test.benchtime 100x || rc=1
	"$t" -test.run '^$' -test.bench '^BenchmarkExactSVD$' -test.benchtime 1x || rc=1
	return $rc
}
export -f bench
TORCH_MIN=60 # seconds the torch stage keeps
[ "$DRY" = 1 ] && TORCH_MIN=20
RESERVE=$TORCH_MIN
left=$((BUDGET - (SECONDS - START) - RESERVE))
lim=$((left < 240 ? left : 240))
export LOWRANK_BENCH_DEADLINE=$(($(date +%s) + lim - 10))
stage bench-go 240 gpu bash -c bench
nres=$(grep -c '^Benchmark' "$LOGS/bench-go.log")
nbud=$(grep -c -- '--- SKIP.*budget' "$LOGS/bench-go.log")
verdict bench-go "$nres results, $nbud cut by the time budget"
cp "$LOGS/bench-go.log" "$OUTDIR/bench-go.txt" 2>/dev/null

RESERVE=0
TORCH_ARGS=()
TORCH_TEST='import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'
if [ "$DRY" = 1 ]; then
	TORCH_ARGS=(--cpu --quick) # the script's own dry run
	TORCH_TEST='import torch'
fi
if "$PY" -c "$TORCH_TEST" >/dev/null 2>&1; then
	left=$((BUDGET - (SECONDS - START)))
	lim=$((left < 150 ? left : 150))
	stage bench-torch 150 . "$PY" scripts/gpu_torch_bench.py --json "$LOGS/torch.json" --deadline $(($(date +%s) + lim - 10)) "${TORCH_ARGS[@]}"
	verdict bench-torch
	cp "$LOGS/torch.json" "$OUTDIR/torch.json" 2>/dev/null
else
	RC=200 DUR=0
	echo "torch is not installed for $PY, or sees no CUDA device: no torch columns" >"$LOGS/bench-torch.log"
	verdict bench-torch "torch absent or without CUDA ($PY)"
fi
TABLES=$LOGS/tables.md
TORCH_JSON=()
[ -f "$LOGS/torch.json" ] && TORCH_JSON=("$LOGS/torch.json")
if ! "$PY" scripts/gpu_bench_table.py "$LOGS/bench-go.log" "${TORCH_JSON[@]}" >"$TABLES" 2>&1; then
	echo "(scripts/gpu_bench_table.py failed; the raw figures are in the logs below)" >>"$TABLES"
fi

# --- results -----------------------------------------------------------
TOTAL=$((SECONDS - START))
failed=0
{
	echo "# lowrank GPU check"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%MZ), $TOTAL s"
	echo "- build: $(tr '\n' ' ' <.gpu/BUILD 2>/dev/null || echo 'no .gpu/BUILD')"
	echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || true)"
	echo
	echo "| stage | result | s | notes |"
	echo "|---|---|---|---|"
	for i in "${!NAMES[@]}"; do
		echo "| ${NAMES[$i]} | ${STATES[$i]} | ${TIMES[$i]} | ${NOTES[$i]//|/\\|} |"
		case ${STATES[$i]} in PASS | ABSENT) ;; *) failed=$((failed + 1)) ;; esac
	done
	echo
	if [ "$failed" = 0 ]; then echo "**Result: PASS**"; else echo "**Result: FAIL** ($failed of ${#NAMES[@]} stages did not pass)"; fi
	if [ "$DRY" = 1 ]; then
		echo
		echo "**Dry run** (GPU_CHECK_DRY=1): over the fake CUDA at small sizes; the times mean nothing."
	fi
	echo
	echo "## Benchmarks"
	echo
	cat "$TABLES"
	echo
	echo "## Logs"
	for n in "${NAMES[@]}"; do
		[ -f "$LOGS/$n.log" ] || continue
		echo
		echo "### $n"
		echo
		echo '```'
		if [ "$(wc -l <"$LOGS/$n.log")" -gt 400 ]; then
			echo "(first 100 and last 300 of $(wc -l <"$LOGS/$n.log") lines)"
			head -n 100 "$LOGS/$n.log"
			echo "..."
			tail -n 300 "$LOGS/$n.log"
		else
			cat "$LOGS/$n.log"
		fi
		echo '```'
	done
} >"$RESULT"

echo
sed -n '1,/^\*\*Result/p' "$RESULT"
echo
echo "results: $RESULT"
[ "$failed" = 0 ]
