"""Survive a disconnect: where checkpoints live, and resuming training exactly where it stopped.

A free Colab runtime disconnects after a while; everything on its disk goes with it. So:

* `setup(notebook, profile)`, called right after the imports, mounts Google Drive in Colab (`mount_drive`),
  picks the checkpoint folder (`checkpoint_root`: Drive when it is mounted) and prints whether it survives
  a disconnect (`describe`), in a framed notice when it does not;
* `plan(...)`, called once a checkpoint's size is known, checks that the checkpoints kept fit there, and
  when Drive is too full keeps them on the runtime's disk instead, saying so loudly; `require_space`
  checks a single big write the same way;
* `remove(path)` deletes; on Drive it empties each file first, because a file deleted through the mount
  goes to Drive's trash and keeps counting against the free 15 GB. Every deletion this module makes
  goes through it, and so does the Trainer's own rotation of checkpoints (`DriveFriendlyRotation`);
* `local_dir` is a folder on the runtime's own disk for big files that need not survive a disconnect
  (merged models), so that they never fill Drive;
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
import textwrap
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
RUNTIME_DISK = Path("/content")  # Colab's own disk: fast, and gone when the runtime disconnects
SET_ASIDE = ".previous-"  # claim() renames another run's folder to <name>.previous-<time>
GIB = 2**30
FILL_LIMIT = 0.95  # a write "fits" when it needs at most this share of the free space
_TRAINER_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _framed(lines: list[str]) -> str:
    """A block that stands out in a notebook's output, framed as runtime.banner frames its own."""
    wrapped = [part for line in lines
               for part in textwrap.wrap(line, 104, break_long_words=False, break_on_hyphens=False)]
    width = max(len(line) for line in wrapped) + 4
    return "\n".join(["=" * width, *[f"  {line}" for line in wrapped], "=" * width])


def _amount(n_bytes: float) -> str:
    if n_bytes >= GIB:
        return f"{n_bytes / GIB:.1f} GiB"
    if n_bytes >= 2**20:
        return f"{n_bytes / 2**20:.0f} MiB"
    return f"{n_bytes / 2**10:.0f} KiB"


def on_drive(path) -> bool:
    """True when `path` lies on the Google Drive mount (DRIVE_MOUNT)."""
    return Path(path).resolve().is_relative_to(DRIVE_MOUNT.resolve())


# ----------------------------------------------------------------------------- where
def _drive_wanted() -> bool:
    return runtime.in_colab() and os.environ.get(DRIVE_ENV, "").strip() != "0"


def mount_drive() -> bool:
    """In Colab, mount Google Drive (it asks for permission once); True when Drive is there.

    When the mount fails (permission refused, or the prompt missed: Colab gives up after about two
    minutes), a framed notice says that checkpoints now go to the runtime's disk, where a disconnect
    loses them, and how to retry. NB_DRIVE=0 keeps Drive out, quietly. Outside Colab this does
    nothing and returns False.
    """
    if not _drive_wanted():
        return False
    if DRIVE_HOME.is_dir():
        return True
    try:
        from google.colab import drive  # only exists in Colab

        drive.mount(str(DRIVE_MOUNT))
        problem = None if DRIVE_HOME.is_dir() else f"{DRIVE_HOME} is missing after mounting"
    except Exception as err:  # refused, timed out, no Drive: train anyway, but loudly
        problem = f"{type(err).__name__}: {err}"
    if problem is None:
        return True
    print(_framed([
        f"GOOGLE DRIVE IS NOT MOUNTED ({problem}).",
        "Checkpoints now go to this runtime's disk: they are LOST if the runtime disconnects,",
        "and training then starts again from step 0.",
        "To keep them: run this cell again and accept the Google Drive prompt (Colab waits about 2 minutes).",
        'To train without Drive on purpose, and silence this: set NB_DRIVE=0 (os.environ["NB_DRIVE"] = "0").',
    ]))
    return False


def _runtime_disk_root(notebook: str, profile: str) -> Path:
    """Checkpoints on the machine's own disk: outputs/<profile>/checkpoints/<notebook> in the checkout."""
    root = runtime.scratch_dir(profile) / "checkpoints" / notebook
    root.mkdir(parents=True, exist_ok=True)
    return root


