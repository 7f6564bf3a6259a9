"""GLUE's metrics (tokendrop_readers.glue_metrics) against scikit-learn's and scipy's, and each task's choice."""
import numpy as np
import pytest
from scipy.stats import pearsonr, rankdata, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from tokendrop_readers.glue_metrics import (accuracy, average_ranks, f1, majority_accuracy, matthews, pearson,
                                            spearman, task_metrics)


def labels(rng, n, classes):
    return rng.choice(np.array(classes), size=n)


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    gold, predicted = labels(rng, 200, ["0", "1"]), labels(rng, 200, ["0", "1"])
    predicted[:120] = gold[:120]  # correlated, so the values are not all near 0
    assert accuracy(predicted, gold) == accuracy_score(gold, predicted)
    assert f1(predicted, gold) == pytest.approx(f1_score(gold, predicted, pos_label="1"), abs=1e-12)
    assert matthews(predicted, gold) == pytest.approx(matthews_corrcoef(gold, predicted), abs=1e-12)
    three = ["entailment", "neutral", "contradiction"]
    gold, predicted = labels(rng, 300, three), labels(rng, 300, three)
    predicted[:100] = gold[:100]
    assert matthews(predicted, gold) == pytest.approx(matthews_corrcoef(gold, predicted), abs=1e-12)


def test_degenerate_predictions_score_as_scikit_learn_does():
    gold = ["0", "1", "1", "0"]
    for predicted in (["1"] * 4, ["0"] * 4):
        assert matthews(predicted, gold) == matthews_corrcoef(gold, predicted) == 0.0
        assert f1(predicted, gold) == f1_score(gold, predicted, pos_label="1", zero_division=0.0)
    assert f1(["0"] * 3, ["0"] * 3) == 0.0  # no positive anywhere


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 11, size=150) / 2.0  # STS-B-like scores on a half-point grid: many ties
    predicted = np.round(gold + rng.normal(scale=1.5, size=150), 1)
    assert pearson(predicted, gold) == pytest.approx(pearsonr(predicted, gold)[0], abs=1e-12)
    assert spearman(predicted, gold) == pytest.approx(spearmanr(predicted, gold)[0], abs=1e-12)
    assert list(average_ranks(gold)) == list(rankdata(gold, method="average"))


def test_each_task_reports_its_own_metrics_and_their_mean():
    gold, predicted = ["1", "0", "1", "1", "0"], ["1", "1", "1", "0", "0"]
    assert set(task_metrics("CoLA", predicted, gold)) == {"matthews", "score"}
    mrpc = task_metrics("MRPC", predicted, gold)
    assert mrpc["accuracy"] == 0.6 and mrpc["f1"] == pytest.approx(2 / 3)  # hand count: tp 2, fp 1, fn 1
    assert mrpc["score"] == pytest.approx((0.6 + 2 / 3) / 2)
    assert set(task_metrics("QQP", predicted, gold)) == {"accuracy", "f1", "score"}
    for task in ("SST-2", "QNLI", "RTE", "WNLI", "MNLI"):
        assert set(task_metrics(task, predicted, gold)) == {"accuracy", "score"}
    stsb = task_metrics("STS-B", [0.5, 2.0, 2.5, 4.0], [1.0, 2.0, 2.0, 5.0])
    assert stsb["spearman"] == pytest.approx(spearmanr([0.5, 2.0, 2.5, 4.0], [1.0, 2.0, 2.0, 5.0])[0])
    assert stsb["score"] == pytest.approx((stsb["pearson"] + stsb["spearman"]) / 2)
    assert majority_accuracy(gold) == 0.6
    with pytest.raises(ValueError):
        task_metrics("SST-2", ["1"], gold)
