"""The bookkeeping of notebook 05's loop of runs, so that its cells show the methods, not the plumbing.

    stored = compare.stored_or_trained(store, name, trained)    # read back if it finished before, else trained

* `stored_or_trained`: a run that finished before (a re-run after a disconnect) is read back from its
  helpers.checkpoints.RunStore; any other is trained and stored; a method that fails (out of memory, with the
  advice; or an error of the libraries) is recorded as not run, never faked, while a (simulated) disconnect
  stops the notebook as a real one would;
* `memory_measure`: which peak ranks the runs here (the GPU's, or on a CPU the process's);
* `bill`: a run's Colab compute units and dollars, measured on a Colab GPU, else estimated for a T4.
"""
from __future__ import annotations

import gc

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
