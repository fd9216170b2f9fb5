"""The bottleneck verdict: where a training step's time goes, and one sentence of what to try.

A step's time splits into data wait (blocked on the loader), compute (forward, backward and the
optimiser without gradient synchronisation) and exposed communication (what gradient all-reduce
adds beyond compute: the rest). A training run times data wait and the step, not compute alone;
``jeoparda bench train`` times the same steps once more without gradient synchronisation, which
gives compute, and so communication. The rule, in order:

1. data-bound when data wait is at least :data:`DATA_SHARE` of the step and no less than exposed
   communication;
2. communication-bound when exposed communication is at least :data:`COMMUNICATION_SHARE`;
3. compute-bound when compute is known, or on one worker (no communication by definition);
4. otherwise unsplit: compute and communication were not told apart.
"""
from __future__ import annotations

DATA_SHARE = 0.2  # data wait / step time at or above which the run waits on its input
COMMUNICATION_SHARE = 0.2  # exposed communication / step time at or above which it waits on the network

SENTENCES = {
    "data": "data-bound: the step waits on its input; raise data.workers, stage to node-local disk "
            "(data.stage).",
    "communication": "communication-bound: gradient all-reduce shows in the step; use a larger batch per "
                     "worker, check the NCCL transport (NCCL_DEBUG=INFO: InfiniBand or sockets).",
    "compute": "compute-bound: the step is busy computing, as it should be.",
    "unsplit": "unsplit: compute and communication not told apart in a training run; `jeoparda bench "
               "train` splits them.",
}


#: The keys of a step split (:func:`split`), seconds per step.
SPLIT_KEYS = ("step_s", "data_wait_s", "compute_s", "communication_s")


def split(step_s: float, data_wait_s: float, compute_s: float | None) -> dict[str, float | None]:
    """Seconds per step: ``step_s``, ``data_wait_s``, ``compute_s`` and ``communication_s``, the
    step's rest (never below 0; None when compute is unknown). On one worker there is nothing to
    communicate: the caller passes the step less the data wait as compute."""
    communication = None if compute_s is None else max(0.0, step_s - data_wait_s - compute_s)
    return {"step_s": step_s, "data_wait_s": data_wait_s, "compute_s": compute_s, "communication_s": communication}


def verdict(parts: dict[str, float | None], world_size: int) -> tuple[str, str]:
    """The bottleneck of a step split (:func:`split`): key (data, communication, compute,
    unsplit) and its sentence."""
    step = parts.get("step_s") or 0.0
    if step <= 0:
        return "unsplit", SENTENCES["unsplit"]
    data = (parts.get("data_wait_s") or 0.0) / step
    comm = parts.get("communication_s")
    comm_share = None if comm is None else comm / step
    if world_size == 1 and comm_share is None:
        comm_share = 0.0
    if data >= DATA_SHARE and (comm_share is None or data >= comm_share):
        key = "data"
    elif comm_share is not None and comm_share >= COMMUNICATION_SHARE:
        key = "communication"
    elif parts.get("compute_s") is not None or world_size == 1:
        key = "compute"
    else:
        key = "unsplit"
    return key, SENTENCES[key]