def _chosen_root(notebook: str, profile: str) -> Path:
    chosen = os.environ.get(CHECKPOINT_ENV, "").strip()
    if chosen:
        root = Path(chosen).expanduser() / notebook / profile
    elif _drive_wanted() and DRIVE_HOME.is_dir():
        root = DRIVE_HOME / DRIVE_FOLDER / notebook / profile
    else:
        return _runtime_disk_root(notebook, profile)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _drive_missed(root) -> bool:
    """In Colab, checkpoints off Drive although nobody chose that (NB_DRIVE=0 or NB_CHECKPOINT_DIR)."""
    return _drive_wanted() and not os.environ.get(CHECKPOINT_ENV, "").strip() and not on_drive(root)


def checkpoint_root(notebook: str, profile: str) -> Path:
    """The folder for a notebook's checkpoints (created): NB_CHECKPOINT_DIR, else Drive, else outputs/.

    NB_CHECKPOINT_DIR=<dir> gives <dir>/<notebook>/<profile>. In Colab with Drive mounted (and
    NB_DRIVE not 0): MyDrive/finetune-on-a-budget/checkpoints/<notebook>/<profile>, so a new
    runtime finds them. Elsewhere: outputs/<profile>/checkpoints/<notebook> in the checkout,
    beside the notebook's other scratch files (git ignores outputs/). In Colab without Drive it
    prints a warning: those checkpoints do not survive a disconnect.
    """
    root = _chosen_root(notebook, profile)
    if _drive_missed(root):
        print(f"WARNING: checkpoints go to {root}, NOT to Google Drive: a runtime disconnect loses them. "
              "checkpoints.setup(NOTEBOOK, PROFILE) mounts Drive; NB_DRIVE=0 silences this.")
    return root


def describe(root) -> str:
    """Where checkpoints go and whether they survive a runtime disconnect: one line, or a framed notice
    in Colab when they are not on Drive although nobody chose that."""
    root = Path(root)
    if on_drive(root):
        return (f"Checkpoints go to {root} on Google Drive: they survive a runtime disconnect "
                f"({_amount(_free_bytes(root))} free on Drive; what is deleted there counts until its trash "
                "is emptied).")
    if not runtime.in_colab():
        return f"Checkpoints go to {root} on this machine's disk: they survive a kernel restart or a crash."
    if not _drive_missed(root):
        return (f"Checkpoints go to {root} on this runtime's disk, as NB_DRIVE=0 or NB_CHECKPOINT_DIR chose: "
                "they survive a kernel restart but NOT a runtime disconnect.")
    if DRIVE_HOME.is_dir():
        why, retry = ("Google Drive is mounted, but has no room for them (see the plan above).",
                      "To keep them: make room on Google Drive and run this cell again.")
    else:
        why, retry = ("Google Drive is not mounted.", "To keep them: run checkpoints.setup(NOTEBOOK, PROFILE) "
                                                      "again and accept the Google Drive prompt.")
    return _framed([
        "WARNING: checkpoints are NOT on Google Drive.",
        "They survive a kernel restart but NOT a runtime disconnect: training would start again from step 0.",
        f"They go to {root}, on this runtime's disk. {why}",
        retry,
        "To train on the runtime's disk on purpose, and silence this: set NB_DRIVE=0.",
    ])


def setup(notebook: str, profile: str) -> Path:
    """Mount Drive (in Colab), pick the checkpoint folder and print where it is; returns the folder.

    The one call a notebook makes right after its imports: Colab's permission prompt then comes while
    you are watching, not an hour into training when nobody answers it. The folder is checkpoint_root's;
    describe's line (or notice) says whether it survives a disconnect.
    """
    mount_drive()
    root = _chosen_root(notebook, profile)
    print(describe(root))
    return root


def local_dir(notebook: str, profile: str) -> Path:
    """A folder (created) on the runtime's own disk for big files that need not survive a disconnect.

    Merged models and exported full models are made again from the adapter in minutes, and at 2 to
    8 GB each they would fill free Drive's 15 GB: they go here. In Colab /content/outputs/<profile>/
    <notebook>-work, elsewhere outputs/<profile>/<notebook>-work in the checkout (never results/).
    """
    base = RUNTIME_DISK / "outputs" / profile if runtime.in_colab() else runtime.scratch_dir(profile)
    folder = base / f"{notebook}-work"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ----------------------------------------------------------------------------- room
class NotEnoughSpace(FriendlyError):
    """A big write would not fit where it goes; the message says what needs how much, what is free, the fix."""


def _existing(path) -> Path:
    where = Path(path).expanduser().absolute()
    while not where.exists():
        where = where.parent
    return where


def _free_bytes(path) -> int:
    """Free space where `path` is or will be (on Drive: the mount's, which is Drive's quota left)."""
    return shutil.disk_usage(_existing(path)).free


