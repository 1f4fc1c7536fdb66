"""The bookkeeping of notebook 05's loop of runs, so that its cells show the methods, not the plumbing.

    stored = compare.stored_or_trained(store, name, trained)    # read back if it finished before, else trained

* `stored_or_trained`: a run that finished before (a re-run after a disconnect) is read back from its
  helpers.checkpoints.RunStore; any other is trained and stored; a method that fails (out of memory, with the
  advice; or an error of the libraries) is recorded as not run, never faked, while a (simulated) disconnect
  stops the notebook as a real one would;
* `memory_measure`: which peak ranks the runs here (the GPU's, or on a CPU the process's);
* `bill`: a run's Colab compute units and dollars, measured on a Colab GPU, else estimated for a T4;
* `over_seeds`, `ordered_beside`, `order_disagreements`: each method's mean and spread over seeds, the methods
  best first beside a published table, and the pairs of methods whose order differs from it (beyond noise or not).
"""
from __future__ import annotations

import gc
import math

from . import cost, estimate, faults, oom, results, runtime

ERROR_CHARS = 500        # a failed method's error is kept this long in the record; the advice is kept whole


def stored_or_trained(store, name: str, train) -> dict:
    """The stored record of run `name` if it finished before, else `train(name)`'s, stored.

    train(name) returns (what to keep: a dict with "run", the run's record; the model to save with it, or None).
    A run that fails returns {"run": {name, status="not run", error}} and is not stored (a re-run tries again).
    """
    stored = store.finished(name)                     # None unless it finished before (it says so)
    if stored is not None:
        return stored
    if runtime.cuda_available():
        import torch

        torch.cuda.empty_cache()
    try:
        kept, model = train(name)
    except faults.SimulatedDisconnect:
        raise                 # a (simulated) disconnect stops the notebook, as a real one would
    except Exception as err:  # out of memory (with the advice), or a method the libraries cannot run
        limit = None if isinstance(err, oom.OutOfMemoryAdvice) else ERROR_CHARS
        run = dict(name=name, status="not run", error=f"{type(err).__name__}: {err}"[:limit])
        print(f"{name:>32}: NOT RUN: {run['error']}")
        gc.collect()
        return dict(run=run)
    stored = store.save(name, kept, model=model)
    del model
    gc.collect()
    return stored


def memory_measure(device: str) -> tuple[str, str]:
    """(the record's column, its label): device-used on a GPU, the process's resident memory on a CPU."""
    if device == "cuda":
        return "peak_device_gib", "peak GPU memory, GiB (nvidia-smi)"
    return "peak_rss_gib", "peak process memory, GiB (CPU RSS)"


def bill(run: dict, on_t4: "estimate.Estimate", *, device: str, notebook: str) -> dict:
    """compute_units, dollars and cost_basis of one run (and the high end of the range where estimated).

    On a Colab GPU: from the measured wall time, at the GPU that really ran (under NB_EMULATE, not the T4).
    Elsewhere (a CPU, or a GPU Colab does not rent): the estimator's T4 time for the run's optimizer steps,
    never faster than the run itself where it ran on a GPU.
    """
    gpu_name = runtime.physical_gpu()
    measured = cost.bill_of_this_run(run["wall_s"], gpu_name)
    if measured:
        return dict(compute_units=measured["units"], dollars=measured["dollars"], cost_basis=f"measured on {gpu_name}")
    measured_here = [results.rate_from_run(run, gpu_name, notebook=notebook)] if device == "cuda" else []
    span = estimate.run_time(on_t4, steps=run["optimizer_steps"], measured=measured_here)
    return dict(compute_units=span.bill["units"][0], dollars=span.bill["dollars"][0],
                cost_basis="estimated for a T4: the low end of its range (the high end in compute_units_high, "
                           "dollars_high)",
                compute_units_high=span.bill["units"][1], dollars_high=span.bill["dollars"][1])


def over_seeds(runs_by_method: dict) -> "pd.DataFrame":
    """One row per method from its runs (one per seed): the seeds, and the mean, spread (sample standard deviation,
    empty for one seed) and lowest of its test accuracy and F1."""
    import pandas as pd

    rows = {}
    for method, runs in runs_by_method.items():
        accuracy = pd.Series([r["test_accuracy"] for r in runs], dtype=float)
        f1 = pd.Series([r["test_f1"] for r in runs], dtype=float)
        rows[method] = dict(seeds=len(runs), accuracy=accuracy.mean(), accuracy_spread=accuracy.std(),
                            accuracy_lowest=accuracy.min(), f1=f1.mean(), f1_spread=f1.std())
    return pd.DataFrame(rows).T.astype({"seeds": int})


def accuracy_noise(accuracy: float, test_rows: int) -> float:
    """The standard error of an accuracy measured on `test_rows` pairs (binomial): the noise of one run's figure."""
    return math.sqrt(max(accuracy * (1 - accuracy), 1e-12) / test_rows)


def gap_and_noise(ours: "pd.DataFrame", a: str, b: str, test_rows: int) -> tuple[float, float]:
    """Mean accuracy of method a less method b's, and twice the noise of that gap on `test_rows` test pairs (the two
    standard errors combined): a gap inside it is a tie."""
    x, y = ours.loc[a, "accuracy"], ours.loc[b, "accuracy"]
    return float(x - y), 2 * math.hypot(accuracy_noise(x, test_rows), accuracy_noise(y, test_rows))


def ordered_beside(ours: "pd.DataFrame", theirs: dict, baseline: dict, their_baseline: tuple) -> "pd.DataFrame":
    """Our methods best first (by mean accuracy over seeds), with our rank, and the published figures and rank
    beside each method they measured; the majority baselines (ours and theirs) as the last row."""
    import pandas as pd

    table = ours[["accuracy", "accuracy_spread", "f1", "seeds"]].sort_values("accuracy", ascending=False).copy()
    table.insert(0, "our rank", range(1, len(table) + 1))
    their_order = sorted(theirs, key=lambda n: -theirs[n][0])
    table["their accuracy"] = [theirs[n][0] if n in theirs else float("nan") for n in table.index]
    table["their F1"] = [theirs[n][1] if n in theirs else float("nan") for n in table.index]
    table["their rank"] = [their_order.index(n) + 1 if n in theirs else float("nan") for n in table.index]
    table.loc["majority baseline"] = dict(accuracy=baseline["accuracy"], f1=baseline["f1"], seeds=0,
                                          **{"their accuracy": their_baseline[0], "their F1": their_baseline[1]})
    return table


def order_disagreements(ours: "pd.DataFrame", theirs: dict, test_rows: int) -> list[dict]:
    """Every pair of methods that both measured where our order differs from theirs: (above, below) in their
    order, our two mean accuracies, the gap in points, and whether it is larger than twice the noise of the
    difference (the two accuracies' standard errors on the same test pairs, combined: seeds do not shrink it)."""
    measured = [n for n in sorted(theirs, key=lambda n: -theirs[n][0]) if n in ours.index]
    found = []
    for i, above in enumerate(measured):
        for below in measured[i + 1:]:
            a, b = ours.loc[above, "accuracy"], ours.loc[below, "accuracy"]
            if a > b:
                continue
            noise = math.hypot(accuracy_noise(a, test_rows), accuracy_noise(b, test_rows))
            found.append(dict(theirs_above=above, theirs_below=below, ours_above=a, ours_below=b,
                              gap_points=100 * (b - a), beyond_noise=(b - a) > 2 * noise))
    return found
