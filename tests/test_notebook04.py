"""Notebook 04 on a free Colab T4: what runs before the first checkpoint must fit its memory.

The exactness checks run 16 texts at once in fp32 with full gradients, and the evaluation runs during training;
both happened at full length (1024 tokens, 32 texts a batch) and died on a T4 before training began.
"""
import json
import re
from pathlib import Path

from helpers import estimate

ROOT = Path(__file__).resolve().parent.parent
NB04 = ROOT / "notebooks" / "04_gradient_accumulation.ipynb"


def code_cells():
    notebook = json.loads(NB04.read_text())
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def constant(name):
    """An integer the configuration cell sets (e.g. CHECK_TOKENS = 128)."""
    found = re.search(rf"^{name} = (\d+)", "\n".join(code_cells()), re.M)
    assert found, f"the notebook sets no {name}"
    return int(found.group(1))


def test_the_exactness_checks_fit_a_t4_at_full_size():
    # The check: BLOOM-560m, 16 rows in one batch, fp32, full gradients (an SGD step, no optimizer state).
    check = estimate.estimate("bigscience/bloom-560m", task="seq-cls", num_labels=2, method="full", optimizer="sgd",
                              precision="fp32", micro_batch=16, seq_len=constant("CHECK_TOKENS"), gpu="T4")
    assert check.fits, check.table()
    code = "\n".join(code_cells())
    assert 'check_rows = [dict(row, input_ids=row["input_ids"][:CHECK_TOKENS])' in code, "the check rows are not cut"


def test_evaluation_runs_in_small_batches_and_after_the_checkpoint():
    assert constant("EVAL_BATCH") <= 8
    code = "\n".join(code_cells())
    assert "def evaluate_accuracy(model, rows, batch_size=EVAL_BATCH)" in code
    assert "per_device_eval_batch_size=EVAL_BATCH" in code
    # the notebook's loop runs through helpers/loop.py: inside the step, the checkpoint is written before the
    # evaluation, so a failing evaluation costs nothing
    assert "loop.train(" in next(c for c in code_cells() if "def train_loop(" in c)
    frame = (ROOT / "helpers" / "loop.py").read_text()
    assert frame.index("saver.after_step(") < frame.rindex("evaluate_if_due()")


def test_the_loop_is_in_the_notebook_and_the_recipe_written_once():
    cells = code_cells()
    step = next(c for c in cells if "def micro_batch_step(" in c)
    for lesson in (".backward()", "/ accumulation", "(batch_idx + 1) % accumulation == 0", "scaler.step(optimizer)",
                   "optimizer.zero_grad("):
        assert lesson in step, lesson
    assert len(step.splitlines()) <= 20, "the loop's lesson is a screenful"
    code = "\n".join(cells)
    assert code.count("gradient_accumulation_steps=16") == 1 and "recipe.read(MODEL_ID, training=TRAINING" in code
    assert "**PROFILE_TRAINING" in code and "training.measured(trainer" in code


def test_the_causal_check_model_is_freed_before_the_trainer_checks_load_another():
    cells = code_cells()
    freed = next(i for i, c in enumerate(cells) if "del lm\n" in c)
    trainer_checks = next(i for i, c in enumerate(cells) if "def trainer_gradient(" in c)
    assert freed < trainer_checks
