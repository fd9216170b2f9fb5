"""Old import path of the multi-label metrics, which now live with their task (:mod:`jeoparda.tasks.metrics`)."""
from jeoparda.tasks.metrics import METRIC_KEYS, multilabel_scores, ranking_loss

__all__ = ["METRIC_KEYS", "multilabel_scores", "ranking_loss"]
