"""Notebook 05 (several Trainer runs, helpers.checkpoints.RunStore) survives a disconnect and an out-of-memory
error, end to end on a CPU in `smoke` (the helpers in resume_cases.py run it in a fresh kernel).

* NB_FAULT=disconnect@N in the second run stops the notebook (its loop of runs must not take the disconnect for
  a failed method);
* resumed from a late checkpoint of the second run of an uninterrupted run (as a disconnect right after it leaves
  the folder): the first run is read back, not trained again, the second resumes from its checkpoint, and every
  record (weights fingerprint, scores, curves) equals the uninterrupted run's;
* NB_FAULT=oom@1: the method is recorded as not run, with the estimator's advice, and the others go on.
"""
import shutil
from pathlib import Path

import pytest
from resume_cases import ROOT, CheckpointCopies, record_by_name, run_subset, same_training, stopped_after

from helpers import checkpoints

NB05 = ROOT / "notebooks" / "05_methods_compared.ipynb"


# ----------------------------------------------------------------------------- 05: the Trainer, several runs
FIRST, SECOND = "prompt tuning", "LoRA all-linear"   # table order: the disconnect hits the second
RUNS_05 = f"{FIRST},{SECOND}"
LATE_STEP = 75               # of the second run's 100 steps, a checkpoint every 25: the last before the end
RUNS_DIR = Path("checkpoints") / "05_methods_compared" / "smoke" / "runs"   # the RunStore's folder
SECOND_RUN_DIR = "LoRA-all-linear-??????/trainer"   # RunStore.run_dir(SECOND): its slug, a hash, the checkpoints


def with_the_first_run_finished(whole: Path, folder: Path) -> Path:
    """`folder` with FIRST's finished run (record and adapter) from `whole`, as a disconnect in SECOND leaves it."""
    (folder / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    for run_folder in (whole / RUNS_DIR).iterdir():
        if run_folder.name.startswith("prompt-tuning"):
            shutil.copytree(run_folder, folder / RUNS_DIR / run_folder.name)
    shutil.copy(whole / RUNS_DIR / checkpoints.IDENTITY_FILE, folder / RUNS_DIR)   # the same settings and data
    return folder


@pytest.fixture(scope="module")
def runs05(tmp_path_factory):
    whole, cut = tmp_path_factory.mktemp("nb05-whole"), tmp_path_factory.mktemp("nb05-cut")
    with CheckpointCopies(whole / "checkpoints", whole / "copies"):
        uninterrupted = run_subset(NB05, whole, RUNS_05)
    with_the_first_run_finished(whole, cut)
    stopped_after(LATE_STEP, whole / "copies", cut / "checkpoints", where=f"*/*/runs/{SECOND_RUN_DIR}")
    # run again as after that disconnect, with the same NB_FAULT: a run resumed at its step does not fire it
    resumed = run_subset(NB05, cut, RUNS_05, f"disconnect@{LATE_STEP}")
    return dict(uninterrupted=uninterrupted, resumed=resumed, whole=whole, cut=cut)


def test_05_a_disconnect_in_the_second_run(runs05, tmp_path):
    printed, error = run_subset(NB05, with_the_first_run_finished(runs05["whole"], tmp_path), RUNS_05, "disconnect@25")
    assert error == "SimulatedDisconnect", printed[-2000:]
    assert f"{FIRST}: finished before" in printed
    assert "simulated runtime disconnect after step 25" in printed      # the first checkpoint: a cheap run


def test_05_resumed_it_skips_the_finished_run_and_resumes_the_other(runs05):
    printed, error = runs05["resumed"]
    assert error is None, printed[-3000:]
    assert f"{FIRST}: finished before" in printed and "skipped" in printed
    assert f"resuming from step {LATE_STEP} of 100" in printed and f"resumed from step {LATE_STEP}" in printed
    assert "NOT comparable" in printed
    assert f"{SECOND}, reloaded in a fresh process: max |difference| 0.00e+00" in printed


def test_05_resumed_run_ends_where_an_uninterrupted_one_does(runs05):
    assert runs05["uninterrupted"][1] is None, runs05["uninterrupted"][0][-3000:]
    cut, whole = record_by_name(runs05["cut"], NB05), record_by_name(runs05["whole"], NB05)
    assert cut[SECOND]["resumed_from"] == LATE_STEP and whole[SECOND]["resumed_from"] == 0
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
