"""What a whole training run will take, estimated before it starts.

`helpers.estimate` gives the steady step of fixed-length batches. A real run adds what that leaves out:

* padding: each micro-batch is as long as its longest row (or the collator's fixed length), so the time of
  a batch follows the data's lengths and the Trainer's sampler (`group_by_length` sorts rows into batches
  of similar length); the per-batch lengths here come from the very sampler the Trainer will use;
* fixed costs of the training loop, measured on the host that drives the GPU (`probe`): a cost per
  micro-batch (fetching and collating the batch, copying it to the GPU, autocast, the backward call), one
  per optimizer update (gradient clipping, the optimizer and scheduler, callbacks, logging) and one per
  block per pass (the kernel launches of one transformer block);
* warm-up: the first steps of the first run in a process load kernels and pick matrix-product algorithms;
* evaluations and checkpoint writes at the schedule of the training arguments.

    >>> plan = wholerun.from_trainer(trainer, recipe)   # before trainer.train(); None without a known GPU
    >>> print(plan)        # 'H200: 360 updates ≈ 14 s (12-17 s) → ...', the parts with plan.table()

`helpers.training.measured` makes this estimate itself before it trains and writes it, beside the
measurement, into the run's record (estimated_wall_s, estimated_wall_range_s, wall_error).

The host's fixed costs: `probe()` measures them in about 30 s on the GPU in hand (`python -m
helpers.wholerun --probe --out host_costs.json`; set NB_HOST_COSTS to that file to use it). Without a
probe of this machine the committed H200 host's figures are used, and the estimate says so.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import cost as _cost
from . import estimate as _estimate
from . import gpus as _gpus
from .errors import FriendlyError

HOST_COSTS_ENV = "NB_HOST_COSTS"
COMMITTED_HOST_COSTS = Path(__file__).resolve().parent.parent / "results" / "host_costs.json"

# Used only where no probe was ever run: the per-block cost of the estimator's calibration and no other
# fixed cost (what the estimator assumed before whole runs were modelled).
FALLBACK_HOST = {"gpu": "H200", "source": "helpers.estimate.CALIBRATION (no probe)", "date": "2026-11-22",
                 "block_pass_s": _estimate.CALIBRATION["block_overhead_s"], "micro_batch_s": 0.0,
                 "update_s": 0.0, "eval_batch_s": 0.0, "warmup_first_s": 0.0, "warmup_s": 0.0,
                 "checkpoint_fixed_s": 0.0, "checkpoint_gbs": 1.0}
HOST_KEYS = ("block_pass_s", "micro_batch_s", "update_s", "eval_batch_s", "warmup_first_s", "warmup_s",
             "checkpoint_fixed_s", "checkpoint_gbs")

# The estimate's band: issue 18's target (within 25 %), not a measured error: the one validation so far
# (docs/estimator.md, "Whole runs") estimated the wrong model, so no error of this model is known yet.
BAND = (0.8, 1.25)

_runs_in_process = 0     # the first run of a process pays the kernels' loading (warmup_first_s)


def host_costs(path=None) -> dict:
    """The host's fixed costs: `path`, else $NB_HOST_COSTS, else the committed H200 probe, else the fallback."""
    for candidate in (path, os.environ.get(HOST_COSTS_ENV), COMMITTED_HOST_COSTS):
        if candidate and Path(candidate).is_file():
            costs = json.loads(Path(candidate).read_text())
            missing = [k for k in HOST_KEYS if k not in costs]
            if missing:
                raise FriendlyError(f"{candidate} lacks {', '.join(missing)}: it is not a host probe. Write one with "
                                    "`python -m helpers.wholerun --probe --out FILE` on the GPU.")
            return costs | {"file": str(candidate)}
        if candidate and candidate is not COMMITTED_HOST_COSTS:
            raise FriendlyError(f"No host probe at {candidate}. Write one with `python -m helpers.wholerun --probe "
                                f"--out {candidate}` on the GPU, or unset {HOST_COSTS_ENV}.")
    return dict(FALLBACK_HOST)


