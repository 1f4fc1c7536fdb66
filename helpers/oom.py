"""An out-of-memory error turned into advice: what ran out, what the recipe needs, what would fit.

    with oom.advice(MODEL_ID, task="seq-cls", num_labels=214, method="lora", lora_r=16,
                    lora_targets=["query", "value"], micro_batch=8, seq_len=512, grad_accum=4,
                    precision="fp16", gradient_checkpointing=False):
        trainer.train()

When training runs out of GPU memory, the block frees what it can (the frames of the failed step,
Python's garbage, PyTorch's cached blocks) and raises `OutOfMemoryAdvice`, a FriendlyError whose
message names the GPU and its memory, the estimated peak of the recipe (helpers.estimate), and
concrete fixes, most preferable first, each with its estimated peak: the same effective batch in
smaller micro-batches, gradient checkpointing, an 8-bit optimizer, a 4-bit base (QLoRA), shorter
sequences. In Jupyter only the message shows; the original error stays chained (`__cause__`).

On a CPU (a smoke run with NB_FAULT=oom@N) the figures are for the GPU the recipe targets
(`gpu=`, default T4).
"""
from __future__ import annotations

import contextlib
import gc
import traceback
from dataclasses import dataclass

from . import estimate as _estimate
from . import gpus as _gpus
from . import runtime
from .errors import FriendlyError

GIB = 2**30
DEFAULT_GPU = "T4"  # the free Colab GPU every notebook targets


class OutOfMemoryAdvice(FriendlyError):
    """The GPU ran out of memory; the message says what the recipe needs and what would fit."""

    def __init__(self, message: str, fixes=(), estimate=None):
        super().__init__(message)
        self.fixes = list(fixes)
        self.estimate = estimate


@dataclass
class Fix:
    what: str  # the change, in words, with the setting to use
    micro_batch: int
    grad_accum: int
    peak_gib: float  # estimated peak the process needs with the change (helpers.estimate's needed_gib)
    fits: bool


