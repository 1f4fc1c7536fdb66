"""The Colab install cell: what it installs, that it shows what it does, and when it asks for a restart."""
import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from conftest import load_script
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helpers import colab
from helpers.errors import FriendlyError

ROOT = Path(__file__).resolve().parent.parent
CLEAN = load_script(ROOT / "scripts" / "clean_notebooks.py")
FAILING = [sys.executable, "-c", "import sys; print('Collecting nothing'); print('boom'); sys.exit(3)"]


def fake(versions: dict):
    """A version lookup that knows only `versions` (None for anything else: not installed)."""
    return lambda name: versions.get(name)


# ------------------------------------------------------------------ restart hint

COLAB_BEFORE = {"numpy": "2.0.2", "pandas": "2.2.2", "pyarrow": "18.1.0", "psutil": "5.9.5", "PyYAML": "6.0.2"}


def test_snapshot_covers_every_distribution_with_a_loaded_module():
    module = object()
    modules = {"pandas": module, "pandas.core.frame": module, "pyarrow.lib": module, "yaml": module,
               "json": module, "helpers.colab": module}
    top_levels = {"pandas": ["pandas"], "pyarrow": ["pyarrow"], "yaml": ["PyYAML"], "sklearn": ["scikit-learn"],
                  "helpers": ["finetune-budget-helpers"]}
    loaded = colab.loaded_distributions(modules, top_levels)
    assert loaded == {"pandas", "pyarrow", "PyYAML", "finetune-budget-helpers"}   # not sklearn: not loaded
    # helpers/ before its editable install has no metadata: left out, not an error
    assert colab.snapshot(fake(COLAB_BEFORE), loaded, seen={}) == {
        "pandas": "2.2.2", "pyarrow": "18.1.0", "PyYAML": "6.0.2"}


def test_restart_hint_names_every_replaced_loaded_distribution():
    after = {**COLAB_BEFORE, "pyarrow": "26.0.1", "numpy": "2.4.6"}
    del after["psutil"]
    hint = colab.restart_hint(COLAB_BEFORE, fake(after))
    assert hint.startswith("Restart needed")
    for change in ("pyarrow 18.1.0 -> 26.0.1", "numpy 2.0.2 -> 2.4.6", "psutil 5.9.5 -> removed"):
        assert change in hint
    assert "pandas" not in hint and "PyYAML" not in hint   # unchanged
    assert "Runtime > Restart session" in hint and "Run all" in hint and "not repeated" in hint
    with pytest.raises(colab.RestartNeeded, match="pyarrow 18.1.0 -> 26.0.1") as stopped:
        colab.check_restart(COLAB_BEFORE, fake(after))
    assert isinstance(stopped.value, FriendlyError)   # shown as its message alone, and it stops Run all


def test_restart_hint_is_silent_when_nothing_loaded_changed(capsys):
    # a library that was not loaded may change freely (transformers is not in the snapshot)
    assert colab.restart_hint(COLAB_BEFORE, fake({**COLAB_BEFORE, "transformers": "5.23.0"})) is None
    colab.check_restart(COLAB_BEFORE, fake(COLAB_BEFORE))
    assert "no restart is needed" in capsys.readouterr().out


def test_the_cell_run_again_without_the_restart_asks_again():
    seen = {}
    loaded = set(COLAB_BEFORE)
    after = {**COLAB_BEFORE, "pyarrow": "26.0.1"}
    colab.snapshot(fake(COLAB_BEFORE), loaded, seen)            # first run, then pip replaces pyarrow
    again = colab.snapshot(fake(after), loaded, seen)          # run again in the same kernel
    assert "pyarrow 18.1.0 -> 26.0.1" in colab.restart_hint(again, fake(after))
    fresh = colab.snapshot(fake(after), loaded, seen={})       # after the restart: a new kernel
    assert colab.restart_hint(fresh, fake(after)) is None


