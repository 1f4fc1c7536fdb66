"""Faults on purpose: a runtime disconnect or a GPU out-of-memory error at a chosen step.

Tests (and a curious reader) set the environment variable NB_FAULT to check that a notebook
survives what Colab does to it, on any CPU:

* ``NB_FAULT=disconnect@N``: right after the checkpoint of step N (or the first one after it)
  is written, raise `SimulatedDisconnect`. Running the notebook again must resume from it.
* ``NB_FAULT=oom@N``: at the start of optimizer step N, raise the error PyTorch raises when
  the GPU is full (`torch.cuda.OutOfMemoryError`, which exists on CPU builds too), so the
  notebook's out-of-memory advice (helpers.oom) runs in a smoke test.

A fault fires only in a run that crosses step N: a run resumed from step N or later stays quiet,
so the same notebook run again with the same NB_FAULT resumes and finishes.

The Trainer gets the fault through `callback()` (`checkpoints.train_or_resume` adds it by
itself); a hand-written loop through `before_step` / `after_step` (`checkpoints.LoopCheckpoint`
calls them).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from transformers import TrainerCallback

from .errors import FriendlyError

FAULT_ENV = "NB_FAULT"
KINDS = ("disconnect", "oom")
_FORM = re.compile(r"^\s*(disconnect|oom)\s*@\s*(\d+)\s*$")


class SimulatedDisconnect(RuntimeError):
    """What a Colab runtime disconnect does to a run, raised on purpose (NB_FAULT)."""

    def __init__(self, step: int):
        super().__init__(f"simulated runtime disconnect after step {step} ({FAULT_ENV}); "
                         "run the notebook again to resume")
        self.step = step

    def _render_traceback_(self):  # in Jupyter: the message, not the frames of the Trainer
        return [f"{type(self).__name__}: {self}"]


class FaultSpecError(FriendlyError):
    pass


@dataclass(frozen=True)
class Fault:
    kind: str  # "disconnect" or "oom"
    step: int


def from_env() -> Fault | None:
    """The fault NB_FAULT asks for, or None when it is unset or empty."""
    text = os.environ.get(FAULT_ENV, "")
    if not text.strip():
        return None
    match = _FORM.match(text.lower())
    if not match or int(match.group(2)) < 1:
        raise FaultSpecError(
            f"{FAULT_ENV}={text!r} is not a fault. Use disconnect@N (stop like a runtime disconnect right "
            f"after the checkpoint of step N) or oom@N (a GPU out-of-memory error at the start of step N), "
            f"with N a step number from 1; or unset {FAULT_ENV}."
        )
    return Fault(match.group(1), int(match.group(2)))


def out_of_memory_error(step: int):
    """A `torch.cuda.OutOfMemoryError` worded like PyTorch's own, marked as simulated."""
    import torch

    return torch.cuda.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 14.74 GiB of which "
        f"1.06 GiB is free. (simulated at the start of step {step} by {FAULT_ENV})"
    )


def before_step(step: int, resumed_from: int = 0) -> None:
    """Call at the start of optimizer step `step` (counted from 1) of a hand-written loop."""
    fault = from_env()
    if fault and fault.kind == "oom" and step == fault.step and resumed_from < fault.step:
        raise out_of_memory_error(step)


def after_step(step: int, saved: bool, resumed_from: int = 0) -> None:
    """Call after optimizer step `step`; `saved` says whether a checkpoint was just written.

    `resumed_from` is the step the loop resumed from (0 for a fresh run): a run that resumed at or
    after the fault's step has already survived it, so it does not fire again.
    """
    fault = from_env()
    if fault and fault.kind == "disconnect" and saved and step >= fault.step and resumed_from < fault.step:
        raise SimulatedDisconnect(step)


class FaultCallback(TrainerCallback):
    """Raises NB_FAULT's fault inside `Trainer.train` (`on_save` runs after the checkpoint is written)."""

    def __init__(self, fault: Fault):
        self.fault = fault
        self.resumed_from = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.resumed_from = state.global_step  # already restored from the checkpoint when resuming

    def on_step_begin(self, args, state, control, **kwargs):
        if self.fault.kind == "oom" and state.global_step + 1 == self.fault.step > self.resumed_from:
            raise out_of_memory_error(self.fault.step)

    def on_save(self, args, state, control, **kwargs):
        if (self.fault.kind == "disconnect" and state.global_step >= self.fault.step
                and self.resumed_from < self.fault.step):
            raise SimulatedDisconnect(state.global_step)


def callback() -> FaultCallback | None:
    """A TrainerCallback for NB_FAULT's fault, or None when NB_FAULT is unset."""
    fault = from_env()
    return FaultCallback(fault) if fault else None