# --------------------------------------------------------------------------- batches as the Trainer makes them
def padded_length(longest: int, collator=None) -> int:
    """The length a batch whose longest row has `longest` tokens is padded to by `collator`."""
    padding = getattr(collator, "padding", True)
    max_length = getattr(collator, "max_length", None)
    if padding == "max_length" and max_length:
        return int(max_length)
    multiple = getattr(collator, "pad_to_multiple_of", None)
    if multiple:
        longest = int(math.ceil(longest / multiple) * multiple)
    return int(min(longest, max_length) if max_length else longest)


def batch_shapes(lengths, micro_batch: int, order=None, collator=None) -> list:
    """(rows, padded length) of each micro-batch of one epoch, in `order` (default: the rows as given)."""
    order = list(range(len(lengths))) if order is None else list(order)
    shapes = []
    for start in range(0, len(order), micro_batch):
        chunk = order[start:start + micro_batch]
        shapes.append((len(chunk), padded_length(max(lengths[i] for i in chunk), collator)))
    return shapes


def _row_lengths(dataset, column: str = "input_ids") -> list | None:
    if dataset is None:
        return None
    try:
        if hasattr(dataset, "column_names") and column in dataset.column_names:
            return [len(ids) for ids in dataset[column]]
        return [len(dataset[i][column]) for i in range(len(dataset))]
    except (KeyError, TypeError, IndexError):
        return None