def test_snapshot_with_the_real_lookups():
    before = colab.snapshot()
    assert before["pytest"] == metadata.version("pytest")       # loaded here, found through its modules
    assert colab.restart_hint(before) is None
    assert "pytest 0.0.1 -> " in colab.restart_hint({**before, "pytest": "0.0.1"})


def test_importing_helpers_colab_loads_no_library():
    """The snapshot is taken after `from helpers import colab`: that import must load none of them."""
    heavy = ("torch", "transformers", "numpy", "pandas", "pyarrow", "datasets", "peft", "psutil", "matplotlib")
    code = f"import sys; from helpers import colab; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------ install

@pytest.fixture
def clone_dir(tmp_path):
    (tmp_path / "requirements-colab.txt").write_text("transformers==5.23.0\n")
    return tmp_path


def test_install_failure_names_the_command_and_its_last_output(clone_dir, capsys):
    with pytest.raises(colab.ColabError) as failed:
        colab.install(clone_dir, "requirements-colab.txt", command=FAILING)
    message = str(failed.value)
    assert "exit status 3" in message and "print('boom')" in message   # the command
    assert "    boom" in message and "Fix:" in message                  # its output's tail and the fix
    assert "boom" in capsys.readouterr().out                            # shown while it ran
    assert not (clone_dir / colab.MARKER).exists()                     # a failed install is tried again


def test_install_failure_recognises_a_lost_connection(clone_dir):
    offline = [sys.executable, "-c", "print('ERROR: Could not fetch URL https://pypi.org/simple/peft/'); exit(1)"]
    with pytest.raises(colab.ColabError, match="connected to the internet"):
        colab.install(clone_dir, command=offline)


def test_install_streams_the_output_as_it_comes(clone_dir, monkeypatch):
    """Each line is shown when the command writes it, not when it ends (the child does not flush)."""
    arrived = []
    monkeypatch.setattr(colab, "print", lambda *a, **k: arrived.append((time.monotonic(), "".join(map(str, a)))),
                        raising=False)
    slow = [sys.executable, "-c", "import time; print('Collecting peft'); time.sleep(1.5); print('Successfully installed')"]
    colab.install(clone_dir, command=slow)
    first = next(t for t, text in arrived if "Collecting peft" in text)
    last = next(t for t, text in arrived if "Successfully installed" in text)
    assert last - first > 1.0


def test_install_runs_once_per_requirements(clone_dir, capsys):
    ok = [sys.executable, "-c", "print('Successfully installed peft-0.21.2')"]
    assert colab.install(clone_dir, command=ok) is True
    out = capsys.readouterr().out
    assert "1-3 minutes" in out and "Successfully installed" in out and "Installed in" in out
    # after a restart: skipped, the (failing) command is not even run
    assert colab.install(clone_dir, command=FAILING) is False
    assert "already" in capsys.readouterr().out
    # changed requirements (a newer clone): installed again
    (clone_dir / "requirements-colab.txt").write_text("transformers==5.24.0\n")
    with pytest.raises(colab.ColabError):
        colab.install(clone_dir, command=FAILING)


def test_install_from_an_old_clone_says_to_delete_it(tmp_path):
    with pytest.raises(colab.ColabError, match="rm -rf"):
        colab.install(tmp_path, command=FAILING)


# ------------------------------------------------------------------ clone

@pytest.mark.parametrize("output,fix", [
    ("fatal: could not read Username for 'https://github.com': terminal prompts disabled", "set REPOSITORY"),
    ("fatal: unable to access 'https://github.com/a/b.git/': Could not resolve host: github.com", "internet"),
    ("fatal: destination path '/content/x' already exists and is not an empty directory.", "rm -rf"),
    ("error: something new", "git's message"),
])
def test_clone_failure_says_what_happened_and_the_fix(tmp_path, capsys, output, fix):
    git = [sys.executable, "-c", f"import sys; print({output!r}); sys.exit(128)"]
    with pytest.raises(colab.ColabError) as failed:
        colab.clone("someone/fork", tmp_path / "clone", command=git)
    message = str(failed.value)
    assert "someone/fork" in message and "exit status 128" in message and sys.executable in message
    assert output in message and fix in message
    assert output in capsys.readouterr().out


