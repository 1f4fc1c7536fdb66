"""Notebook 01 (complaint classification): its data sample and the parameter figures it reproduces.

The sample must look like real CFPB data (the notebook's cleaning has something to do) and carry a
signal a simple model already finds; the LoRA parameter counts of the post must follow from the
model's shapes under both peft behaviours. All of it runs on the CPU in a few seconds.
"""
from pathlib import Path

import pandas as pd
import pytest
from conftest import load_script

from helpers import data, metrics

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "complaints.csv"
TEXT, LABEL = "Consumer complaint narrative", "Sub-issue"


def generator():
    return load_script(ROOT / "data" / "make_complaints.py")


@pytest.fixture(scope="module")
def raw():
    return pd.read_csv(SAMPLE)


def test_sample_has_the_cfpb_columns_and_stays_small(raw):
    assert list(raw.columns) == ["Product", "Sub-issue", "Consumer complaint narrative"]
    assert SAMPLE.stat().st_size < 400_000


def test_sample_has_the_problems_of_real_complaint_data(raw):
    narratives = raw[TEXT].fillna("")
    blank = (narratives.str.strip() == "").sum()
    assert 0.03 * len(raw) <= blank <= 0.08 * len(raw), "about 5 % of narratives are empty or blank"
    assert narratives.str.len().max() > 2500, "some narratives are thousands of characters long"
    assert raw[raw[TEXT].fillna("").str.strip() != ""].duplicated().sum() >= 5, "a few complaints were sent twice"
    counts = raw[LABEL].value_counts()
    assert (counts == 1).sum() == 2, "two sub-issues are seen once"
    assert counts.iloc[0] >= 8 * counts[counts > 1].iloc[-1], "frequencies vary a lot"
    assert 12 <= (counts > 1).sum() <= 20


def test_class_sizes_follow_the_generator(raw):
    module = generator()
    planned = {sub: n for issues in module.CLASSES.values() for subs in issues.values() for sub, n in subs.items()}
    counts = raw[LABEL].value_counts()
    for sub_issue, n in planned.items():  # label noise and duplicates move a few rows, no more
        assert abs(counts[sub_issue] - n) <= max(4, 0.1 * n), sub_issue


def test_cleaning_and_split_keep_single_example_classes_in_train(raw):
    clean, report = data.clean_table(raw, TEXT, LABEL, source="sample")
    assert report.dropped["empty or missing 'Consumer complaint narrative'"] > 0
    assert report.dropped["exact duplicate rows"] > 0
    train, val, test, notes = data.split_three(clean, LABEL, seed=42)
    singles = set(clean[LABEL].value_counts().loc[lambda c: c < 3].index)
    assert len(singles) == 2 and notes
    assert singles <= set(train[LABEL]) and not singles & (set(val[LABEL]) | set(test[LABEL]))


def test_the_signal_is_learnable_by_a_bag_of_words(raw):
    """A TF-IDF + logistic regression baseline: far above the majority class, but not perfect."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    clean, _ = data.clean_table(raw, TEXT, LABEL, source="sample")
    train, _, test, _ = data.split_three(clean, LABEL, seed=42)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    model = LogisticRegression(max_iter=2000, C=10).fit(vectorizer.fit_transform(train[TEXT]), train[LABEL])
    predicted = model.predict(vectorizer.transform(test[TEXT]))
    scores = metrics.classification_scores(test[LABEL], predicted)
    baseline = metrics.majority_baseline(train[LABEL], test[LABEL])
    assert scores["f1_macro"] >= baseline["f1_macro"] + 0.5
    assert scores["accuracy"] < 0.995, "3 % label noise: nothing should be perfect"


def test_parameter_figures_of_the_post_follow_from_the_model():
    """Today's peft count and the post's (original head left trainable), on the meta device."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from helpers import tiny

    config = tiny.full_config("xlm-roberta-large")
    config.num_labels = 214
    lora = LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=16, lora_dropout=0.1, bias="none",
                      target_modules=["query", "value"], modules_to_save=["classifier"])
    with torch.device("meta"):
        model = get_peft_model(AutoModelForSequenceClassification.from_config(config), lora)
    assert model.get_nb_trainable_parameters() == (2_841_814, 562_951_596)
    model.base_model.model.classifier.original_module.requires_grad_(True)
    trainable, total = model.get_nb_trainable_parameters()
    assert (trainable, total) == (4_110_764, 562_951_596)
    assert 100 * trainable / total == 0.7302162440267778
    # docs/sources.md 01: backbone 558,840,832; head 1,049,600 + 1025 per label; LoRA 98,304 per rank
    assert total == 558_840_832 + 2 * (1_049_600 + 1025 * 214) + 98_304 * 16


def test_notebook_source_names_its_columns_and_sample():
    notebook = (ROOT / "notebooks" / "01_complaint_classification.ipynb").read_text(encoding="utf-8")
    assert 'data.column_names(\\"Consumer complaint narrative\\", \\"Sub-issue\\")' in notebook
    assert "complaints.csv" in notebook and "trainer.model_accepts_loss_kwargs = False" in notebook