def is_out_of_memory(err: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or a RuntimeError saying "out of memory" (cuBLAS, bitsandbytes)."""
    import torch

    return isinstance(err, torch.cuda.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def free_memory(err: BaseException | None = None) -> None:
    """Give back what a failed step held: its frames' tensors, garbage, PyTorch's cached blocks."""
    import torch

    if err is not None and err.__traceback__ is not None:
        traceback.clear_frames(err.__traceback__)  # the failed step's activations live in these frames
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _where(gpu: str | None):
    """(estimator GPU name, usable GiB, words for what ran out).

    What ran out is the GPU in use (on a CPU: none; the error was simulated or a library's). The
    figures are for `gpu` when given, else for the GPU in use (its real memory), else for a T4.
    """
    import torch

    if torch.cuda.is_available():
        info = runtime.gpu_info()   # under NB_EMULATE=T4: the T4, with the GPU that stood in and the cap it ran under
        total = info["total_gib"]
        emulated = (f", emulated on {info['emulated_on']} with PyTorch capped at {info['memory_cap_gib']} GiB"
                    if info.get("emulated_on") else "")
        words = (f"{info['name']} ({total:.2f} GiB{emulated}) ran out of memory; PyTorch had allocated up to "
                 f"{torch.cuda.max_memory_allocated() / GIB:.1f} GiB before the error.")
        if gpu is None:  # a GPU helpers.gpus does not know gets its own memory and a T4's other figures
            return _estimate.gpu_key(info["name"]) or DEFAULT_GPU, total, words
    else:
        words = "Out of GPU memory, raised on a CPU-only run (a simulated fault or a library's error)."
    spec = _gpus.get(gpu or DEFAULT_GPU)
    return spec.name, spec.usable_gib, words + f" The figures below are for a {spec.name}, the GPU this recipe targets."


def fixes(model, *, gpu: str, budget_gib: float, micro_batch: int, grad_accum: int, **recipe):
    """The recipe's estimate on `gpu`, and fixes that keep the effective batch, most preferable first.

    Each fix comes with the largest micro-batch that fits with it (helpers.estimate.fit), at most the
    recipe's own. A fix that would not lower the estimated peak (e.g. checkpointing when the peak
    is the optimizer step) is left out. When no single fix is enough, the first combination of
    them (taken in the same order) that fits is added, or all of them if none does.
    """
    effective = micro_batch * grad_accum
    headroom = _gpus.get(gpu).usable_gib - budget_gib  # fit() measures against the table's memory

    def fit(**changes):
        return _estimate.fit(model, gpu=gpu, effective_batch=effective, headroom_gib=headroom, **{**recipe, **changes})

    current = _estimate.estimate(model, gpu=gpu, micro_batch=micro_batch, grad_accum=grad_accum, **recipe)
    method, seq_len = recipe.get("method", "full"), recipe.get("seq_len", 512)
    optimizer = recipe.get("optimizer", "adamw")
    options = []  # (words, changes, label), most preferable first: same result first, different model or data last
    if fit().micro_batch < micro_batch:
        options.append((f"Smaller micro-batches, more accumulation: the same effective batch of {effective} and the "
                        "same result, in more and slower steps", {}, None))
    if not recipe.get("gradient_checkpointing"):
        options.append(("Gradient checkpointing (activation_checkpointing=True in TrainingArguments, formerly "
                        "gradient_checkpointing): keeps each block's input only and recomputes the rest in the "
                        "backward pass, so steps are slower",
                        {"gradient_checkpointing": True}, "gradient checkpointing"))
    if (not _estimate.OPTIMIZERS[optimizer]["eight_bit"]
            and current.components.get("optimizer_state", 0) >= 0.1 * current.peak_device_gib):
        options.append(('8-bit AdamW (optim="adamw_8bit"): the optimizer state in 8 bits instead of 32',
                        {"optimizer": "adamw_8bit"}, "8-bit AdamW"))
    if method in ("lora", "full", "frozen"):
        instead = "" if method == "lora" else f", instead of {method} training (adapters train, not the weights)"
        options.append(('A 4-bit base, QLoRA (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", '
                        f"bnb_4bit_use_double_quant=True) + LoRA{instead}): weights in about 4 bits",
                        {"method": "qlora"}, "a 4-bit base (QLoRA)"))
    if seq_len >= 64:
        options.append((f"Shorter sequences (max_length={seq_len // 2} when tokenising): the end of longer texts "
                        "is lost", {"seq_len": seq_len // 2}, f"max_length={seq_len // 2}"))

    def as_fix(words, changes):
        f = fit(**changes)
        if f.fits and f.micro_batch > micro_batch:  # never suggest a larger micro-batch than the recipe's
            e = _estimate.estimate(model, gpu=gpu, micro_batch=micro_batch, grad_accum=grad_accum,
                                   **{**recipe, **changes})
            return Fix(words, micro_batch, grad_accum, e.needed_gib, True)
        return Fix(words, f.micro_batch, f.grad_accum, f.estimate.needed_gib, f.fits)

    tried = [as_fix(words, changes) for words, changes, _ in options]
    found = [fix for fix in tried if fix.peak_gib < 0.98 * current.needed_gib]
    found.sort(key=lambda fix: not fix.fits)  # stable: fitting ones first, each group in preference order
    if found and not any(fix.fits for fix in found):  # combine them, in order, until it fits
        combined, labels = {}, []
        for _, changes, label in options:
            if label is None:
                continue
            combined.update(changes)
            labels.append(label)
            if len(labels) > 1:
                fix = as_fix("Together: " + " + ".join(labels), combined)
                if fix.fits:
                    break
        if len(labels) > 1:
            found.append(fix)
    return current, found


def _margin(needed_gib: float, budget_gib: float, over: str = "still too much") -> str:
    """'fits, 2.3 GiB (16 %) to spare', 'tight: may not fit, ...' or 'still too much, 1.2 GiB over'."""
    spare = budget_gib - needed_gib
    share = f"{100 * abs(spare) / budget_gib:.0f} %"
    status = _estimate.fit_status(needed_gib, budget_gib)
    if status == "does not fit":
        return f"{over}, {-spare:.1f} GiB over"
    if status == "tight":
        return (f"tight: may not fit, only {spare:.1f} GiB ({share}) to spare, within the estimate's "
                f"{100 * _estimate.TIGHT_FRACTION:.0f} % error")
    return f"fits, {spare:.1f} GiB ({share}) to spare"


def _explain(err, model, gpu, budget_gib, where_words, recipe) -> tuple[str, list, object]:
    said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    lines = [where_words, f"PyTorch said: {said}"]
    try:
        current, found = fixes(model, gpu=gpu, budget_gib=budget_gib, **recipe)
    except Exception as why:  # e.g. a model the estimator cannot read offline: the advice must still come
        lines += [f"No estimate for this recipe ({why})",
                  "Fixes that lower memory, most preferable first: smaller per_device_train_batch_size with a "
                  "larger gradient_accumulation_steps (same effective batch), gradient checkpointing "
                  "(activation_checkpointing=True), an 8-bit optimizer (optim=\"adamw_8bit\"), a 4-bit base "
                  "(QLoRA), shorter sequences (max_length)."]
        return "\n".join(lines), [], None
    i = current.inputs
    margin = _margin(current.needed_gib, budget_gib, over="does NOT fit")
    lines.append(
        f"Estimated peak of this recipe on a {gpu}: {current.needed_gib:.1f} GiB, against {budget_gib:.2f} GiB "
        f"usable: {margin} ({i['model']}, {i['method']}, micro-batch {i['micro_batch']} x {i['seq_len']} tokens, "
        f"accumulation {i['grad_accum']}, {i['precision']}, gradient checkpointing "
        f"{'on' if i['gradient_checkpointing'] else 'off'}, optimizer {i['optimizer']}).")
    if current.needed_gib <= budget_gib:
        lines.append("The estimate says this recipe fits, so something else holds memory: a model or tensors left "
                     "from earlier cells (del them, then gc.collect() and torch.cuda.empty_cache()), an evaluation "
                     "batch larger than the training one (per_device_eval_batch_size), or an unusually long batch. "
                     "Restarting the runtime starts clean." + (" These lower the peak further:" if found else ""))
    else:
        lines.append("Fixes, most preferable first (estimated peak with each, same effective batch):")
    for n, fix in enumerate(found, 1):
        lines.append(f"  {n}. {fix.what}.")
        lines.append(f"     micro-batch {fix.micro_batch} x accumulation {fix.grad_accum} -> {fix.peak_gib:.1f} GiB, "
                     + _margin(fix.peak_gib, budget_gib))
    lines.append("Change the configuration cell and run the notebook again; if the error comes back at once, "
                 "restart the runtime first (memory can stay fragmented after an out-of-memory error).")
    return "\n".join(lines), found, current


@contextlib.contextmanager
def advice(model, *, task="causal-lm", method="full", micro_batch=1, seq_len=512, grad_accum=1, precision=None,
           gradient_checkpointing=False, gpu=None, **estimator_kwargs):
    """Run the block; turn an out-of-memory error into `OutOfMemoryAdvice` (see the module doc).

    model: what helpers.estimate reads (a hub id it knows offline, a checkpoint folder, a config).
    gpu: the GPU to give figures for; None means the GPU in use, or a T4 on a CPU.
    precision: fp16 | bf16 | fp32; None follows runtime.precision() on a GPU, fp16 (a T4's) on a CPU.
    estimator_kwargs: the rest of helpers.estimate.estimate's recipe (num_labels, lora_r,
    lora_targets, optimizer, ...).
    """
    try:
        yield
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        free_memory(err)
        target, budget_gib, where_words = _where(gpu)
        if precision is None:
            precision = runtime.precision() if runtime.cuda_available() else "fp16"
        recipe = dict(task=task, method=method, micro_batch=micro_batch, seq_len=seq_len, grad_accum=grad_accum,
                      precision=precision, gradient_checkpointing=gradient_checkpointing, **estimator_kwargs)
        message, found, current = _explain(err, model, target, budget_gib, where_words, recipe)
        raise OutOfMemoryAdvice(message, found, current) from err
