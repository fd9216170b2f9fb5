"""Task strategies: single-label metrics equal scikit-learn, losses, and choosing the task."""
import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from jeoparda.config import TrainConfig
from jeoparda.errors import JeopardaError
from jeoparda.tasks import choose_task, create_task
from jeoparda.tasks.singlelabel import singlelabel_scores


@pytest.mark.parametrize("seed,n,k,missing", [(0, 50, 10, ()), (1, 37, 5, (2,)), (2, 200, 10, (0, 9)), (3, 7, 4, ())])
def test_singlelabel_metrics_equal_scikit_learn(seed, n, k, missing):
    rng = np.random.default_rng(seed)
    classes = [c for c in range(k) if c not in missing]
    truth = rng.choice(classes, n)
    scores = rng.random((n, k))
    scores[np.arange(n), truth] += rng.random(n) * 0.8  # better than chance, not perfect
    pred = scores.argmax(1)
    got = singlelabel_scores(np.eye(k)[truth], scores)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(truth, pred))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(truth, pred, average="macro", zero_division=0))
    assert got["per_class_recall"] == pytest.approx(
        skm.recall_score(truth, pred, labels=range(k), average=None, zero_division=0).tolist())
    assert got["confusion_matrix"] == skm.confusion_matrix(truth, pred, labels=range(k)).tolist()
    assert singlelabel_scores(truth, scores) == got  # indices or one-hot truth alike


def test_singlelabel_loss_is_cross_entropy_and_takes_mixed_targets():
    task = create_task("singlelabel", TrainConfig())
    logits = torch.randn(6, 4)
    target = torch.tensor([0, 3, 1, 1, 2, 0])
    onehot = torch.nn.functional.one_hot(target, 4).float()
    assert torch.allclose(task.loss(logits, onehot), torch.nn.functional.cross_entropy(logits, target))
    mixed = 0.7 * onehot + 0.3 * onehot.flip(0)
    expected = -(mixed * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(task.loss(logits, mixed), expected)
    smooth = create_task("singlelabel", TrainConfig(label_smoothing=0.1))
    assert torch.allclose(smooth.loss(logits, onehot),
                          torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1))
    assert torch.allclose(task.scores(logits).sum(1), torch.ones(6))


def test_multilabel_task_is_the_loops_old_bce():
    task = create_task("multilabel", TrainConfig())
    logits, label = torch.randn(5, 19), (torch.rand(5, 19) > 0.7).float()
    assert torch.equal(task.loss(logits, label), torch.nn.functional.binary_cross_entropy_with_logits(logits, label))
    assert task.quality_key == "f1_samples" and "f1_macro" in task.metrics(label.numpy(), task.scores(logits).numpy())


def test_task_from_the_manifest_and_train_task():
    assert choose_task(["multilabel", "segmentation"], TrainConfig(), "D") == "multilabel"
    assert choose_task(["singlelabel"], TrainConfig(), "D") == "singlelabel"
    with pytest.raises(JeopardaError, match="train.task=singlelabel: D offers multilabel"):
        choose_task(["multilabel"], TrainConfig(task="singlelabel"), "D")
    with pytest.raises(JeopardaError, match="offers only segmentation"):
        choose_task(["segmentation"], TrainConfig(), "D")


def test_options_of_the_other_task_are_refused():
    with pytest.raises(JeopardaError, match="train.threshold applies to multi-label data"):
        create_task("singlelabel", TrainConfig(threshold=0.3))
    with pytest.raises(JeopardaError, match="train.label_smoothing applies to single-label data"):
        create_task("multilabel", TrainConfig(label_smoothing=0.1))