def _git_clone_of(folder: Path, url: str) -> Path:
    folder.mkdir()
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "remote", "add", "origin", url], check=True)
    return folder


def test_clone_keeps_a_clone_of_the_same_repository_and_refuses_another(tmp_path):
    folder = _git_clone_of(tmp_path / "clone", "https://github.com/Owner/Name.git")
    assert colab.clone("owner/name", folder, command=FAILING) is False   # there already: git not run
    with pytest.raises(colab.ColabError, match=r"(?s)clone of https://github.com/Owner/Name.git, not a clone of me/fork.*rm -rf"):
        colab.clone("me/fork", folder)
    (tmp_path / "plain").mkdir()
    with pytest.raises(colab.ColabError, match="not a git clone"):
        colab.clone("owner/name", tmp_path / "plain")


# ------------------------------------------------------------------ requirements

def _requirements(path: Path) -> list[Requirement]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


LOCK = {canonicalize_name(r.name): r for r in _requirements(ROOT / "requirements-lock.txt")}
COLAB_REQUIREMENTS = _requirements(ROOT / "requirements-colab.txt")
NOT_IN_COLAB = ("torch", "ipykernel", "jupyter-client", "jupyter-core", "nbmake", "nbclient", "nbformat",
                "pytest", "pytest-xdist", "evaluate")


def test_colab_requirements_hold_no_kernel_or_test_package():
    named = {canonicalize_name(r.name) for r in COLAB_REQUIREMENTS}
    assert not named & set(NOT_IN_COLAB), named & set(NOT_IN_COLAB)


@pytest.mark.parametrize("requirement", COLAB_REQUIREMENTS, ids=str)
def test_colab_pins_are_the_lock_versions(requirement):
    locked = LOCK[canonicalize_name(requirement.name)]
    locked_version = next(iter(locked.specifier)).version
    if any(spec.operator == "==" for spec in requirement.specifier):
        assert str(requirement.specifier) == f"=={locked_version}", f"{requirement} but the lock has {locked}"
    else:   # a range for a library Colab has loaded: the tested version must be inside it
        assert requirement.specifier.contains(locked_version), f"{requirement} excludes the lock's {locked}"


def test_requirements_txt_is_the_colab_file_plus_the_test_tooling():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert "-r requirements-colab.txt" in lines
    own = {canonicalize_name(r.name) for r in _requirements(ROOT / "requirements.txt")}
    assert not own & {canonicalize_name(r.name) for r in COLAB_REQUIREMENTS}, "pinned in two places"
    for requirement in _requirements(ROOT / "requirements.txt"):
        assert requirement.specifier.contains(next(iter(LOCK[canonicalize_name(requirement.name)].specifier)).version)


def _imported_top_levels() -> set[str]:
    """Top-level modules that the notebooks' code cells and helpers/ import."""
    sources = [p.read_text() for p in (ROOT / "helpers").glob("*.py")]
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        sources += ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    names = set()
    for source in sources:
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.partition(".")[0])
    return names - set(sys.stdlib_module_names) - {"helpers"}


def _with_dependencies(names: set[str]) -> set[str]:
    """`names` and everything they need, from the installed metadata (extras left out)."""
    found, todo = set(), list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        found.add(name)
        try:
            needs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:   # required only elsewhere (another platform)
            continue
        for line in needs:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def test_colab_requirements_cover_every_library_the_notebooks_import():
    top_levels = metadata.packages_distributions()
    provided = _with_dependencies({r.name for r in COLAB_REQUIREMENTS}) | {"torch"}   # torch: Colab's own
    missing = {}
    for module in _imported_top_levels() - {"google"}:   # google.colab: Colab's own
        distributions = {canonicalize_name(d) for d in top_levels.get(module, [])}
        assert distributions, f"{module} is imported but not installed here"
        if not distributions & provided:
            missing[module] = distributions
    assert not missing, f"imported but not installed in Colab by requirements-colab.txt: {missing}"


