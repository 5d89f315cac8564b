#!/usr/bin/env bash
# The accuracy study of the reduced-precision sketch (WithSketchPrecision,
# --sketch-precision): trains an MLP on scikit-learn's digits, then measures
# error/optimal for f32, tf32 and bf16 on synthetic spectra and on its
# weights, on the CPU backend's emulation of the tensor cores' rounding.
#   bash bench/sketchprec/run.sh [lowrank-sketchprec flags]   (≈ 6 min on 2 cores)
# Writes docs/sketch-precision/results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONDONTWRITEBYTECODE=1
PY=/usr/bin/python3 # Debian's Python (a pyenv/venv python3 lacks Debian's packages)
for p in python3-numpy python3-sklearn python3-torch; do
	dpkg -s "$p" >/dev/null 2>&1 || {
		echo "bench/sketchprec: $p is missing (apt-get install python3-numpy python3-sklearn python3-torch)" >&2
		exit 1
	}
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$PY bench/sketchprec/train_digits.py "$tmp/digits_mlp.safetensors"
mkdir -p docs/sketch-precision
(cd bench && go run ./cmd/lowrank-sketchprec -weights "$tmp/digits_mlp.safetensors" -out ../docs/sketch-precision/results.md "$@")
