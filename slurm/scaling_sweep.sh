#!/bin/bash
# Submit the same benchmark at several scales and a final report job that waits for all of them.
#
#   slurm/scaling_sweep.sh [--nodes "1 2 4 8" | --tasks "1 2 4"] [--script slurm/train_resnet50.sh]
#                          [--out runs/sweep-NAME] [--sbatch "SBATCH OPTIONS"] [-- JEOPARDA ARGS...]
#
# --nodes LIST  one job per node count (tasks per node from the script's header); the default
# --tasks LIST  one job per tasks-per-node count on one node (and --gres=gpu:N, one GPU per task)
# --script      the job script to run at each scale (default slurm/train_resnet50.sh)
# --out         sweep folder: runs in OUT/runs/<n>, the report in OUT/report (default
#               runs/sweep-<script name>-<date>)
# --sbatch      extra sbatch options for every job, e.g. "--gres=none --time=00:30:00 -A proj"
# Arguments after -- go to `jeoparda train` in every job (e.g. --set train.epochs=3).
# The report job is submitted with --dependency=afterany on all runs, so it also runs when some
# fail (they appear as failed in the report). Prints the job ids; run from the repository root.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

axis=nodes
counts="1 2 4 8"
script=slurm/train_resnet50.sh
out=""
extra=""
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) axis=nodes; counts="$2"; shift 2 ;;
        --tasks) axis=tasks; counts="$2"; shift 2 ;;
        --script) script="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --sbatch) extra="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) echo "scaling_sweep.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ ! -f "$script" ]; then
    echo "scaling_sweep.sh: $script: no such job script (run from the repository root)" >&2
    exit 2
fi
for n in $counts; do
    case "$n" in
        ''|*[!0-9]*|0) echo "scaling_sweep.sh: '$n' is not a positive count" >&2; exit 2 ;;
    esac
done
name="$(basename "$script" .sh)"
out="${out:-runs/sweep-$name-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out/runs"

ids=()
for n in $counts; do
    if [ "$axis" = nodes ]; then
        scale=(--nodes="$n")
    else
        scale=(--nodes=1 --ntasks-per-node="$n" --gres=gpu:"$n")
    fi
    # shellcheck disable=SC2086  # $extra holds several sbatch options; later options win
    id=$(sbatch --parsable "${scale[@]}" --job-name="$name-$axis$n" --output="$out/$axis$n-%j.out" $extra \
        "$script" --out "$out/runs/$axis$n" "$@")
    id="${id%%;*}"
    ids+=("$id")
    echo "submitted $script with $n ${axis}: job $id -> $out/runs/$axis$n"
done
dependency="afterany:$(IFS=:; echo "${ids[*]}")"
# shellcheck disable=SC2086
report=$(sbatch --parsable --dependency="$dependency" --output="$out/report-%j.out" $extra \
    slurm/report.sh "$out/runs/*" --out "$out/report")
echo "submitted the report: job ${report%%;*} (after ${ids[*]}) -> $out/report/report.html"