# ------------------------------------------------------------------ the install cell

CELL = CLEAN.install_cell()


def test_the_install_cell_hides_nothing():
    assert not re.search(r"(?<![\w-])-q\b|--quiet", CELL), "pip's output stays visible"
    assert "capture_output" not in CELL and "check=True" not in CELL and "DEVNULL" not in CELL
    assert "requirements-colab.txt" in CELL and "requirements.txt" not in CELL
    order = [CELL.index(call) for call in ("colab.snapshot()", "colab.install(", "colab.check_restart(")]
    assert order == sorted(order), "the snapshot is taken before pip runs, the check after"
    assert "1-3 minutes" in CELL.splitlines()[1]


def test_the_install_cell_does_nothing_outside_colab():
    done = subprocess.run([sys.executable, "-c", CELL], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""


def _commit(folder: Path) -> None:
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run(git + ["add", "-A", "-f"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], check=True)


def _run_cell(cell: str, clone: Path, github: dict):
    """Run `cell` as Colab would (google.colab loaded), git reading `github` {url: local folder}."""
    cell = cell.replace('"/content/finetune-budget"', repr(str(clone)))
    prelude = "import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": str(len(github))}
    for i, (url, folder) in enumerate(github.items()):   # git's url.<base>.insteadOf, from the environment
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = f"url.{folder.as_uri()}.insteadOf", url
    return subprocess.run([sys.executable, "-c", prelude + cell + "\nprint('cwd', os.getcwd())"],
                          cwd=clone.parent, env=env, capture_output=True, text=True, timeout=120)


def test_the_install_cell_runs_in_a_fake_colab(tmp_path):
    """Clone (from a local repository standing in for GitHub), check, snapshot, skip the install, chdir."""
    served = tmp_path / "served"
    (served / "helpers").mkdir(parents=True)
    for path in (ROOT / "helpers").glob("*.py"):
        (served / "helpers" / path.name).write_text(path.read_text())
    (served / "notebooks").mkdir()
    (served / "notebooks" / "keep").write_text("")
    requirements = (ROOT / "requirements-colab.txt").read_bytes()
    (served / "requirements-colab.txt").write_bytes(requirements)
    # installed already (pip itself is not run here): the marker that a finished install leaves
    (served / colab.MARKER).parent.mkdir()
    (served / colab.MARKER).write_text(json.dumps({"requirements": hashlib.sha256(requirements).hexdigest()}))
    _commit(served)
    clone = tmp_path / "content" / "finetune-budget"
    clone.parent.mkdir()
    github = {f"https://github.com/{CLEAN.REPOSITORY}.git": served,
              "https://github.com/someone/fork.git": tmp_path / "no-such-repository"}

    first = _run_cell(CELL, clone, github)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Cloning into" in first.stdout and "installed in this runtime already" in first.stdout
    assert "no restart is needed" in first.stdout and f"cwd {clone / 'notebooks'}" in first.stdout

    again = _run_cell(CELL, clone, github)   # run again (after a restart): nothing is cloned
    assert again.returncode == 0 and "Cloning" not in again.stdout and "Using the clone" in again.stdout

    fork = _run_cell(CLEAN.install_cell("someone/fork"), tmp_path / "content" / "other", github)
    assert fork.returncode != 0, fork.stdout
    assert "no-such-repository" in fork.stdout and "git could not clone someone/fork" in fork.stderr

    moved = _run_cell(CLEAN.install_cell("someone/fork"), clone, github)   # REPOSITORY changed, old clone kept
    assert moved.returncode != 0 and "not a clone of someone/fork" in moved.stderr
