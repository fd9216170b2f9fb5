#!/bin/bash
# Train ResNet-50-D on EuroSAT (13 bands, 64x64 resized to 224x224 on the GPU, ten classes; the
# ResNet-D study's recipe), data-parallel with one task per GPU. The data set is the output of
# `jeoparda convert --source EuroSAT_MS ...`; its manifest makes the run single-label.
#   sbatch slurm/train_eurosat_resnet50d.sh --set data.path=DATA [--set KEY=VALUE ...] [--out RUN_DIR]
# Submit from the repository root (the config path is relative to it). Every #SBATCH line can be
# overridden on the sbatch command line, e.g. sbatch --nodes=2 slurm/train_eurosat_resnet50d.sh;
# on nodes without GPUs add --gres=none. Arguments after the script go to `jeoparda train`.
# With JEOPARDA_CONTAINER=IMAGE.sif the ranks run inside the Apptainer image (docs/container.md).
# Slurm sends SIGUSR1 5 minutes before the time limit: the run checkpoints, exits 75 and the job
# requeues itself, continuing from the checkpoint (same job id, same run folder).
#SBATCH --job-name=jeoparda-eurosat
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --output=jeoparda-eurosat-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=USR1@300
#SBATCH --requeue
set -euo pipefail
source "${JEOPARDA_HOME:-${SLURM_SUBMIT_DIR:-.}}/slurm/common.sh"
jeoparda_train benchmarks/configs/eurosat_resnet50d.yaml "$@"
