"""Every notebook follows the same skeleton, points at the same repository and is committed clean."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

from helpers import runtime

ROOT = Path(__file__).resolve().parent.parent
CLEAN = load_script(ROOT / "scripts" / "clean_notebooks.py")   # writes the install cell from its template
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SKELETON = ["Setup", "Configuration", "Data", "Model and method", "Budget", "Train", "Evaluate",
            "Measured vs estimated", "Use it", "Save and reload", "What to try next"]


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def text(cell):
    return "".join(cell["source"])


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_skeleton_in_order(path):
    headings = [line[3:].strip() for c in cells(path) if c["cell_type"] == "markdown"
                for line in text(c).splitlines() if line.startswith("## ")]
    positions = []
    for section in SKELETON:
        found = [i for i, h in enumerate(headings) if h == section or h.startswith(section + " ")]
        assert found, f"{path.name}: no '## {section}' heading (has: {headings})"
        positions.append(found[0])
    assert positions == sorted(positions), f"{path.name}: sections out of order: {headings}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_title_and_badge_agree_with_the_repository(path):
    first = text(cells(path)[0])
    assert first.startswith("# "), "the first cell is the title"
    badge = f"https://colab.research.google.com/github/{runtime.REPOSITORY}/blob/main/notebooks/{path.name}"
    assert badge in first, f"{path.name}: badge must link to {badge}"


def test_install_cell_template_points_at_the_repository():
    assert f'REPOSITORY = "{runtime.REPOSITORY}"' in CLEAN.install_cell()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_install_cell_is_the_template_right_after_setup(path):
    notebook = cells(path)
    index = CLEAN.install_cell_index(notebook)
    assert index is not None, f"{path.name}: no Colab install cell (run python scripts/clean_notebooks.py)"
    assert text(notebook[index - 1]).startswith("## Setup"), f"{path.name}: the install cell must follow '## Setup'"
    assert text(notebook[index]) == CLEAN.install_cell(), \
        f"{path.name}: the install cell differs from the template: run python scripts/clean_notebooks.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_drive_is_mounted_right_after_setup(path):
    """Drive's permission prompt must come while the user watches, not minutes into a run (04 and 05 mounted
    mid-run, and a missed 120 s prompt silently turned resume off)."""
    notebook = cells(path)
    configuration = next(i for i, c in enumerate(notebook) if text(c).startswith("## Configuration"))
    # session.start mounts Drive (through checkpoints.setup), as does a direct checkpoints.setup call
    mounts = [i for i, c in enumerate(notebook) if c["cell_type"] == "code"
              and ("session.start(NOTEBOOK)" in text(c) or "checkpoints.setup(NOTEBOOK, PROFILE)" in text(c))]
    assert mounts and mounts[0] < configuration, f"{path.name}: call session.start before ## Configuration"
    code = "\n".join(text(c) for c in notebook if c["cell_type"] == "code")
    assert "mount_drive()" not in code, f"{path.name}: mount through checkpoints.setup, once, after setup"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_profile_banner_and_no_network_habits(path):
    code = "\n".join(text(c) for c in cells(path) if c["cell_type"] == "code")
    # session.start chooses the profile and prints the banner (tests/test_training.py checks that it does)
    assert "session.start(NOTEBOOK)" in code or ("runtime.choose_profile()" in code and "runtime.banner(" in code)
    assert "evaluate.load" not in code, "evaluate.load downloads from the hub; use helpers.metrics"
    for call in re.findall(r"(?:TrainingArguments|SFTConfig)\((.*?)\n\)", code, flags=re.S):
        # S.trainer_defaults holds report_to="none" (tests/test_training.py)
        assert 'report_to="none"' in call or "S.trainer_defaults" in call, "training arguments must not send telemetry"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_allocator_grows_segments_set_before_torch(path):
    """Default segments fragment under batches of varying length (05's QLoRA bench peak: 9.8 GiB by default, 6.7 GiB
    with expandable segments, H200 2026-12-05); the setting only takes effect if made before torch uses the GPU."""
    setup = next(text(c) for c in cells(path) if c["cell_type"] == "code" and "session.start(NOTEBOOK)" in text(c))
    line = 'os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")'
    assert line in setup, f"{path.name}: the cell that starts the session must set {line}"
    first_torch = min(i for i in (setup.find("import torch"), setup.find("import bitsandbytes"),
                                  setup.find("import transformers")) if i >= 0)
    assert setup.index(line) < first_torch, f"{path.name}: set PYTORCH_CUDA_ALLOC_CONF before importing torch"


def test_readme_names_the_same_repository():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Repository: `{runtime.REPOSITORY}`" in readme
    for path in NOTEBOOKS:
        assert f"github/{runtime.REPOSITORY}/blob/main/notebooks/{path.name}" in readme, f"README badge for {path.name}"


def test_notebooks_are_committed_without_outputs():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "clean_notebooks.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


GENERATORS = sorted((ROOT / "data").glob("make_*.py"))


@pytest.mark.parametrize("script", GENERATORS, ids=lambda p: p.name)
def test_data_samples_regenerate_byte_for_byte(script, tmp_path, monkeypatch):
    module = load_script(script)
    committed = Path(module.OUT)
    assert committed.exists(), f"{script.name} writes {committed.name}, which is not committed"
    monkeypatch.setattr(module, "OUT", tmp_path / committed.name)
    module.main()
    assert (tmp_path / committed.name).read_bytes() == committed.read_bytes(), \
        f"{committed.name} differs from what {script.name} writes: run it and commit the result"


def test_readme_measurements_come_from_results():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_the_t4_column_says_what_ran_and_what_did_not():
    readme = load_script(ROOT / "scripts" / "update_readme.py")
    gpu = {"name": "Tesla T4", "count": 1, "emulated_on": "NVIDIA H200", "memory_cap_gib": 14.06}
    ran = {"gpu": gpu, "date": "2026-12-03", "runs": [{"name": "a", "peak_reserved_gib": 6.25, "peak_device_gib": 7.59}]}
    assert readme.t4_cell(None) == "not measured yet"
    assert readme.t4_cell(ran).startswith("yes: peak 6.2 GiB reserved of the 14.1 GiB cap, 7.6 GiB device-used")
    stopped = dict(ran, runs=[*ran["runs"], {"name": "b", "status": "not run"}])
    assert readme.t4_cell(stopped).startswith("1 of 2 runs (b did not)")
    # 02's post recipe: 14.82 GiB device-used on the H200 is 14.21 GiB less its driver's reservation: tight
    tight = dict(ran, gpu=dict(gpu, total_gib=14.56), runs=[{"name": "a", "peak_reserved_gib": 13.35,
                                                              "peak_device_gib": 14.816}])
    assert readme.t4_cell(tight).startswith("yes, tight (14.21 of 14.56 GiB needed): peak 13.3 GiB reserved")


def test_an_estimated_bill_says_so_under_its_table():
    readme = load_script(ROOT / "scripts" / "update_readme.py")
    record = {"notebook": "05", "profile": "real", "date": "2026-12-04", "versions": {},
              "gpu": {"name": "NVIDIA H200", "count": 1}, "readme_columns": ["compute_units"],
              "runs": [{"name": "a", "compute_units": 0.01, "cost_basis": "estimated for a T4"}]}
    assert "Compute units and dollars: estimated for a T4." in readme.record_block(record)
    unbilled = dict(record, runs=[{"name": "a", "compute_units": None, "cost_basis": "estimated for a T4"}])
    assert "Compute units and dollars" not in readme.record_block(unbilled)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_run_is_billed_at_the_gpu_that_really_ran(path):
    """Under NB_EMULATE=T4, runtime.gpu_info() names the T4: billing an H200's wall time at a T4's rate was a wrong
    figure in 03's T4 record. Measured runs are billed through cost.bill_of_this_run(..., runtime.physical_gpu())."""
    code = "\n".join(text(c) for c in cells(path) if c["cell_type"] == "code")
    assert "cost.is_colab_gpu(" not in code, f"{path.name}: bill a measured run with cost.bill_of_this_run"
    for call in re.findall(r"cost\.bill_of_this_run\(([^\n]*)", code):
        assert "gpu_info()" not in call, f"{path.name}: {call}"
