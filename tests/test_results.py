import json

import pytest

from helpers import results


def test_record_has_what_design_asks(tmp_path):
    record = results.make_record("04_x", "smoke", [{"name": "batch 1", "wall_s": 1.5, "peak_rss_gib": 0.4}],
                                 learning_signal={"summary": "acc 0.9"}, model="m")
    for key in ("notebook", "profile", "gpu", "versions", "date", "runs", "learning_signal", "model"):
        assert key in record
    assert {"name", "count"} <= set(record["gpu"])
    for library in ("torch", "transformers", "peft", "trl", "bitsandbytes"):
        assert library in record["versions"]
    path = results.save_record(record, tmp_path)
    assert path.name == "04_x.smoke.json"
    loaded = results.load_records(tmp_path)
    assert loaded[0]["runs"][0]["wall_s"] == 1.5


def test_runs_need_names():
    with pytest.raises(ValueError, match="name"):
        results.make_record("n", "smoke", [{"wall_s": 1}])


def test_numpy_values_serialise(tmp_path):
    import numpy as np

    record = results.make_record("n", "smoke", [{"name": "a", "x": np.float32(0.5), "n": np.int64(3)}])
    data = json.loads(results.save_record(record, tmp_path).read_text())
    assert data["runs"][0] == {"name": "a", "x": 0.5, "n": 3}


def test_runs_table_is_markdown():
    record = {"runs": [{"name": "a", "wall_s": 12.345, "peak": None}]}
    table = results.runs_table(record, ["wall_s", "peak"])
    assert table.splitlines()[2] == "| a | 12.3 | — |"


def test_measured_fits_take_the_driver_reservation_of_the_gpu_that_ran(monkeypatch):
    from helpers import cost, runtime

    monkeypatch.setattr(runtime, "physical_gpu", lambda: "NVIDIA H200")
    verdicts = results.measured_fits({"peak_device_gib": 14.816})          # 02's post recipe under T4 emulation
    assert verdicts["T4"]["fits"] and verdicts["T4"]["verdict"].startswith("tight: may not fit a T4: 14.2 of 14.56")
    assert results.measured_fits({"peak_rss_gib": 1.0}) == {}             # a CPU run: nothing to say
    assert cost.bill_of_this_run(3600, "NVIDIA H200") is None                # Colab rents no H200
    assert cost.bill_of_this_run(3600, "Tesla T4")["units"] == cost.colab_cost(3600, gpu="T4")["units"]


def test_the_committed_bench_line_names_its_gpu_and_date():
    line = results.bench_fits_line("01_complaint_classification")
    assert line.startswith("bench on NVIDIA H200 (") and "T4" in line
    assert results.bench_fits_line("no_such_notebook") is None


def test_a_claim_that_does_not_simply_hold_says_why():
    held = results.claim("LoRA beats prompt tuning", published="0.895 vs 0.730", ours="0.91 vs 0.70", holds=True)
    assert held["holds"] is True and held["why"] == ""
    with pytest.raises(ValueError, match="say why"):
        results.claim("prefix beats prompt", published="0.877 vs 0.730", ours="0.70 vs 0.75", holds=False)


def test_a_claim_prints_its_verdict_as_the_readme_does():
    from helpers import results

    partly = results.claim("x beats y", published="0.9", ours="0.8", holds=None, why="another model")
    assert results.claim_text(partly).startswith("partly / not comparable: x beats y")
    assert "why: another model" in results.claim_text(partly)
    assert results.claim_text(results.claim("x", published="1", ours="1", holds=True)).startswith("reproduced: x")
    assert "why" not in results.claim_text(results.claim("x", published="1", ours="1", holds=True))
