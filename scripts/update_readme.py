"""Rebuild the measured tables of README.md from the records in results/.

    python scripts/update_readme.py          # rewrite the block between the markers
    python scripts/update_readme.py --check  # exit 1 if README.md is out of date

The README never carries a hand-typed measurement: every figure in the generated block comes from a
JSON record (with its GPU, versions and date) written by a notebook or a bench script.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- results:start -->", "<!-- results:end -->"
T4_COLUMN = "fits a T4 (measured under emulation)"
sys.path.insert(0, str(ROOT))

from helpers import estimate, results  # noqa: E402

COLUMNS = [
    ("peak_device_gib", "peak device GiB"),
    ("peak_reserved_gib", "peak reserved GiB"),
    ("peak_allocated_gib", "peak allocated GiB"),
    ("wall_s", "wall s"),
    ("samples_per_s", "samples/s"),
    ("steady_samples_per_s", "samples/s after warm-up"),
    ("tokens_per_s", "tokens/s"),
    ("test_accuracy", "test acc"),
]
# Labels of the columns a record may choose itself (its `readme_columns`), besides the ones above.
LABELS = dict(COLUMNS) | {
    "status": "status", "processes": "GPUs", "launcher": "launcher",
    "trainable_params": "trainable", "trainable_percent": "trainable %", "compute_units": "CU",
    "dollars": "$", "test_f1": "test F1", "final_train_loss": "final loss",
    "loss_gap_mean": "loss gap (mean)", "loss_gap_max": "loss gap (max)",
    "within_tolerance": "within tolerance", "scaling_efficiency": "scaling efficiency",
    "adapter_reloaded": "adapter reloads", "seeds": "seeds", "test_accuracy_mean": "test acc (mean)",
    "test_accuracy_spread": "test acc (sd)", "test_f1_mean": "test F1 (mean)",
}


def fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def record_block(record: dict) -> str:
    gpu = record["gpu"]
    v = record["versions"]
    head = (f"**{record['notebook']}** · `{record['profile']}` · {gpu['name']} ×{gpu['count']} · "
            f"{record['date']} · torch {v.get('torch')}, transformers {v.get('transformers')}, "
            f"peft {v.get('peft')}, trl {v.get('trl')}, bitsandbytes {v.get('bitsandbytes')}")
    wanted = [(k, LABELS.get(k, k)) for k in record["readme_columns"]] if record.get("readme_columns") else COLUMNS
    used = [(k, label) for k, label in wanted if any(run.get(k) is not None for run in record["runs"])]
    lines = [head, "", "| run | " + " | ".join(label for _, label in used) + " |",
             "|---|" + "---|" * len(used)]
    for run in record["runs"]:
        lines.append(f"| {run['name']} | " + " | ".join(fmt(run.get(k)) for k, _ in used) + " |")
    if record.get("summary"):
        lines += ["", record["summary"]]
    bases = sorted({run["cost_basis"] for run in record["runs"] if run.get("cost_basis") and run.get("compute_units")})
    if bases:  # an estimated bill must not read as a measured one
        lines += ["", "Compute units and dollars: " + "; ".join(bases) + "."]
    if record.get("t4_changes"):  # T4 emulation: what had to change for the recipe to run on a T4
        lines += ["", f"What had to change for a T4: {record['t4_changes']}"]
    if record.get("caveat"):  # a flaw found after the run, written into the record itself
        lines += ["", f"_Caveat: {record['caveat']}_"]
    return "\n".join(lines)


def t4_cell(record: dict | None) -> str:
    """The notebooks table's T4 verdict, from a `make bench-t4` record (results/<notebook>.bench.t4.json)."""
    if record is None:
        return "not measured yet"
    runs = record["runs"]
    cap = record["gpu"].get("memory_cap_gib")
    failed = [r["name"] for r in runs if r.get("status") not in (None, "ok", "passed")]
    peak = max((r["peak_reserved_gib"] for r in runs if r.get("peak_reserved_gib") is not None), default=None)
    device = max((r["peak_device_gib"] for r in runs if r.get("peak_device_gib") is not None), default=None)
    verdict = "yes" if not failed else f"{len(runs) - len(failed)} of {len(runs)} runs ({', '.join(failed)} did not)"
    figures = f": peak {peak:.1f} GiB reserved of the {cap:.1f} GiB cap" if peak is not None and cap else ""
    if device is not None:
        figures += f", {device:.1f} GiB device-used"
        # device-used counts the big GPU's driver reservation, which a T4's reported total already leaves out
        needed = estimate.needed_from_measured(device, record["gpu"].get("emulated_on"))
        usable = record["gpu"].get("total_gib") or 14.56
        if not failed and estimate.fit_status(needed, usable) != "fits":
            verdict = f"yes, tight ({needed:.2f} of {usable:.2f} GiB needed)"
    scope = f"; {record['t4_scope']}" if record.get("t4_scope") else ""   # when a record holds some runs only
    return f"{verdict}{figures} ({record['gpu'].get('emulated_on', '?')}, {record['date']}{scope})"