def _files_under(path: Path) -> list[Path]:
    """The regular files of a folder (all levels), or the file itself; no symbolic links."""
    if path.is_symlink() or not path.exists():
        return []
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return [path]


def _bytes_in(path) -> int:
    return sum(f.lstat().st_size for f in _files_under(Path(path)))


def _checkpoint_bytes(root: Path) -> int:
    """What the checkpoints under `root` hold (Trainer folders, LoopCheckpoint files): training rotates them
    out, so they are room for the new ones. Folders set aside by claim() do not count."""
    total = 0
    for f in _files_under(Path(root)):
        parts = f.relative_to(root).parts
        if any(SET_ASIDE in part for part in parts):
            continue
        if any(_TRAINER_CHECKPOINT.match(part) for part in parts[:-1]) or re.match(r"^step-\d+\.pt$", f.name):
            total += f.lstat().st_size
    return total


def _set_aside_on_drive() -> list[Path]:
    """Folders of other runs that claim() moved aside under Drive's checkpoint folder (they keep their bytes)."""
    top = DRIVE_HOME / DRIVE_FOLDER
    if not top.is_dir():
        return []
    found = [p for p in top.glob("*/*/**/*") if SET_ASIDE in p.name and p.is_dir()]
    return sorted(p for p in found if not any(SET_ASIDE in q.name for q in p.parents))  # outermost only


def _place(path) -> str:
    if on_drive(path):
        return "Google Drive"
    return "this runtime's disk" if runtime.in_colab() else "this disk"


def _advice(path) -> str:
    """How to make room where `path` is."""
    if not on_drive(path):
        return ("Free some space there, write elsewhere (NB_CHECKPOINT_DIR for checkpoints), or keep fewer "
                "checkpoints.")
    leftovers = "".join(f" checkpoints.remove({str(p)!r}) frees {_amount(_bytes_in(p))} (another run's, set aside);"
                        for p in _set_aside_on_drive())
    return ("To make room on Google Drive: delete what you no longer need there and empty its trash (drive.google.com"
            f" > Trash: deleted files count against the 15 GB until then);{leftovers} or keep fewer checkpoints; or "
            "set NB_DRIVE=0 to keep checkpoints on the runtime's disk (lost on a disconnect).")


def require_space(path, needed_gib: float, what: str, fix: str | None = None) -> float:
    """Check that `needed_gib` fits where `path` is (or will be) before a big write; returns the GiB free.

    Raises NotEnoughSpace, naming `what` needs how much, what is free where, and the fix (`fix`, or by
    default: on Drive, free space there and empty its trash, keep fewer checkpoints, or NB_DRIVE=0).
    A write fits when it takes at most 95 % of the free space: a disk filled to the last byte fails other writes.
    """
    free = _free_bytes(path) / GIB
    if needed_gib <= FILL_LIMIT * free:
        return free
    raise NotEnoughSpace(f"{what} needs about {needed_gib:.1f} GiB and {free:.1f} GiB is free at {_existing(path)} "
                         f"({_place(path)}). {fix or _advice(path)}")


