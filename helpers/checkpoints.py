"""Survive a disconnect: where checkpoints live, and resuming training exactly where it stopped.

A free Colab runtime disconnects after a while; everything on its disk goes with it. So:

* `checkpoint_root` puts checkpoints on Google Drive when it is mounted (`mount_drive`), and
  `describe` says in one line whether they will survive a disconnect;
* `train_or_resume(trainer)` resumes a `Trainer` from the last *complete* checkpoint in its
  output_dir, and the resumed run ends with the very weights an uninterrupted run would have;
* `RunStore` lets a notebook that trains several runs in a row skip those that finished;
* `LoopCheckpoint` does the same for a hand-written training loop.

A disconnect in the middle of a save never leaves a corrupt "latest" checkpoint: a Trainer
checkpoint counts only once its trainer_state.json (written last) reads back, and what this module
writes itself goes to a temporary name first and is renamed when complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import time
from pathlib import Path

from transformers import TrainerCallback

from . import faults, runtime
from .errors import FriendlyError

CHECKPOINT_ENV = "NB_CHECKPOINT_DIR"
DRIVE_ENV = "NB_DRIVE"
DRIVE_MOUNT = Path("/content/drive")
DRIVE_HOME = DRIVE_MOUNT / "MyDrive"
DRIVE_FOLDER = "finetune-on-a-budget/checkpoints"
_TRAINER_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


# ----------------------------------------------------------------------------- where
def _drive_wanted() -> bool:
    return runtime.in_colab() and os.environ.get(DRIVE_ENV, "").strip() != "0"


def mount_drive() -> bool:
    """In Colab, mount Google Drive (it asks for permission once); True when Drive is there.

    NB_DRIVE=0 keeps Drive out (checkpoints then stay on the runtime's disk). Outside Colab this
    does nothing and returns False.
    """
    if not _drive_wanted():
        return False
    if DRIVE_HOME.is_dir():
        return True
    try:
        from google.colab import drive  # only exists in Colab

        drive.mount(str(DRIVE_MOUNT))
    except Exception as err:  # refused permission, no Drive: train anyway, but say what it means
        print(f"Google Drive not mounted ({err}); checkpoints stay on this runtime's disk and are lost "
              "if it disconnects.")
        return False
    return DRIVE_HOME.is_dir()


def checkpoint_root(notebook: str, profile: str) -> Path:
    """The folder for a notebook's checkpoints (created): NB_CHECKPOINT_DIR, else Drive, else outputs/.

    NB_CHECKPOINT_DIR=<dir> gives <dir>/<notebook>/<profile>. In Colab with Drive mounted (and
    NB_DRIVE not 0): MyDrive/finetune-on-a-budget/checkpoints/<notebook>/<profile>, so a new
    runtime finds them. Elsewhere: outputs/<profile>/checkpoints/<notebook> in the checkout,
    beside the notebook's other scratch files (git ignores outputs/).
    """
    chosen = os.environ.get(CHECKPOINT_ENV, "").strip()
    if chosen:
        root = Path(chosen).expanduser() / notebook / profile
    elif _drive_wanted() and DRIVE_HOME.is_dir():
        root = DRIVE_HOME / DRIVE_FOLDER / notebook / profile
    else:
        root = runtime.scratch_dir(profile) / "checkpoints" / notebook
    root.mkdir(parents=True, exist_ok=True)
    return root


def describe(root) -> str:
    """One line: where checkpoints go and whether they survive a runtime disconnect."""
    root = Path(root)
    if root.resolve().is_relative_to(DRIVE_MOUNT):
        return f"Checkpoints go to {root} on Google Drive: they survive a runtime disconnect."
    if runtime.in_colab():
        return (f"Checkpoints go to {root} on this runtime's disk: they survive a kernel restart but NOT a "
                "runtime disconnect. Run checkpoints.mount_drive() first (and leave NB_DRIVE unset) to keep them.")
    return f"Checkpoints go to {root} on this machine's disk: they survive a kernel restart or a crash."


# ----------------------------------------------------------------------------- whose checkpoints
IDENTITY_FILE = "run-identity.json"


def run_identity(**parts) -> dict:
    """What decides a run's result (settings, data, model), as JSON values, to tell its checkpoints apart.

    A part that names an existing file counts by its content (a hash), so an edited data file is a
    different run even under the same name.
    """
    def one(value):
        if isinstance(value, (str, Path)) and str(value) and Path(str(value)).expanduser().is_file():
            content = hashlib.sha1(Path(str(value)).expanduser().read_bytes()).hexdigest()[:16]
            return {"file": str(value), "sha1": content}
        return value

    from . import data

    # the variables that choose the data and its columns decide the run too
    chosen = {name: os.environ[name] for name in (data.DATA_ENV, data.TEXT_COLUMN_ENV, data.LABEL_COLUMN_ENV,
                                                  data.TEXT2_COLUMN_ENV) if os.environ.get(name, "").strip()}
    parts = {**parts, "data_variables": chosen}
    return json.loads(json.dumps({k: one(v) for k, v in parts.items()}, sort_keys=True, default=str))


def claim(folder, identity: dict | None) -> Path:
    """Make `folder` the checkpoint folder of the run `identity` describes (see run_identity).

    Checkpoints left there by a run with other settings, data or model would resume the wrong
    training (or reuse its results): such a folder is moved aside, with a note saying what changed,
    and the run starts fresh. A folder from before identities were recorded counts as different.
    """
    folder = Path(folder)
    if identity is None:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    wanted = json.loads(json.dumps(identity, sort_keys=True, default=str))
    if folder.is_dir() and any(folder.iterdir()):
        try:
            found = json.loads((folder / IDENTITY_FILE).read_text())
        except (OSError, ValueError):
            found = None
        if found != wanted:
            aside = folder.with_name(f"{folder.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
            folder.rename(aside)
            changed = "no identity recorded" if found is None else ", ".join(
                sorted(k for k in set(wanted) | set(found) if wanted.get(k) != found.get(k)))
            print(f"note: {folder} held checkpoints of a different run ({changed}); moved to {aside.name} "
                  "so that this run starts fresh (delete that folder when you no longer need it).")
    folder.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(folder / IDENTITY_FILE, wanted)
    return folder


# ----------------------------------------------------------------------------- the Trainer
def _is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def _checkpoint_steps(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint-N folder, newest first."""
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir()
             if p.is_dir() and (m := _TRAINER_CHECKPOINT.match(p.name))]
    return sorted(found, reverse=True)


