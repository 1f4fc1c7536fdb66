"""Make committed notebooks clean: no outputs, no execution counts, the same metadata everywhere,
and the same Colab install cell in every notebook.

    python scripts/clean_notebooks.py            # rewrite notebooks/*.ipynb in place
    python scripts/clean_notebooks.py --check    # exit 1 and name the notebooks that are not clean
    python scripts/clean_notebooks.py /tmp/x.ipynb   # only the notebooks named

The metadata asks Colab for a GPU runtime (`accelerator: GPU`) and names the python3 kernel, which
nbmake and nbclient use. The install cell is written from INSTALL_CELL below, with REPOSITORY from
helpers/runtime.py: edit the template here, never the cell in a notebook.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # helpers/, also without `pip install -e .`
from helpers.runtime import REPOSITORY  # noqa: E402  (runtime imports nothing heavy)

INSTALL_MARK = "# Colab only:"   # the install cell's first line starts with it
# The install cell of every notebook. helpers/ arrives with the clone, so the clone itself is plain
# git; helpers/colab.py does the rest (tests/test_colab.py checks that nothing in it is hidden).
INSTALL_CELL = '''# Colab only: clone the collection and install what the notebooks import (elsewhere this cell does nothing).
# The first run takes 1-3 minutes, with pip's output below; after a restart the cell skips the install.
import os, subprocess, sys

REPOSITORY = "<REPOSITORY>"   # a fork: your owner/name
CLONE = "/content/finetune-budget"
if "google.colab" in sys.modules:
    if not os.path.isdir(CLONE):   # plain git: helpers/ arrives with the clone
        git = subprocess.run(["git", "clone", "--depth", "1", f"https://github.com/{REPOSITORY}.git", CLONE],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(git.stdout, end="")
        if git.returncode:
            raise RuntimeError(f"git could not clone {REPOSITORY} (see above): check REPOSITORY and the connection")
    sys.path.insert(0, CLONE)
    from helpers import colab
    colab.clone(REPOSITORY, CLONE)                   # the folder holds REPOSITORY, not an older clone
    before = colab.snapshot()                        # the libraries this kernel has loaded
    colab.install(CLONE, "requirements-colab.txt")   # pip with its output shown; skipped once done
    colab.check_restart(before)                      # stops, naming them, if pip replaced any
    os.chdir(f"{CLONE}/notebooks")'''


def install_cell(repository: str = REPOSITORY) -> str:
    """The install cell's source, pointing at `repository`."""
    return INSTALL_CELL.replace("<REPOSITORY>", repository)


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _setup_heading(cells: list) -> int | None:
    found = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
             and any(line.strip() == "## Setup" for line in _source(c).splitlines())]
    return found[0] if found else None


def install_cell_index(cells: list) -> int | None:
    """Where the install cell is, or None if the notebook has none.

    It is the code cell whose first line starts with INSTALL_MARK; failing that (its first line was
    edited), the first code cell after '## Setup' if it holds the cell's `"google.colab" in
    sys.modules` test. Two marked cells are an error: which one to rewrite would be a guess.
    """
    marked = [i for i, c in enumerate(cells)
              if c["cell_type"] == "code" and _source(c).lstrip().startswith(INSTALL_MARK)]
    if len(marked) > 1:
        raise SystemExit(f"{len(marked)} cells start with {INSTALL_MARK!r} (cells {marked}); keep one.")
    if marked:
        return marked[0]
    setup = _setup_heading(cells)
    if setup is not None:
        code = [i for i in range(setup + 1, len(cells)) if cells[i]["cell_type"] == "code"]
        if code and '"google.colab" in sys.modules' in _source(cells[code[0]]):
            return code[0]
    return None


def with_install_cell(cells: list) -> list:
    """`cells` with the install cell rewritten from the template, or added after the '## Setup' cell."""
    cells = list(cells)
    cell = {"cell_type": "code", "metadata": {}, "source": install_cell().splitlines(keepends=True),
            "execution_count": None, "outputs": []}
    index = install_cell_index(cells)
    if index is not None:
        cells[index] = cell
        return cells
    setup = _setup_heading(cells)
    if setup is None:
        raise SystemExit(f"no install cell (a code cell starting with {INSTALL_MARK!r}) and no "
                         "'## Setup' heading to put one after")
    cells.insert(setup + 1, cell)
    return cells


METADATA = {
    "accelerator": "GPU",
    "colab": {"provenance": [], "gpuType": "T4"},
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def cleaned(notebook: dict) -> dict:
    out = dict(notebook)
    out["metadata"] = METADATA
    out["nbformat"], out["nbformat_minor"] = 4, 5
    cells = []
    for i, cell in enumerate(with_install_cell(notebook["cells"])):
        cell = {k: v for k, v in cell.items() if k not in ("outputs", "execution_count", "metadata", "id")}
        cell["metadata"] = {}
        cell["id"] = f"cell-{i:02d}"
        if cell["cell_type"] == "code":
            cell["execution_count"] = None
            cell["outputs"] = []
        cells.append(cell)
    out["cells"] = cells
    return out


def dumps(notebook: dict) -> str:
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    parser.add_argument("paths", nargs="*")
    args = parser.parse_args()
    paths = [Path(p) for p in args.paths] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    dirty = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        wanted = dumps(cleaned(json.loads(text)))
        if text != wanted:
            dirty.append(path)
            if not args.check:
                path.write_text(wanted, encoding="utf-8")
    if args.check and dirty:
        print("not clean (run python scripts/clean_notebooks.py):", *map(str, dirty), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
