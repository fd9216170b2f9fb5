"""Dense evaluation counts on the batch's device: no host copy per batch, only the summed counts
once at the end, and the metrics those counts give are the host-counted ones."""
import pytest
import torch

from jeoparda.cluster.backends import Backend
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import DistConfig
from jeoparda.labels import NO_CLASS
from jeoparda.tasks.segmentation import Segmentation, segmentation_scores
from jeoparda.training.evaluate import evaluate
from tests.tasks.test_segmentation import reference_counts

CPU = {"device_type": "cpu", "enabled": False}
K = 5


def batches(n, size=12, batch=3, seed=0):
    """Random images and maps; the last batch ends in a padding sample (mask False)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        label = torch.randint(0, K, (batch, size, size), generator=g).to(torch.uint8)
        label[:, :3, :4] = NO_CLASS
        mask = torch.ones(batch, dtype=torch.bool)
        if i == n - 1:
            mask[-1] = False
        out.append({"image": torch.randn(batch, 4, size, size, generator=g), "label": label, "mask": mask})
    return out


def model():
    torch.manual_seed(0)
    return torch.nn.Conv2d(4, K, 3, padding=1)


def host_metrics(net, loader):
    """The metrics as evaluation computed them before: scores copied to the host, counted by numpy."""
    totals = None
    with torch.no_grad():
        for b in loader:
            keep = b["mask"]
            scores = torch.softmax(net(b["image"]).float(), 1)[keep].numpy()
            counts = reference_counts(b["label"][keep].numpy(), scores)
            totals = counts if totals is None else {k: totals[k] + v for k, v in counts.items()}
    return segmentation_scores(totals["confusion"], totals["histograms"])


def test_dense_metrics_equal_the_host_counted_ones():
    net, loader = model(), batches(4)
    got = evaluate(net, loader, Backend(ClusterEnv(), DistConfig()), Segmentation(), CPU)
    want = host_metrics(net, loader)
    assert got.pop("samples") == 11  # 4 batches of 3, one padding sample left out
    assert got == want
    assert got["labelled_pixels"] == sum(int((b["label"][b["mask"]] != NO_CLASS).sum()) for b in loader)


@pytest.mark.parametrize("method", ["cpu", "numpy", "tolist", "item"])
def test_no_host_copy_per_batch(monkeypatch, method):
    """Host copies made while evaluating 1 batch and 5 batches are as many: none per batch."""
    calls = []
    original = getattr(torch.Tensor, method)

    def spy(self, *args, **kwargs):
        calls.append(tuple(self.shape))
        return original(self, *args, **kwargs)

    backend = Backend(ClusterEnv(), DistConfig())
    monkeypatch.setattr(torch.Tensor, method, spy)
    seen = []
    for n in (1, 5):
        calls.clear()
        evaluate(model(), batches(n), backend, Segmentation(), CPU)
        seen.append(list(calls))
    assert seen[0] == seen[1] and len(seen[1]) <= 1, seen  # the summed counts, once


def test_counts_are_summed_as_device_tensors():
    """What the evaluation sums per batch are tensors on the batch's device, not host arrays."""
    task = Segmentation()
    b = batches(1)[0]
    counts = task.counts(b["label"], torch.softmax(torch.randn(3, K, 12, 12), 1), b["mask"])
    assert all(isinstance(v, torch.Tensor) and v.device == b["label"].device for v in counts.values())
    assert counts["confusion"].shape == (K, K) and counts["histograms"].shape[:2] == (K, 2)
    assert int(counts["confusion"].sum()) == int((b["label"][b["mask"]] != NO_CLASS).sum())
