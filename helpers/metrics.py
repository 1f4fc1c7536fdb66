"""Classification metrics computed locally with scikit-learn (no hub download, unlike
`evaluate.load`, which fetches its metric scripts and fails offline)."""
from __future__ import annotations

import numpy as np


def classification_scores(labels, predictions) -> dict:
    """Accuracy and macro / weighted precision, recall and F1."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    scores = {"accuracy": float(accuracy_score(labels, predictions))}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(labels, predictions, average=average, zero_division=0)
        scores.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
    return scores


def majority_baseline(train_labels, eval_labels) -> dict:
    """Scores of always predicting the most frequent training label: the bar to clear."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    majority = values[np.argmax(counts)]
    return classification_scores(eval_labels, np.full(len(eval_labels), majority))


def trainer_metrics(eval_prediction) -> dict:
    """`compute_metrics` for a transformers Trainer of a sequence classifier."""
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    return classification_scores(labels, np.argmax(logits, axis=-1))
