"""One measured Trainer run: the call every notebook trains through, so the plumbing is written once.

    >>> run = training.measured(trainer, recipe, name="LoRA r=16", identity=IDENTITY)
    >>> run.figures()          # the columns of the run's measurement record

`measured` does, around `trainer.train()`:
* resume: the last complete checkpoint of this run in `args.output_dir` (helpers.checkpoints.train_or_resume);
  with `identity`, checkpoints of other settings, data or models are moved aside first, never resumed;
* room: checks that the checkpoints it will keep (and the one being written) fit on their disk;
* measurement: a memory callback (peaks per optimizer step, evaluations left out) and a checkpoint timer, so
  that training speed counts neither evaluating nor writing checkpoints;
* out-of-memory advice: a GPU out-of-memory error becomes the recipe's estimate and the fixes that fit;
* the trained weights' fingerprint (equal hashes: bit-identical trainable weights);
* on a GPU, the whole run's time estimated before it trains (helpers.wholerun), printed, and written into the
  record beside the measured time (estimated_wall_s, estimated_wall_range_s, wall_error).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import checkpoints, memory, wholerun


@dataclass
class MeasuredRun:
    """What one call of `measured` trained and measured (this call's steps only, when it resumed)."""

    name: str
    trainer: object
    output: object                 # the Trainer's TrainOutput
    resumed_from: int | None       # the step it resumed from; None: a fresh run
    tracker: memory.MemoryTracker
    train_s: float                 # training only: evaluations and checkpoint writes left out
    eval_s: float
    checkpoint_s: float
    steps: int                     # optimizer steps of the whole run
    samples: float                 # samples trained by this call (about, when resumed)
    weights_fingerprint: str
    plan: wholerun.WholeRun | None = None   # the whole-run estimate made before training (GPU runs)
    plan_problem: str | None = None         # why there is none, where making it failed

    @property
    def steps_this_call(self) -> int:
        return self.steps - (self.resumed_from or 0)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_s

    @property
    def log(self) -> list:
        return self.trainer.state.log_history

    def figures(self) -> dict:
        """The record's columns: steps, time, speed, memory peaks, resume and fingerprint."""
        return dict(optimizer_steps=self.steps, resumed_from=self.resumed_from, train_s=round(self.train_s, 2),
                    samples=round(self.samples, 1), samples_per_s=round(self.samples_per_s, 2),
                    step_time_s=round(self.train_s / max(self.steps_this_call, 1), 4),
                    checkpoint_s=round(self.checkpoint_s, 2), eval_s=round(self.eval_s, 2),
                    weights_fingerprint=self.weights_fingerprint, **self.tracker.summary(), **self.whole_run())

    @property
    def wall_s(self) -> float:
        """The whole training call: steps, evaluations and checkpoint writes (what the whole-run estimate is of)."""
        return self.output.metrics["train_runtime"]

    def whole_run(self) -> dict:
        """The estimate made before training beside the measured whole run (empty on a CPU)."""
        if self.plan is None:
            return {"whole_run_estimate_problem": self.plan_problem} if self.plan_problem else {}
        return self.plan.as_dict() | {"measured_wall_s": round(self.wall_s, 2),
                                      "wall_error": round(wholerun.error(self.plan, self.wall_s), 4)}


def _attached(trainer, kind):
    return next((cb for cb in trainer.callback_handler.callbacks if isinstance(cb, kind)), None)


def measured(trainer, recipe, *, name: str, identity: dict | None = None, kept: int | None = None,
             samples: float | None = None) -> MeasuredRun:
    """Train (or resume) `trainer` and measure it; see the module doc.

    recipe: the helpers.recipe.Recipe this run trains (for the out-of-memory advice). identity: what makes this
    run this run (helpers.checkpoints.run_identity of its settings, data and model); None when the caller has
    already claimed the folder. kept: checkpoints the Trainer keeps (default: args.save_total_limit).
    samples: samples a fresh run trains (default: optimizer steps x the effective batch).
    """
    import transformers

    args = trainer.args
    memory_callback = _attached(trainer, memory.MemoryCallback)
    if memory_callback is None:
        memory_callback = memory.MemoryCallback(name)
        trainer.add_callback(memory_callback)
    save_timer = _attached(trainer, checkpoints.SaveTimer)
    if save_timer is None:
        save_timer = checkpoints.SaveTimer()      # seconds spent writing checkpoints: kept out of training speed
        trainer.add_callback(save_timer)
    trainer.remove_callback(transformers.PrinterCallback)    # the log stays in trainer.state.log_history

    resumed_from = checkpoints.resume_step(args.output_dir, identity=identity)
    if args.save_strategy != "no":
        kept = kept if kept is not None else (args.save_total_limit or 1)
        checkpoints.require_space(args.output_dir, (kept + 1) * checkpoints.checkpoint_size_gib(trainer.model),
                                  f"the Trainer's checkpoints ({kept} kept + 1 being written)")
    plan, plan_problem = None, None
    if resumed_from is None:             # a resumed run trains only what is left: no whole-run estimate
        try:
            plan = wholerun.from_trainer(trainer, recipe)
        except Exception as problem:     # an estimate must not stop a training run; the record says why
            plan_problem = f"{type(problem).__name__}: {problem}"
            print(f"{name}: no whole-run estimate ({plan_problem})")
    if plan is not None:
        print(f"{name}, estimated before training: {plan}")
    with recipe.advice():
        output = checkpoints.train_or_resume(trainer)
    wholerun.finished_a_run()
    if memory_callback.tracker.on_gpu:
        import torch

        torch.cuda.synchronize()
    steps = trainer.state.global_step
    logs = trainer.state.log_history
    eval_s = sum(log["eval_runtime"] for log in logs if "eval_runtime" in log and log["step"] > (resumed_from or 0))
    train_s = max(output.metrics["train_runtime"] - eval_s - save_timer.seconds, 1e-9)
    trained_steps = steps - (resumed_from or 0)
    if samples is None or resumed_from is not None:
        samples = trained_steps * args.per_device_train_batch_size * args.gradient_accumulation_steps
    run = MeasuredRun(name=name, trainer=trainer, output=output, resumed_from=resumed_from,
                      tracker=memory_callback.tracker, train_s=train_s, eval_s=eval_s,
                      checkpoint_s=save_timer.seconds, steps=steps, samples=samples,
                      weights_fingerprint=checkpoints.fingerprint(trainer.model), plan=plan,
                      plan_problem=plan_problem)
    if resumed_from is not None:
        print(f"{name}: resumed at step {resumed_from}; time, speed and memory cover steps {resumed_from + 1} to "
              f"{steps} only (the record says so in resumed_from)")
    print(f"{name}: {steps} optimizer steps in {output.metrics['train_runtime']:.1f} s ({eval_s:.1f} s of it "
          f"evaluating, {save_timer.seconds:.1f} s writing checkpoints); {run.samples_per_s:.1f} training samples/s; "
          f"weights {run.weights_fingerprint}")
    if plan is not None:
        print(f"{name}: whole run {run.wall_s:.1f} s measured, {plan.estimate_s:.1f} s estimated before training "
              f"({100 * wholerun.error(plan, run.wall_s):+.0f} %)")
    note = memory.fragmentation_note(run.tracker.summary())
    if note:
        print(f"{name}: {note}")
    return run
