import gc

import numpy as np
import pytest
import torch

from conftest import tiny_trainer

from helpers import memory


def test_tracker_sees_a_large_allocation_on_cpu():
    if torch.cuda.is_available():
        pytest.skip("CPU path")
    # Earlier tests leave garbage: a collection that runs in the middle of the block would hand memory back to
    # the system while the block takes it, and the peak would not rise (seen once in CI: +0.0005 GiB).
    gc.collect()
    gc.disable()
    try:
        with memory.MemoryTracker("alloc", interval_s=0.005) as tracker:
            base = tracker.reading()["rss_gib"]
            block = np.ones(64 * 2**20, dtype=np.float32)  # 256 MiB, touched
            tracker.mark(1)
            del block
            tracker.mark(2)
    finally:
        gc.enable()
    summary = tracker.summary()
    assert summary["peak_rss_gib"] >= base + 0.2
    assert [r["step"] for r in tracker.rows] == [0, 1, 2]
    assert summary["wall_s"] > 0 and tracker.peak_gib() == summary["peak_rss_gib"]
    assert tracker.snapshot("unused.pickle") is False


def test_callback_records_every_optimizer_step(tmp_path):
    callback = memory.MemoryCallback("tiny")
    tiny_trainer(tmp_path, [callback], rows=12, gradient_accumulation_steps=2, num_train_epochs=1).train()
    steps = [r["step"] for r in callback.tracker.rows]
    assert steps == [0, 1, 2, 3]
    assert callback.tracker.summary()["peak_rss_gib"] > 0


def test_an_excluded_phase_stays_out_of_the_peak_on_cpu():
    """What runs inside tracker.excluded() (evaluation at its own batch size) is not training's peak."""
    if torch.cuda.is_available():
        pytest.skip("CPU path")
    with memory.MemoryTracker("training", interval_s=0.005) as tracker:
        base = tracker.reading()["rss_gib"]
        with tracker.excluded("evaluation"):
            block = np.ones(64 * 2**20, dtype=np.float32)  # 256 MiB, touched, freed before the phase ends
            import time
            time.sleep(0.05)                                # the sampler would have seen it
            del block
        tracker.mark(1)
    assert tracker.summary()["peak_rss_gib"] < base + 0.2


def test_the_callback_leaves_the_trainers_evaluations_out(tmp_path):
    """Every evaluation during training runs inside an excluded phase, and the phase closes after it."""
    from transformers import TrainerCallback

    class WatchEvaluation(TrainerCallback):
        paused_batches, running_batches = 0, 0

        def on_prediction_step(self, args, state, control, **kwargs):
            if callback.tracker._paused:
                WatchEvaluation.paused_batches += 1
            else:
                WatchEvaluation.running_batches += 1

        def on_step_begin(self, args, state, control, **kwargs):
            assert not callback.tracker._paused, "training resumed inside the excluded phase"

    callback = memory.MemoryCallback("tiny")
    tiny_trainer(tmp_path, [callback, WatchEvaluation()], rows=8, eval_rows=4, num_train_epochs=1,
                 eval_strategy="steps", eval_steps=2).train()
    assert WatchEvaluation.paused_batches == 2 * 2 and WatchEvaluation.running_batches == 0   # 2 evaluations x 2 batches
    assert not callback.tracker._paused



class FakeAllocator:
    """torch.cuda's allocator counters as a script sets them: peaks reset by reset_peak_memory_stats."""

    def __init__(self):
        self.inactive_peak, self.retries, self.mallocs = 0, 0, 0

    def memory_stats(self):
        return {"inactive_split_bytes.all.peak": self.inactive_peak, "num_alloc_retries": self.retries,
                "num_device_alloc": self.mallocs}

    def reset_peak_memory_stats(self):
        self.inactive_peak = 0


def test_fragmentation_is_recorded_with_excluded_phases_left_out(monkeypatch):
    """The record says how much split, idle cache the allocator held at its peak, and how many retries and
    cudaMallocs the run made; an evaluation's fragmentation is not training's."""
    fake = FakeAllocator()
    for name, value in {"is_available": lambda: True, "synchronize": lambda: None, "empty_cache": lambda: None,
                        "memory_stats": fake.memory_stats, "reset_peak_memory_stats": fake.reset_peak_memory_stats,
                        "memory_allocated": lambda: 0, "memory_reserved": lambda: 0,
                        "max_memory_allocated": lambda: 2 * memory.GIB,
                        "max_memory_reserved": lambda: 3 * memory.GIB}.items():
        monkeypatch.setattr(torch.cuda, name, value)
    monkeypatch.setattr(memory, "_nvml_handle", lambda: (None, None))
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    fake.retries, fake.mallocs = 5, 40                      # an earlier run in the process
    tracker = memory.MemoryTracker("training", interval_s=10).start()
    fake.inactive_peak, fake.mallocs = int(0.75 * memory.GIB), 52
    with tracker.excluded("evaluation"):
        fake.inactive_peak, fake.retries = 4 * memory.GIB, 6      # the evaluation's own
    fake.inactive_peak = int(0.25 * memory.GIB)
    tracker.stop()
    summary = tracker.summary()
    assert summary["peak_inactive_split_gib"] == 0.75
    assert summary["alloc_retries"] == 1 and summary["device_mallocs"] == 12
    assert summary["allocator_config"] == "expandable_segments:True"


def test_fragmentation_is_named_with_its_fix_only_when_it_is_large():
    frag = dict(peak_allocated_gib=4.5, peak_reserved_gib=6.3, peak_inactive_split_gib=1.6, allocator_config="default")
    note = memory.fragmentation_note(frag)
    assert "6.30 GiB for 4.50 GiB" in note and "1.60 GiB" in note and "expandable_segments:True" in note
    already = memory.fragmentation_note(frag | {"allocator_config": "expandable_segments:True"})
    assert "fragmentation" in already and "PYTORCH_CUDA_ALLOC_CONF" not in already
    assert memory.fragmentation_note(frag | {"peak_inactive_split_gib": 0.2}) is None      # too small to matter
    assert memory.fragmentation_note(dict(frag, peak_reserved_gib=30.0)) is None            # under 10 % of reserved
    assert memory.fragmentation_note({"peak_rss_gib": 2.0}) is None                         # a CPU run