def _trainer_state(folder: Path) -> dict | None:
    """The checkpoint's trainer_state.json, or None when missing or cut short.

    The Trainer writes it after the weights, optimizer, scheduler and RNG states
    (transformers/trainer.py, _save_checkpoint), so a readable one means a complete checkpoint.
    """
    try:
        return json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None


def last_checkpoint(run_dir) -> str | None:
    """The newest complete checkpoint-N folder in `run_dir`, None when there is none (or no folder).

    A disconnect can happen in the middle of a save: a folder without a readable
    trainer_state.json for its own step is skipped.
    """
    for step, folder in _checkpoint_steps(Path(run_dir)):
        state = _trainer_state(folder)
        if state is not None and state.get("global_step") == step:
            return str(folder)
    return None


def resume_step(run_dir, identity: dict | None = None) -> int | None:
    """The step a Trainer run in `run_dir` will resume from (None: a fresh start).

    With `identity` (run_identity), checkpoints of another run are first moved aside (see claim), so
    they are never resumed.
    """
    if identity is not None:
        claim(run_dir, identity)
    start = last_checkpoint(run_dir)
    return int(start.rsplit("-", 1)[1]) if start else None


def _remove_incomplete(run_dir: Path, resume_step: int) -> None:
    """Delete half-written checkpoints newer than the one we resume from (the run writes them again)."""
    for step, folder in _checkpoint_steps(run_dir):
        if step > resume_step:
            print(f"removing {folder.name}: half-written when the run stopped")
            shutil.rmtree(folder, ignore_errors=True)


def _length_grouping_seeded_by_epoch(trainer) -> None:
    """Make `train_sampling_strategy="group_by_length"` give each epoch an order fixed by (seed, epoch).

    transformers' LengthGroupedSampler draws its permutation from the global RNG when an epoch
    starts (trainer_pt_utils.py, get_length_grouped_indices). A resumed run restores the RNG only
    after that draw, so from the second epoch on a resumed run would see the data in another
    order. Seeding the sampler by epoch, as accelerate already does for the plain random sampler,
    makes the order the same whether a run was interrupted or not.
    """
    if getattr(trainer, "_epoch_seeded_sampler", False):
        return
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
        def __init__(self, batch_size, lengths, seed):
            super().__init__(batch_size, lengths=lengths)
            self.seed, self.epoch = seed, 0

        def set_epoch(self, epoch):  # the Trainer calls it before each epoch, through accelerate
            self.epoch = epoch

        def __iter__(self):
            import torch

            self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
            return super().__iter__()

    seed = trainer.args.data_seed if trainer.args.data_seed is not None else trainer.args.seed
    original = trainer._get_train_sampler

    def train_sampler(*args, **kwargs):
        sampler = original(*args, **kwargs)
        if type(sampler) is LengthGroupedSampler:
            return EpochSeededLengthGroupedSampler(sampler.batch_size, sampler.lengths, seed)
        return sampler

    trainer._get_train_sampler = train_sampler
    trainer._epoch_seeded_sampler = True


