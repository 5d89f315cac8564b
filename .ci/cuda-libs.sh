#!/usr/bin/env bash
# cuda-libs.sh: checks the CUDA backend against NVIDIA's own CUDA 11.8
# libraries on a machine without a GPU (issue 14). Debian 12's contrib and
# non-free components carry them; this script enables those components in
# a sources file of its own, installs the libraries (not the toolkit),
# fetches the 11.8 headers without installing them, and runs, through the
# project's own code:
#
#   - every symbol binding, loadMath on the CUDA 11 set, NVRTC on every
#     kernel for every architecture in float and double, the status names
#     against the libraries' own (go test -run 'TestReal' ./internal/cuda);
#   - internal/cuda/headercheck/check.c against the 11.8 headers
#     (TestHeaderCheck);
#   - cuInit's reason (CUDA_ERROR_NO_DEVICE, naming the driver version and
#     saying that no device or kernel module is visible) through the real
#     Open, the gpu backend and `lowrank backends`.
#
# LOWRANK_REQUIRE_CUDA_LIBS=1 makes those tests fail where they would
# skip. The script fails when a check fails, and skips (exit 0) only when
# the packages cannot be installed, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(libcuda1 libnvrtc11.2 libnvrtc-builtins11.8 libcublas11 libcublaslt11 libcusolver11 libcusparse11)
SOURCES=/etc/apt/sources.list.d/lowrank-cuda-nonfree.sources
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

skip() {
	echo "SKIP: the CUDA 11.8 libraries cannot be installed here: $*"
	echo "      (the real-library checks of issue 14 did not run)"
	exit 0
}

# shellcheck source=/dev/null
. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" != debian ] || [ "${VERSION_CODENAME:-}" != bookworm ]; then
	skip "this is ${PRETTY_NAME:-an unknown system}, not Debian 12 (bookworm), whose non-free component has these packages"
fi
command -v apt-get >/dev/null || skip "no apt-get"

t0=$SECONDS
if ! dpkg -s "${PKGS[@]}" >/dev/null 2>&1; then
	if [ ! -f "$SOURCES" ]; then
		printf '%s\n' \
			'Types: deb' \
			'URIs: http://deb.debian.org/debian' \
			'Suites: bookworm bookworm-updates' \
			'Components: contrib non-free non-free-firmware' \
			'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
			$SUDO tee "$SOURCES" >/dev/null || skip "cannot write $SOURCES"
	fi
	$SUDO apt-get update -qq || skip "apt-get update failed"
	$SUDO apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null ||
		skip "apt-get install ${PKGS[*]} failed"
fi
echo "libraries: $(dpkg-query -W -f '${Package} ${Version}\n' "${PKGS[@]}" | paste -sd, -) ($((SECONDS - t0)) s)"

# The headers: nvidia-cuda-dev's usr/include only (installing the package
# would pull in the whole toolkit).
HDR=$(mktemp -d)
trap 'rm -rf "$HDR"' EXIT
t0=$SECONDS
(cd "$HDR" && apt-get download nvidia-cuda-dev >/dev/null 2>&1) || skip "apt-get download nvidia-cuda-dev failed"
dpkg-deb --fsys-tarfile "$HDR"/nvidia-cuda-dev_*.deb | tar -x -C "$HDR" --wildcards './usr/include/*'
rm -f "$HDR"/nvidia-cuda-dev_*.deb
INC=$HDR/usr/include
if [ ! -f "$INC/cuda.h" ] || [ ! -f "$INC/cusolverDn.h" ]; then
	echo "FAIL: nvidia-cuda-dev has no cuda.h or cusolverDn.h"
	exit 1
fi
echo "headers: $INC ($(grep -m1 '#define CUDA_VERSION' "$INC/cuda.h"), $((SECONDS - t0)) s)"

export LOWRANK_REQUIRE_CUDA_LIBS=1 LOWRANK_CUDA_INCLUDE=$INC
go test -count=1 -v -run 'TestReal|TestHeaderCheck' ./internal/cuda/
# Reasons the gpu backend and the root give without a device.
go test -count=1 -run 'TestInitReason|TestFallbackToCPU' ./gpu/

# The CLI, end to end: cuda is not available, and says why.
out=$(go run ./cmd/lowrank backends)
echo "$out"
want='^cuda +not available: cuInit: CUDA_ERROR_NO_DEVICE \(driver CUDA [0-9]+\.[0-9]+, /[^)]*libcuda[^)]*\): no NVIDIA device or kernel module is visible'
if ! grep -Eq "$want" <<<"$out"; then
	echo "FAIL: lowrank backends does not give cuInit's reason with the driver version"
	exit 1
fi
echo "cuda-libs: every check passed"
