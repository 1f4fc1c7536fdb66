"""Execute notebooks top to bottom, headless, and summarise what they measured.

    python scripts/run_notebooks.py --profile smoke --out outputs/run notebooks
    python scripts/run_notebooks.py --profile bench --out outputs/bench notebooks/04_*.ipynb

Each notebook runs in its own kernel with NB_PROFILE set, in the notebooks/ folder (as in
Jupyter). The executed copies go to <out>/executed/, figures and measurement records to the
notebooks' output folder (NB_OUTPUT_DIR, default <out>), and a summary table (notebook, status,
wall time, peak memory, learning signal) to <out>/summary.md and is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from helpers import runtime  # noqa: E402  (the checkout's helpers, also when run from elsewhere)


def find_notebooks(targets: list[str]) -> list[Path]:
    found: list[Path] = []
    for target in targets or ["notebooks"]:
        path = Path(target)
        if path.is_dir():
            found += sorted(path.glob("[0-9][0-9]_*.ipynb"))
        elif path.suffix == ".ipynb" and path.exists():
            found.append(path)
        else:
            sys.exit(f"No notebook at {target!r}: pass notebook files or a folder holding them.")
    return found


def execute(path: Path, out: Path, timeout: int) -> tuple[str, float, str]:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    code_cells = sum(cell.cell_type == "code" for cell in notebook.cells)
    done = {"n": 0, "t": start}

    def progress(cell, cell_index, execute_reply=None, **_):
        # one line per finished cell, so a long or stuck run shows where it is
        if cell.cell_type != "code":
            return
        done["n"] += 1
        now = time.perf_counter()
        first = next((line for line in cell.source.splitlines() if line.strip()), "")[:60]
        print(f"    [{done['n']}/{code_cells}] {now - done['t']:6.1f} s  {first}", flush=True)
        done["t"] = now

    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent.resolve())}},
                            on_cell_executed=progress)
    status, detail = "passed", ""
    try:
        client.execute()
    except Exception as err:  # keep going: the summary shows which notebook failed and why
        status = "FAILED"
        detail = str(err).strip().splitlines()[-1][:300] if str(err).strip() else repr(err)
        if not hasattr(err, "ename"):
            traceback.print_exc()
    wall = time.perf_counter() - start
    executed = out / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, executed / path.name)
    return status, wall, detail


def record_for(stem: str, profile: str, folder: Path, since: float) -> dict | None:
    """The record this execution wrote (None if it wrote none: an older record is not its result)."""
    path = folder / f"{stem}.{profile}.json"
    if path.exists() and path.stat().st_mtime >= since:
        return json.loads(path.read_text())
    return None


def peak_of(record: dict | None) -> str:
    if not record:
        return "—"
    keys = ("peak_device_gib", "peak_reserved_gib", "peak_rss_gib")
    for key in keys:
        values = [run[key] for run in record["runs"] if run.get(key) is not None]
        if values:
            return f"{max(values):.2f} GiB ({key.replace('peak_', '').replace('_gib', '')})"
    return "—"


def signal_of(record: dict | None) -> str:
    signal = (record or {}).get("learning_signal")
    if not signal:
        return "—"
    return signal.get("summary") or json.dumps(signal)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="notebook files or folders (default: notebooks/)")
    parser.add_argument("--profile", choices=runtime.PROFILES, default="smoke")
    parser.add_argument("--out", default=None, help="output folder (default outputs/<profile>)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()

    out = Path(args.out or ROOT / "outputs" / args.profile).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["NB_PROFILE"] = args.profile
    os.environ.setdefault("NB_OUTPUT_DIR", str(out))
    record_dir = Path(os.environ["NB_OUTPUT_DIR"]).resolve()
    os.environ["NB_OUTPUT_DIR"] = str(record_dir)
    if os.environ.get("NB_CHECKPOINT_DIR", "").strip():   # relative to where you ran this, not to the notebook
        os.environ["NB_CHECKPOINT_DIR"] = str(Path(os.environ["NB_CHECKPOINT_DIR"]).expanduser().resolve())

    rows = []
    for path in find_notebooks(args.targets):
        print(f"--> {path.name} ({args.profile})", flush=True)
        started = time.time() - 1          # (file times can be a little coarse)
        status, wall, detail = execute(path, out, args.timeout)
        record = record_for(path.stem, args.profile, record_dir, since=started)
        rows.append((path.name, status, f"{wall:.0f} s", peak_of(record), signal_of(record), detail))
        print(f"    {status} in {wall:.0f} s {detail}", flush=True)

    lines = [f"# Notebooks executed in the `{args.profile}` profile", "",
             "| notebook | status | wall time | peak memory | learning signal |",
             "|---|---|---|---|---|"]
    lines += [f"| {n} | {s} | {w} | {p} | {sig} |" for n, s, w, p, sig, _ in rows]
    failures = [(n, d) for n, s, _, _, _, d in rows if s != "passed"]
    if failures:
        lines += ["", "Failures:"] + [f"- {n}: {d}" for n, d in failures]
    summary = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(summary)
    print("\n" + summary)
    print(f"executed notebooks: {out / 'executed'}\nfigures and records: {record_dir}")
    return 1 if failures or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
