"""Shared test set-up: offline, CPU, a private cache for the tiny checkpoints built by tests."""
import contextlib
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
# Notebooks run by these tests (nbmake included: its kernels inherit this environment) checkpoint into a
# fresh folder, so that no run resumes from a stale checkpoint of an earlier version of a notebook.
if not os.environ.get("NB_CHECKPOINT_DIR"):
    import tempfile

    os.environ["NB_CHECKPOINT_DIR"] = tempfile.mkdtemp(prefix="nb-checkpoints-")


# Seconds each slow file took in a `make test` on 2 cores (2026-12-04). The scheduler below (--dist loadgroup) hands
# out whole groups, one per test file, in collection order, so the slowest go first: collected last, nbmake's notebooks
# used to run alone at the end while the other worker sat idle. A file not listed counts as quick; the figures
# only order.
SLOW_FILES = {
    "test_resume_03.py": 256, "03_accounting_sft.ipynb": 176, "test_full_profile.py": 167,
    "test_full_profile_04_05.py": 153, "test_resume_05.py": 152, "04_gradient_accumulation.ipynb": 150,
    "test_resume_02.py": 140, "05_methods_compared.ipynb": 133, "test_resume_04.py": 104, "test_resume_01.py": 94,
    "test_real_01.py": 85, "test_bad_input.py": 72, "02_qlora_gpt_neox_20b.ipynb": 56,
    "01_complaint_classification.ipynb": 45,
}
# A notebook whose nbmake run is also its resume test's uninterrupted run (resume_cases.KEPT_RUNS) joins that
# test's group, ahead of it.
RESUMED_BY = {"01_complaint_classification": "test_resume_01.py", "02_qlora_gpt_neox_20b": "test_resume_02.py",
              "03_accounting_sft": "test_resume_03.py"}


def group_of(file_name: str) -> str:
    """The xdist group of a test file: its own name, or for a resumed notebook its resume test's file."""
    stem, _, suffix = file_name.rpartition(".")
    return RESUMED_BY.get(stem, file_name) if suffix == "ipynb" else file_name


def _group(item) -> str:
    return group_of(item.path.name)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """Under `--dist loadgroup`, hand out the groups of group_of() ourselves. xdist 3.8 marks a group by rewriting
    `item._nodeid`, which pytest 9.2 no longer reads (a node's id lives in `_id`): its loadgroup then spreads a
    file's tests over both workers, building each module fixture twice (seen: test_resume_05's 90 s set-up twice)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerPerGroup(LoadScopeScheduling):
        def __init__(self, config, log=None):
            super().__init__(config, log)
            # keep collection order (slowest group first, below), not xdist's "most tests first"
            config.option.loadscopereorder = False

        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid.split("::", 1)[0].rsplit("/", 1)[-1])

    return OneWorkerPerGroup(config, log)


def pytest_collection_modifyitems(items):
    """The groups (group_of: one per file, a resumed notebook in its resume test's) slowest first, a notebook ahead
    of its resume test; a stable sort, so a file's own tests keep their order. The scheduler above hands the groups
    out in this order."""
    files = {}
    for item in items:
        files.setdefault(_group(item), set()).add(item.path.name)
    weight = {group: sum(SLOW_FILES.get(name, 0) for name in names) for group, names in files.items()}
    items.sort(key=lambda item: (-weight[_group(item)], _group(item), item.path.suffix != ".ipynb"))


class KeepUninterruptedRuns:
    """nbmake's run of a resumed notebook keeps its checkpoints and record for the resume test (resume_cases).
    A plugin, not a conftest hook: a conftest's run hooks reach only the tests in its own folder."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        if item.path.suffix != ".ipynb" or item.path.stem not in RESUMED_BY:
            return (yield)
        import tempfile
        from pathlib import Path

        import resume_cases

        folder = Path(tempfile.mkdtemp(prefix=f"nb-{item.path.stem}-"))
        with resume_cases.keeping_the_uninterrupted_run(folder):
            result = yield
        resume_cases.KEPT_RUNS[item.path.stem] = folder   # only once it passed: else the resume test runs its own
        return result


def pytest_configure(config):
    config.pluginmanager.register(KeepUninterruptedRuns(), "keep-uninterrupted-runs")


def load_script(path):
    """Import a script (e.g. a data/make_*.py generator) as a module, without running its main()."""
    import importlib.util
    from pathlib import Path

    path = Path(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def environment(env: dict):
    """`env` added to os.environ while the block runs (a kernel started in it inherits it), then put back."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update({key: str(value) for key, value in env.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_notebook(notebook, env: dict, timeout: int = 600):
    """Run a notebook top to bottom in a fresh kernel with `env` added to the environment.

    Returns (printed text of every cell, the name of the exception that stopped it or None). Used by the
    resume and out-of-memory tests, which expect some runs to stop on purpose.
    """
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = Path(notebook)
    nb = nbformat.read(notebook, as_version=4)
    error = None
    with environment(env):   # the kernel inherits it
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(notebook.parent)}})
        try:
            client.execute()
        except CellExecutionError as err:
            error = err.ename
    printed = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                printed.append(output.get("text", ""))
            elif output.get("output_type") == "error":
                printed.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "".join(printed), error


@contextlib.contextmanager
def private_tiny_cache(folder):
    """helpers.tiny builds its checkpoints in `folder` while inside (tests never touch the shared cache)."""
    from helpers import tiny

    old = os.environ.get(tiny.CACHE_ENV)
    os.environ[tiny.CACHE_ENV] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(tiny.CACHE_ENV)
        else:
            os.environ[tiny.CACHE_ENV] = old


@pytest.fixture(scope="module")
def tiny_bloom(tmp_path_factory):
    """A tiny BLOOM checkpoint in a private cache."""
    from helpers import tiny

    with private_tiny_cache(tmp_path_factory.mktemp("tiny-cache")):
        yield tiny.tiny_checkpoint("bloom", corpus="movie_reviews.csv", vocab_size=512)


def tiny_trainer(output_dir, callbacks, rows=8, eval_rows=0, **arguments):
    """A Trainer on the CPU over the smallest model it trains (a linear regression on 4 numbers), for the
    tests of callbacks; `arguments` go to TrainingArguments (batch 2, no checkpoints unless asked)."""
    import torch
    from transformers import Trainer, TrainingArguments

    class LinearRegression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def forward(self, x, labels):
            return {"loss": torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), labels)}

    data = [{"x": torch.randn(4), "labels": torch.tensor(1.0)} for _ in range(rows)]
    settings = dict(output_dir=str(output_dir), per_device_train_batch_size=2, per_device_eval_batch_size=2,
                    report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True, dataloader_pin_memory=False)
    return Trainer(model=LinearRegression(), args=TrainingArguments(**{**settings, **arguments}), train_dataset=data,
                   eval_dataset=data[:eval_rows] or None, callbacks=callbacks)
