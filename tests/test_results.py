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