def with_t4_column(text: str, records: dict) -> str:
    """Fill the last column of the notebooks table (rows `| 01 | ...`) from the T4-emulation records."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("| # | notebook |"):
            cells = line.rstrip("|").split("|")
            if cells[-1].strip() != T4_COLUMN:
                cells.append(f" {T4_COLUMN} ")
            lines[i] = "|".join(cells) + "|"
            lines[i + 1] = "|---" * (len(cells) - 1) + "|"
        elif line[:2] == "| " and line[2:4].isdigit() and line[4:7] == " | " and "colab-badge" in line:
            number = line[2:4]
            cells = line.rstrip("|").split("|")
            header_width = 5                    # # | notebook | teaches | target GPU | the T4 column
            cells = cells[:header_width] + [f" {t4_cell(records.get(number))} "]
            lines[i] = "|".join(cells) + "|"
    return "\n".join(lines)


def t4_records() -> dict:
    """The newest T4-emulation record of each notebook, by its number ('01')."""
    found = {}
    for path in sorted((ROOT / "results").glob("[0-9][0-9]_*.t4.json")):
        record = json.loads(path.read_text())
        found[record["notebook"][:2]] = record
    return found


VERDICT = results.VERDICT


def table_cell(text: str) -> str:
    """Text that stays in one Markdown table cell: line breaks become spaces, pipes are escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def claims_block(records: list) -> str:
    """The published claims set beside the `real` profile's runs on a GPU (their records' `claims`)."""
    rows = []
    for r in records:
        for c in r.get("claims", []):
            cells = [r["notebook"][:2], c["claim"], c["published"], c["ours"],
                     VERDICT[c["holds"]] + (": " + c["why"] if c.get("why") else "")]
            rows.append("| " + " | ".join(map(table_cell, cells)) + " |")
    if not rows:
        return ""
    sources = "; ".join(f"{r['notebook'][:2]}: {r['gpu']['name']}, {r['date']}" for r in records if r.get("claims"))
    return "\n".join(["**The posts' claims with real pretrained weights on real data** (`real` profile; "
                      f"{sources})", "", "| # | claim | published | ours | verdict |", "|---|---|---|---|---|", *rows])


def generated() -> str:
    # the notebooks' own records; the estimator's calibration has its own section and docs page
    records = [r for r in results.load_records(ROOT / "results")
               if r["profile"] in ("real", "bench", "full") and r["notebook"][:2].isdigit()
               and (r["profile"] != "real" or r["gpu"]["count"])]    # real: the GPU runs, not a CPU's
    for r in records:   # a T4-emulation record says so in its heading
        if r["gpu"].get("emulated_on"):
            r["gpu"] = dict(r["gpu"], name=f"{r['gpu']['name']} emulated on {r['gpu']['emulated_on']}")
    if not records:
        return "_No GPU measurements recorded yet._"
    records.sort(key=lambda r: (r["notebook"], r["profile"], bool(r["gpu"].get("emulated_on"))))
    claims = claims_block([r for r in records if r["profile"] == "real"])
    return "\n\n".join(([claims] if claims else []) + [record_block(r) for r in records])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"README.md lacks the markers {START} / {END}")
        return 1
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    wanted = with_t4_column(f"{before}{START}\n{generated()}\n{END}{after}", t4_records())
    if args.check:
        if wanted != text:
            print("README.md is out of date: run python scripts/update_readme.py")
            return 1
        return 0
    readme.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
