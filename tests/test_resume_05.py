"""Notebook 05 (several Trainer runs, helpers.checkpoints.RunStore) survives a disconnect and an out-of-memory
error, end to end on a CPU in `smoke` (the helpers in resume_cases.py run it in a fresh kernel).

* NB_FAULT=disconnect@N in the second run: run again, the first run is read back, not trained again, the second
  resumes from its checkpoint, and every record (weights fingerprint, scores, curves) equals an uninterrupted run's;
* NB_FAULT=oom@1: the method is recorded as not run, with the estimator's advice, and the others go on.
"""
import shutil
from pathlib import Path

import pytest
from resume_cases import ROOT, record_by_name, run_subset, same_training

from helpers import checkpoints

NB05 = ROOT / "notebooks" / "05_methods_compared.ipynb"


# ----------------------------------------------------------------------------- 05: the Trainer, several runs
FIRST, SECOND = "prompt tuning", "LoRA all-linear"   # table order: the disconnect hits the second
RUNS_05 = f"{FIRST},{SECOND}"


@pytest.fixture(scope="module")
def runs05(tmp_path_factory):
    whole, cut = tmp_path_factory.mktemp("nb05-whole"), tmp_path_factory.mktemp("nb05-cut")
    uninterrupted = run_subset(NB05, whole, RUNS_05)
    # FIRST finished before the disconnect: its finished run (record and adapter) is already there
    runs_dir = Path("checkpoints") / "05_methods_compared" / "smoke" / "runs"
    (cut / runs_dir).mkdir(parents=True)
    for folder in (whole / runs_dir).iterdir():
        if folder.name.startswith("prompt-tuning"):
            shutil.copytree(folder, cut / runs_dir / folder.name)
    shutil.copy(whole / runs_dir / checkpoints.IDENTITY_FILE, cut / runs_dir)   # the same settings and data
    first = run_subset(NB05, cut, RUNS_05, "disconnect@50")
    again = run_subset(NB05, cut, RUNS_05, "disconnect@50")
    return dict(first=first, again=again, uninterrupted=uninterrupted, whole=whole, cut=cut)


def test_05_a_disconnect_in_the_second_run(runs05):
    printed, error = runs05["first"]
    assert error == "SimulatedDisconnect", printed[-2000:]
    assert f"{FIRST}: finished before" in printed
    assert "simulated runtime disconnect after step 50" in printed


def test_05_run_again_it_skips_the_finished_run_and_resumes_the_other(runs05):
    printed, error = runs05["again"]
    assert error is None, printed[-3000:]
    assert f"{FIRST}: finished before" in printed and "skipped" in printed
    assert "resuming from step 50 of 100" in printed and "resumed from step 50" in printed
    assert "NOT comparable" in printed
    assert f"{SECOND}, reloaded in a fresh process: max |difference| 0.00e+00" in printed


def test_05_resumed_run_ends_where_an_uninterrupted_one_does(runs05):
    assert runs05["uninterrupted"][1] is None, runs05["uninterrupted"][0][-3000:]
    cut, whole = record_by_name(runs05["cut"], NB05), record_by_name(runs05["whole"], NB05)
    assert cut[SECOND]["resumed_from"] == 50 and whole[SECOND]["resumed_from"] == 0
    for name in (FIRST, SECOND):
        same_training(cut[name], whole[name], ("optimizer_steps", "test_accuracy", "test_f1"))


def test_05_out_of_memory_is_recorded_as_not_run_with_the_advice(runs05):
    """Run again with a third method that runs out of memory: the two finished ones are read back (their
    stored test logits serve the reload check), the third is recorded as not run, with the advice."""
    printed, error = run_subset(NB05, runs05["whole"], f"{RUNS_05},LoRA q,v", "oom@1")
    assert error is None, printed[-3000:]
    assert f"{FIRST}: finished before" in printed and f"{SECOND}: finished before" in printed
    assert "LoRA q,v: NOT RUN: OutOfMemoryAdvice:" in printed
    runs = record_by_name(runs05["whole"], NB05)
    assert runs["LoRA q,v"]["status"] == "not run"
    error_text = runs["LoRA q,v"]["error"]
    assert "Estimated peak of this recipe on a T4" in error_text          # the advice, with its numbers
    assert "micro-batch 32 x accumulation" in error_text and "GiB, fits" in error_text
    assert f"{SECOND}, reloaded in a fresh process: max |difference| 0.00e+00" in printed
