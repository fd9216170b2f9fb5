#!/bin/bash
# Scaling report over finished runs, as one small job (scaling_sweep.sh submits it after the
# sweep's runs, with --dependency=afterany, so failed runs are reported as failed).
#   sbatch slurm/report.sh 'runs/sweep/*' --out REPORT [--projection FILE]
# Arguments go to `jeoparda report`; quote globs so that jeoparda expands them when the job runs.
#SBATCH --job-name=jeoparda-report
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --time=00:15:00
#SBATCH --output=jeoparda-report-%j.out
set -euo pipefail
source "${JEOPARDA_HOME:-${SLURM_SUBMIT_DIR:-.}}/slurm/common.sh"
jeoparda_srun report "$@"
