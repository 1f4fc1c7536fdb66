"""Measurement records: one JSON file per notebook run, the source of the README's tables.

A record holds what DESIGN.md asks of every measurement: notebook, profile, GPU (name and
count), library versions, date, and `runs`, each with its figures named with their unit
(`peak_device_gib`, `wall_s`, `samples_per_s`, metric names...). A notebook may add
`learning_signal` (what `make run` reports) and any `extra` its lesson needs.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import runtime

REQUIRED = ("notebook", "profile", "gpu", "versions", "date", "runs")


def make_record(notebook: str, profile: str, runs: list, learning_signal: dict | None = None,
                **extra) -> dict:
    gpu = runtime.gpu_info()
    record = {
        "notebook": notebook,
        "profile": profile,
        "gpu": {"name": gpu["name"], "count": gpu["count"], "capability": gpu["capability"],
                "total_gib": gpu["total_gib"]},
        "versions": runtime.versions(),
        "date": runtime.today(),
        "runs": runs,
    }
    if learning_signal is not None:
        record["learning_signal"] = learning_signal
    record.update(extra)
    validate(record)
    return record


def validate(record: dict) -> None:
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise ValueError(f"measurement record lacks {', '.join(missing)}")
    for run in record["runs"]:
        if "name" not in run:
            raise ValueError(f"every run needs a 'name'; got keys {sorted(run)}")


def save_record(record: dict, out_dir) -> Path:
    """Write `<out_dir>/<notebook>.<profile>.json` and return its path."""
    validate(record)
    path = Path(out_dir) / f"{record['notebook']}.{record['profile']}.json"
    path.write_text(json.dumps(record, indent=2, default=_jsonable) + "\n")
    return path


def load_records(folder) -> list[dict]:
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and all(k in data for k in REQUIRED):
            data["_path"] = str(path)
            records.append(data)
    return records


def _jsonable(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def runs_table(record: dict, columns: list[str]) -> str:
    """A Markdown table of a record's runs with the given columns (missing values as '—')."""
    head = "| run | " + " | ".join(columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    rows = []
    for run in record["runs"]:
        cells = []
        for column in columns:
            value = run.get(column)
            if isinstance(value, float):
                cells.append(f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}")
            else:
                cells.append("—" if value is None else str(value))
        rows.append(f"| {run['name']} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])
