"""Measurement records: one JSON file per notebook run, the source of the README's tables.

A record holds what DESIGN.md asks of every measurement: notebook, profile, GPU (name and
count), library versions, date, and `runs`, each with its figures named with their unit
(`peak_device_gib`, `wall_s`, `samples_per_s`, metric names...). A notebook may add
`learning_signal` (what `make run` reports) and any `extra` its lesson needs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import runtime
from .errors import FriendlyError

RESULTS = Path(__file__).resolve().parent.parent / "results"

REQUIRED = ("notebook", "profile", "gpu", "versions", "date", "runs")


def make_record(notebook: str, profile: str, runs: list, learning_signal: dict | None = None,
                **extra) -> dict:
    gpu = runtime.gpu_info()
    record = {
        "notebook": notebook,
        "profile": profile,
        "gpu": {"name": gpu["name"], "count": gpu["count"], "capability": gpu["capability"],
                "total_gib": gpu["total_gib"],
                # NB_EMULATE=T4: the GPU that stood in for the T4, and the memory cap it ran under
                **{k: gpu[k] for k in ("emulated_on", "memory_cap_gib") if k in gpu}},
        "versions": runtime.versions(),
        "date": runtime.today(),
        "runs": runs,
    }
    if learning_signal is not None:
        record["learning_signal"] = learning_signal
    record.update(extra)
    validate(record)
    return record


def claim(claim: str, *, published: str, ours: str, holds: bool | None, why: str = "") -> dict:
    """One published claim set beside what this run measured, for a record's `claims` list (the README's table of
    claims reproduced with real weights). holds: True reproduced, False not, None partly or not comparable;
    `why` says what differs when it does not simply hold."""
    if holds is not True and not why:
        raise ValueError(f"claim {claim!r} does not simply hold: say why (why=...)")
    return {"claim": claim, "published": published, "ours": ours, "holds": holds, "why": why}


VERDICT = {True: "reproduced", False: "not reproduced", None: "partly / not comparable"}   # of a claim's `holds`


def claim_text(c: dict) -> str:
    """One claim as a notebook prints it: the verdict, the claim, both sides and why."""
    why = f"\n    why: {c['why']}" if c.get("why") else ""
    return f"{VERDICT[c['holds']]}: {c['claim']}\n    published: {c['published']}\n    ours: {c['ours']}{why}"


def validate(record: dict) -> None:
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise ValueError(f"measurement record lacks {', '.join(missing)}")
    for run in record["runs"]:
        if "name" not in run:
            raise ValueError(f"every run needs a 'name'; got keys {sorted(run)}")


def save_record(record: dict, out_dir) -> Path:
    """Write `<out_dir>/<notebook>.<profile>.json` (`.<profile>.t4.json` under T4 emulation); return its path."""
    validate(record)
    emulated = ".t4" if record["gpu"].get("emulated_on") else ""
    path = Path(out_dir) / f"{record['notebook']}.{record['profile']}{emulated}.json"
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


# --------------------------------------------------------------------------- measured speeds
@dataclass(frozen=True)
class MeasuredRate:
    """How fast one recorded run trained, with the GPU it ran on and where the figure comes from."""

    notebook: str
    run: str
    gpu: str | None  # the estimator's name for the GPU it ran on ('H200'); None for a GPU it does not know
    gpu_name: str  # as the record names it ('NVIDIA H200')
    gpu_count: int
    date: str
    source: str  # the record's file, relative to the repository
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    seconds_per_step: float | None = None  # per optimizer step
    samples_per_step: int | None = None  # the effective batch of those steps

    def __str__(self) -> str:
        speed = (f"{self.samples_per_s:.1f} samples/s" if self.samples_per_s else
                 f"{self.tokens_per_s:.0f} tokens/s" if self.tokens_per_s else
                 f"{self.seconds_per_step:.2f} s per step")
        count = f" x{self.gpu_count}" if self.gpu_count > 1 else ""
        return f"the {self.gpu or self.gpu_name}{count} run of {self.date} ({self.source}, '{self.run}') at {speed}"

    def seconds_for(self, *, samples=None, tokens=None, steps=None, samples_per_step=None) -> tuple:
        """(seconds this run's speed gives for that much work, how it was scaled), or (None, why not).

        By samples where both have them, else by tokens, else by optimizer steps of the same batch."""
        if samples and self.samples_per_s:
            return samples / self.samples_per_s, f"scaled to the same {samples:,.0f} samples"
        if tokens and self.tokens_per_s:
            return tokens / self.tokens_per_s, f"scaled to the same {tokens:,.0f} tokens"
        if steps and self.seconds_per_step and samples_per_step and samples_per_step == self.samples_per_step:
            return steps * self.seconds_per_step, f"scaled to the same {steps:,} steps of {samples_per_step:g}"
        return None, ("nothing to scale by: give tokens= for a tokens/s record, or steps of the same batch "
                      f"({self.samples_per_step})")


def _record_path(notebook: str, profile: str, folder) -> Path:
    folder = Path(folder) if folder is not None else RESULTS
    matches = sorted(folder.glob(f"{notebook}*.{profile}.json"))
    exact = [m for m in matches if m.name == f"{notebook}.{profile}.json"]
    if exact:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise FriendlyError(f"No {profile} record for notebook {notebook!r} in {folder}.")
    raise FriendlyError(f"{notebook!r} matches several records ({', '.join(m.name for m in matches)}): "
                        "give the notebook's full name.")


def _seconds_per_step(run: dict) -> float | None:
    """Measured training seconds per optimizer step, under whichever name the notebook recorded them."""
    steps = run.get("optimizer_steps")
    if run.get("measured_step_s"):  # 03
        return run["measured_step_s"]
    if run.get("estimated_step_time_s") and run.get("step_time_s"):  # 01, 05: step_time_s beside its estimate
        return run["step_time_s"]
    for key in ("train_s", "training_s", "wall_s"):  # 01, 04; 02 has only the wall time
        if steps and run.get(key):
            return run[key] / steps
    return None


def _samples_per_step(run: dict) -> int | None:
    if run.get("effective_batch"):
        return int(run["effective_batch"])
    batch = run.get("micro_batch") or run.get("per_device_batch")
    accumulation = run.get("accumulation") or run.get("gradient_accumulation_steps")
    return int(batch * accumulation) if batch and accumulation else None


def rate_from_run(run: dict, gpu_name: str, *, notebook: str = "", date: str = "", source: str = "this run",
                  gpu_count: int = 1) -> MeasuredRate:
    """The measured speed of a run dict as the notebooks record it (samples/s or tokens/s, optimizer
    steps and their time), run on `gpu_name` (under NB_EMULATE: the real GPU, runtime.gpu_info()'s
    `emulated_on`), for helpers.estimate.run_time(measured=[...]) before the record is saved."""
    from . import estimate  # late: estimate does not need results, results only needs its GPU names

    return MeasuredRate(
        notebook=notebook, run=run["name"], gpu=estimate.gpu_key(gpu_name), gpu_name=gpu_name,
        gpu_count=int(run.get("processes") or gpu_count), date=date or run.get("date", ""), source=source,
        samples_per_s=run.get("samples_per_s"), tokens_per_s=run.get("tokens_per_s"),
        seconds_per_step=_seconds_per_step(run), samples_per_step=_samples_per_step(run))


def measured_rate(notebook: str, run_name: str | None = None, profile: str = "bench", folder=None) -> MeasuredRate:
    """The measured speed of one run in results/<notebook>.<profile>.json (the committed H200 benches).

    notebook: '01' or '01_complaint_classification'; run_name: the run's name (may be left out when the
    record has one run). Carries samples/s or tokens/s, seconds per optimizer step, the GPU and the date,
    for helpers.estimate.run_time(measured=[...]).
    """
    path = _record_path(notebook, profile, folder)
    record = json.loads(path.read_text())
    runs = record["runs"]
    if run_name is None:
        if len(runs) != 1:
            raise FriendlyError(f"{path.name} has {len(runs)} runs; name one: {', '.join(r['name'] for r in runs)}.")
        run = runs[0]
    else:
        named = [r for r in runs if r["name"] == run_name]
        if not named:
            raise FriendlyError(f"No run {run_name!r} in {path.name}; its runs: {', '.join(r['name'] for r in runs)}.")
        run = named[0]
    gpu = record["gpu"]
    try:
        source = str(path.resolve().relative_to(RESULTS.parent))
    except ValueError:
        source = str(path)
    return rate_from_run(run, gpu.get("emulated_on") or gpu["name"],  # an emulated T4 runs at its real GPU's speed
                         notebook=record["notebook"], date=record.get("date", ""), source=source,
                         gpu_count=int(gpu.get("count") or 1))


def measured_rates(notebook: str, *run_names: str, profile: str = "bench", folder=None) -> list[MeasuredRate]:
    """measured_rate for each named run (every run when none is named) that the record has: an empty list
    when there is no record, and no entry for a name it lacks (a profile may name its runs differently)."""
    try:
        path = _record_path(notebook, profile, folder)
    except FriendlyError:
        return []
    names = run_names or [r["name"] for r in json.loads(path.read_text())["runs"]]
    rates = []
    for name in names:
        try:
            rates.append(measured_rate(path.name.split(".")[0], name, profile=profile, folder=path.parent))
        except FriendlyError:
            continue
    return rates


# (measured, estimated) keys under which the notebooks record a run's time beside its estimate
_TIME_PAIRS = (("step_time_s", "estimated_step_time_s"), ("measured_step_s", "estimated_step_s"),
               ("training_s", "estimated_s"))


def whole_run_ratios(folder=None, profile: str = "bench") -> list[dict]:
    """Measured / estimated time of every recorded run that keeps both (the source of the estimator's
    whole-run band, helpers.estimate.WHOLE_RUN_FACTOR)."""
    rows = []
    for record in load_records(Path(folder) if folder is not None else RESULTS):
        # an emulated GPU (NB_EMULATE, results/*.bench.t4.json) runs at its real GPU's speed against the
        # emulated GPU's estimate: that ratio is not the estimator's error
        if record["profile"] != profile or record["gpu"].get("emulated_on"):
            continue
        for run in record["runs"]:
            for measured, estimated in _TIME_PAIRS:
                if run.get(measured) and run.get(estimated):
                    rows.append({"notebook": record["notebook"], "run": run["name"], "measured": run[measured],
                                 "estimated": run[estimated], "ratio": run[measured] / run[estimated]})
                    break
    return rows


# ----------------------------------------------------------------------------- a measured run against smaller GPUs
def measured_fits(summary: dict, smaller=("T4", "V100")) -> dict:
    """{gpu: {"fits": bool, "verdict": line}} for a GPU run's measured peak on each of the `smaller` GPUs ('tight'
    fits); {} without a GPU figure.

    The peak is device-used (what nvidia-smi sees) less the driver's reservation of the GPU that really ran
    (runtime.physical_gpu: under NB_EMULATE=T4 the bigger GPU), or reserved memory where device-used is unknown.
    """
    from . import estimate

    if summary.get("peak_device_gib"):
        needed = estimate.needed_from_measured(summary["peak_device_gib"], runtime.physical_gpu())
    elif summary.get("peak_reserved_gib"):
        needed = summary["peak_reserved_gib"]
    else:
        return {}
    from . import gpus

    return {gpu: {"fits": needed <= gpus.get(gpu).usable_gib, "verdict": estimate.fit_verdict(needed, gpu, measured=True)}
            for gpu in smaller}


def bench_fits_line(notebook: str, smaller=("T4", "V100"), folder=None) -> str | None:
    """One line on the committed bench record's first run: its GPU, date, recipe, peaks and verdicts; None without one."""
    from . import estimate

    path = (Path(folder) if folder is not None else RESULTS) / f"{notebook}.bench.json"
    if not path.exists():
        return None
    bench = json.loads(path.read_text())
    run = bench["runs"][0]
    needed = estimate.needed_from_measured(run["peak_device_gib"], bench["gpu"]["name"])
    verdicts = "; ".join(estimate.fit_verdict(needed, gpu, measured=True) for gpu in smaller)
    return (f"bench on {bench['gpu']['name']} ({bench['date']}, {run['precision']}, micro-batch {run['micro_batch']} × "
            f"{run['max_length']} tokens): peak allocated {run['peak_allocated_gib']} GiB, reserved "
            f"{run['peak_reserved_gib']} GiB, device {run['peak_device_gib']} GiB, {run['samples_per_s']} samples/s "
            f"→ {verdicts}")