TRAINABLE_FILE = "trainable_parameters.safetensors"


def _trainable_parameters_kept_exactly(trainer) -> None:
    """Save a PEFT model's trainable parameters in each checkpoint as they are, and restore them so.

    What peft saves is made for inference, and two things in it break resuming:
    * P-tuning: peft saves the prompt encoder's *output* (peft/tuners/tuners_utils.py,
      _get_adapter_state_dict: "prompt_embeddings") and loads it into the encoder's input
      embedding, while the encoder's MLP is not saved; a resumed run trains another model.
    * TRL trains the adapters of a quantised model in bf16 (trl/trainer/sft_trainer.py); the Trainer
      reloads them with peft's load_adapter, whose autocast_adapter_dtype=True makes them fp32
      (transformers/trainer.py, _load_from_checkpoint): the run would go on in another precision.
    So each checkpoint also gets TRAINABLE_FILE, written with the model files (before
    trainer_state.json, which marks a checkpoint complete), and it is loaded over what peft loaded.
    """
    if getattr(trainer, "_trainable_kept_exactly", False) or not _is_peft(trainer.model):
        return
    if getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False):
        return  # sharded parameters: those engines save and load them themselves
    from safetensors.torch import load_file, save_file

    save_model, load_from_checkpoint = trainer.save_model, trainer._load_from_checkpoint

    def save_model_and_trainable(output_dir=None, _internal_call=False):
        save_model(output_dir, _internal_call)
        if _internal_call and output_dir and trainer.args.should_save:  # a checkpoint, not a final save
            state = {n: p.detach().to("cpu", copy=True) for n, p in trainer.model.named_parameters() if p.requires_grad}
            save_file(state, os.path.join(output_dir, TRAINABLE_FILE))

    def load_and_restore_trainable(resume_from_checkpoint, *args, **kwargs):
        load_from_checkpoint(resume_from_checkpoint, *args, **kwargs)
        path = Path(resume_from_checkpoint) / TRAINABLE_FILE
        if not path.exists():
            print(f"note: {path.name} is missing (a checkpoint not written by train_or_resume): the resumed "
                  "adapter is what peft reloads, which may differ slightly from the one that was training.")
            return
        state = load_file(str(path))
        for name, p in trainer.model.named_parameters():
            if name in state:
                p.data = state[name].to(p.device)  # its saved dtype too

    trainer.save_model = save_model_and_trainable
    trainer._load_from_checkpoint = load_and_restore_trainable
    trainer._trainable_kept_exactly = True


def train_or_resume(trainer):
    """`trainer.train()`, resumed from the last complete checkpoint in `trainer.args.output_dir`.

    Prints where it starts. The resumed run's weights equal an uninterrupted run's (checked on
    CPU by tests/test_checkpoints.py) when the notebook builds model and Trainer the same way
    each time (same seed) and its data collator draws no random numbers. Also adds NB_FAULT's
    fault (helpers.faults) for tests. Returns the Trainer's TrainOutput; its training_loss covers
    the steps of this call only.
    """
    run_dir = Path(trainer.args.output_dir)
    checkpoint = last_checkpoint(run_dir)
    if checkpoint:
        state = _trainer_state(Path(checkpoint))
        step, total = state["global_step"], state.get("max_steps")
        _remove_incomplete(run_dir, step)
        done = " (already finished)" if step == total else ""
        print(f"resuming from step {step} of {total}{done}: {checkpoint}")
    else:
        _remove_incomplete(run_dir, -1)
        print(f"no checkpoint: starting at step 0 (checkpoints go to {run_dir})")
    if trainer.args.save_strategy == "no":
        print("note: save_strategy='no' writes no checkpoints, so this run cannot resume after a disconnect.")
    _length_grouping_seeded_by_epoch(trainer)
    _trainable_parameters_kept_exactly(trainer)
    fault = faults.callback()
    if fault:
        trainer.add_callback(fault)
    try:
        return trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        if fault:
            trainer.remove_callback(fault)


