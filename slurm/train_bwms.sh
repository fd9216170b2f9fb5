#!/bin/bash
# Train BWMS, the band-wise multi-scale CNN of the BigEarthNet papers (11.3 M parameters; global
# batch 500 as the authors trained it, so strong scaling), data-parallel with one task per GPU.
#   sbatch slurm/train_bwms.sh [--set KEY=VALUE ...] [--out RUN_DIR]
# Submit from the repository root (the config path is relative to it). Every #SBATCH line can be
# overridden on the sbatch command line, e.g. sbatch --nodes=8 --time=12:00:00 slurm/train_bwms.sh;
# on nodes without GPUs add --gres=none. Arguments after the script go to `jeoparda train`.
# With JEOPARDA_CONTAINER=IMAGE.sif the ranks run inside the Apptainer image (docs/container.md).
# Slurm sends SIGUSR1 5 minutes before the time limit: the run checkpoints, exits 75 and the job
# requeues itself, continuing from the checkpoint (same job id, same run folder).
#SBATCH --job-name=jeoparda-bwms
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=06:00:00
#SBATCH --output=jeoparda-bwms-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=USR1@300
#SBATCH --requeue
set -euo pipefail
source "${JEOPARDA_HOME:-${SLURM_SUBMIT_DIR:-.}}/slurm/common.sh"
jeoparda_train benchmarks/configs/bwms.yaml "$@"
