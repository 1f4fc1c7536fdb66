"""Shared by the resume tests (one test file per notebook, so pytest-xdist spreads them).

Every notebook runs in smoke on the CPU in a fresh kernel (conftest.execute_notebook).

Resuming: the notebook runs once uninterrupted while `CheckpointCopies` keeps a copy of every checkpoint it
completes (the notebooks delete their checkpoints once a run is finished and saved). `stopped_after(step)` then
fills a checkpoint folder with what a run stopped right after the checkpoint of that (late) step leaves there,
and the notebook runs again on it. It must say that it resumes from that step, its record must say which run
resumed (resumed_from), and it must end with the very weights (hash of the trainable weights, exact on a CPU)
and the learned figures of the uninterrupted run. Two runs, not three (cut short, resumed, uninterrupted to
compare with), and the second trains only the tail. Under pytest the uninterrupted run is nbmake's own run of
the notebook (conftest puts the two on one worker, the notebook first, and `keeping_the_uninterrupted_run` keeps
its checkpoints and record): one run of the notebook less per resume test. Run alone, the test makes its own.

NB_FAULT=oom@1 raises PyTorch's out-of-memory error at the first training step; the notebook must stop with
OutOfMemoryAdvice: the recipe's estimate (micro-batch, accumulation, checkpointing, 4-bit or not) and fixes with
numbers. NB_FAULT=disconnect@N (a Colab disconnect right after the checkpoint of step N) is left to one cheap run
each in 04 and 05, whose own code handles the fault (04's loop raises it, 05's loop of runs must let it through).
"""
import contextlib
import json
import os
import re
import shutil
import threading
from pathlib import Path

from conftest import environment, execute_notebook

from helpers.checkpoints import IDENTITY_FILE

ROOT = Path(__file__).resolve().parent.parent
LEARNED = ("loss", "accuracy", "f1", "precision", "recall", "exact_match", "weights_fingerprint")
TRAINER_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")     # a Trainer's checkpoint folder
LOOP_CHECKPOINT = re.compile(r"^step-\d+\.pt$")           # a LoopCheckpoint file


# ----------------------------------------------------------------------------- checkpoints of a finished run
def _trainer_state(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None


def _complete(path: Path) -> bool:
    """A checkpoint that is all written: the Trainer writes trainer_state.json last; a LoopCheckpoint file and a
    run-identity file are renamed into place whole."""
    if match := TRAINER_CHECKPOINT.match(path.name):
        state = _trainer_state(path)
        return state is not None and state.get("global_step") == int(match.group(1))
    return LOOP_CHECKPOINT.match(path.name) is not None or path.name == IDENTITY_FILE


class CheckpointCopies:
    """While the block runs (a notebook in its kernel), copy every checkpoint completed under `root`, and every
    run-identity file, to the same place under `into`.

    The notebooks delete a run's checkpoints as soon as it is finished and saved, in the same cell as its
    training (04, 05) or a later one (01-03): a poll every POLL_S seconds is in time, because a late checkpoint
    stays on disk until then (the Trainer rotates out only the oldest, a LoopCheckpoint keeps 2).
    """

    POLL_S = 0.1

    def __init__(self, root: Path, into: Path):
        self.root, self.into = Path(root), Path(into)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _watch(self):
        while not self._stop.wait(self.POLL_S):
            self.copy_new()

    def copy_new(self):
        for folder, dirs, files in os.walk(self.root):   # os.walk skips a folder deleted while it walks
            for name in dirs + files:
                source = Path(folder) / name
                target = self.into / source.relative_to(self.root)
                if not target.exists() and _complete(source):
                    self._copy(source, target)

    @staticmethod
    def _copy(source: Path, target: Path):
        partial = target.with_name(f".{target.name}.partial")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, partial)
            else:
                shutil.copy2(source, partial)
            partial.rename(target)
        except OSError:   # rotated out while being copied: an early checkpoint, never one that a test resumes
            if partial.is_dir():
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.unlink(missing_ok=True)


def stopped_after(step: int, copies: Path, into: Path, where: str = "**"):
    """Put into `into` what a run stopped right after the checkpoint of `step` leaves in its checkpoint folder,
    from `copies` (CheckpointCopies of the uninterrupted run's folder): every run-identity file (without it the
    notebook moves the checkpoints aside as another run's) and, in each run folder matching `where`, the
    checkpoint of `step` and, where the Trainer keeps its best checkpoint (03), the best one as of that step.

    Left out, as a re-run must not see them: the later checkpoints (the last one says "already finished") and
    what marks a run finished (a RunStore's record.json and saved model, the adapter saved at the end). Older
    checkpoints that the rotation would still keep are left out too: a re-run only falls back on them when the
    newest is unreadable. The Trainer's state names its best checkpoint by its full path, so for a Trainer with a
    best checkpoint `into` must be the very folder the uninterrupted run used (it deleted its checkpoints).
    """
    for identity in copies.rglob(IDENTITY_FILE):
        _copy_to(identity, into / identity.relative_to(copies))
    found = [*copies.glob(f"{where}/checkpoint-{step}"), *copies.glob(f"{where}/step-{step:08d}.pt")]
    assert found, f"no checkpoint of step {step} in {sorted(str(p.relative_to(copies)) for p in copies.rglob('*'))}"
    for checkpoint in found:
        _copy_to(checkpoint, into / checkpoint.relative_to(copies))
        best = (_trainer_state(checkpoint) or {}).get("best_model_checkpoint")
        if best and Path(best).name != checkpoint.name:
            assert Path(best).parent == into / checkpoint.parent.relative_to(copies), (best, into)
            _copy_to(checkpoint.with_name(Path(best).name), Path(best))


