#!/usr/bin/env bash
# Plain against data-aware SVD on a trained MLP and scikit-learn's digits:
#   bash bench/calibration/run.sh [digits.py flags]     (≈ 3 min on 2 cores)
# Writes docs/calibration/results.md, results.json and accuracy.png.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3   # Debian's Python (a pyenv/venv python3 lacks Debian's packages)
pkgs=(python3-numpy python3-sklearn python3-torch python3-matplotlib)
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
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/lowrank" ./cmd/lowrank
$PY bench/calibration/digits.py --lowrank "$bin/lowrank" "$@"
