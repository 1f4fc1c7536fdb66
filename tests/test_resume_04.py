"""Notebook 04 (its hand-written loop, helpers.checkpoints.LoopCheckpoint) survives a disconnect and explains an
out-of-memory error, end to end on a CPU in `smoke` (the helpers in resume_cases.py run it in a fresh kernel).

* NB_FAULT=disconnect@N stops the loop right after the first checkpoint at or after step N;
* resumed from a late checkpoint of an uninterrupted run (as a disconnect right after it leaves the folder),
  the loop completes and its record (weights fingerprint, scores, curves) equals the uninterrupted run's exactly;
* NB_FAULT=oom@1 stops the notebook with the estimator's advice, in numbers.
"""
import pytest
from resume_cases import ROOT, CheckpointCopies, record_by_name, run_subset, same_training, stopped_after

NB04 = ROOT / "notebooks" / "04_gradient_accumulation.ipynb"


# ----------------------------------------------------------------------------- 04: the hand-written loop
RUNS_04 = "batch 16"          # 130 optimizer steps, a checkpoint every 20 (320 samples)
LATE_STEP = 120               # the last checkpoint before the end


@pytest.fixture(scope="module")
def runs04(tmp_path_factory):
    whole, cut = tmp_path_factory.mktemp("nb04-whole"), tmp_path_factory.mktemp("nb04-cut")
    with CheckpointCopies(whole / "checkpoints", whole / "copies"):
        uninterrupted = run_subset(NB04, whole, RUNS_04)
    stopped_after(LATE_STEP, whole / "copies", cut / "checkpoints")
    # run again as after that disconnect, with the same NB_FAULT: a run resumed at its step does not fire it
    resumed = run_subset(NB04, cut, RUNS_04, f"disconnect@{LATE_STEP}")
    return dict(uninterrupted=uninterrupted, resumed=resumed, whole=whole, cut=cut)


def test_04_a_disconnect_stops_the_loop_after_a_checkpoint(tmp_path):
    printed, error = run_subset(NB04, tmp_path, RUNS_04, "disconnect@10")   # no checkpoint at 10: the next, 20
    assert error == "SimulatedDisconnect", printed[-2000:]
    assert "simulated runtime disconnect after step 20" in printed


def test_04_resumed_from_a_late_checkpoint_the_loop_completes(runs04):
    printed, error = runs04["resumed"]
    assert error is None, printed[-3000:]
    assert f"resuming from step {LATE_STEP}" in printed and f"(resumed from step {LATE_STEP})" in printed
    assert "not comparable" in printed                      # the resumed run's timings are flagged
    assert "in a fresh process: max |difference| 0.00e+00" in printed   # the saved model, reloaded


def test_04_resumed_loop_ends_where_an_uninterrupted_one_does(runs04):
    assert runs04["uninterrupted"][1] is None, runs04["uninterrupted"][0][-3000:]
    resumed, whole = record_by_name(runs04["cut"], NB04)["batch 16"], record_by_name(runs04["whole"], NB04)["batch 16"]
    assert resumed["resumed_from"] == LATE_STEP and whole["resumed_from"] == 0
    same_training(resumed, whole, ("optimizer_steps", "final_train_loss", "val_accuracy", "test_accuracy"))


def test_04_out_of_memory_ends_in_advice(tmp_path):
    printed, error = run_subset(NB04, tmp_path, RUNS_04, "oom@1")
    assert error == "OutOfMemoryAdvice", printed[-2000:]
    advice = printed[printed.index("OutOfMemoryAdvice:"):]
    assert "T4" in advice and "Fixes" in advice
    assert "micro-batch" in advice and "accumulation" in advice and "gradient checkpointing" in advice.lower()
