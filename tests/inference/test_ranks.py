"""Two ranks in one process (threads sharing a comm): rank 0 alone decides the windows, so ranks
whose machines offer different memory still cut the same windows and write the map of one rank,
and a refusal on rank 0 stops every rank."""
import threading

import pytest
import torch

import jeoparda.inference.budget as budget
from jeoparda.errors import JeopardaError
from jeoparda.inference.predict import Options, predict
from tests.inference.test_predict import TILE, block  # noqa: F401  (the fixture)


class ThreadComm:
    """A Comm for ranks that are threads of one process."""

    def __init__(self, world: int) -> None:
        self.world, self.gate, self.slots = world, threading.Barrier(world, timeout=60), [None] * world
        self.local = threading.local()

    @property
    def rank(self) -> int:
        return self.local.rank

    def barrier(self) -> None:
        self.gate.wait()

    def gather_objects(self, obj):
        self.slots[self.rank] = obj
        self.gate.wait()
        out = list(self.slots)
        self.gate.wait()
        return out

    def broadcast_object(self, obj):
        return self.gather_objects(obj)[0]


def run_ranks(comm, work):
    results, errors = [None] * comm.world, [None] * comm.world

    def rank(r):
        comm.local.rank = r
        try:
            results[r] = work(r)
        except Exception as exc:  # noqa: BLE001  (the test looks at each rank's outcome)
            errors[r] = exc  # a rank left waiting times out of the barrier

    threads = [threading.Thread(target=rank, args=(r,), name=f"rank{r}") for r in range(comm.world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results, errors


def test_ranks_with_different_memory_cut_rank_zeros_windows(block, tmp_path, monkeypatch):  # noqa: F811
    def budget_of_this_machine():
        return 20 * 2**20 if threading.current_thread().name == "rank0" else 2**30

    decided = []
    real_layout = budget.layout
    monkeypatch.setattr(budget, "default_budget", budget_of_this_machine)
    monkeypatch.setattr("jeoparda.inference.predict.layout",
                        lambda *a, **k: decided.append(threading.current_thread().name) or real_layout(*a, **k))
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Conv2d(12, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.Conv2d(8, 19, 5,
                                                                                                       padding=2))
    comm = ThreadComm(2)
    results, errors = run_ranks(comm, lambda r: predict(model, block / "data", [TILE], tmp_path / "two.tif",
                                                        Options(probabilities=True), comm=comm))
    assert errors == [None, None] and decided == ["rank0"]
    assert results[1] == [] and results[0][0]["windows"] > 1
    threading.current_thread().name, name = "rank0", threading.current_thread().name  # one rank, rank 0's budget
    try:
        predict(model, block / "data", [TILE], tmp_path / "one.tif", Options(probabilities=True))
    finally:
        threading.current_thread().name = name
    assert (tmp_path / "one.tif").read_bytes() == (tmp_path / "two.tif").read_bytes()
    assert (tmp_path / "one-probability.tif").read_bytes() == (tmp_path / "two-probability.tif").read_bytes()
    assert not list(tmp_path.glob(".*scratch"))


def test_a_refusal_on_rank_zero_stops_every_rank_with_one_message(block, tmp_path):  # noqa: F811
    comm = ThreadComm(2)
    _, errors = run_ranks(comm, lambda r: predict(torch.nn.Conv2d(12, 19, 1), block / "data", ["T99XXX"],
                                                  tmp_path / "map.tif", comm=comm))
    assert all(isinstance(e, JeopardaError) for e in errors), errors
    assert "tile T99XXX has no patch" in str(errors[0]) and str(errors[1]) == ""
    assert not (tmp_path / "map.tif").exists()


def test_negative_sizes_and_non_local_models_are_refused():
    conv = torch.nn.Conv2d(12, 19, 3, padding=1)
    with pytest.raises(JeopardaError, match="must not be negative"):
        budget.layout(conv, 12, 120, Options(overlap=-4))

    class Global(torch.nn.Module):
        def forward(self, x):
            return x + x.mean(dim=(2, 3), keepdim=True)

    monkey = torch.nn.Sequential(torch.nn.Conv2d(12, 19, 1), Global())
    with pytest.raises(JeopardaError, match="receptive field reaches beyond"):
        budget.layout(monkey, 12, 120, Options())
    # a window given by hand is not refused for the budget: batches shrink to one window instead
    lay = budget.layout(conv, 12, 120, Options(window=240, max_memory=2**20))
    assert lay.cells == 1 and lay.crop_pixels >= 240 ** 2
