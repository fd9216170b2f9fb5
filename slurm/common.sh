# shellcheck shell=bash
# Shared by the slurm/*.sh job scripts (sourced, not run): the environment every jeoparda rank
# gets, the launch line (srun, optionally inside an Apptainer image) and requeue after preemption.
#
# Variables a user may set before `sbatch` (sbatch passes the environment on):
#   JEOPARDA_CONTAINER   Apptainer image: run `srun apptainer exec --nv IMAGE jeoparda ...`
#   JEOPARDA_APPTAINER_ARGS  extra `apptainer exec` options, e.g. "--bind /scratch"
#   JEOPARDA_SRUN_MPI    srun's --mpi plugin for steps that use MPI (default pmix; `srun --mpi=list`
#                        shows the site's). DDP training uses none: its ranks meet over TCP.
#   JEOPARDA_GPU_BIND    passed to srun as --gpu-bind (e.g. closest: each rank on the GPU nearest its CPUs)
#   JEOPARDA_STAGE_DIR   node-local folder for staged shards (default $TMPDIR, else /tmp)
#   NCCL_* / TORCH_NCCL_*  kept as given; defaults below only fill what is unset

# Threads: one rank per task; PyTorch and OpenMP use the task's CPUs, BLAS stays single-threaded
# (jeoparda's numpy work is many small arrays).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"

# NCCL: warnings (not silence) in the job log; a rank that dies or hangs ends the job with an
# error instead of leaving the others waiting in a collective until the time limit.
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
export TORCH_NCCL_ASYNC_ERROR_HANDLING="${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}"

# Node-local staging target (used when the run sets data.stage=true).
export JEOPARDA_STAGE_DIR="${JEOPARDA_STAGE_DIR:-${TMPDIR:-/tmp}}"

# Exit status of `jeoparda train` after a preemption signal (SIGTERM, or SIGUSR1 from --signal).
JEOPARDA_EXIT_PREEMPTED=75

# jeoparda ARGS... here, on the batch host, outside srun (inside the image when JEOPARDA_CONTAINER
# is set): for questions such as `jeoparda config get`.
jeoparda_here() {
    if [ -n "${JEOPARDA_CONTAINER:-}" ]; then
        # shellcheck disable=SC2086  # the extra options are meant to split into words
        apptainer exec ${JEOPARDA_APPTAINER_ARGS:-} "$JEOPARDA_CONTAINER" jeoparda "$@"
    else
        jeoparda "$@"
    fi
}

# The srun --mpi plugin for `jeoparda ARGS...`: MPI only where jeoparda uses it (convert's ranks,
# Horovod); DDP (train, sr train) gets none, so no PMI layer stands between Slurm and the ranks.
jeoparda_mpi_plugin() {
    local wants_mpi=1 arg config=""
    if [ "${1:-}" = sr ] && [ "${2:-}" = train ]; then
        wants_mpi=0  # sr train: DDP unless --backend horovod
        for arg in "$@"; do
            if [ "$config" = next ] && [ "$arg" = horovod ]; then wants_mpi=1; fi
            config=""
            case "$arg" in
                --backend=horovod) wants_mpi=1 ;;
                --backend) config=next ;;
            esac
        done
    elif [ "${1:-}" = train ]; then
        # Horovod or not is dist.backend of the configuration these --config/--set arguments resolve
        # to: jeoparda answers (an invalid configuration answers nothing here; train then says why).
        local given=() option=""
        for arg in "$@"; do
            if [ -n "$option" ]; then given+=("$option" "$arg"); option=""; continue; fi
            case "$arg" in
                --config|--set) option="$arg" ;;
                --config=*|--set=*) given+=("$arg") ;;
            esac
        done
        if [ "$(jeoparda_here config get dist.backend ${given[@]+"${given[@]}"} 2>/dev/null)" = horovod ]; then
            wants_mpi=1
        else
            wants_mpi=0
        fi
    fi
    if [ "$wants_mpi" = 1 ]; then echo "${JEOPARDA_SRUN_MPI:-pmix}"; else echo none; fi
}

# srun [apptainer exec --nv IMAGE] jeoparda ARGS...: one jeoparda process per task.
# --kill-on-bad-exit=1 on every srun that starts ranks: a rank that stops (a failed staging, an
# error, a crash) ends the step, instead of its peers waiting for it until the time limit.
jeoparda_srun() {
    local mpi
    mpi="$(jeoparda_mpi_plugin "$@")"
    # Slurm 22.05-23.02 steps do not inherit the job's --cpus-per-task: without it every rank and
    # its reader processes share one core.
    local opts=(--mpi="$mpi")
    if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then opts+=(--cpus-per-task="$SLURM_CPUS_PER_TASK"); fi
    if [ -n "${JEOPARDA_GPU_BIND:-}" ]; then opts+=(--gpu-bind="$JEOPARDA_GPU_BIND"); fi
    if [ -n "${JEOPARDA_CONTAINER:-}" ]; then
        if [ ! -e "$JEOPARDA_CONTAINER" ]; then
            echo "jeoparda: error: JEOPARDA_CONTAINER=$JEOPARDA_CONTAINER: no such image" >&2
            return 2
        fi
        # shellcheck disable=SC2086  # the extra options are meant to split into words
        srun "${opts[@]}" --kill-on-bad-exit=1 apptainer exec --nv ${JEOPARDA_APPTAINER_ARGS:-} "$JEOPARDA_CONTAINER" \
            jeoparda "$@"
    else
        srun "${opts[@]}" --kill-on-bad-exit=1 jeoparda "$@"
    fi
}

# jeoparda_train CONFIG ARGS...: train with CONFIG; ARGS go to `jeoparda train` (--set, --out).
# After a requeue (SLURM_RESTART_COUNT > 0) the run continues from its newest checkpoint; when
# the run was preempted it requeues the job (same job id, so the same default run folder).
jeoparda_train() {
    local config="$1"
    shift
    local resume=()
    if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then
        resume=(--resume-if-checkpoint)
    fi
    echo "jeoparda: job ${SLURM_JOB_ID:-?} on ${SLURM_JOB_NUM_NODES:-1} node(s), ${SLURM_NTASKS:-1} task(s), restart ${SLURM_RESTART_COUNT:-0}: jeoparda train --config $config ${resume[*]} $*"
    local status=0
    jeoparda_srun train --config "$config" --set "data.stage_dir=$JEOPARDA_STAGE_DIR" "${resume[@]}" "$@" || status=$?
    if [ "$status" -eq "$JEOPARDA_EXIT_PREEMPTED" ] && [ -n "${SLURM_JOB_ID:-}" ]; then
        echo "jeoparda: preempted, checkpoint written; requeueing job $SLURM_JOB_ID"
        scontrol requeue "$SLURM_JOB_ID"
    fi
    return "$status"
}
