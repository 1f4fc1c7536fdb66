"""The Colab install cell: clone, install the requirements visibly, and say when to restart.

Every notebook's install cell (written by scripts/clean_notebooks.py from one template) clones the
collection with plain git, since this package only exists once the clone is there, and then:

    colab.clone(REPOSITORY, CLONE)                   # the folder holds REPOSITORY, not an older clone
    before = colab.snapshot()                        # the libraries this kernel has loaded
    colab.install(CLONE, "requirements-colab.txt")   # pip with its output shown; skipped once done
    colab.check_restart(before)                      # stops, naming them, if pip replaced any

A restart is needed when pip replaces a library the kernel has already imported (Colab imports
numpy, pandas and with it pyarrow before the first cell runs): Python keeps the old version in
memory, and the first import of a new library that uses it fails in confusing ways.

This module imports nothing beyond the standard library: the snapshot must see the kernel as Colab
left it, and importing numpy or torch here would load the very versions pip is about to replace.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from .errors import FriendlyError

TAIL_LINES = 15   # lines of a failed command's output repeated in the error
MARKER = Path(".cache") / "colab-install.json"   # in the clone (git ignores .cache/)
RESTART = "Runtime > Restart session"
FRESH_RUNTIME = "Runtime > Disconnect and delete runtime"


class ColabError(FriendlyError):
    """The clone or the install failed; the message names the command, its last output and the fix."""


class RestartNeeded(FriendlyError):
    """pip replaced a library this kernel had loaded; the message names them."""


# ---------------------------------------------------------------- running a command visibly

def run_visibly(command: list[str], env: dict | None = None) -> tuple[int, list[str]]:
    """Run `command`, printing its output line by line as it arrives; return (exit status, last lines).

    Printed from Python rather than left to the child, because a notebook shows what the kernel
    prints but not always what a child process writes to the kernel's own stdout.
    """
    tail = collections.deque(maxlen=TAIL_LINES)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}   # pip flushes each line
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace", env=env)
    except OSError as err:   # the program itself is missing
        return 127, [str(err)]
    try:
        for line in process.stdout:
            print(line, end="", flush=True)
            tail.append(line.rstrip())
    except KeyboardInterrupt:   # the notebook's stop button interrupts the kernel, not the child
        process.terminate()
        process.wait()
        raise
    process.stdout.close()
    return process.wait(), list(tail)


def _failure(what: str, command: list[str], status: int, tail: list[str], fix: str) -> ColabError:
    shown = "\n".join(f"    {line}" for line in tail) or "    (no output)"
    return ColabError(f"{what} (exit status {status}).\nCommand: {' '.join(command)}\n"
                      f"Last lines of its output:\n{shown}\nFix: {fix}")


def _mentions(tail: list[str], *phrases: str) -> bool:
    text = "\n".join(tail).lower()
    return any(phrase.lower() in text for phrase in phrases)


# ---------------------------------------------------------------- clone

def clone(repository: str, target, command: list[str] | None = None) -> bool:
    """Clone github.com/`repository` into `target`, showing git's output; True if it cloned.

    A `target` that exists already must be a clone of `repository` (it is kept as it is); anything
    else there, or a failed clone, raises a ColabError that says what happened and how to fix it.
    `command` replaces the git command (tests pass a failing one).
    """
    target = Path(target)
    url = f"https://github.com/{repository}.git"
    if target.exists():
        origin = _origin(target)
        if origin is not None and _same_repository(origin, repository):
            print(f"Using the clone of {repository} in {target}.")
            return False
        holds = f"a clone of {origin}" if origin else "something that is not a git clone"
        raise ColabError(
            f"{target} exists and holds {holds}, not a clone of {repository}.\n"
            f"Fix: if you changed REPOSITORY (a fork), delete the old folder with a cell holding "
            f"`!rm -rf {target}` and run this cell again; or use {FRESH_RUNTIME}, then Run all.")
    command = command or ["git", "clone", "--depth", "1", url, str(target)]
    print(f"Cloning {url} into {target}")
    # No password prompt: a missing repository fails at once instead of waiting for a user name.
    status, tail = run_visibly(command, env={"GIT_TERMINAL_PROMPT": "0"})
    if status:
        raise _failure(f"git could not clone {repository}", command, status, tail,
                       _clone_fix(repository, target, tail))
    return True


def _clone_fix(repository: str, target: Path, tail: list[str]) -> str:
    if _mentions(tail, "could not resolve host", "failed to connect", "network is unreachable",
                 "connection timed out", "unable to access"):
        return ("git could not reach github.com: check that the runtime is connected to the internet, "
                "then run this cell again.")
    if _mentions(tail, "repository not found", "could not read username", "authentication failed",
                 "terminal prompts disabled"):
        return (f"GitHub has no public repository {repository}. In a fork, set REPOSITORY to your "
                f"owner/name (as in https://github.com/OWNER/NAME) and make sure the fork is public.")
    if _mentions(tail, "already exists"):
        return f"delete the folder with a cell holding `!rm -rf {target}`, then run this cell again."
    if _mentions(tail, "no space left"):
        return f"the runtime's disk is full: {FRESH_RUNTIME}, then Run all."
    return "read git's message above; run this cell again once it is fixed."


def _origin(folder: Path) -> str | None:
    """The URL that `folder` was cloned from, or None where it is not a git clone."""
    if not (folder / ".git").exists():
        return None
    # the URL as cloned: `git remote get-url` would rewrite it by any url.*.insteadOf setting
    found = subprocess.run(["git", "-C", str(folder), "config", "--get", "remote.origin.url"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return found.stdout.strip() or None


def _same_repository(url: str, repository: str) -> bool:
    """github.com/Owner/Name, with or without .git, in any case, is `repository`."""
    name = url.rstrip("/").removesuffix(".git")
    return name.lower().endswith("/" + repository.lower().strip("/"))


# ---------------------------------------------------------------- install

def install(repo_dir, requirements: str = "requirements-colab.txt",
            command: list[str] | None = None) -> bool:
    """pip-install `requirements` (a file in `repo_dir`) and `repo_dir` itself, showing pip's output.

    A marker in the clone records the requirements' hash once pip has succeeded, so the cell run
    again after a restart skips the install (it returns False then). A failure raises a ColabError
    naming the command, the last lines of its output and the fix. `command` replaces pip (tests).
    """
    repo_dir = Path(repo_dir)
    path = repo_dir / requirements
    if not path.is_file():
        raise ColabError(f"{path} is missing: {repo_dir} is not a clone of this version of the "
                         f"collection. Fix: delete it with a cell holding `!rm -rf {repo_dir}` and "
                         f"run this cell again.")
    stamp = hashlib.sha256(path.read_bytes()).hexdigest()
    marker = repo_dir / MARKER
    if _read_json(marker).get("requirements") == stamp:
        print(f"{requirements} is installed in this runtime already: nothing to do.")
        return False
    # -e: helpers/ importable from any folder and any process (python -m helpers.estimate)
    command = command or [sys.executable, "-m", "pip", "install", "-r", str(path), "-e", str(repo_dir)]
    print(f"Installing {requirements} with pip (1-3 minutes); its output follows.", flush=True)
    started = time.monotonic()
    status, tail = run_visibly(command)
    if status:
        raise _failure(f"pip could not install {requirements}", command, status, tail, _install_fix(tail))
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"requirements": stamp, "python": sys.executable}) + "\n")
    print(f"Installed in {time.monotonic() - started:.0f} s.")
    return True


def _install_fix(tail: list[str]) -> str:
    if _mentions(tail, "temporary failure in name resolution", "network is unreachable",
                 "connection refused", "read timed out", "max retries exceeded", "could not fetch url"):
        return ("pip could not reach the package index: check that the runtime is connected to the "
                "internet, then run this cell again (what pip installed already is kept).")
    if _mentions(tail, "no space left"):
        return f"the runtime's disk is full: {FRESH_RUNTIME}, then Run all."
    if _mentions(tail, "no matching distribution", "could not find a version",
                 "resolutionimpossible", "conflicting dependencies"):
        return (f"a pinned version cannot be installed beside this runtime's libraries (Python "
                f"{sys.version_info.major}.{sys.version_info.minor}). Try a fresh runtime "
                f"({FRESH_RUNTIME}, then Run all); if that fails too, report the lines above in an issue.")
    return (f"read pip's message above. Run this cell again to retry; {FRESH_RUNTIME}, then Run all, "
            "starts from a clean runtime.")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- restart needed?

# The version of each distribution as this kernel first saw it. The cell run again without the
# restart it asked for must ask again: by then the installed version is the new one, but the
# kernel still holds the old one. A restart starts a new process, which forgets this.
_FIRST_SEEN: dict[str, str] = {}


def installed_version(distribution: str) -> str | None:
    """The installed version of `distribution` (None if it is not installed)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def loaded_distributions(modules=None, top_levels=None) -> set[str]:
    """The distributions that have at least one module in `modules` (default: sys.modules).

    `top_levels` maps an importable top-level name to the distributions that provide it
    (default: importlib.metadata.packages_distributions()); pyarrow's loaded modules make
    "pyarrow" count, "yaml" counts as PyYAML.
    """
    modules = sys.modules if modules is None else modules
    top_levels = metadata.packages_distributions() if top_levels is None else top_levels
    names = {name.partition(".")[0] for name in list(modules)}
    return {dist for name in names for dist in top_levels.get(name, ())}


