"""helpers.compare's tables of several seeds and their order beside a published table (notebook 05, `real`)."""
import math

import pytest

from helpers import compare

PEFT_MRPC = {"LoRA q,v": (0.895, 0.925), "prefix tuning": (0.877, 0.913), "prompt tuning": (0.730, 0.824)}


def runs(*accuracies):
    return [dict(test_accuracy=a, test_f1=a + 0.05) for a in accuracies]


def test_over_seeds_gives_the_mean_the_sample_spread_and_the_lowest_seed():
    table = compare.over_seeds({"LoRA q,v": runs(0.90, 0.88, 0.86), "prompt tuning": runs(0.67)})
    lora = table.loc["LoRA q,v"]
    assert lora["seeds"] == 3 and lora["accuracy"] == pytest.approx(0.88)
    assert lora["accuracy_spread"] == pytest.approx(0.02)          # sample standard deviation (n - 1)
    assert lora["accuracy_lowest"] == pytest.approx(0.86) and lora["f1"] == pytest.approx(0.93)
    assert math.isnan(table.loc["prompt tuning", "accuracy_spread"])   # one seed: no spread, not zero


def test_the_order_beside_theirs_and_what_disagrees_with_it():
    ours = compare.over_seeds({"LoRA q,v": runs(0.90), "prefix tuning": runs(0.70), "prompt tuning": runs(0.72)})
    table = compare.ordered_beside(ours, PEFT_MRPC, dict(accuracy=0.67, f1=0.80), (0.684, 0.812))
    assert list(table.index) == ["LoRA q,v", "prompt tuning", "prefix tuning", "majority baseline"]
    assert table.loc["prompt tuning", "their rank"] == 3 and table.loc["prompt tuning", "our rank"] == 2
    # prefix above prompt in theirs, below in ours by 2 points: on 480 pairs that is inside twice the noise
    (swap,) = compare.order_disagreements(ours, PEFT_MRPC, test_rows=480)
    assert (swap["theirs_above"], swap["theirs_below"]) == ("prefix tuning", "prompt tuning")
    assert swap["gap_points"] == pytest.approx(2.0) and not swap["beyond_noise"]
    wide = compare.over_seeds({"LoRA q,v": runs(0.60), "prefix tuning": runs(0.88)})
    (reversal,) = compare.order_disagreements(wide, PEFT_MRPC, test_rows=480)
    assert reversal["beyond_noise"]


def test_accuracy_noise_is_the_binomial_standard_error():
    assert compare.accuracy_noise(0.8, 400) == pytest.approx(0.02)
    assert compare.accuracy_noise(1.0, 400) > 0     # never zero: a gap of 0 is not "beyond" it