def checkpoint_size_gib(model, optimizer_bytes_per_parameter: float = 8) -> float:
    """About how big one checkpoint of `model` is, in GiB: the weights saved plus the optimizer's state.

    A PEFT model's checkpoint holds its trainable parameters only; another model's holds all of them
    (the Trainer and LoopCheckpoint save the whole model). Adam and AdamW keep two fp32 moments for each
    trainable parameter: 8 bytes (8-bit Adam: about 2). BLOOM-560m fully fine-tuned: 2.2 GB of fp32 weights
    and 4.5 GB of Adam's moments, 6.3 GiB.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    saved = trainable if _is_peft(model) else list(model.parameters())
    weights = sum(p.numel() * p.element_size() for p in saved)
    return (weights + optimizer_bytes_per_parameter * sum(p.numel() for p in trainable)) / GIB


def plan(notebook: str, profile: str, checkpoint_gib: float, kept: int, *, extra_gib: float = 0.0) -> Path:
    """The checkpoint folder to train with, once a checkpoint's size is known; prints the plan in one line.

    `checkpoint_gib`: one checkpoint's size (checkpoint_size_gib(model) estimates it); `kept`: how many
    are kept (save_total_limit, LoopCheckpoint's keep); `extra_gib`: what else the folder will get (a
    saved model). At the worst moment it holds kept + 1 checkpoints, as the newest is written before
    the oldest goes. Checkpoints already there (to resume from) count as room: training rotates them out.

    It fits: checkpoint_root's folder. It does not, on Google Drive: a folder on the runtime's disk,
    with a framed notice (those are lost on a disconnect). It does not, elsewhere: NotEnoughSpace.
    """
    root = _chosen_root(notebook, profile)
    needed = (kept + 1) * checkpoint_gib + extra_gib
    what = f"{kept + 1} at once ({kept} kept + 1 being written) x {checkpoint_gib:.1f} GiB"
    if extra_gib:
        what += f" + {extra_gib:.1f} GiB of other files"

    def room(folder):  # free space (less the reserve) + the checkpoints already there, in GiB
        free, held = _free_bytes(folder) / GIB, _checkpoint_bytes(folder) / GIB
        words = f"{free:.1f} GiB free" + (f" + {held:.1f} GiB of checkpoints already there" if held >= 0.05 else "")
        return FILL_LIMIT * free + held, words

    available, words = room(root)
    line = f"Checkpoints: {what} = {needed:.1f} GiB on {_place(root)}, {words}"
    if needed <= available:
        print(f"{line}: fits.")
        return root
    if not on_drive(root):
        raise NotEnoughSpace(f"{line}: does NOT fit. {_advice(root)}")
    local = _runtime_disk_root(notebook, profile)
    local_available, local_words = room(local)
    if needed > local_available:
        raise NotEnoughSpace(f"{line}: does NOT fit, and the runtime's disk has {local_words}: not enough either. "
                             f"{_advice(root)}")
    held_on_drive = _checkpoint_bytes(root)
    print(_framed([
        f"{line}: does NOT fit.",
        "Keeping them on the runtime's disk instead, where they are LOST if the runtime disconnects (training "
        f"then starts again from step 0): {local}, {local_words}.",
        *([f"The {_amount(held_on_drive)} of checkpoints on Drive in {root} are not used: "
           f"checkpoints.remove({str(root)!r}) frees them."] if held_on_drive else []),
        _advice(root),
    ]))
    return local


# ----------------------------------------------------------------------------- deleting
def remove(path, *, say: bool | None = True) -> int:
    """Delete a file or folder; return the bytes it freed and, with `say`, print them (None: only on Drive).

    On Google Drive (under DRIVE_MOUNT) a deleted file goes to Drive's trash and keeps counting against
    the free 15 GB for 30 days, so every file is first emptied (truncated to 0 bytes) and what lands in
    the trash weighs nothing. A checkpoint's trainer_state.json is emptied first: a folder left
    half-emptied by a disconnect then no longer reads as a complete checkpoint. Elsewhere: a plain
    delete. A missing path frees nothing and says nothing.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return 0
    files = _files_under(path)
    size = sum(f.lstat().st_size for f in files)
    drive = on_drive(path)
    if drive:
        for f in sorted(files, key=lambda f: f.name != "trainer_state.json"):  # the completeness marker first
            try:
                os.truncate(f, 0)
            except OSError:  # (a read-only file: its bytes do go to the trash, but training goes on)
                pass
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    if say or (say is None and drive):
        where = " on Google Drive (emptied first: Drive's trash gets none of it)" if drive else ""
        left = " (some of it could not be deleted)" if os.path.lexists(path) else ""
        print(f"removed {path}: {_amount(size)} freed{where}{left}")
    return size


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
    Moving aside, rather than deleting, loses nothing if that run is wanted back; on Google Drive the
    note says how much of Drive the set-aside folder keeps and how to free it (plan and require_space
    list it in their advice too).
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
            folder.rename(aside)  # a rename: nothing is lost if that run is wanted back
            changed = "no identity recorded" if found is None else ", ".join(
                sorted(k for k in set(wanted) | set(found) if wanted.get(k) != found.get(k)))
            if on_drive(aside):  # its bytes still count against Drive's 15 GB: say how much, and how to free them
                keep = (f"it keeps {_amount(_bytes_in(aside))} of your Google Drive: "
                        f"checkpoints.remove({str(aside)!r}) frees them when you no longer need that run")
            else:
                keep = "delete that folder when you no longer need it"
            print(f"note: {folder} held checkpoints of a different run ({changed}); moved to {aside.name} "
                  f"so that this run starts fresh ({keep}).")
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
            remove(folder, say=None)


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
    fault (helpers.faults) for tests, and DriveFriendlyRotation (old checkpoints on Drive are emptied
    before the Trainer deletes them). Returns the Trainer's TrainOutput; its training_loss covers
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
    if not any(isinstance(cb, DriveFriendlyRotation) for cb in trainer.callback_handler.callbacks):
        trainer.add_callback(DriveFriendlyRotation())
    fault = faults.callback()
    if fault:
        trainer.add_callback(fault)
    try:
        return trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        if fault:
            trainer.remove_callback(fault)


