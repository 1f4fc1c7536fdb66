"""The same seed gives the same smoke metrics twice: notebook 02 (the quickest) executed twice."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "02_qlora_gpt_neox_20b.ipynb"
LEARNED = ("loss", "accuracy", "f1")   # figures that depend on the seed, not on the machine's speed


def learned_figures(record):
    return [{k: v for k, v in run.items() if any(word in k for word in LEARNED)} for run in record["runs"]]


def test_same_seed_same_metrics(tmp_path):
    records = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        env = dict(os.environ, NB_PROFILE="smoke", NB_OUTPUT_DIR=str(out))
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "smoke",
                                 "--out", str(out), str(NOTEBOOK)], env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        records.append(json.loads((out / f"{NOTEBOOK.stem}.smoke.json").read_text()))
    first, second = (learned_figures(r) for r in records)
    assert any(first), "the record carries no learned figures to compare"
    assert first == second
