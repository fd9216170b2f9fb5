#!/bin/bash
# Train the learned super-resolution model (the 20 m and 60 m networks, docs/superres.md),
# data-parallel with one task per GPU; the model file then serves
# `jeoparda convert --resample learned --sr-model MODEL`.
#   sbatch slurm/sr_train.sh --data ARCHIVE-or-DATA --out MODEL [--steps N] [sr train options]
# Arguments go to `jeoparda sr train` (jeoparda sr train --help); without --run-dir its log goes
# to runs/sr-<job id>. Every #SBATCH line can be overridden on the sbatch command line; on nodes
# without GPUs add --gres=none. With JEOPARDA_CONTAINER=IMAGE.sif the ranks run inside the
# Apptainer image. DDP needs no MPI (srun --mpi=none); --backend horovod gets JEOPARDA_SRUN_MPI.
#SBATCH --job-name=jeoparda-sr
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=01:00:00
#SBATCH --output=jeoparda-sr-%j.out
#SBATCH --open-mode=append
set -euo pipefail
source "${JEOPARDA_HOME:-${SLURM_SUBMIT_DIR:-.}}/slurm/common.sh"
jeoparda_srun sr train "$@"
