"""The first call of every notebook, and the profiles as small overrides of the visible recipe.

    >>> S = session.start("01_complaint_classification")   # profile, device, precision, folders, Drive
    >>> TRAINING = session.for_profile(RECIPE_TRAINING, S.profile, smoke=dict(learning_rate=1e-2))

`start` chooses the profile (NB_PROFILE, else `full` with a GPU and `smoke` without), prints the banner
(device, precision, versions), makes the output folder, and mounts Google Drive in Colab right away, while
you are watching (its permission prompt would otherwise come an hour into training), saying where checkpoints
go and whether they survive a disconnect.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import checkpoints, plots, runtime
from . import estimate as _estimate
from .errors import FriendlyError


@dataclass(frozen=True)
class Session:
    notebook: str
    profile: str              # smoke | real | bench | full
    device: str               # cuda | cpu
    precision: str            # bf16 on Ampere and newer, fp16 on a T4 or V100, fp32 on a CPU
    out: Path                 # figures and the measurement record
    work: Path                # models and scratch files (never results/)
    checkpoints: Path         # on Drive in Colab when mounted, else the runtime's disk
    source: str               # the line every figure carries: notebook, profile, GPU, date
    gpu: str | None           # the estimator's name of this GPU (helpers.gpus), None on a CPU

    @property
    def trainer_defaults(self) -> dict:
        """TrainingArguments keywords that follow the machine, not the recipe."""
        return dict(use_cpu=self.device == "cpu", dataloader_pin_memory=self.device == "cuda", report_to="none",
                    disable_tqdm=self.profile != "full")   # a progress bar in Colab, quiet logs elsewhere


def start(notebook: str) -> Session:
    """Profile, device and precision chosen and printed; folders made; Drive mounted in Colab (see the doc)."""
    profile = runtime.choose_profile()
    runtime.banner(notebook, profile)
    device = runtime.device()
    return Session(notebook=notebook, profile=profile, device=device,
                   precision=runtime.precision() if device == "cuda" else "fp32",
                   out=runtime.output_dir(profile), work=runtime.scratch_dir(profile),
                   checkpoints=checkpoints.setup(notebook, profile), source=plots.source_line(notebook, profile),
                   gpu=_estimate.gpu_key(runtime.gpu_info()["name"]) if device == "cuda" else None)


def for_profile(recipe: dict, profile: str, *, what: str = "", **overrides_by_profile) -> dict:
    """`recipe` with the keys that `profile` changes, printing each change (e.g. 'smoke: learning_rate 0.0003 ->
    0.01'; with `what`, 'smoke, post's recipe: ...', where a notebook has several recipes).

    Name the overrides of every profile that changes something (a profile left out changes nothing); an override
    of a key the recipe does not have is a typo, and stops with the keys it does have. `<profile>_on_gpu` (e.g.
    `real_on_gpu`) changes a few keys more when the session trains on a GPU: a larger run where it is cheap, said
    in one place instead of a device test in every key.
    """
    known = set(runtime.PROFILES) | {f"{name}_on_gpu" for name in runtime.PROFILES}
    unknown_profiles = set(overrides_by_profile) - known
    if unknown_profiles:
        raise FriendlyError(f"for_profile: {sorted(unknown_profiles)} are not profiles; use "
                            f"{', '.join(runtime.PROFILES)} (or one of them followed by _on_gpu).")
    for name, changes in overrides_by_profile.items():   # every profile's, so a typo shows on any machine
        typos = [key for key in changes if key not in recipe]
        if typos:
            raise FriendlyError(f"the {name} overrides {typos}, which the recipe does not have. The recipe's keys: "
                                f"{', '.join(recipe)}.")
    chosen = runtime.choose_profile_from(profile)
    steps = [(profile, overrides_by_profile.get(chosen, {}))]
    if runtime.device() == "cuda":
        steps.append((f"{profile} on a GPU", overrides_by_profile.get(f"{chosen}_on_gpu", {})))
    result = dict(recipe)
    for label, changes in steps:
        for key, value in changes.items():
            if result[key] != value:
                print(f"{label}{', ' + what if what else ''}: {key} {result[key]!r} -> {value!r}")
        result.update(changes)
    return result
