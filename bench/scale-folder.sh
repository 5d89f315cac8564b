#!/usr/bin/env bash
# Scale figures for model folders (README, "Big models: folders, shards and
# clusters"): generates a BF16 model folder of LAYERS 28672×8192 matrices
# (a Llama-70B MLP's shape; 9 layers ≈ 4.2 GB) in 3 shards, factorizes it at
# --rank 64 with one process, with --jobs 2, and with 2 local worker
# processes (--shard I/2) and a join, and prints wall time and peak RSS
# (GNU time's %M) of each; then deletes everything it wrote.
#   bash bench/scale-folder.sh [LAYERS] [WORKDIR]
# Needs about 4.5 GB free in WORKDIR (default: a new folder in /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=${1:-9}
DIR=${2:-$(mktemp -d /tmp/lowrank-scale.XXXXXX)}
trap 'rm -rf "$DIR"' EXIT
go build -o "$DIR/lowrank" ./cmd/lowrank
go build -o "$DIR/genmodel" ./scripts/genmodel
T=/usr/bin/time
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/^Mem:/{print $2}') GiB"
$T -f "generate: %e s" "$DIR/genmodel" -o "$DIR/in" -shards 3 -dtype bf16 -layers "$LAYERS" -d 28672 -k 8192 -r 16
echo "input: $(du -sb "$DIR/in" | cut -f1) bytes in $(ls "$DIR/in" | grep -c 'safetensors$') shards"
F=(--rank 64 --quiet)
$T -f "1 process: %e s wall, %M KB peak RSS" "$DIR/lowrank" factorize "$DIR/in" -o "$DIR/out1" "${F[@]}"
$T -f "--jobs 2: %e s wall, %M KB peak RSS" "$DIR/lowrank" factorize "$DIR/in" -o "$DIR/out2" "${F[@]}" --jobs 2
start=$(date +%s.%N)
$T -o "$DIR/w0" -f "worker 0: %e s wall, %M KB peak RSS" "$DIR/lowrank" factorize "$DIR/in" -o "$DIR/out3" "${F[@]}" --shard 0/2 &
$T -o "$DIR/w1" -f "worker 1: %e s wall, %M KB peak RSS" "$DIR/lowrank" factorize "$DIR/in" -o "$DIR/out3" "${F[@]}" --shard 1/2 &
wait
$T -o "$DIR/j" -f "join: %e s wall, %M KB peak RSS" "$DIR/lowrank" join "$DIR/out3" --quiet
end=$(date +%s.%N)
cat "$DIR/w0" "$DIR/w1" "$DIR/j"
echo "2 workers + join: $(echo "$end - $start" | bc) s wall"
# The same tensor shape alone, in one file: the working set of one tensor.
"$DIR/genmodel" -o "$DIR/one.safetensors" -dtype bf16 -layers 1 -d 28672 -k 8192 -r 16
$T -f "one tensor, one file: %e s wall, %M KB peak RSS" "$DIR/lowrank" factorize "$DIR/one.safetensors" -o "$DIR/one-out.safetensors" "${F[@]}"
for o in out2 out3; do
	same=yes
	for f in "$DIR"/out1/*; do
		cmp -s "$f" "$DIR/$o/$(basename "$f")" || same=no
	done
	[ "$(ls "$DIR/out1" | wc -l)" = "$(ls "$DIR/$o" | wc -l)" ] || same=no
	echo "$o ($(ls "$DIR/$o" | tr '\n' ' ')): identical to the one-process folder: $same"
done
