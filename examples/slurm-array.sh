#!/usr/bin/env bash
# Factorize a sharded Hugging Face model with a Slurm job array: N array tasks,
# one GPU each, each doing part SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT
# of the tensors into the same output folder on a shared file system, then a
# join step that runs once every task has succeeded (afterok).
#
#   bash examples/slurm-array.sh /shared/models/Llama-70B /shared/models/Llama-70B-r256 8
#
# A task that fails or is preempted can be resubmitted alone
# (sbatch --array=3 …): --resume reuses every shard piece it had finished;
# then run the join again. lowrank reads the part from SLURM_ARRAY_TASK_ID,
# SLURM_ARRAY_TASK_COUNT and SLURM_ARRAY_TASK_MIN (the array must be
# contiguous: --array=0-7, no step).
set -euo pipefail
IN=${1:?usage: slurm-array.sh IN_FOLDER OUT_FOLDER [N]}
OUT=${2:?usage: slurm-array.sh IN_FOLDER OUT_FOLDER [N]}
N=${3:-8}
LOWRANK=${LOWRANK:-lowrank}   # the lowrank binary, on the shared file system or in PATH
FLAGS=${LOWRANK_FLAGS:---rank 256 --seed 1}   # the same in every task

array=$(sbatch --parsable \
	--job-name=lowrank-factorize \
	--array=0-$((N - 1)) \
	--gres=gpu:1 --cpus-per-task=4 --mem=32G --time=04:00:00 \
	--requeue \
	--output=lowrank-%A_%a.log \
	--wrap="$LOWRANK factorize '$IN' -o '$OUT' $FLAGS --resume --quiet")
echo "submitted array job $array ($N tasks)"

join=$(sbatch --parsable \
	--job-name=lowrank-join \
	--dependency=afterok:"$array" \
	--cpus-per-task=1 --mem=4G --time=01:00:00 \
	--output=lowrank-join-%j.log \
	--wrap="$LOWRANK join '$OUT' --report '$OUT.report.csv'")
echo "submitted join job $join (runs after every task of $array succeeded)"
