#!/bin/bash
# Convert the BigEarthNet-S2 archive into sharded HDF5, MPI-parallel on CPU nodes: every task
# converts a disjoint share of the shards; the output is the same for any number of tasks, and
# a rerun resumes (finished shards are kept by checksum).
#   sbatch slurm/convert_bigearthnet.sh --source BigEarthNet-v1.0 --out DATA [convert options]
# e.g. --exclude patches_with_seasonal_snow.csv --exclude patches_with_cloud_and_shadow.csv.
# Arguments go to `jeoparda convert` (jeoparda convert --help). Every #SBATCH line can be
# overridden on the sbatch command line (sbatch --nodes=4 ...). With JEOPARDA_CONTAINER=IMAGE.sif
# the tasks run inside the Apptainer image. MPI goes through srun --mpi=pmix (JEOPARDA_SRUN_MPI).
#SBATCH --job-name=jeoparda-convert
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=16
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --output=jeoparda-convert-%j.out
#SBATCH --open-mode=append
set -euo pipefail
source "${JEOPARDA_HOME:-${SLURM_SUBMIT_DIR:-.}}/slurm/common.sh"
jeoparda_srun convert "$@"