def _copy_to(source: Path, target: Path):
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


# ----------------------------------------------------------------------------- 01-03: the whole notebook
# nbmake runs every notebook with 1 thread (the Makefile); the resume tests run them with 2, so that the smoke
# assertions (learning, not only running) are checked at both thread counts. Both runs of a comparison use the
# same count: the weights' hash depends on it. PASSIVE: an idle OpenMP thread sleeps instead of spinning, or
# it fights the other pytest worker for the second core (measured: 57 s against 31 s for notebook 02).
TWO_THREADS = {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}


# Notebooks whose nbmake run is kept as their resume test's uninterrupted run: name -> its folder (checkpoints,
# copies, uninterrupted), set once that run has passed (conftest.pytest_runtest_call).
KEPT_RUNS: dict[str, Path] = {}


def run(name, checkpoint_dir: Path, output_dir: Path, fault="", threads=TWO_THREADS):
    env = {"NB_PROFILE": "smoke", "NB_DRIVE": "0", "NB_FAULT": fault, **threads,
           "NB_CHECKPOINT_DIR": str(checkpoint_dir), "NB_OUTPUT_DIR": str(output_dir)}
    return execute_notebook(ROOT / "notebooks" / f"{name}.ipynb", env, timeout=600)


@contextlib.contextmanager
def keeping_the_uninterrupted_run(folder: Path):
    """While the block runs a notebook (nbmake's run of it, in this process's environment), its checkpoints go to
    folder/checkpoints, a copy of each to folder/copies, and its record to folder/uninterrupted."""
    env = {"NB_DRIVE": "0", "NB_FAULT": "", "NB_CHECKPOINT_DIR": str(folder / "checkpoints"),
           "NB_OUTPUT_DIR": str(folder / "uninterrupted")}
    with environment(env), CheckpointCopies(folder / "checkpoints", folder / "copies"):   # nbmake's kernel inherits env
        yield


def learned(name, output_dir: Path):
    """The learned figures of every run in the notebook's record, and the record."""
    record = json.loads((output_dir / f"{name}.smoke.json").read_text())
    return [{k: v for k, v in r.items() if any(word in k for word in LEARNED)} for r in record["runs"]], record


def resumed_from_a_late_checkpoint_ends_like_the_uninterrupted_run(name, step, tmp_path, runs=1):
    """Run `name` uninterrupted, then again from the copy of its checkpoint of `step` (in every one of its
    `runs` Trainer runs); the second must resume there and end with the first's weights and figures."""
    if name in KEPT_RUNS:   # nbmake's run of the notebook, in this environment: resume with the same threads
        kept, threads = KEPT_RUNS[name], {}
        checkpoint_dir, copies, first = kept / "checkpoints", kept / "copies", kept / "uninterrupted"
    else:
        threads = TWO_THREADS
        checkpoint_dir, copies, first = tmp_path / "checkpoints", tmp_path / "copies", tmp_path / "uninterrupted"
        with CheckpointCopies(checkpoint_dir, copies):
            text, error = run(name, checkpoint_dir, first)
        assert error is None, text[-3000:]
    uninterrupted, _ = learned(name, first)

    shutil.rmtree(checkpoint_dir)   # the same folder again: 03's Trainer state names its best checkpoint's path
    stopped_after(step, copies, checkpoint_dir)
    # run again as after that disconnect, with the same NB_FAULT: a run resumed at its step does not fire it
    text, error = run(name, checkpoint_dir, tmp_path / "resumed", fault=f"disconnect@{step}", threads=threads)
    assert error is None, text[-3000:]
    assert len(re.findall(rf"resuming from step {step} of \d+: ", text)) == runs, text[-3000:]
    resumed, record = learned(name, tmp_path / "resumed")
    assert [r["resumed_from"] for r in record["runs"]] == [step] * runs, "the record should say which run resumed"
    assert all(r["weights_fingerprint"] for r in resumed)
    assert resumed == uninterrupted


def out_of_memory_ends_in_advice(name, tmp_path):
    text, error = run(name, tmp_path / "checkpoints", tmp_path / "out", "oom@1")
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
    env = dict(NB_PROFILE="smoke", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **TWO_THREADS,
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