def snapshot(version=installed_version, distributions=None, seen=None) -> dict[str, str]:
    """{distribution: version} of every distribution whose modules the kernel has loaded.

    Take it before pip runs. `version` looks up an installed version and `distributions` defaults
    to `loaded_distributions()`; tests pass fakes. `seen` (default: this kernel's memory) keeps the
    version each distribution had when this kernel first saw it.
    """
    seen = _FIRST_SEEN if seen is None else seen
    names = loaded_distributions() if distributions is None else distributions
    found = {}
    for name in sorted(names):
        if name not in seen:
            current = version(name)
            if current is None:   # a module without installed metadata (this clone's helpers/)
                continue
            seen[name] = current
        found[name] = seen[name]
    return found


def replaced(before: dict[str, str], version=installed_version) -> list[tuple[str, str, str | None]]:
    """(distribution, version before, version now or None if removed) for each that changed."""
    changes = []
    for name, old in sorted(before.items()):
        new = version(name)
        if new != old:
            changes.append((name, old, new))
    return changes


def restart_hint(before: dict[str, str], version=installed_version) -> str | None:
    """What to tell the user if pip replaced a distribution in `before` (a `snapshot()`); None if not."""
    changes = replaced(before, version)
    if not changes:
        return None
    named = ", ".join(f"{name} {old} -> {new or 'removed'}" for name, old, new in changes)
    return (f"Restart needed: the install replaced {named} (loaded in this kernel, which keeps the "
            f"old version in memory). Use {RESTART}, then Run all again; the install is not repeated.")


def check_restart(before: dict[str, str], version=installed_version) -> None:
    """Raise RestartNeeded with `restart_hint`'s message (so Run all stops here), else say it is ready."""
    hint = restart_hint(before, version)
    if hint:
        raise RestartNeeded(hint)
    print("Ready: nothing this kernel had loaded was replaced, so no restart is needed.")
