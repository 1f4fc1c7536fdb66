"""Notebook 01 in the `real` profile with a user's own file (NB_DATA): real pretrained weights, real narratives.

A user's CSV with its own column names goes through the whole notebook (cleaning, split, LoRA on MiniLM,
evaluation, saving and reloading the adapter), and the notebook prints its test macro-F1 beside the majority
baseline. The file is cut from the real CFPB sample: three sub-issues of two products, 40 narratives each, so
the run stays near a minute on two cores. The notebook's own `real` assertions (accuracy and macro-F1 clearly
above the majority class) must hold, and the printed figures are checked here again.
"""
import re
from pathlib import Path

import pandas as pd
from conftest import execute_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_complaint_classification.ipynb"
SUB_ISSUES = ["Information belongs to someone else", "Their investigation did not fix an error on your report",
              "Debt is not yours"]


def user_csv(folder: Path) -> Path:
    """40 real narratives of each of three sub-issues, under the column names a user might have."""
    real = pd.read_csv(ROOT / "data" / "real_complaints.csv")
    rows = real[real["Sub-issue"].isin(SUB_ISSUES)].groupby("Sub-issue").head(40)
    mine = pd.DataFrame({"ticket text": rows["Consumer complaint narrative"], "category": rows["Sub-issue"]})
    path = folder / "my_complaints.csv"
    mine.to_csv(path, index=False)
    return path


def test_a_users_csv_goes_through_01_in_real_and_beats_the_majority_class(tmp_path):
    source = user_csv(tmp_path)
    printed, error = execute_notebook(NOTEBOOK, {
        "NB_PROFILE": "real", "NB_DATA": source, "NB_TEXT_COLUMN": "ticket text", "NB_LABEL_COLUMN": "category",
        "NB_OUTPUT_DIR": tmp_path / "out", "NB_CHECKPOINT_DIR": tmp_path / "checkpoints"}, timeout=300)
    assert error is None, printed[-3000:]
    assert f"{source}: 120 rows" in printed, "the notebook should read the user's file, not its sample"
    found = re.search(r"test macro-F1 ([\d.]+) against ([\d.]+) for the majority class", printed)
    assert found, printed[-3000:]
    macro_f1, majority = map(float, found.groups())
    assert macro_f1 >= majority + 0.25, f"macro-F1 {macro_f1} against the majority class's {majority}"
    assert (tmp_path / "out" / "01_complaint_classification.real.json").exists()
