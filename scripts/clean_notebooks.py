"""Make committed notebooks clean: no outputs, no execution counts, the same metadata everywhere.

    python scripts/clean_notebooks.py            # rewrite notebooks/*.ipynb in place
    python scripts/clean_notebooks.py --check    # exit 1 and name the notebooks that are not clean

The metadata asks Colab for a GPU runtime (`accelerator: GPU`) and names the python3 kernel, which
nbmake and nbclient use.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
    for i, cell in enumerate(notebook["cells"]):
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