# ----------------------------------------------------------------------------- several runs
def _json_default(value):
    if hasattr(value, "tolist"):  # numpy and torch values, scalars and arrays
        return value.tolist()
    return str(value)


def _write_json_atomic(path: Path, payload) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=_json_default))
    os.replace(tmp, path)


class RunStore:
    """Finished runs of a notebook that trains several in a row, so a restart skips them.

        store = RunStore(checkpoint_root(NOTEBOOK, PROFILE) / "runs", identity=run_identity(...))
        for name in RUNS:
            if (record := store.finished(name)) is None:      # says so when it skips a run
                ...train with output_dir=store.run_dir(name) and train_or_resume...
                record = store.save(name, {...figures...}, model=model)

    A run's folder holds record.json (written last: a run counts as finished only then), the
    saved model or adapter (model/), and while it trains, its checkpoints (trainer/), which
    `save` deletes once the record is safe.
    """

    def __init__(self, root, identity: dict | None = None):
        """`identity` (run_identity): runs stored under other settings or data are not reused (see claim)."""
        self.root = claim(root, identity)

    def folder(self, name: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "run"
        return self.root / f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"

    def run_dir(self, name: str) -> Path:
        """Where the run's checkpoints go while it trains (a Trainer's output_dir, a LoopCheckpoint)."""
        return self.folder(name) / "trainer"

    def model_dir(self, name: str) -> Path | None:
        """The model or adapter saved with the finished run, if one was."""
        path = self.folder(name) / "model"
        return path if path.is_dir() else None

    def finished(self, name: str) -> dict | None:
        """The record of `name` if it finished before (printing that it is skipped), else None."""
        try:
            saved = json.loads((self.folder(name) / "record.json").read_text())
        except (OSError, ValueError):
            return None
        print(f"{name}: finished before ({saved['saved']}), skipped; record in {self.folder(name)}")
        return saved["record"]

    def save(self, name: str, record: dict, model=None) -> dict:
        """Mark `name` finished with its `record` (JSON-able figures); `model` (optional) is saved too.

        `model` is anything with save_pretrained: a PeftModel saves its adapter only. Returns the
        record as `finished` will return it after a restart (JSON types: lists, not arrays), so the
        rest of the notebook sees the same thing either way.
        """
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        if model is not None:
            tmp, final = folder / ".model.tmp", folder / "model"
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(tmp)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        record = json.loads(json.dumps(record, default=_json_default))
        _write_json_atomic(folder / "record.json",
                           {"name": name, "saved": time.strftime("%Y-%m-%d %H:%M:%S"), "record": record})
        shutil.rmtree(self.run_dir(name), ignore_errors=True)  # checkpoints of a finished run are dead weight
        return record


# ----------------------------------------------------------------------------- a hand-written loop
def _rng_states() -> dict:
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"python": random.getstate(), "numpy": (kind, keys.tolist(), pos, has_gauss, cached),
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng(states: dict) -> None:
    import numpy as np
    import torch

    random.setstate(states["python"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def _check_plain(value, where="progress"):
    """Progress must load back without pickle's arbitrary objects (torch.load(weights_only=True))."""
    import torch

    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_plain(item, f"{where}[{key!r}]")
    else:
        raise FriendlyError(f"LoopCheckpoint cannot keep {where} of type {type(value).__name__}: keep numbers, "
                            "strings, lists, dicts and tensors in the progress (e.g. float(x) for a numpy value).")


class LoopCheckpoint:
    """Checkpoints for a hand-written training loop, so a resumed loop ends with identical weights.

    Every `every` optimizer steps `after_step` saves the model (only the trainable parameters of a
    PEFT model: the frozen base never changes; the full state_dict otherwise), the optimizer, the
    LR scheduler and gradient scaler if given, the RNG states (python, numpy, torch, CUDA) and a
    `progress` dict of your own (epoch, batch index, history...). `restore` loads the newest one.

    The data order must not depend on where the loop started: give the DataLoader a generator and
    re-seed it at each epoch (`generator.manual_seed(SEED + epoch)`), then skip the batches that
    the saved progress says are done. Call `after_step` after everything a step does (evaluation,
    logging), so that the saved progress includes it.

    Size: a full model's checkpoint holds its weights and the optimizer state (AdamW: 3x the fp32
    weights, about 6.6 GB for BLOOM-560m), and `keep` of them are kept (2: if the newest cannot be
    read, the previous one is used). Mind Google Drive's free 15 GB.
    """

    def __init__(self, directory, every: int, *, model, optimizer, scheduler=None, scaler=None, keep: int = 2):
        if int(every) != every or every < 1:
            raise FriendlyError(f"LoopCheckpoint(every={every!r}): save every how many optimizer steps? "
                                "Give a whole number >= 1.")
        self.directory = Path(directory)
        self.every, self.keep = int(every), int(keep)
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.resumed_from = 0

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("step-*.pt"), reverse=True) if self.directory.is_dir() else []

    def save(self, step: int, **progress) -> Path:
        """Write the checkpoint of `step` (atomically) and keep only the newest `keep`."""
        import torch

        _check_plain(progress)
        if _is_peft(self.model):
            kind = "trainable"
            weights = {n: p.detach().cpu() for n, p in self.model.named_parameters() if p.requires_grad}
        else:
            kind = "full"
            weights = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        payload = {
            "step": int(step), "model_kind": kind, "model": weights,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": _rng_states(), "progress": progress,
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"step-{int(step):08d}.pt"
        tmp = self.directory / f".{final.name}.tmp"
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)  # the new checkpoint appears whole, or not at all
        for old in self._files()[self.keep:]:
            old.unlink(missing_ok=True)
        return final

    def restore(self) -> dict | None:
        """Load the newest readable checkpoint; return its progress (with "step"), or None to start fresh.

        Also raises NB_FAULT's out-of-memory fault for the step about to start.
        """
        import torch

        payload = None
        for path in self._files():
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
                break
            except Exception as err:  # cut short by a disconnect or a sync: fall back to the previous one
                print(f"skipping {path.name}: unreadable ({type(err).__name__})")
        if payload is None:
            print(f"no checkpoint: starting at step 0 (checkpoints go to {self.directory})")
            self.resumed_from = 0
            faults.before_step(1)
            return None
        self._load_model(payload)
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None and payload["scheduler"] is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        if self.scaler is not None and payload["scaler"] is not None:
            self.scaler.load_state_dict(payload["scaler"])
        _restore_rng(payload["rng"])
        self.resumed_from = payload["step"]
        print(f"resuming from step {payload['step']}: {self.directory}")
        faults.before_step(self.resumed_from + 1, self.resumed_from)
        return {"step": payload["step"], **payload["progress"]}

    def _load_model(self, payload) -> None:
        weights = payload["model"]
        if payload["model_kind"] == "full":
            self.model.load_state_dict(weights)
            return
        expected = {n for n, p in self.model.named_parameters() if p.requires_grad}
        if set(weights) != expected:
            raise FriendlyError(
                f"The checkpoint in {self.directory} holds other trainable parameters than this model "
                f"({len(set(weights) ^ expected)} names differ): it belongs to another recipe. "
                "Delete the folder to start over.")
        self.model.load_state_dict(weights, strict=False)

    def after_step(self, step: int, **progress) -> bool:
        """Call after optimizer step `step` (from 1): saves every `every` steps; True when it saved.

        NB_FAULT's faults fire here: a simulated disconnect right after a save, an out-of-memory
        error before the next step.
        """
        saved = step % self.every == 0
        if saved:
            self.save(step, **progress)
        faults.after_step(step, saved, self.resumed_from)
        faults.before_step(step + 1, self.resumed_from)
        return saved


def fingerprint(model, trainable_only: bool = True) -> str:
    """A short hash of a model's (trainable) weights: equal hashes mean bit-identical weights.

    Notebooks put it in their records, so that a test can check that a resumed run ended exactly where an
    uninterrupted one did without keeping both models around.
    """
    import hashlib

    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        if trainable_only and not param.requires_grad:
            continue
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class SaveTimer(TrainerCallback):
    """Seconds the Trainer spends writing checkpoints (`seconds`), to keep them out of training speed.

    The Trainer has no "saving begins" event; the flow callback has already set `control.should_save`
    at the end of the step that is about to be saved, and `on_save` comes when it is written.
    """

    def __init__(self):
        self.seconds, self._started = 0.0, None

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            self._started = time.perf_counter()

    def on_evaluate(self, args, state, control, **kwargs):
        if self._started is not None:          # an evaluation runs between the step and the save
            self._started = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None
