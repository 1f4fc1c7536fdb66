"""Memory, measured the way each layer of the stack sees it.

On a GPU three numbers matter, and they differ (NVML >= reserved >= allocated):

* allocated: bytes held by live tensors (torch.cuda.memory_allocated);
* reserved: what PyTorch's caching allocator holds from the driver, incl. free cached blocks;
* device-used: what nvidia-smi shows for the whole GPU (NVML), which also counts the CUDA
  context (~0.3-0.5 GB) and memory that torch does not manage, such as bitsandbytes' paged
  optimizer state. This is the number that decides "does it fit".

On a CPU the process's resident memory (RSS) is recorded instead.

`MemoryTracker` samples these in a background thread (peaks between steps are not missed) and
keeps one row per training step; `MemoryCallback` plugs it into a `transformers.Trainer`.

Evaluation during training runs at its own batch size and sequence lengths, and its peak can exceed
training's (notebook 04's first H200 run: 21.8 GiB at an evaluation batch of 32 against about 10 GiB for
training at batch 1). The peaks that decide whether a *training* recipe fits, and that the estimator
predicts, leave it out: `tracker.excluded("evaluation")` around it (the callback does this for the
Trainer's evaluations) keeps its peak apart, as `evaluation_peak_allocated_gib`.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from transformers import TrainerCallback

GIB = 2**30


def _nvml_handle():
    try:
        import pynvml

        pynvml.nvmlInit()
        import torch

        index = torch.cuda.current_device()
        return pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:  # no NVML (e.g. some containers): device-used stays unknown
        return None, None


@dataclass
class MemoryTracker:
    """Record memory per step and the peaks of a run; use as a context manager.

    >>> with MemoryTracker("batch 16") as tracker:
    ...     for step in range(steps):
    ...         train_step()
    ...         tracker.mark(step)
    >>> tracker.summary()   # peak_allocated_gib, peak_reserved_gib, peak_device_gib / peak_rss_gib
    """

    name: str = "run"
    interval_s: float = 0.02
    rows: list = field(default_factory=list)
    on_gpu: bool = field(default=False, init=False)

    def __post_init__(self):
        import torch

        self.on_gpu = torch.cuda.is_available()
        self._stop = threading.Event()
        self._thread = None
        self._peak_device = 0
        self._peak_rss = 0
        self._nvml, self._handle = _nvml_handle() if self.on_gpu else (None, None)
        self._start = None
        self._paused = False
        self._peak_allocated = self._peak_reserved = 0    # of the phases before the last exclusion
        self._inactive_split_peak = 0                    # the allocator's idle split cache in those phases
        self._counts_at_start: dict = {}                 # its cumulative counts when the run started
        self.excluded_peaks: dict = {}                   # label -> peak allocated bytes during it
        self.excluded_s: dict = {}                       # label -> seconds spent in it

    # --- raw readings -------------------------------------------------------------------
    def _device_used(self) -> int | None:
        if self._handle is None:
            return None
        return int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used)

    @staticmethod
    def _rss() -> int:
        import psutil

        return int(psutil.Process().memory_info().rss)

    def reading(self) -> dict:
        """The memory right now, in GiB."""
        row = {"t_s": round(time.perf_counter() - (self._start or time.perf_counter()), 4)}
        if self.on_gpu:
            import torch

            row["allocated_gib"] = torch.cuda.memory_allocated() / GIB
            row["reserved_gib"] = torch.cuda.memory_reserved() / GIB
            used = self._device_used()
            row["device_gib"] = used / GIB if used is not None else None
        else:
            row["rss_gib"] = self._rss() / GIB
        return row

    # --- sampling -----------------------------------------------------------------------
    def _sample_forever(self):
        while not self._stop.is_set():
            if self._paused:
                pass
            elif self.on_gpu:
                used = self._device_used()
                if used is not None:
                    self._peak_device = max(self._peak_device, used)
            else:
                self._peak_rss = max(self._peak_rss, self._rss())
            self._stop.wait(self.interval_s)

    def start(self) -> "MemoryTracker":
        import torch

        if self.on_gpu:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self._peak_allocated = self._peak_reserved = 0
        self._inactive_split_peak = 0
        self._counts_at_start = self._allocator_now() if self.on_gpu else {}
        self.excluded_peaks = {}
        self.excluded_s = {}
        self._paused = False
        self._start = time.perf_counter()
        self.rows = [dict(step=0, **self.reading())]
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.wall_s = time.perf_counter() - self._start if self._start else 0.0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def mark(self, step: int, **extra) -> dict:
        """Record a row for `step` (call after the optimizer step); extra values ride along."""
        row = {"step": int(step), **self.reading(), **extra}
        if self.on_gpu:
            row["peak_allocated_gib"] = self._peaks()[0] / GIB
        self.rows.append(row)
        return row

    @staticmethod
    def _allocator_now() -> dict:
        """The caching allocator's own figures (torch.cuda.memory_stats): bytes of cached blocks that were split
        and sat unused, at their peak since the peaks were last reset (what fragmentation holds); and, counted
        since the process started, allocations that failed, emptied the cache and retried, and cudaMalloc calls."""
        import torch

        stats = torch.cuda.memory_stats()
        return {"inactive_split": stats.get("inactive_split_bytes.all.peak", 0),
                "retries": stats.get("num_alloc_retries", 0), "mallocs": stats.get("num_device_alloc", 0)}

    def _inactive_split(self) -> int:
        """The idle split cache's peak over the run so far, excluded phases left out."""
        return max(self._allocator_now()["inactive_split"], self._inactive_split_peak)

    def _peaks(self) -> tuple[int, int]:
        """Peak allocated and reserved bytes of the run so far, excluded phases left out."""
        import torch

        return (max(self._peak_allocated, torch.cuda.max_memory_allocated()),
                max(self._peak_reserved, torch.cuda.max_memory_reserved()))

    @contextmanager
    def excluded(self, label: str = "evaluation"):
        """Leave what runs inside out of the run's peaks; its own peak goes to summary() as
        `<label>_peak_allocated_gib` (on a GPU) and its duration as `<label>_s`.

        >>> with tracker.excluded("evaluation"):
        ...     accuracy = evaluate(model)
        """
        if self.on_gpu:
            import torch

            torch.cuda.synchronize()
            self._peak_allocated, self._peak_reserved = self._peaks()
            self._inactive_split_peak = self._inactive_split()
            torch.cuda.reset_peak_memory_stats()
        self._paused = True
        entered = time.perf_counter()
        try:
            yield self
        finally:
            self.excluded_s[label] = self.excluded_s.get(label, 0.0) + time.perf_counter() - entered
            if self.on_gpu:
                torch.cuda.synchronize()
                self.excluded_peaks[label] = max(self.excluded_peaks.get(label, 0), torch.cuda.max_memory_allocated())
                # give its cached blocks back, so that the device-used readings after it are training's again
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            self._paused = False

    def summary(self) -> dict:
        """Peaks over the run, named with their units (the fields of results/ records)."""
        out = {"wall_s": round(getattr(self, "wall_s", time.perf_counter() - (self._start or 0)), 3),
               **{f"{label}_s": round(seconds, 3) for label, seconds in self.excluded_s.items()}}
        if self.on_gpu:
            import torch

            device_peak = max([self._peak_device] + [int((r.get("device_gib") or 0) * GIB) for r in self.rows])
            allocated, reserved = self._peaks()
            now, at_start = self._allocator_now(), self._counts_at_start
            out.update(
                peak_allocated_gib=round(allocated / GIB, 3),
                peak_reserved_gib=round(reserved / GIB, 3),
                peak_device_gib=round(device_peak / GIB, 3) if device_peak else None,
                # fragmentation, measured: cached blocks split and idle at their peak; allocations that had
                # to empty the cache and retry; cudaMalloc calls of the run (PYTORCH_CUDA_ALLOC_CONF as set)
                peak_inactive_split_gib=round(self._inactive_split() / GIB, 3),
                alloc_retries=now["retries"] - at_start.get("retries", 0),
                device_mallocs=now["mallocs"] - at_start.get("mallocs", 0),
                allocator_config=os.environ.get("PYTORCH_CUDA_ALLOC_CONF") or "default",
                **{f"{label}_peak_allocated_gib": round(peak / GIB, 3) for label, peak in self.excluded_peaks.items()},
            )
        else:
            peak = max([self._peak_rss] + [int(r["rss_gib"] * GIB) for r in self.rows])
            out["peak_rss_gib"] = round(peak / GIB, 3)
        return out

    def peak_gib(self) -> float:
        """The one number to compare runs by: device-used on a GPU (else reserved), RSS on CPU."""
        s = self.summary()
        return s.get("peak_device_gib") or s.get("peak_reserved_gib") or s.get("peak_rss_gib") or 0.0

    def snapshot(self, path: str, max_entries: int = 100_000) -> bool:
        """Start recording allocator history; call again with the same path to dump it.

        Open the dumped pickle at https://pytorch.org/memory_viz to see every allocation.
        Returns False (and does nothing) on a CPU.
        """
        if not self.on_gpu:
            return False
        import torch

        if not getattr(self, "_recording", False):
            torch.cuda.memory._record_memory_history(max_entries=max_entries)
            self._recording = True
        else:
            torch.cuda.memory._dump_snapshot(path)
            torch.cuda.memory._record_memory_history(enabled=None)
            self._recording = False
        return True


