#!/bin/bash
# Train ResNet18 (11.2 M parameters; batch 64 per GPU, Adam), data-parallel with one task per GPU.
#   sbatch slurm/train_resnet18.sh [--set KEY=VALUE ...] [--out RUN_DIR]
# Submit from the repository root (the config path is relative to it). Every #SBATCH line can be
# overridden on the sbatch command line, e.g. sbatch --nodes=8 --time=12:00:00 slurm/train_resnet18.sh;
# on nodes without GPUs add --gres=none. Arguments after the script go to `jeoparda train`.
# With JEOPARDA_CONTAINER=IMAGE.sif the ranks run inside the Apptainer image (docs/container.md).
# Slurm sends SIGUSR1 5 minutes before the time limit: the run checkpoints, exits 75 and the job
# requeues itself, continuing from the checkpoint (same job id, same run folder).
#SBATCH --job-name=jeoparda-resnet18
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=jeoparda-resnet18-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=USR1@300
#SBATCH --requeue
set -euo pipefail
source "${JEOPARDA_HOME:-${SLURM_SUBMIT_DIR:-.}}/slurm/common.sh"
jeoparda_train benchmarks/configs/resnet18.yaml "$@"
