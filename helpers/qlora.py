"""Notebook 02's own machinery: the memory anatomy of a 4-bit model, the faster recipe's estimate, and room checks.

The anatomy is arithmetic on the model's own tensors (tests/test_notebook02.py checks it against a real 4-bit
layer and the reference H200 figures of docs/sources.md 02):

    >>> rows, bits = anatomy(model)          # bytes by role and dtype; 4.127 bits per weight on a large layer
    >>> neox_arithmetic(quantised, other, trainable)["after k-bit preparation"]

and how well a model knows a quote (the `real` profile's measure of "completed better"):

    >>> continuation_score(model, tokenizer, "Ask not what your country", " can do for you; ...")
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path

GIB, MIB = 2**30, 2**20
NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)   # 4-bit code + 8-bit absmax per 64 + fp32 scale per 256 absmax


# ----------------------------------------------------------------------------- the anatomy
def quant_state_bytes(state):
    """Bytes of the constants that dequantise one 4-bit weight: absmax, nested statistics, code books."""
    import torch

    total = state.absmax.nbytes + state.code.nbytes
    if state.nested:
        total += state.state2.absmax.nbytes + state.state2.code.nbytes
        total += state.offset.nbytes if torch.is_tensor(state.offset) else 4
    return total


def anatomy(model):
    """Bytes held by the model, by role and dtype: a list of rows, plus the bits per quantised weight."""
    import bitsandbytes as bnb

    rows = {}

    def add(role, dtype, elements, nbytes):
        row = rows.setdefault((role, str(dtype).replace("torch.", "")), [0, 0])
        row[0] += elements
        row[1] += nbytes

    quantised = stored = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            weight, state = module.weight, module.weight.quant_state
            n = math.prod(state.shape)
            add("4-bit weights (packed, 2 per byte)", "nf4", n, weight.nbytes)
            add("4-bit constants (absmax, nested, code books)", "uint8 + fp32", 0, quant_state_bytes(state))
            quantised += n
            stored += weight.nbytes + quant_state_bytes(state)
    inputs = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    for name, p in model.named_parameters():
        if isinstance(p, bnb.nn.Params4bit):
            continue
        role = ("LoRA adapters" if "lora_" in name else "input embeddings" if p is inputs
                else "output head" if p is head else "layer norms" if "norm" in name else "biases")
        add(role, p.dtype, p.numel(), p.nbytes)
    for _, b in model.named_buffers():
        add("buffers (rotary tables)", b.dtype, b.numel(), b.nbytes)
    table = [dict(role=r, dtype=d, elements=e, bytes=b) for (r, d), (e, b) in rows.items()]
    return table, (8 * stored / quantised if quantised else None)


def show_anatomy(model, title):
    """The anatomy as a table in MiB (GiB for a big model), printed with its total; and the raw frame in bytes."""
    import pandas as pd

    table, bits = anatomy(model)
    frame = pd.DataFrame(table)
    unit, unit_name = (GIB, "GiB") if frame["bytes"].sum() > GIB else (MIB, "MiB")
    frame[unit_name] = frame["bytes"] / unit
    frame.attrs["bits"] = bits
    print(f"{title}: {frame['bytes'].sum() / unit:.3f} {unit_name} in all; {bits:.3f} bits per quantised weight")
    return frame.drop(columns="bytes").round(4), frame


def optimizer_state_bytes(optimizer):
    """Bytes of an optimizer's state tensors (bitsandbytes' paged ones included)."""
    import torch

    inner = getattr(optimizer, "optimizer", optimizer)   # the Trainer wraps it in accelerate's optimizer
    return sum(v.nbytes for state in inner.state.values() for v in state.values() if torch.is_tensor(v))


def neox_arithmetic(quantised, other, trainable, nf4_bits=NF4_BITS):
    """Bytes of a QLoRA GPT-NeoX from parameter counts: after the load (16-bit rest), after k-bit
    preparation (fp32 rest), LoRA weights (fp32) and 8-bit Adam state (two 1-byte moments + an fp32 scale
    per 256 values each)."""
    nf4 = quantised * nf4_bits / 8
    return {"after the 4-bit load": nf4 + 2 * other, "after k-bit preparation": nf4 + 4 * other,
            "LoRA weights (fp32)": 4 * trainable, "8-bit AdamW state": trainable * (2 + 2 * 4 / 256)}


# ----------------------------------------------------------------------------- the anatomy, drawn
COLOURS = {"4-bit weights + constants": "tab:blue", "embeddings + head": "tab:orange",
           "norms, biases, buffers": "tab:gray", "LoRA weights": "tab:green", "optimizer state": "tab:red"}


def stack_parts(raw, optimizer_bytes=0):
    """An anatomy frame (show_anatomy's raw one) in the five parts the figure stacks, in bytes."""
    parts = {"4-bit weights + constants": raw.loc[raw["role"].str.startswith("4-bit"), "bytes"].sum(),
             "embeddings + head": raw.loc[raw["role"].isin(["input embeddings", "output head"]), "bytes"].sum(),
             "norms, biases, buffers": raw.loc[raw["role"].isin(["layer norms", "biases", "buffers (rotary tables)"]),
                                               "bytes"].sum(),
             "LoRA weights": raw.loc[raw["role"] == "LoRA adapters", "bytes"].sum(),
             "optimizer state": optimizer_bytes}
    return {k: float(v) for k, v in parts.items()}


def neox_stacks(facts, arithmetic):
    """The same five parts for GPT-NeoX-20B from its parameter counts (helpers.estimate.model_facts) and
    neox_arithmetic: after the load, after k-bit preparation, and both recipes with their adapters."""
    other = facts.base_params - facts.quantized_params
    nf4 = facts.quantized_params * NF4_BITS / 8
    embeddings = facts.vocab * facts.hidden + facts.head_params       # input embeddings + head
    adapters = {"LoRA weights": arithmetic["LoRA weights (fp32)"], "optimizer state": arithmetic["8-bit AdamW state"]}

    def parts(embedding_bytes, rest_bytes, **more):
        return {"4-bit weights + constants": nf4, "embeddings + head": embedding_bytes * embeddings,
                "norms, biases, buffers": rest_bytes * (other - embeddings), **more}

    return {"after load": parts(2, 2), "after k-bit prep": parts(4, 4), "post's recipe": parts(4, 4, **adapters),
            "faster recipe": parts(2, 4, **adapters)}


def draw_stacks(ax, stacks, unit, unit_name, title):
    """One stacked bar per entry of `stacks` (parts in bytes), its total on top."""
    for i, parts in enumerate(stacks.values()):
        bottom = 0.0
        for part, value in parts.items():
            if value:
                ax.bar(i, value / unit, bottom=bottom, color=COLOURS[part], width=0.6,
                       label=part if part not in ax.get_legend_handles_labels()[1] else None)
                bottom += value / unit
        ax.text(i, bottom, f"{bottom:.3g}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(stacks)), list(stacks), rotation=15, ha="right", fontsize=8)
    ax.set_ylabel(unit_name)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)


# ----------------------------------------------------------------------------- the faster recipe's estimate
def sixteen_bit_saving_gib(kbit_estimate, model) -> float:
    """GiB the faster recipe saves over the k-bit prepared recipe of `kbit_estimate`: its 16-bit embeddings and
    head (2 bytes less a parameter) and, under 16-bit autocast, no 16-bit copy of the head. Nothing in fp32
    (CPU) compute."""
    from . import estimate

    inputs = kbit_estimate.inputs
    if inputs["precision"] == "fp32":
        return 0.0
    facts = estimate.model_facts(model, method=inputs["method"], lora_r=inputs["lora_r"],
                                 lora_targets=inputs["lora_targets"])
    return (2 * (facts.vocab * facts.hidden + facts.head_params) + 2 * facts.head_params) / GIB


def with_16bit_embeddings(kbit_estimate, model):
    """An estimate of a k-bit prepared recipe turned into one of the faster recipe's preparation (frozen
    embeddings and head kept in the compute dtype): the estimator models k-bit preparation only."""
    saving = sixteen_bit_saving_gib(kbit_estimate, model)
    return dataclasses.replace(kbit_estimate, peak_allocated_gib=kbit_estimate.peak_allocated_gib - saving,
                               peak_reserved_gib=kbit_estimate.peak_reserved_gib - saving,
                               peak_device_gib=kbit_estimate.peak_device_gib - saving,
                               notes=kbit_estimate.notes + [f"less {saving:.2f} GiB for 16-bit embeddings and head"])


# ----------------------------------------------------------------------------- a quote, remembered
def continuation_score(model, tokenizer, prompt: str, continuation: str, *, device="cpu", amp: dict | None = None):
    """How well `model` predicts `continuation` right after `prompt`, in one forward pass (teacher forcing): the
    log-likelihood of its tokens in nats (summed, and per token) and each token's rank among the vocabulary
    (0: the model's first choice, what greedy decoding would pick given the true text so far).

    `amp`: torch.autocast's keywords (the notebook's AMP), so that the score is computed as generation is."""
    import torch

    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = tokenizer(prompt + continuation)["input_ids"]
    if ids[:len(prompt_ids)] != prompt_ids or len(ids) == len(prompt_ids):
        raise ValueError(f"{continuation!r} does not tokenise as a continuation of {prompt!r}: start it with the "
                         "space (or punctuation) that follows the prompt")
    was_training = model.training
    model.eval()
    with torch.no_grad(), (torch.autocast(**amp) if amp else contextlib.nullcontext()):
        logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits
    model.train(was_training)
    # the logits at position i predict token i + 1: those from the prompt's last token on predict the continuation
    log_probs = torch.log_softmax(logits[0, len(prompt_ids) - 1:-1].float(), dim=-1)
    targets = torch.tensor(ids[len(prompt_ids):], device=log_probs.device)
    true = log_probs[torch.arange(len(targets), device=log_probs.device), targets]
    ranks = (log_probs > true[:, None]).sum(dim=-1)
    return dict(tokens=len(targets), log_likelihood=float(true.sum()), per_token=float(true.mean()),
                first_choices=int((ranks == 0).sum()), ranks=ranks.tolist())


def describe_score(score: dict) -> str:
    """One line of a continuation_score."""
    return (f"log-likelihood {score['log_likelihood']:.2f} nats ({score['per_token']:.2f} a token), "
            f"{score['first_choices']} of its {score['tokens']} tokens the model's first choice; ranks {score['ranks']}")


# ----------------------------------------------------------------------------- room and memory
def require_download_room(model_path, checkpoint_bytes: float) -> None:
    """Stop before a download that cannot fit the hub cache (nothing to check for a local folder or a model
    already cached)."""
    import huggingface_hub

    from . import checkpoints

    if Path(str(model_path)).is_dir() or huggingface_hub.try_to_load_from_cache(str(model_path), "config.json"):
        return
    checkpoints.require_space(huggingface_hub.constants.HF_HUB_CACHE, checkpoint_bytes / GIB,
                              f"Downloading {model_path}",
                              fix="Free disk space (or set HF_HOME to a bigger disk) and run this cell again.")


def allocated_gib():
    """What PyTorch's tensors hold on the GPU right now (None on a CPU)."""
    import torch

    return torch.cuda.memory_allocated() / GIB if torch.cuda.is_available() else None