class MemoryCallback(TrainerCallback):
    """A Trainer callback that records memory after every optimizer step.

    trainer = Trainer(..., callbacks=[MemoryCallback("lora r=16")])
    ... trainer.train() ...
    callback.tracker.summary(), callback.tracker.rows

    The Trainer's evaluations during training are left out of the peaks (kept as
    `evaluation_peak_allocated_gib`): the Trainer has no "evaluation begins" event, but the flow
    callback, which runs before this one, has already set `control.should_evaluate` at the end of the
    step or epoch that is about to be evaluated.
    """

    def __init__(self, name: str = "run", interval_s: float = 0.02):
        self.tracker = MemoryTracker(name=name, interval_s=interval_s)
        self._evaluation = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.tracker.start()

    def _evaluation_begins(self, control):
        if control.should_evaluate and self._evaluation is None:
            self._evaluation = self.tracker.excluded("evaluation")
            self._evaluation.__enter__()

    def _evaluation_ends(self):
        if self._evaluation is not None:
            self._evaluation.__exit__(None, None, None)
            self._evaluation = None

    def on_step_end(self, args, state, control, **kwargs):
        self.tracker.mark(state.global_step)
        self._evaluation_begins(control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._evaluation_begins(control)

    def on_evaluate(self, args, state, control, **kwargs):
        self._evaluation_ends()

    def on_train_end(self, args, state, control, **kwargs):
        self._evaluation_ends()
        self.tracker.stop()


FRAGMENTATION_NOTE_GIB = 0.25     # an idle split cache below this is not worth a word


def fragmentation_note(summary: dict) -> str | None:
    """A sentence for a run whose allocator held much idle, split cache at its peak (fragmentation), else None.

    Batches of varying length leave cached blocks of sizes the next batch cannot reuse whole; the GPU's memory
    then fills with them (nvidia-smi and an out-of-memory error count them) while the tensors need less."""
    idle = summary.get("peak_inactive_split_gib")
    reserved, allocated = summary.get("peak_reserved_gib"), summary.get("peak_allocated_gib")
    if idle is None or reserved is None or idle < FRAGMENTATION_NOTE_GIB or idle < 0.1 * reserved:
        return None
    advice = ("" if "expandable_segments:True" in str(summary.get("allocator_config"))
              else "; PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True, set before torch starts, lets the allocator "
                   "grow segments instead of splitting them")
    return (f"the allocator reserved {reserved:.2f} GiB for {allocated:.2f} GiB of tensors at their peaks, and held up "
            f"to {idle:.2f} GiB in split blocks it could not reuse (fragmentation){advice}")


def forget_optimizer_overrides() -> int:
    """Empty bitsandbytes' process-wide registry of 32-bit optimizer overrides; return how many it held.

    With an 8-bit optimizer, transformers' Trainer registers every embedding layer with
    `bitsandbytes.optim.GlobalOptimManager` so that its optimizer state stays 32-bit. That registry is a
    singleton holding the modules themselves, so a trained model's embeddings outlive `del model`
    (1.15 GiB for GPT-NeoX-20B's fp32 input embeddings). Call this after a model is done with.
    """
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    manager = bnb.optim.GlobalOptimManager._instance
    if manager is None:
        return 0
    held = len(manager.module_weight_config_triple)
    manager.initialize()
    return held


def release(namespace: dict, *names: str) -> float | None:
    """Drop the named models/trainers from `namespace` (a notebook's `globals()`) and give their memory back.

    Also clears bitsandbytes' override registry and the CUDA cache, and fails loudly if any of the objects
    is still alive (its memory would be counted again by the next measurement). Returns the GiB still
    allocated by PyTorch on the GPU (None on a CPU).
    """
    import gc
    import weakref

    import torch

    survivors = {name: weakref.ref(namespace.pop(name)) for name in names if namespace.get(name) is not None}
    forget_optimizer_overrides()
    gc.collect()
    alive = [name for name, ref in survivors.items() if ref() is not None]
    if alive:
        raise RuntimeError(f"{', '.join(alive)} is still referenced somewhere (a list, a closure, a trainer): "
                           "its memory would be counted twice. Delete the other references first.")
    if not torch.cuda.is_available():
        return None
    torch.cuda.empty_cache()
    return torch.cuda.memory_allocated() / GIB



def stored_tracker(name: str, rows: list, on_gpu: bool):
    """A finished run's stored memory rows in the shape plots.memory_timeline reads a MemoryTracker (name, on_gpu,
    rows), for a run read back from its record instead of trained in this session."""
    from types import SimpleNamespace

    return SimpleNamespace(name=name, on_gpu=on_gpu, rows=rows)