# --------------------------------------------------------------------------- the estimate
@dataclass
class WholeRun:
    """A whole run's time on one GPU: the estimate, its band, and the parts it is made of (seconds)."""

    gpu: str
    updates: int
    micro_batches: int
    parts: dict
    low_s: float
    high_s: float
    host: dict
    padding: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    peak_device_gib: float | None = None   # the estimator's peak at the run's largest batch (rows x padded length)

    @property
    def estimate_s(self) -> float:
        return sum(self.parts.values())

    @property
    def bill(self) -> dict | None:
        """Colab compute units and dollars of both ends, or None where Colab does not rent the GPU."""
        if not _cost.is_colab_gpu(self.gpu):
            return None
        return _cost.colab_cost_range(self.low_s, self.high_s, gpu=self.gpu)

    def table(self) -> str:
        width = max(len(k) for k in self.parts)
        lines = [f"{k:<{width}}  {v:8.1f} s" for k, v in self.parts.items()]
        lines.append(f"{'whole run':<{width}}  {self.estimate_s:8.1f} s  (band {self.low_s:.1f}-{self.high_s:.1f} s)")
        if self.peak_device_gib is not None:
            lines.append(f"peak device memory at the largest batch: {self.peak_device_gib:.2f} GiB")
        if self.padding:
            lines.append(f"padding: batches average {self.padding['mean_padded_length']:.0f} tokens "
                         f"(rows {self.padding['mean_row_length']:.0f}, longest {self.padding['longest']})")
        lines.append(f"host's fixed costs: {self.host.get('source', '?')}, {self.host.get('date', '?')}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """For a run's record: every key says it is the estimate made before training."""
        bill = self.bill
        return {"estimated_on": self.gpu, "estimated_updates": self.updates,
                "estimated_micro_batches": self.micro_batches, "estimated_wall_s": round(self.estimate_s, 1),
                "estimated_wall_range_s": [round(self.low_s, 1), round(self.high_s, 1)],
                "estimated_parts_s": {k: round(v, 2) for k, v in self.parts.items()},
                "estimated_padding": self.padding, "estimated_host_costs": self.host.get("source"),
                "estimated_peak_device_gib_at_largest_batch": None if self.peak_device_gib is None
                else round(self.peak_device_gib, 3),
                "estimated_notes": self.notes,
                "estimated_compute_units": None if bill is None else [round(u, 4) for u in bill["units"]],
                "estimated_dollars": None if bill is None else [round(d, 4) for d in bill["dollars"]]}

    def __str__(self) -> str:
        return (f"{self.gpu}: {self.updates:,} updates ({self.micro_batches:,} micro-batches) ≈ "
                f"{_estimate._duration(self.estimate_s)} ({_estimate._span(self.low_s, self.high_s)})"
                + _estimate.bill_text(self.bill))


LAUNCH_OVERHEADS = ("adapter_overhead_s", "quant_overhead_s", "checkpoint_overhead_s", "optimizer_tensor_overhead_s")


def host_factor(host: dict) -> float:
    """How much slower this host launches kernels than the calibration's: its probed cost of a block's pass
    over the calibrated one."""
    return host["block_pass_s"] / _estimate.CALIBRATION["block_overhead_s"]


def _calibration(host: dict) -> dict:
    """The estimator's constants on this host: the probed cost of a block's pass, and every other launch-bound
    overhead (LoRA layers, NF4 layers, checkpointed blocks, bitsandbytes' optimizer tensors) scaled by the same
    factor, since they are kernel launches too; the loop's fixed costs are added apart."""
    cal = _estimate.CALIBRATION
    factor = host_factor(host)
    return cal | {"block_overhead_s": host["block_pass_s"], "step_overhead_s": 0.0} | {
        name: cal[name] * factor for name in LAUNCH_OVERHEADS}


def _batch_seconds(facts, gpu_spec, recipe, rows: int, length: int, cal: dict) -> float:
    """One micro-batch's forward and backward at `length` tokens, without the optimizer."""
    s_q, _ = _estimate._sequence_lengths(recipe.method, length, recipe.num_virtual_tokens or 0)
    trainable_bytes = _trainable_bytes(facts, recipe)
    terms = _estimate.time_terms(facts, gpu_spec, recipe.method, recipe.optimizer, rows, s_q,
                                 recipe.gradient_checkpointing, recipe.precision, 1, trainable_bytes)
    terms |= {"bytes": terms["bytes"] - _estimate.optimizer_traffic_bytes(facts, recipe.optimizer, trainable_bytes),
              "optimizer_tensors": 0, "steps": 0}
    return _estimate.step_time(terms, cal)


def _update_seconds(facts, gpu_spec, recipe, cal: dict) -> float:
    """One optimizer update on the GPU: its memory traffic and bitsandbytes' per-tensor launches."""
    traffic = _estimate.optimizer_traffic_bytes(facts, recipe.optimizer, _trainable_bytes(facts, recipe))
    return (traffic / (gpu_spec.bandwidth_gbs * 1e9 * cal["bandwidth_efficiency"])
            + _estimate.optimizer_launches(facts, recipe.optimizer) * cal["optimizer_tensor_overhead_s"])


def _forward_seconds(facts, gpu_spec, recipe, rows: int, length: int, cal: dict) -> float:
    """One evaluation batch: the forward pass alone (every block once, no backward, no optimizer)."""
    s_q, _ = _estimate._sequence_lengths(recipe.method, length, recipe.num_virtual_tokens or 0)
    terms = _estimate.time_terms(facts, gpu_spec, recipe.method, recipe.optimizer, rows, s_q, False,
                                 recipe.precision, 1, _trainable_bytes(facts, recipe))
    forward_share = facts.layers / terms["block_passes"]      # the passes that are forward passes
    return (_estimate.forward_flops(facts, rows, s_q) / (terms["peak_flops"] * cal["efficiency"])
            + forward_share * terms["attention_elements"] * cal["attention_bytes"]
            / (terms["bandwidth"] * cal["bandwidth_efficiency"])
            + facts.layers * cal["block_overhead_s"]
            + forward_share * (terms["adapter_passes"] * cal["adapter_overhead_s"]
                               + terms["quant_passes"] * cal["quant_overhead_s"]))


def _trainable_bytes(facts, recipe) -> int:
    return _estimate._trainable_bytes(facts, _estimate._weights_dtype(recipe.method, recipe.weights_dtype))


def _facts(recipe):
    kwargs = recipe.estimator_kwargs()
    return _estimate.model_facts(recipe.model, task=kwargs["task"], num_labels=kwargs["num_labels"],
                                 method=kwargs["method"], lora_r=kwargs.get("lora_r", 8),
                                 lora_targets=kwargs.get("lora_targets"),
                                 trainable_blocks=kwargs.get("trainable_blocks"),
                                 num_virtual_tokens=kwargs.get("num_virtual_tokens", 20),
                                 head_modules=kwargs.get("head_modules"))


def plan(recipe, *, gpu: str, updates: int, batches=None, eval_batches=(), evaluations: int = 0,
         checkpoints: int = 0, checkpoint_bytes: float = 0.0, first_in_process: bool | None = None,
         host: dict | None = None, band: tuple = BAND) -> WholeRun:
    """The whole run of `updates` optimizer updates of `recipe` on `gpu`.

    batches: (rows, padded length) of every micro-batch the run trains, in order (default: updates x
    accumulation micro-batches of the recipe's micro-batch and full length). eval_batches: the same for one
    evaluation, done `evaluations` times. checkpoints: how many are written, each of `checkpoint_bytes`.
    first_in_process: whether the kernels still have to load (default: no run has finished in this process).
    """
    if int(updates) != updates or updates < 1:
        raise FriendlyError(f"updates must be a positive whole number, got {updates!r}.")
    gpu_spec = _gpus.get(gpu)
    host = host or host_costs()
    cal = _calibration(host)
    facts = _facts(recipe)
    if batches is None:
        batches = [(recipe.micro_batch, recipe.seq_len)] * (updates * recipe.grad_accum)
    compute = sum(n * _batch_seconds(facts, gpu_spec, recipe, rows, length, cal)
                  for (rows, length), n in Counter(batches).items())
    update_compute = _update_seconds(facts, gpu_spec, recipe, cal)
    evaluation = evaluations * sum(n * (_forward_seconds(facts, gpu_spec, recipe, rows, length, cal)
                                        + host["eval_batch_s"])
                                   for (rows, length), n in Counter(eval_batches).items())
    first = (_runs_in_process == 0) if first_in_process is None else first_in_process
    parts = {
        "warm-up (kernels load, first steps)": host["warmup_first_s"] if first else host["warmup_s"],
        "micro-batches at their padded lengths": compute,
        "fixed cost per micro-batch": len(batches) * host["micro_batch_s"],
        "optimizer updates": updates * (update_compute + host["update_s"]),
        "evaluations": evaluation,
        "checkpoint writes": checkpoints * (host["checkpoint_fixed_s"] + checkpoint_bytes / (host["checkpoint_gbs"]
                                                                                              * 1e9)),
    }
    total = sum(parts.values())
    notes = []
    if gpu_spec.name != host.get("gpu"):
        notes.append(f"the loop's fixed costs are the {host.get('gpu')} host's ({host.get('source')}); "
                     f"run `python -m helpers.wholerun --probe` on this {gpu_spec.name} to measure its own")
    if host.get("block_pass_relative_stderr") is not None:
        notes.append(f"the probe's block cost is uncertain by ±{100 * host['block_pass_relative_stderr']:.0f} % "
                     "(standard error of its fit)")
    lengths = [length for _, length in batches]
    # distinct (rows, padded length) shapes: recorded, not yet costed. Libraries that plan per shape (cuDNN's
    # attention graphs) may pay once for each, the suspect of docs/estimator.md; the GPU records will tell.
    padding = {"mean_padded_length": round(statistics.fmean(lengths), 1), "longest": max(lengths),
               "distinct_shapes": len(set(batches) | set(eval_batches))}
    rows, longest = max(batches, key=lambda shape: shape[0] * shape[1])
    peak = _estimate.estimate(recipe.model, gpu=gpu_spec.name,
                              **recipe.estimator_kwargs() | dict(micro_batch=rows, seq_len=longest)).peak_device_gib
    return WholeRun(gpu=gpu_spec.name, updates=int(updates), micro_batches=len(batches), parts=parts,
                    low_s=band[0] * total, high_s=band[1] * total, host=host, padding=padding, notes=notes,
                    peak_device_gib=peak)


# --------------------------------------------------------------------------- read off a Trainer
def _count(every, total: int) -> int:
    """How many times something scheduled every `every` steps (a fraction of the run when below 1) happens."""
    if not every:
        return 0
    every = math.ceil(every * total) if every < 1 else int(every)
    return total // max(every, 1)


def model_that_trains(model) -> str | None:
    """The local checkpoint folder `model` was loaded from (a PEFT model's base), or None (a hub id, or built
    in memory). A profile that trains a stand-in (a tiny or real small model) estimates that model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    path = getattr(getattr(base, "config", None), "_name_or_path", None)
    return path if path and (Path(path) / "config.json").is_file() else None


def as_it_trains(recipe, model, precision: str | None = None) -> tuple:
    """(recipe, notes): `recipe` for the model that really trains (a profile's stand-in for the recipe's hub
    model) and in the precision it trains in."""
    notes = []
    here = model_that_trains(model)
    if here is not None and here != str(recipe.model):
        recipe = recipe.changed(model=here)
        notes.append(f"estimated for the model that trains ({Path(here).name}), the recipe's stand-in here")
    if precision is not None and precision != recipe.precision:
        recipe = recipe.changed(precision=precision)
    return recipe, notes


def over_epochs(per_epoch: list, epochs: int, updates: int, updates_per_epoch: int, accumulation: int) -> list:
    """The micro-batches of the whole run: each epoch's shapes (the drawn epochs repeat), the last epoch cut where
    the run's updates end."""
    batches = []
    for epoch in range(epochs):
        shapes = per_epoch[epoch % len(per_epoch)]
        left = updates - epoch * updates_per_epoch
        batches += shapes[:min(len(shapes), left * accumulation)]
    return batches


def checkpoint_bytes(model, optimizer: str) -> float:
    """One checkpoint: the weights saved and the optimizer's state per trainable parameter."""
    from . import checkpoints

    state = _estimate.OPTIMIZERS[optimizer]["state"]
    return checkpoints.checkpoint_size_gib(model, optimizer_bytes_per_parameter=state) * _estimate.GIB


def _epoch_orders(trainer, epochs: int) -> list:
    """The sampler's row order for each epoch (at most two are drawn; later epochs repeat them)."""
    sampler = trainer._get_train_sampler()
    if sampler is None:
        return [None]
    return [list(iter(sampler)) for _ in range(min(max(epochs, 1), 2))]


def from_trainer(trainer, recipe, gpu: str | None = None, host: dict | None = None,
                 first_in_process: bool | None = None) -> WholeRun | None:
    """The whole-run estimate of `trainer.train()` as its arguments and data set it up (call it before training).

    gpu: default this machine's GPU (an emulated one's physical GPU: the time is the real card's); None
    on a CPU, where the estimator has no time model.
    """
    from . import recipe as _recipe

    gpu = gpu or _this_gpu()
    if gpu is None:
        return None
    args = trainer.args
    recipe, notes = as_it_trains(recipe, trainer.model, precision=_recipe._precision(args))
    micro = args.per_device_train_batch_size
    accum = args.gradient_accumulation_steps
    lengths = _row_lengths(trainer.train_dataset)
    if lengths is None:
        rows = len(trainer.train_dataset)
        lengths = [recipe.seq_len] * rows
        notes.append(f"the training rows' lengths are unknown: every batch counted at {recipe.seq_len} tokens")
    micro_per_epoch = math.ceil(len(lengths) / micro)
    updates_per_epoch = max(micro_per_epoch // accum + int(micro_per_epoch % accum > 0), 1)
    if args.max_steps and args.max_steps > 0:
        updates = args.max_steps
    else:
        updates = math.ceil(args.num_train_epochs * updates_per_epoch)
    epochs = math.ceil(updates / updates_per_epoch)
    per_epoch = [batch_shapes(lengths, micro, order, trainer.data_collator) for order in _epoch_orders(trainer, epochs)]
    batches = over_epochs(per_epoch, epochs, updates, updates_per_epoch, accum)
    strategy = getattr(args.eval_strategy, "value", args.eval_strategy)
    evaluations, eval_batches = 0, []
    if strategy != "no" and trainer.eval_dataset is not None:
        datasets = trainer.eval_dataset.values() if isinstance(trainer.eval_dataset, dict) else [trainer.eval_dataset]
        for dataset in datasets:
            eval_lengths = _row_lengths(dataset) or [recipe.seq_len] * len(dataset)
            eval_batches += batch_shapes(eval_lengths, args.per_device_eval_batch_size, None, trainer.data_collator)
        evaluations = epochs if strategy == "epoch" else _count(args.eval_steps or args.logging_steps, updates)
    save = getattr(args.save_strategy, "value", args.save_strategy)
    saves = 0 if save == "no" else epochs if save == "epoch" else \
        evaluations if save == "best" else _count(args.save_steps, updates)
    run = plan(recipe, gpu=gpu, updates=updates, batches=batches, eval_batches=eval_batches, evaluations=evaluations,
               checkpoints=saves, checkpoint_bytes=checkpoint_bytes(trainer.model, recipe.optimizer), host=host,
               first_in_process=first_in_process)
    run.padding["mean_row_length"] = round(statistics.fmean(lengths), 1)
    run.notes = notes + run.notes
    return run


def _this_gpu() -> str | None:
    """This machine's GPU as helpers.gpus names it (the physical one under emulation); None without one we know."""
    from . import runtime

    if not runtime.cuda_available():
        return None
    return _estimate.gpu_key(runtime.physical_gpu())


def finished_a_run() -> None:
    """Called when a run has trained: the next one in this process finds the kernels loaded."""
    global _runs_in_process
    _runs_in_process += 1


def error(plan_or_seconds, measured_s: float | None) -> float | None:
    """(estimated - measured) / measured of a whole run, or None where either is missing."""
    seconds = getattr(plan_or_seconds, "estimate_s", plan_or_seconds)
    return _estimate.error(seconds, measured_s)


# --------------------------------------------------------------------------- the host probe
def probe(out=None, steps: int = 40, require_gpu: bool = True) -> dict:
    """Measure the training loop's fixed costs on this machine's GPU (about 30 s); write them to `out`.

    Tiny BERT models (hidden 64) whose products take microseconds, trained by the Trainer as the notebooks
    train, with the memory callback attached: 1, 2 and 4 blocks, accumulation 1 and 8, each twice. Time per update =
    accumulation x (micro-batch cost + 2 passes x blocks x block cost) + update cost, solved by least squares.
    Evaluation batches, the first run's warm-up and checkpoint writing are timed the same way.
    """
    import tempfile

    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from . import memory, runtime

    on_gpu = torch.cuda.is_available()
    if require_gpu and not on_gpu:
        raise FriendlyError("The probe measures a GPU host's fixed costs: run it on a machine with a GPU.")
    if steps < 20:
        raise FriendlyError(f"The probe needs at least 20 steps a run (10 of warm-up, then the steady ones), got {steps}.")

    def sync():
        if on_gpu:
            torch.cuda.synchronize()
    transformers.logging.set_verbosity_error()

    class Rows(torch.utils.data.Dataset):
        def __init__(self, n, length=32):
            g = torch.Generator().manual_seed(0)
            self.ids = torch.randint(5, 1000, (n, length), generator=g)

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": int(i % 2)}

    class StepClock(transformers.TrainerCallback):
        def __init__(self):
            self.times, self.started = [], None

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    def train(layers: int, accum: int, micro: int = 4, folder=None):
        torch.manual_seed(0)
        model = BertForSequenceClassification(BertConfig(
            vocab_size=1000, hidden_size=64, num_hidden_layers=layers, num_attention_heads=2,
            intermediate_size=128, max_position_embeddings=64))
        args = TrainingArguments(output_dir=folder, per_device_train_batch_size=micro,
                                 gradient_accumulation_steps=accum, max_steps=steps, learning_rate=1e-4,
                                 logging_steps=10, save_strategy="no", report_to=[], disable_tqdm=True,
                                 bf16=on_gpu and runtime.has_native_bf16(), use_cpu=not on_gpu)
        clock = StepClock()
        trainer = Trainer(model=model, args=args, train_dataset=Rows(steps * accum * micro),
                          callbacks=[clock, memory.MemoryCallback("probe")])
        trainer.remove_callback(transformers.PrinterCallback)
        trainer.train()
        sync()
        steady = (clock.times[-1] - clock.times[9]) / (len(clock.times) - 10)
        first = clock.times[9] - clock.started
        return steady, first, trainer

    with tempfile.TemporaryDirectory() as folder:
        first_run_steady, first_run_first10, _ = train(1, 1, folder=folder)
        rows = []
        # every shape twice, the repeats apart in time: the spread of the repeats and the fit's residuals say
        # how far one probe can be trusted (three probes of one H200 host gave block costs 1.41-1.87 ms)
        for _ in range(2):
            for layers in (1, 2, 4):
                for accum in (1, 8):
                    steady, first10, trainer = train(layers, accum, folder=folder)
                    rows.append((layers, accum, steady, first10))
        # T = accum * micro_batch_s + accum * 2 * layers * block_pass_s + update_s
        import numpy as np

        a = np.array([[acc, acc * 2 * layers, 1.0] for layers, acc, _, _ in rows])
        t = np.array([steady for _, _, steady, _ in rows])
        (micro_s, block_s, update_s), *_ = np.linalg.lstsq(a, t, rcond=None)
        residuals = t - a @ np.array([micro_s, block_s, update_s])
        # the standard error of the block cost from the residuals (ordinary least squares)
        sigma2 = float(residuals @ residuals) / max(len(t) - 3, 1)
        block_stderr = math.sqrt(sigma2 * float(np.linalg.inv(a.T @ a)[1, 1]))
        warmup = statistics.median(first10 - 10 * steady for layers, acc, steady, first10 in rows
                                   if (layers, acc) == (1, 1))
        warmup_first = first_run_first10 - 10 * first_run_steady
        # evaluation batches: forward only, the Trainer's evaluation loop
        eval_rows = Rows(256)
        t0 = time.perf_counter()
        trainer.evaluate(eval_dataset=eval_rows)
        sync()
        eval_batch = (time.perf_counter() - t0) / math.ceil(256 / trainer.args.per_device_eval_batch_size)
        # checkpoint writes: the Trainer's own checkpoint (weights, two Adam moments) of a small and a large model
        timings = []
        for vocab in (1000, 200_000):
            model = BertForSequenceClassification(BertConfig(vocab_size=vocab, hidden_size=256, num_hidden_layers=4,
                                                             num_attention_heads=4, intermediate_size=512)).to(trainer.args.device)
            trainer.model = trainer.model_wrapped = model
            trainer.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            for p in model.parameters():
                p.grad = torch.zeros_like(p)
            trainer.optimizer.step()                       # the moments exist, as in a checkpoint mid-run
            sync()
            size = sum(p.numel() for p in model.parameters()) * 12
            t0 = time.perf_counter()
            trainer._save_checkpoint(model, trial=None)
            timings.append((size, time.perf_counter() - t0))
        (b0, s0), (b1, s1) = timings
        gbs = (b1 - b0) / max(s1 - s0, 1e-6) / 1e9
        fixed = max(s0 - b0 / (gbs * 1e9), 0.0)
    info = runtime.gpu_info()
    costs = {"gpu": (_estimate.gpu_key(runtime.physical_gpu()) or info.get("name")) if on_gpu else "CPU",
             "gpu_name": info.get("name"),
             "source": f"helpers.wholerun.probe on {info.get('name')}", "date": runtime.today(),
             "versions": runtime.versions(),
             "block_pass_s": round(float(block_s), 6), "micro_batch_s": round(float(micro_s), 6),
             "update_s": round(float(update_s), 6), "eval_batch_s": round(eval_batch, 6),
             "warmup_first_s": round(max(warmup_first, 0.0), 3), "warmup_s": round(max(warmup, 0.0), 3),
             "checkpoint_fixed_s": round(fixed, 3), "checkpoint_gbs": round(gbs, 3),
             "block_pass_relative_stderr": round(block_stderr / max(float(block_s), 1e-9), 3),
             "fit_residual_rms_s": round(math.sqrt(float(residuals @ residuals) / len(t)), 6),
             "runs": [dict(layers=l, accum=a, steady_update_s=round(s, 5), first_10_updates_s=round(f, 3))
                      for l, a, s, f in rows],
             "checkpoint_timings": [dict(bytes=b, seconds=round(s, 3)) for b, s in timings]}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(costs, indent=1) + "\n")
    return costs


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Whole-run time: measure this GPU host's fixed costs.")
    parser.add_argument("--probe", action="store_true", help="run the probe (needs a GPU, about 30 s)")
    parser.add_argument("--out", help="write the costs to this JSON file")
    args = parser.parse_args(argv)
    if not args.probe:
        print(json.dumps(host_costs(), indent=1))
        return 0
    print(json.dumps(probe(args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
