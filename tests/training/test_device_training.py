"""jeoparda train's GPU path on the stand-in accelerator (tests/standin_cuda.py), in process:
the rank binds a GPU, computes in the precision the GPU's generation calls for (bf16, or fp16 with
the gradient scaler), lays the model out channels_last, reads the GPU's own energy counter, keeps
the GPU's random state in checkpoints, and never lets the device's work count as data wait."""
import json
import math

import pytest
import torch

from jeoparda.config import load_config
from jeoparda.training import checkpoint
from jeoparda.training.launch import train
from tests.training.test_train import SMALL

GPU_RUN = [*SMALL[:-2], "train.keep_checkpoints=5", "dist.backend=single", "train.epochs=2",
           "train.max_steps=2", "train.test=false", "data.resize=32"]  # small images: the path, not the model


def run(dataset, out, *overrides, say=None):
    cfg = load_config([], [f"data.path={dataset}", "model=resnet18", *GPU_RUN, *overrides])
    lines = []
    status = train(cfg, out, resume=False, say=say or lines.append)
    events = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    return status, events, lines


@pytest.mark.parametrize("capability,precision,scaled", [((9, 0), "bf16", False), ((7, 0), "fp16", True)])
def test_auto_precision_channels_last_and_energy_on_a_gpu(standin_gpu, dataset, tmp_path, monkeypatch,
                                                          capability, precision, scaled):
    from jeoparda.training import loop

    standin_gpu.boards[0].capability = capability
    standin_gpu.energy_per_read_mj = 1500  # the board's counter moves while the epoch runs
    made = []
    real = loop.Trainer.__init__

    def keep(self, *args, **kwargs):
        real(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(loop.Trainer, "__init__", keep)
    status, events, _ = run(dataset, tmp_path / "run", "train.precision=auto", "train.channels_last=true",
                            "train.checkpoint_every=1")
    trainer = made[0]
    start, epoch, end = events[0], events[1], events[-1]
    assert status == 0 and end["status"] == "completed"
    assert start["device"] == "cuda" and start["device_name"] == "NVIDIA H100 80GB HBM3"
    assert start["precision"] == precision and start["gpus_per_node"] == 1
    assert start["ranks"][0]["gpu"] == standin_gpu.uuid_of(0)
    assert trainer.scaler.is_enabled() == scaled and trainer.autocast["enabled"]
    stem = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert trainer.channels_last and stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert epoch["energy_sources"] == ["gpu"] and epoch["energy_j"] > 0  # the GPU's own counter, by UUID
    assert torch.isfinite(torch.tensor(epoch["loss"]))
    state = checkpoint.load(checkpoint.newest(tmp_path / "run"))
    assert set(state["rng"][0]) == {"cpu", "cuda"}  # dropout's GPU stream resumes exactly


def test_data_wait_is_waiting_for_the_loader_only(standin_gpu, dataset, tmp_path, monkeypatch):
    """Within an epoch the host waits for the device at the edges (honest clocks) and nowhere else:
    no event of the compute stream is waited on by the input pipeline, so data wait is loader time."""
    from jeoparda.training import loop

    during = []
    real = loop.Trainer.train_epoch

    def watched(self, *args):
        first = len(standin_gpu.host_waits)
        out = real(self, *args)
        during.extend(standin_gpu.host_waits[first:])
        return out

    monkeypatch.setattr(loop.Trainer, "train_epoch", watched)
    status, events, _ = run(dataset, tmp_path / "run", "data.workers=1", "train.epochs=1", "train.max_steps=0")
    assert status == 0
    assert events[0]["steps_per_epoch"] > 2
    assert [w for w in during if w[0] == "device"] == [("device", "cuda:0")] * 2  # before and after the epoch
    assert not [w for w in during if w[0] == "event" and not w[1].startswith("side-")]
    assert not [w for w in standin_gpu.host_waits if w[0] == "pageable copy"]


def test_collective_timeout_is_the_setup_one_until_the_first_step(standin_gpu, dataset, tmp_path, monkeypatch):
    from jeoparda.cluster.backends import Backend

    timeouts = []
    monkeypatch.setattr(Backend, "set_timeout", lambda self, seconds: timeouts.append(seconds))
    run(dataset, tmp_path / "run", "dist.timeout_s=42", "dist.setup_timeout_s=4242")
    assert timeouts == [42]  # once, after the first step; init used dist.setup_timeout_s


def test_compile_mode_reaches_torch_compile(standin_gpu, dataset, tmp_path, monkeypatch):
    seen = {}

    def fake_compile(model, backend=None, mode=None):
        seen.update(backend=backend, mode=mode)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    run(dataset, tmp_path / "run", "train.compile=aot_eager", "train.compile_mode=reduce-overhead",
        "train.epochs=1", "train.max_steps=1")
    assert seen["mode"] == "reduce-overhead" and seen["backend"] is not None


def test_compile_mode_needs_a_known_mode_and_a_backend():
    from jeoparda.errors import JeopardaError

    with pytest.raises(JeopardaError, match="train.compile_mode"):
        load_config([], ["train.compile=inductor", "train.compile_mode=fastest"])
    with pytest.raises(JeopardaError, match="needs train.compile"):
        load_config([], ["train.compile_mode=reduce-overhead"])


def test_preempted_ranks_leave_only_after_rank_0_has_written(dataset, tmp_path, monkeypatch):
    """srun --kill-on-bad-exit=1 ends the step when the first rank exits: every rank meets rank 0
    after its checkpoint and run_end before returning EXIT_PREEMPTED."""
    from jeoparda.cluster.backends import Backend
    from jeoparda.training import launch, loop
    from jeoparda.training.preempt import EXIT_PREEMPTED, PreemptFlag
    from jeoparda.training.recorder import Recorder

    order = []

    class Raised(PreemptFlag):
        """SIGTERM arrives as training starts (after set-up: a checkpoint is due)."""

        @property
        def phase(self):
            return self._phase

        @phase.setter
        def phase(self, value):
            self._phase = value
            if value == "training":
                self.signal, self.signal_phase = 15, value

    real_save, real_end = loop.Trainer.save, Recorder.end
    monkeypatch.setattr(launch, "PreemptFlag", Raised)
    monkeypatch.setattr(loop.Trainer, "save", lambda self, *a, **k: (real_save(self, *a, **k), order.append("save")))
    monkeypatch.setattr(Recorder, "end", lambda self, *a, **k: (real_end(self, *a, **k), order.append("run_end")))
    monkeypatch.setattr(Backend, "barrier", lambda self: order.append("barrier"))
    status, events, _ = run(dataset, tmp_path / "run", "train.preempt_check_every=1")
    assert status == EXIT_PREEMPTED and events[-1]["status"] == "preempted"
    assert order == ["save", "run_end", "barrier"]


@pytest.mark.parametrize("gpu", [True, False])
def test_an_overflowing_fp16_step_is_skipped_but_a_non_finite_loss_fails_fp32(request, dataset, tmp_path,
                                                                              monkeypatch, gpu):
    """fp16's loss scaler skips a step whose loss overflowed and training goes on (the epoch's loss
    leaves it out); without a scaler the same loss would poison the weights: the run fails."""
    from jeoparda.errors import JeopardaError
    from jeoparda.tasks.multilabel import MultiLabel

    if gpu:
        request.getfixturevalue("standin_gpu").boards[0].capability = (7, 0)  # auto precision: fp16
    calls, real = [], MultiLabel.loss

    def overflow_once(self, logits, target):
        calls.append(1)
        loss = real(self, logits, target)
        return loss * float("inf") if len(calls) == 2 else loss

    monkeypatch.setattr(MultiLabel, "loss", overflow_once)
    overrides = ["train.precision=auto", "train.preempt_check_every=1"]
    if gpu:
        status, events, _ = run(dataset, tmp_path / "run", *overrides)
        assert status == 0 and events[-1]["status"] == "completed"
        assert all(math.isfinite(e["loss"]) for e in events if e["event"] == "epoch")
    else:
        cfg = load_config([], [f"data.path={dataset}", "model=resnet18", *GPU_RUN, *overrides])
        with pytest.raises(JeopardaError, match="not finite"):
            train(cfg, tmp_path / "run", resume=False, say=lambda line: None)
        events = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
        assert events[-1]["status"] == "failed"