# ----------------------------------------------------------------------------- the Trainer's rotation on Drive
def _rotate_checkpoints_through_remove(output_dir, save_total_limit=None, best_model_checkpoint=None,
                                       use_mtime=False, checkpoint_prefix="checkpoint"):
    """transformers' trainer_utils.rotate_checkpoints, deleting through remove() on Google Drive.

    The same rule: keep the newest checkpoint, the best one and save_total_limit in all, and delete the
    oldest others. Off Drive, transformers' own function runs, unchanged.
    """
    from transformers import trainer_utils

    if not on_drive(output_dir):
        return trainer_utils.rotate_checkpoints(output_dir, save_total_limit, best_model_checkpoint, use_mtime,
                                                checkpoint_prefix)
    if save_total_limit is None or save_total_limit <= 0:
        return None
    found = trainer_utils.sort_checkpoints(output_dir, checkpoint_prefix, use_mtime)  # oldest first
    if not found:
        return None
    protected = {found[-1]}  # the newest: where a resumed run starts
    if best_model_checkpoint is not None:
        protected.add(str(Path(best_model_checkpoint)))
    surplus = len(found) - max(save_total_limit, len(protected))
    for folder in [f for f in found if f not in protected][:max(surplus, 0)]:
        remove(folder, say=None)
    return None


class DriveFriendlyRotation(TrainerCallback):
    """Make the Trainer empty the old checkpoints it deletes on Google Drive (save_total_limit).

    The Trainer deletes checkpoints with shutil.rmtree, which through the Drive mount sends every
    gigabyte to Drive's trash, in two places (transformers 5.23):
    * after each save, in trainer_utils.rotate_checkpoints, which trainer.py calls by its module-level
      name once the new checkpoint is complete: creating this callback points that name at
      _rotate_checkpoints_through_remove (the same rule; transformers' own function off Drive);
    * at the end of train() with a best checkpoint and save_total_limit=1, every checkpoint but the
      best, right after the final log: `on_log` of that log removes them first, through remove().
    train_or_resume adds it; give it to a Trainer trained otherwise (callbacks=[DriveFriendlyRotation()]).
    """

    def __init__(self):
        import transformers.trainer

        if hasattr(transformers.trainer, "rotate_checkpoints"):
            transformers.trainer.rotate_checkpoints = _rotate_checkpoints_through_remove
        else:  # another transformers: its rotation stays as it is, and Drive's trash gets the bytes
            print("note: this transformers has no trainer.rotate_checkpoints; checkpoints the Trainer rotates out "
                  "on Google Drive go to Drive's trash whole.")

    def on_log(self, args, state, control, logs=None, **kwargs):
        final = logs is not None and "train_runtime" in logs  # train()'s last log, just before its clean-up
        if (final and args.should_save and state.best_model_checkpoint is not None and args.save_total_limit == 1
                and on_drive(args.output_dir)):
            best = Path(state.best_model_checkpoint).resolve()
            for _, folder in _checkpoint_steps(Path(args.output_dir)):
                if folder.resolve() != best:
                    remove(folder, say=None)


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
            remove(tmp, say=None)
            model.save_pretrained(tmp)
            remove(final, say=None)
            tmp.rename(final)
        record = json.loads(json.dumps(record, default=_json_default))
        _write_json_atomic(folder / "record.json",
                           {"name": name, "saved": time.strftime("%Y-%m-%d %H:%M:%S"), "record": record})
        remove(self.run_dir(name), say=None)  # checkpoints of a finished run are dead weight
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
    read, the previous one is used). `plan(...)` checks that they fit (free Google Drive has 15 GB);
    old checkpoints are deleted through `remove`, which on Drive empties them first.
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
            remove(old, say=None)
        return final

    def restore(self) -> dict | None:
        """Load the newest readable checkpoint; return its progress (with "step"), or None to start fresh.

        Also raises NB_FAULT's out-of-memory fault for the step about to start.
        """
        import torch

        if self.directory.is_dir():
            for cut_short in self.directory.glob(".step-*.pt.tmp"):  # a save that a disconnect interrupted
                remove(cut_short, say=None)
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
