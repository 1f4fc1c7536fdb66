"""The `full` profile of every notebook, offline (issue 15).

`full` is what Colab users run: the real hub ids, `from_pretrained("xlm-roberta-large")`,
`load_dataset("stanfordnlp/imdb")`. The hub cannot be reached here or in CI, so tests/hub_cache.py
writes a local hub cache under those very ids (tiny random models, small tables with the real
columns and splits), and each notebook runs top to bottom in a fresh kernel with NB_PROFILE=full and
HF_HUB_OFFLINE=1: every line runs but the download.

One test per notebook. The cache is built once per test run and shared by the pytest-xdist workers
(a file lock: the first worker builds it, the others find it built). Checkpoints and records go to
tmp folders. Run them alone with `pytest tests/test_full_profile.py -n 2`.
"""
import json
import time
from pathlib import Path

import nbformat
import pytest
from conftest import execute_notebook
from filelock import FileLock
from hub_cache import build_hub_cache

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("0*.ipynb"))
# 04 and 05 run from tests/test_full_profile_04_05.py, so that pytest-xdist (one group per file) spreads the runs
HERE = [n for n in NOTEBOOKS if n[:2] not in ("04", "05")]
TIMEOUT = 600          # seconds per cell
# 03's full data are not downloaded but generated (3,000 rows, 300 optimizer steps: minutes on a CPU); the
# same generator with fewer rows, through the notebook's own NB_DATA, sizes it like the other small tables.
EXTRA_ENV = {"03_accounting_sft": {"NB_DATA": "generate:320"}}


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory):
    """The environment of the local hub cache, built once for all workers of this test run."""
    shared = tmp_path_factory.getbasetemp().parent      # the same folder for every xdist worker
    root = shared / "hub-cache"
    with FileLock(str(root) + ".lock"):
        return build_hub_cache(root)


def run_full(notebook, cache_env: dict, folder: Path, **extra):
    """Execute `notebook` (a name in notebooks/, or a path) in the full profile, offline, against the cache.

    Returns (printed text, the name of the exception that stopped it or None, seconds)."""
    path = notebook if isinstance(notebook, Path) else ROOT / "notebooks" / f"{notebook}.ipynb"
    env = {**cache_env, "NB_PROFILE": "full", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "NB_CHECKPOINT_DIR": str(folder / "checkpoints"), "NB_OUTPUT_DIR": str(folder / "out"),
           "NB_DRIVE": "0", "NB_FAULT": "", "NB_RUNS": "", "NB_DATA": "", "NB_TEXT_COLUMN": "",
           "NB_LABEL_COLUMN": "", "NB_TEXT2_COLUMN": "", **extra}
    started = time.perf_counter()
    text, error = execute_notebook(path, env, timeout=TIMEOUT)
    return text, error, time.perf_counter() - started


def check_full_run(notebook, hub_cache, tmp_path):
    """The notebook runs to the end in `full` and writes its measurement record."""
    text, error, seconds = run_full(notebook, hub_cache, tmp_path, **EXTRA_ENV.get(notebook, {}))
    print(f"{notebook}: full profile, {seconds:.0f} s")
    assert error is None, f"{notebook} stopped with {error} after {seconds:.0f} s:\n{text[-4000:]}"
    assert "profile   : FULL" in text
    record = json.loads((tmp_path / "out" / f"{notebook}.full.json").read_text())
    assert record["profile"] == "full" and record["runs"], record


@pytest.mark.parametrize("notebook", HERE)
def test_full_profile_runs_offline(notebook, hub_cache, tmp_path):
    check_full_run(notebook, hub_cache, tmp_path)


# ----------------------------------------------------------------------------- 01: other column names
# The hub table of notebook 01 does not publish its columns (tests/hub_cache.py), so its Data section must
# cope with other names: use them when it can tell which they are, else stop with a message that lists the
# columns it found and names the variables that pick the right ones.
NOTEBOOK_01 = "01_complaint_classification"


def complaints_with(columns: dict, hub_cache: dict, folder: Path) -> dict:
    """The cache's environment with the complaint table's columns renamed (and ordered) as `columns` says.

    Only the datasets cache differs: the offline loader reads nothing else, the models stay the shared ones."""
    variant = build_hub_cache(folder / "cache", models=False, complaint_columns=columns)
    return {**hub_cache, "HF_DATASETS_CACHE": variant["HF_DATASETS_CACHE"]}


def data_section(notebook: str, folder: Path) -> Path:
    """A copy of the notebook that stops where its Data section ends."""
    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    end = next(i for i, cell in enumerate(nb.cells)
               if cell.cell_type == "markdown" and cell.source.startswith("## Model and method"))
    nb.cells = nb.cells[:end]
    path = folder / f"{notebook}.data.ipynb"
    nbformat.write(nb, path)
    return path


def test_01_stops_naming_the_columns_and_the_variables_when_it_cannot_tell(hub_cache, tmp_path):
    columns = {"Product": "product", "Issue": "issue", "Sub-issue": "category",
               "Consumer complaint narrative": "body", "Complaint ID": "id"}
    text, error, _ = run_full(NOTEBOOK_01, complaints_with(columns, hub_cache, tmp_path), tmp_path)
    assert error == "DataError", text[-3000:]
    message = text[text.rindex("DataError"):]
    assert ", ".join(columns.values()) in message, message        # the columns it found, in the file's order
    assert "NB_TEXT_COLUMN" in message and "NB_LABEL_COLUMN" in message, message


def test_01_uses_the_cfpb_names_in_lower_case(hub_cache, tmp_path):
    columns = {name: name.lower() for name in ("Product", "Issue", "Sub-issue", "Consumer complaint narrative",
                                               "Complaint ID")}
    text, error, _ = run_full(data_section(NOTEBOOK_01, tmp_path), complaints_with(columns, hub_cache, tmp_path),
                              tmp_path)
    assert error is None, text[-3000:]
    assert "using 'consumer complaint narrative'" in text and "using 'sub-issue'" in text, text[-3000:]
    assert "train " in text and " · test " in text, text[-3000:]     # cleaned and split


def test_01_with_the_cfpb_api_names_finds_the_narrative_or_lists_the_columns(hub_cache, tmp_path):
    # the field names of the CFPB's API (cfpb.github.io/api/ccdb), in its alphabetical order
    columns = {"Complaint ID": "complaint_id", "Consumer complaint narrative": "complaint_what_happened",
               "Issue": "issue", "Product": "product", "Sub-issue": "sub_issue"}
    text, error, _ = run_full(data_section(NOTEBOOK_01, tmp_path), complaints_with(columns, hub_cache, tmp_path),
                              tmp_path)
    if error is None:
        assert "using 'complaint_what_happened'" in text, text[-3000:]
    else:
        message = text[text.rindex(error):]
        assert error == "DataError" and all(c in message for c in columns.values()), message
