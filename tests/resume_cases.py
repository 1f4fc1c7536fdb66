"""Shared by the resume tests of notebooks 01-03 (one test file per notebook, so pytest-xdist spreads them).

Each notebook runs in smoke on the CPU in a fresh kernel (conftest.execute_notebook):
* NB_FAULT=disconnect@N stops it like a Colab disconnect right after the checkpoint of step N; run again
  with the same environment, it resumes from that checkpoint and finishes (02 trains two recipes, so the
  fault fires once in each: three runs). The finished record must carry the very weights (hash of the
  trainable weights, exact on a CPU) and the learned figures of a run that was never interrupted.
* NB_FAULT=oom@1 raises PyTorch's out-of-memory error at the first training step; the notebook must stop
  with OutOfMemoryAdvice: the recipe's estimate (micro-batch, accumulation, checkpointing, 4-bit or not) and
  fixes with numbers.
"""
import json
import re
from pathlib import Path

from conftest import execute_notebook

ROOT = Path(__file__).resolve().parent.parent
LEARNED = ("loss", "accuracy", "f1", "precision", "recall", "exact_match", "weights_fingerprint")


def run(name, tmp_path, label, fault=None):
    env = {"NB_PROFILE": "smoke", "NB_DRIVE": "0", "NB_FAULT": fault or "",
           "NB_CHECKPOINT_DIR": str(tmp_path / label / "checkpoints"), "NB_OUTPUT_DIR": str(tmp_path / label / "out")}
    return execute_notebook(ROOT / "notebooks" / f"{name}.ipynb", env, timeout=600)


def learned(name, tmp_path, label):
    record = json.loads((tmp_path / label / "out" / f"{name}.smoke.json").read_text())
    return [{k: v for k, v in r.items() if any(word in k for word in LEARNED)} for r in record["runs"]], record


def interrupted_then_resumed(name, step, tmp_path, label="resumed"):
    """Disconnect after step `step`, then run again (with the same fault) until the notebook finishes."""
    text, error = run(name, tmp_path, label, f"disconnect@{step}")
    assert error == "SimulatedDisconnect", text[-3000:]
    for _ in range(2):  # 02: its second recipe disconnects once too
        text, error = run(name, tmp_path, label, f"disconnect@{step}")
        assert re.search(rf"resuming from step {step}\b", text), text[-3000:]
        if error != "SimulatedDisconnect":
            break
    assert error is None, text[-3000:]
    resumed, record = learned(name, tmp_path, label)
    assert all(r["weights_fingerprint"] for r in resumed)
    assert any(r.get("resumed_from") for r in record["runs"]), "the record should say which run resumed"
    return resumed


def uninterrupted(name, tmp_path, label="straight"):
    text, error = run(name, tmp_path, label)
    assert error is None, text[-3000:]
    return learned(name, tmp_path, label)[0]


def out_of_memory_ends_in_advice(name, tmp_path):
    text, error = run(name, tmp_path, "oom", "oom@1")
    assert error == "OutOfMemoryAdvice", text[-3000:]
    advice = text[text.index("OutOfMemoryAdvice"):]
    # 01 trains LoRA on a 32-bit base without checkpointing: both are offered as fixes. 02 and 03 already train
    # QLoRA with checkpointing, which the estimate's line names (and the fixes are what is left).
    needed = ("4-bit", "checkpointing") if name.startswith("01") else ("qlora", "gradient checkpointing on")
    for words in ("micro-batch", "accumulation", *needed):
        assert words in advice, advice
    assert re.search(r"Estimated peak of this recipe on a T4: [\d.]+ GiB", advice), advice
    assert re.search(r"micro-batch \d+ x \d+ tokens, accumulation \d+", advice), advice
    if name.startswith("01"):  # 02's recipe has no fix left that lowers its peak: the advice says what else holds memory
        assert re.search(r"micro-batch \d+ x accumulation \d+ -> [\d.]+ GiB", advice), advice


# ----------------------------------------------------------------------------- 04 and 05: run subsets
# Each notebook runs with a small run subset (NB_RUNS) and private checkpoint and output folders.
TIMEOUT = 300


def run_subset(notebook, folder: Path, runs: str, fault: str = ""):
    """Execute `notebook` with its checkpoints in folder/checkpoints and its outputs in folder/out."""
    (folder / "out").mkdir(parents=True, exist_ok=True)
    env = dict(NB_PROFILE="smoke", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               NB_CHECKPOINT_DIR=str(folder / "checkpoints"), NB_OUTPUT_DIR=str(folder / "out"),
               NB_RUNS=runs, NB_FAULT=fault, NB_DRIVE="0")
    return execute_notebook(notebook, env, timeout=TIMEOUT)


def record_by_name(folder: Path, notebook: Path) -> dict:
    """The runs of the measurement record the notebook wrote, by name."""
    saved = json.loads((folder / "out" / f"{notebook.stem}.smoke.json").read_text())
    return {r["name"]: r for r in saved["runs"]}


def same_training(a: dict, b: dict, keys):
    for key in ("weights_fingerprint", *keys):
        assert a[key] == b[key], (a["name"], key, a[key], b[key])
