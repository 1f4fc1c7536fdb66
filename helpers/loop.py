"""The frame around notebook 04's hand-written accumulation loop: resumable, timed, measured.

The notebook writes the lesson, one micro-batch of the loop, as a function

    def micro_batch_step(model, optimizer, scaler, batch, batch_idx, accumulation) -> (loss, stepped)

(forward, the loss divided by `accumulation`, backward; every `accumulation` micro-batches the optimizer step and
zero_grad). `train` runs that same function over every micro-batch of every epoch and adds what a long run on Colab
needs around it:
* checkpoints (helpers.checkpoints.LoopCheckpoint: weights, optimizer, gradient scaler, random states and where the
  loop is), so that a disconnect resumes with the very weights of an uninterrupted run; NB_FAULT's faults fire there;
* timing (training only: evaluating and writing checkpoints are counted apart) and a memory mark per optimizer step;
* evaluation on its schedule (every `eval_every` samples, after the checkpoint, and at the end);
* the recipe's out-of-memory advice (helpers.recipe.Recipe.advice).

`Study` holds the runs of a notebook that trains several in a row: a run finished in an earlier session is read
back (its figures, curves and memory readings) instead of trained again.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

from . import checkpoints, memory, runtime, wholerun


@dataclass
class Finished:
    """What a trained run leaves for its record."""

    model: object
    run: dict                      # the record's figures
    history: dict                  # curves: samples / loss, eval_samples / val_accuracy
    memory_rows: list = field(default_factory=list)


def _empty_history() -> dict:
    return {"samples": [], "loss": [], "eval_samples": [], "val_accuracy": []}


def train(name, micro_batch_step, model, optimizer, scaler, loader, *, recipe, order, seed: int, epochs: int,
          evaluate, eval_every: int, checkpoint_dir=None, checkpoint_every: int | None = None, keep: int = 2,
          max_updates: int | None = None):
    """Run `micro_batch_step` over `loader` for `epochs`; return (tracker, history, figures).

    recipe: the run's helpers.recipe.Recipe (its micro_batch and grad_accum are the loop's; its advice explains an
    out-of-memory error). order: the loader's torch.Generator, re-seeded with seed + epoch at every epoch so that a
    resumed run sees the same order. evaluate(model) -> validation accuracy. checkpoint_dir: where the
    checkpoints go, every `checkpoint_every` samples (None: no checkpoints). A last partial group of micro-batches
    is dropped, as the notebook's corrected test does.
    """
    import torch

    micro_batch, accumulation = recipe.micro_batch, recipe.grad_accum
    updates_per_epoch = len(loader) // accumulation
    plan = _whole_run_plan(name, recipe, loader, order, seed=seed, epochs=epochs, max_updates=max_updates,
                           updates_per_epoch=updates_per_epoch, model=model,
                           checkpoint_every=checkpoint_every if checkpoint_dir else None)
    # Where the loop is: saved with every checkpoint (weights, optimizer, scaler and random states go with it).
    progress = dict(epoch=0, next_batch=0, seen=0, updates=0, next_eval=eval_every, first_update_s=0.0,
                    first_update_seen=0, history=_empty_history())
    with recipe.advice():             # out of GPU memory: the recipe's figures and the fixes that fit
        saver = None
        if checkpoint_dir:
            every = max(1, checkpoint_every // (micro_batch * accumulation))   # in optimizer steps
            saver = checkpoints.LoopCheckpoint(checkpoint_dir, every, model=model, optimizer=optimizer,
                                               scaler=scaler, keep=keep)
            restored = saver.restore() or {}            # prints where it starts
            restored.pop("step", None)
            progress.update(restored)
        history, started = progress["history"], time.perf_counter()
        checkpoint_s = 0.0             # writing checkpoints (6.7 GB each at BLOOM-560m): not training speed

        def evaluate_if_due():
            # the evaluation's memory is not training's: the tracker keeps it apart
            if progress["seen"] >= progress["next_eval"]:
                with tracker.excluded("evaluation"):
                    history["val_accuracy"].append(evaluate(model))
                history["eval_samples"].append(progress["seen"])
                progress["next_eval"] += eval_every

        with memory.MemoryTracker(name) as tracker:
            evaluate_if_due()          # one left pending by a checkpoint written just before a disconnect
            for epoch in range(progress["epoch"], epochs):
                order.manual_seed(seed + epoch)
                for batch_idx, batch in enumerate(loader):
                    if epoch == progress["epoch"] and batch_idx < progress["next_batch"]:
                        continue                        # done before the checkpoint
                    if batch_idx >= updates_per_epoch * accumulation or (
                            max_updates and progress["updates"] >= max_updates):
                        break
                    loss, stepped = micro_batch_step(model, optimizer, scaler, batch, batch_idx, accumulation)
                    progress["seen"] += micro_batch
                    history["samples"].append(progress["seen"])
                    history["loss"].append(loss)
                    if stepped:
                        progress["updates"] += 1
                        tracker.mark(progress["updates"], samples=progress["seen"])
                        if progress["updates"] == 1:   # everything after this is steady state (compiled, warm)
                            progress["first_update_s"] = time.perf_counter() - started
                            progress["first_update_seen"] = progress["seen"]
                    if stepped and saver:       # after the step, before evaluating: an evaluation that fails
                        progress.update(epoch=epoch, next_batch=batch_idx + 1)   # (out of memory) costs no step
                        saving = time.perf_counter()
                        saver.after_step(progress["updates"], **progress)
                        checkpoint_s += time.perf_counter() - saving
                    evaluate_if_due()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    summary = tracker.summary()
    seen, resumed_from = progress["seen"], saver.resumed_from if saver else 0
    if not history["eval_samples"] or history["eval_samples"][-1] != seen:   # always score the end point
        history["eval_samples"].append(seen)
        history["val_accuracy"].append(evaluate(model))
    trained = seen - resumed_from * micro_batch * accumulation      # samples trained in this session
    # steady state: after the first update (compilation, warm-up); a resumed run has only its own part
    steady_s, steady_seen = ((0.0, seen - trained) if resumed_from
                             else (progress["first_update_s"], progress["first_update_seen"]))
    # speed counts training only: the wall time less checkpoint writing and evaluation (both reported apart)
    training_s = summary["wall_s"] - checkpoint_s - summary.get("evaluation_s", 0.0)
    figures = dict(name=name, micro_batch=micro_batch, accumulation=accumulation,
                   effective_batch=micro_batch * accumulation, optimizer_steps=progress["updates"], samples=seen,
                   resumed_from=resumed_from, samples_per_s=round(trained / training_s, 2),
                   first_update_s=round(progress["first_update_s"], 2),
                   steady_samples_per_s=round((seen - steady_seen) / max(training_s - steady_s, 1e-9), 2),
                   training_s=round(training_s, 3), checkpoint_s=round(checkpoint_s, 3), **summary)
    wholerun.finished_a_run()
    note = memory.fragmentation_note(summary)
    if note:
        print(f"{name}: {note}")
    if plan is not None and not resumed_from:
        figures |= plan.as_dict() | {"measured_wall_s": round(summary["wall_s"], 2),
                                     "wall_error": round(wholerun.error(plan, summary["wall_s"]), 4)}
        print(f"{name}: whole run {summary['wall_s']:.1f} s measured, {plan.estimate_s:.1f} s estimated before "
              f"training ({100 * wholerun.error(plan, summary['wall_s']):+.0f} %)")
    return tracker, history, figures


def _whole_run_plan(name, recipe, loader, order, *, seed, epochs, max_updates, updates_per_epoch, model,
                    checkpoint_every):
    """The hand loop's whole-run estimate (helpers.wholerun) on a GPU, made before it trains; None on a CPU."""
    gpu = wholerun._this_gpu()
    if gpu is None:
        return None
    try:
        recipe, notes = wholerun.as_it_trains(recipe, model)
        lengths = wholerun._row_lengths(loader.dataset)
        updates = updates_per_epoch * epochs if not max_updates else min(max_updates, updates_per_epoch * epochs)
        per_epoch = []
        for epoch in range(min(epochs, 2)):
            order.manual_seed(seed + epoch)           # the order the loop will see (it re-seeds the same way)
            chunks = list(loader.batch_sampler)[:updates_per_epoch * recipe.grad_accum]   # a last partial group drops
            per_epoch.append([(len(chunk), wholerun.padded_length(max(lengths[i] for i in chunk), loader.collate_fn))
                              if lengths else (len(chunk), recipe.seq_len) for chunk in chunks])
        batches = wholerun.over_epochs(per_epoch, epochs, updates, updates_per_epoch, recipe.grad_accum)
        every = max(1, checkpoint_every // recipe.effective_batch) if checkpoint_every else 0
        plan = wholerun.plan(recipe, gpu=gpu, updates=updates, batches=batches,
                             checkpoints=updates // every if every else 0,
                             checkpoint_bytes=wholerun.checkpoint_bytes(model, recipe.optimizer))
        plan.notes = notes + plan.notes + [
            "the loop's evaluations are not in the estimate (its evaluate is the notebook's own)"]
        print(f"{name}, estimated before training: {plan}")
        return plan
    except Exception as problem:       # an estimate must not stop a training run
        print(f"{name}: no whole-run estimate ({type(problem).__name__}: {problem})")
        return None


def from_trainer(run, model) -> Finished:
    """A helpers.training.MeasuredRun as the loop's runs are recorded: the same figures under the same names, and
    the Trainer's log as curves (training loss and validation accuracy against samples seen)."""
    args = run.trainer.args
    micro_batch, accumulation = args.per_device_train_batch_size, args.gradient_accumulation_steps
    per_step = micro_batch * accumulation
    figures = run.figures()
    figures = {"name": run.name, "micro_batch": micro_batch, "accumulation": accumulation, "effective_batch": per_step,
               **figures, "resumed_from": figures["resumed_from"] or 0, "training_s": figures["train_s"]}
    logs = run.log
    history = {"samples": [log["step"] * per_step for log in logs if "loss" in log],
               "loss": [log["loss"] for log in logs if "loss" in log],
               "eval_samples": [log["step"] * per_step for log in logs if "eval_accuracy" in log],
               "val_accuracy": [log["eval_accuracy"] for log in logs if "eval_accuracy" in log]}
    return Finished(model, figures, history, run.tracker.rows)


class Study:
    """The runs of a notebook that trains several in a row (see the module doc).

    root, identity: the folder of the finished runs and what makes them this study's (checkpoints.RunStore).
    kept: the run whose model is kept (saved with its record, and held for the notebook's last sections).
    """

    def __init__(self, root, identity: dict, kept: str | None):
        self.store = checkpoints.RunStore(root, identity=identity)
        self.kept, self.kept_model = kept, None
        self.runs, self.trackers, self.histories = [], [], {}

    def run(self, name: str, train_it) -> dict:
        """Read `name` back if it finished before; else `train_it(checkpoint_dir) -> Finished`, record it. Returns
        the run's figures (as the record keeps them)."""
        stored = self.store.finished(name)              # None unless it finished before
        if stored is None:
            if runtime.cuda_available():
                import torch

                torch.cuda.empty_cache()    # cached blocks back, so each run's device-used peak is its own
            finished = train_it(self.store.run_dir(name))
            model = finished.model
            finished.run.setdefault("weights_fingerprint", checkpoints.fingerprint(model))   # equal: bit-identical
            stored = self.store.save(name, dict(run=finished.run, history=finished.history,
                                                memory_rows=finished.memory_rows),
                                     model=model if name == self.kept else None)
            model.to("cpu")     # off the GPU (the kept one too): the next runs need all of it
            if name == self.kept:
                self.kept_model = model
            del model, finished
            gc.collect()
        return self._read_back(stored)

    def _read_back(self, stored: dict) -> dict:
        """A finished run's record into the tables, curves and memory plot."""
        run = stored["run"]
        self.runs.append(run)
        self.trackers.append(memory.stored_tracker(run["name"], stored["memory_rows"], runtime.cuda_available()))
        self.histories[run["name"]] = stored["history"]
        print(f"{run['name']:>12}: {run['optimizer_steps']} steps, {run['wall_s']:.1f} s, test accuracy "
              f"{run['test_accuracy']:.3f}" + (f" (resumed from step {run['resumed_from']})"
                                               if run["resumed_from"] else ""))
        return run

    def kept_model_dir(self):
        """The kept run's saved model (for a session that read the run back instead of training it)."""
        return self.store.model_dir(self.kept)
