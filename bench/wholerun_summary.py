"""Estimates made before training beside the measured runs: one summary file from the GPU's output folders.

    python bench/wholerun_summary.py OUT/r01 OUT/r02 ... --out results/wholerun_validation.DATE.json

Each folder holds what one notebook wrote on the GPU: its records (`NN_name.PROFILE.json`, `real`, `bench` or a
T4-emulated `.t4.json`; every run in them carries the whole-run estimate that helpers.training.measured or
helpers.loop.train made before it trained, and the memory estimate), and the host probe taken before the notebook
started (host_costs.json). Per run: the errors of time and memory, whether the measurement fell inside the estimate's
range, and the allocator's own fragmentation figures; over all runs: the median and largest errors, and how many runs
are within issue 18's targets (time within 25 %, memory within 10 %). Nothing is fitted to the measurements.

`--recompute` is for records whose estimate was of another model than the one that trained (session 14's records
estimated the recipe's hub model): the training part is estimated again for the real small model that trained, every
batch at the run's mean padded length, with the same probe; that is an after-the-fact figure and is labelled so.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from helpers import estimate, pretrained, recipe, runtime, wholerun

STAND_INS = {"01": "encoder", "03": "causal", "04": "encoder", "05": "encoder", "02": "causal"}
TARGETS = {"wall": 0.25, "memory": 0.10}        # issue 18: whole-run time within 25 %, device memory within 10 %
FRAGMENTATION_FIELDS = ("peak_allocated_gib", "peak_reserved_gib", "peak_inactive_split_gib", "alloc_retries",
                        "allocator_config")


def _rounded(value):
    return None if value is None else round(value, 4)


def _recomputed(record: dict, run: dict, host: dict, first: bool) -> dict:
    """The training part estimated again for the real small model that trained (not a before-the-run figure)."""
    notebook = record["notebook"][:2]
    fields = record["recipe"] | {"model": str(pretrained.folder(STAND_INS[notebook])), "head_modules": None}
    if "accumulation" in run and "micro_batch" in run:
        fields |= {"micro_batch": run["micro_batch"], "grad_accum": run["accumulation"]}
    ran = recipe.Recipe(**fields)
    length = round(run["estimated_padding"]["mean_padded_length"])
    again = wholerun.plan(ran, gpu="H200", updates=run["estimated_updates"], host=host, first_in_process=first,
                          batches=[(ran.micro_batch, length)] * run["estimated_micro_batches"])
    train_s = run.get("train_s") or run.get("training_s")
    return dict(model=pretrained.model_for(STAND_INS[notebook]).hub_id, train_s=round(again.estimate_s, 1),
                train_error=round(wholerun.error(again, train_s), 3))


def summarise_record(record: dict, host: dict, recompute: bool = False) -> dict:
    rows = []
    # 05's repeats of every run at further seeds (`seed_runs`) were estimated before training as well
    measured_runs = record["runs"] + record.get("seed_runs", [])
    for index, run in enumerate(r for r in measured_runs if "estimated_wall_s" in r):
        low, high = run.get("estimated_wall_range_s") or (None, None)
        measured = run["measured_wall_s"]
        # 02's records before 2026-12-05 kept the estimate made before training only under `estimated`
        estimated_device = run.get("estimated_peak_device_gib") or (run.get("estimated") or {}).get("peak_device_gib")
        row = dict(name=run["name"], seed=run.get("seed"), measured_wall_s=measured, estimated_wall_s=run["estimated_wall_s"],
                   wall_error=run["wall_error"], in_range=None if low is None else low <= measured <= high,
                   estimated_parts_s=run["estimated_parts_s"],
                   # batch shapes of the run (records since 2026-12-05): the suspected cost per new shape
                   distinct_shapes=(run.get("estimated_padding") or {}).get("distinct_shapes"),
                   measured_train_s=run.get("train_s") or run.get("training_s"),
                   measured_eval_s=run.get("eval_s", run.get("evaluation_s")),
                   measured_checkpoint_s=run.get("checkpoint_s"),
                   peak_device_gib=run.get("peak_device_gib"),
                   estimated_peak_device_gib=estimated_device,
                   memory_error=_rounded(estimate.error(estimated_device, run.get("peak_device_gib"))),
                   **{k: run[k] for k in FRAGMENTATION_FIELDS if k in run})
        if recompute:
            row["recomputed"] = _recomputed(record, run, host, first=index == 0)
        rows.append(row)
    probe = {k: host[k] for k in wholerun.HOST_KEYS} | {
        k: host[k] for k in ("date", "block_pass_relative_stderr") if k in host}
    return dict(notebook=record["notebook"], profile=record.get("profile"), date=record["date"],
                gpu=record["gpu"]["name"], emulated_on=record["gpu"].get("emulated_on"),
                versions=record["versions"], host_probe=probe, runs=rows)


def summarise(folder: Path, recompute: bool = False) -> list:
    """One entry per record in `folder` (a notebook's output on the GPU, with its host probe)."""
    host_path = folder / "host_costs.json"
    if not host_path.is_file():
        raise SystemExit(f"{folder} has no host_costs.json: copy the probe taken before the notebook into it.")
    host = json.loads(host_path.read_text())
    records = sorted(folder.glob("0*.json"))
    if not records:
        raise SystemExit(f"{folder} holds no notebook record (0*.json).")
    return [summarise_record(json.loads(path.read_text()), host, recompute) for path in records]


def overall(entries: list, allocator: str | None = None) -> dict:
    """Median and largest absolute error of time and memory over every run, and how many are within target.

    `allocator`: only the runs under that PYTORCH_CUDA_ALLOC_CONF ("default" where none was set)."""
    out = {}
    runs = [run for entry in entries for run in entry["runs"]
            if allocator is None or run.get("allocator_config", "default") == allocator]
    for what, key in (("wall", "wall_error"), ("memory", "memory_error")):
        errors = [run[key] for run in runs if run.get(key) is not None]
        if not errors:
            out[what] = dict(runs=0)
            continue
        worst = max(errors, key=abs)
        out[what] = dict(runs=len(errors), median_abs_error=round(statistics.median(abs(e) for e in errors), 4),
                         largest_error=worst, within_target=sum(abs(e) <= TARGETS[what] for e in errors),
                         target=TARGETS[what])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--recompute", action="store_true",
                        help="also estimate the training part again for the small model that trained")
    parser.add_argument("--caveat", default=None, help="a sentence on what the estimates were of, kept in the file")
    args = parser.parse_args(argv)
    entries = [entry for folder in args.folders for entry in summarise(folder, args.recompute)]
    summary = dict(what="whole-run and memory estimates made before training beside the measured runs",
                   made_by="bench/wholerun_summary.py", date=runtime.today(), overall=overall(entries),
                   by_allocator={config: overall(entries, config) for config in sorted(
                       {run.get("allocator_config", "default") for entry in entries for run in entry["runs"]})},
                   notebooks=entries)
    if args.caveat:
        summary["caveat"] = args.caveat
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    o = summary["overall"]
    print(f"wrote {args.out}: time {o['wall'].get('within_target', 0)} of {o['wall']['runs']} runs within 25 %, "
          f"memory {o['memory'].get('within_target', 0)} of {o['memory']['runs']} within 10 %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
