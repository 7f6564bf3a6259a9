"""GLUE's dev metrics in numpy, and each task's own (Wang et al., ICLR 2019, table 1).

- CoLA: Matthews correlation (Matthews 1975; the multi-class form is Gorodkin's, 2004);
- MRPC, QQP: accuracy and F1 of the positive class ``1``;
- STS-B: Pearson and Spearman correlation, ranks of tied values averaged;
- SST-2, MNLI (matched), QNLI, RTE, WNLI: accuracy.

``score`` is the task's one number as the GLUE leaderboard counts it: the
mean of the two where a task has two. An undefined correlation (a constant
prediction) is 0, as scikit-learn's ``matthews_corrcoef`` answers.
"""
from typing import Dict, Sequence

import numpy as np

from .glue import glue_task


def accuracy(predicted: Sequence, gold: Sequence) -> float:
    predicted, gold = np.asarray(predicted), np.asarray(gold)
    return float(np.mean(predicted == gold))


def f1(predicted: Sequence, gold: Sequence, positive="1") -> float:
    predicted, gold = np.asarray(predicted) == positive, np.asarray(gold) == positive
    true_positives = np.sum(predicted & gold)
    denominator = np.sum(predicted) + np.sum(gold)
    return float(2 * true_positives / denominator) if denominator else 0.0


def matthews(predicted: Sequence, gold: Sequence) -> float:
    """(c s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2)(s^2 - sum_k t_k^2)) over the confusion matrix:
    c correct, s samples, p_k and t_k how often class k is predicted and true."""
    predicted, gold = np.asarray(predicted), np.asarray(gold)
    classes = np.union1d(predicted, gold)
    p = np.array([np.sum(predicted == k) for k in classes], dtype=np.float64)
    t = np.array([np.sum(gold == k) for k in classes], dtype=np.float64)
    s, c = float(len(gold)), float(np.sum(predicted == gold))
    denominator = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - p @ t) / denominator) if denominator else 0.0


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator else 0.0


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n; tied values share the mean of the ranks they span."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return pearson(average_ranks(x), average_ranks(y))


def task_metrics(task, predicted: Sequence, gold: Sequence) -> Dict[str, float]:
    """The task's dev metric(s) and ``score``; labels as the files hold them (``"1"``, ``"entailment"``,
    STS-B scores)."""
    task = glue_task(task)
    if len(predicted) != len(gold) or not len(gold):
        raise ValueError(f"{task.name}: {len(predicted)} predictions for {len(gold)} examples")
    if task.regression:
        metrics = {"pearson": pearson(predicted, gold), "spearman": spearman(predicted, gold)}
    elif task.name == "CoLA":
        metrics = {"matthews": matthews(predicted, gold)}
    elif task.name in ("MRPC", "QQP"):
        metrics = {"accuracy": accuracy(predicted, gold), "f1": f1(predicted, gold)}
    else:
        metrics = {"accuracy": accuracy(predicted, gold)}
    return {**metrics, "score": float(np.mean(list(metrics.values())))}


def majority_accuracy(gold: Sequence) -> float:
    """The accuracy of always answering the most frequent label: what a model that learned nothing gets."""
    _, counts = np.unique(np.asarray(gold), return_counts=True)
    return float(counts.max() / counts.sum())
