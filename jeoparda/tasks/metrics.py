"""Multi-label metrics of the BigEarthNet papers, defined as scikit-learn defines them.

Edge cases follow scikit-learn's defaults (``zero_division`` = 0), so figures compare with the
papers: a sample with neither true nor predicted labels scores 0 in F1 (samples) and accuracy, a
class that is neither present nor predicted scores 0 in F1 (macro). Ranking loss is computed on
scores, not thresholded labels; samples with all or none of the labels relevant contribute 0.
"""
from __future__ import annotations

import numpy as np

METRIC_KEYS = ("f1_samples", "f1_micro", "f1_macro", "accuracy", "subset_accuracy",
               "hamming_loss", "ranking_loss")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.shape(num), np.float64), where=den > 0)


def ranking_loss(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean over samples of the fraction of (relevant, irrelevant) label pairs ordered wrongly
    (the irrelevant label scored at least as high as the relevant one)."""
    rel = y_true.astype(bool)
    n_rel = rel.sum(1)
    n_irr = rel.shape[1] - n_rel
    losses = np.zeros(len(rel))
    for i in np.flatnonzero((n_rel > 0) & (n_irr > 0)):
        pos, neg = y_score[i, rel[i]], y_score[i, ~rel[i]]
        bad = (neg[None, :] >= pos[:, None]).sum()
        losses[i] = bad / (n_rel[i] * n_irr[i])
    return float(losses.mean()) if len(losses) else 0.0


def multilabel_scores(y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Scores (probabilities) and multi-hot truth, both (n, classes) -> the metric dict."""
    y_true = np.asarray(y_true) > 0.5
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} and y_score {y_score.shape} must be equal (n, classes)")
    y_pred = y_score >= threshold
    tp = (y_true & y_pred).sum(1)
    n_true, n_pred = y_true.sum(1), y_pred.sum(1)
    union = (y_true | y_pred).sum(1)
    tp_c = (y_true & y_pred).sum(0)
    fp_c = (~y_true & y_pred).sum(0)
    fn_c = (y_true & ~y_pred).sum(0)
    return {
        "f1_samples": float(_ratio(2 * tp, n_true + n_pred).mean()),
        "f1_micro": float(_ratio(np.array(2 * tp_c.sum()), np.array(2 * tp_c.sum() + fp_c.sum() + fn_c.sum()))),
        "f1_macro": float(_ratio(2 * tp_c, 2 * tp_c + fp_c + fn_c).mean()),
        "accuracy": float(_ratio(tp, union).mean()),
        "subset_accuracy": float((y_true == y_pred).all(1).mean()),
        "hamming_loss": float((y_true != y_pred).mean()),
        "ranking_loss": ranking_loss(y_true, y_score),
    }
