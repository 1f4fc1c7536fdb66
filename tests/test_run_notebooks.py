"""`make run`'s runner executes notebooks, keeps going after a failure and writes the summary."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def notebook(cells):
    return {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                       "source": source} for source in cells],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def test_runner_summarises_passes_and_failures(tmp_path):
    good = tmp_path / "01_good.ipynb"
    good.write_text(json.dumps(notebook([
        "from helpers import results, runtime\n"
        "record = results.make_record('01_good', runtime.choose_profile(), [{'name': 'r', 'peak_rss_gib': 0.5}],\n"
        "    learning_signal={'summary': 'acc 0.9 vs majority 0.5'})\n"
        "results.save_record(record, runtime.output_dir('smoke'))",
    ])))
    bad = tmp_path / "02_bad.ipynb"
    bad.write_text(json.dumps(notebook(["raise ValueError('broken on purpose')"])))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "smoke",
                             "--out", str(out), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    summary = (out / "summary.md").read_text()
    assert "| 01_good.ipynb | passed |" in summary and "0.50 GiB (rss)" in summary
    assert "acc 0.9 vs majority 0.5" in summary
    assert "| 02_bad.ipynb | FAILED |" in summary and "broken on purpose" in summary
    assert (out / "executed" / "01_good.ipynb").exists()
