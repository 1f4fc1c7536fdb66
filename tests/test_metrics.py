import numpy as np
import pytest

from helpers import metrics


def test_scores_match_hand_computation():
    scores = metrics.classification_scores([0, 0, 1, 1], [0, 1, 1, 1])
    assert scores["accuracy"] == pytest.approx(0.75)
    # class 0: p=1, r=.5, f=2/3; class 1: p=2/3, r=1, f=.8
    assert scores["f1_macro"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert scores["recall_macro"] == pytest.approx(0.75)


def test_majority_baseline_uses_training_majority():
    baseline = metrics.majority_baseline([1, 1, 1, 0], [0, 0, 1])
    assert baseline["accuracy"] == pytest.approx(1 / 3)


def test_trainer_metrics_take_argmax():
    class Prediction:
        predictions = np.array([[2.0, 1.0], [0.0, 3.0]])
        label_ids = np.array([0, 1])

    assert metrics.trainer_metrics(Prediction())["accuracy"] == 1.0
