"""bench/wholerun_summary.py: the estimates made before training beside the measurements, summed up honestly."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import wholerun_summary  # noqa: E402

from helpers import wholerun  # noqa: E402


def run(name, measured, estimated, device=None, estimated_device=None, **extra):
    return dict(name=name, measured_wall_s=measured, estimated_wall_s=estimated,
                estimated_wall_range_s=[0.8 * estimated, 1.25 * estimated], wall_error=estimated / measured - 1,
                estimated_parts_s={"micro-batches at their padded lengths": estimated}, train_s=measured - 1,
                peak_device_gib=device, estimated_peak_device_gib=estimated_device, **extra)


def folder_with(tmp_path, name, runs, profile="bench", seed_runs=()):
    folder = tmp_path / name
    folder.mkdir()
    host = dict(wholerun.FALLBACK_HOST, date="2026-12-05", block_pass_relative_stderr=0.05)
    (folder / "host_costs.json").write_text(json.dumps(host))
    record = dict(notebook=f"{name}_x", profile=profile, date="2026-12-05", gpu={"name": "NVIDIA H200"},
                  versions={"torch": "2.11"}, runs=runs + [dict(name="CPU run, no estimate", wall_s=3.0)],
                  seed_runs=list(seed_runs))
    (folder / f"{name}_x.{profile}.json").write_text(json.dumps(record))
    return folder


def test_errors_ranges_and_fragmentation_per_run_and_over_all(tmp_path):
    a = folder_with(tmp_path, "01", [run("inside", 100.0, 110.0, 8.0, 8.4, peak_inactive_split_gib=0.9,
                                         alloc_retries=0, allocator_config="default")])
    b = folder_with(tmp_path, "05", [run("far off", 100.0, 40.0, 10.0, 7.0), run("no memory estimate", 50.0, 52.0)])
    out = tmp_path / "summary.json"
    assert wholerun_summary.main([str(a), str(b), "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    first = summary["notebooks"][0]["runs"][0]
    assert first["in_range"] is True and first["memory_error"] == pytest.approx(0.05)
    assert first["peak_inactive_split_gib"] == 0.9 and first["allocator_config"] == "default"
    far = summary["notebooks"][1]["runs"][0]
    assert far["in_range"] is False and far["memory_error"] == pytest.approx(-0.3)
    assert len(summary["notebooks"][1]["runs"]) == 2                       # the run without an estimate is left out
    wall, memory = summary["overall"]["wall"], summary["overall"]["memory"]
    assert wall["runs"] == 3 and wall["within_target"] == 2 and wall["largest_error"] == pytest.approx(-0.6)
    assert wall["median_abs_error"] == pytest.approx(0.1)
    assert memory["runs"] == 2 and memory["within_target"] == 1
    assert summary["notebooks"][0]["host_probe"]["block_pass_relative_stderr"] == 0.05
    # memory split by allocator setting: the run that set none counts as the default allocator
    by = summary["by_allocator"]
    assert set(by) == {"default"} and by["default"]["memory"]["runs"] == 2


def test_repeats_at_other_seeds_count_and_allocators_are_told_apart(tmp_path):
    grown = dict(allocator_config="expandable_segments:True")
    a = folder_with(tmp_path, "05", [run("QLoRA", 30.0, 31.0, 9.8, 6.7, allocator_config="default")],
                    seed_runs=[run("QLoRA · seed 43", 30.0, 31.0, 6.69, 6.7, seed=43, **grown)])
    out = tmp_path / "summary.json"
    assert wholerun_summary.main([str(a), "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    runs = summary["notebooks"][0]["runs"]
    assert [r["seed"] for r in runs] == [None, 43]
    assert summary["overall"]["memory"]["within_target"] == 1
    default, expandable = summary["by_allocator"]["default"], summary["by_allocator"]["expandable_segments:True"]
    assert default["memory"]["within_target"] == 0 and default["memory"]["largest_error"] == pytest.approx(-0.316, abs=1e-3)
    assert expandable["memory"]["within_target"] == 1 and expandable["wall"]["runs"] == 1


def test_a_folder_without_its_probe_or_record_says_what_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no host_costs.json"):
        wholerun_summary.summarise(tmp_path / "empty")
    (tmp_path / "empty" / "host_costs.json").write_text("{}")
    with pytest.raises(SystemExit, match="no notebook record"):
        wholerun_summary.summarise(tmp_path / "empty")
