"""Will it fit, how long will a step take: memory and time before training.

    >>> from helpers import estimate
    >>> e = estimate.estimate("EleutherAI/gpt-neox-20b", method="qlora", lora_r=8,
    ...                       lora_targets=["query_key_value"], optimizer="paged_adamw_8bit",
    ...                       precision="fp16", gradient_checkpointing=True, seq_len=64, gpu="T4")
    >>> print(e.table())
    >>> print(estimate.verdict(e))     # tight: may not fit a T4: 14.1 of 14.56 GiB, only 0.4 GiB (3 %) ...
    >>> print(estimate.run_time(e, steps=20, measured=[results.measured_rate("02", "post's recipe")]))
    >>> estimate.fit("EleutherAI/gpt-neox-20b", ..., gpu="T4", effective_batch=16)

How the figures are made (docs/estimator.md has the details and the error tables)
------------------------
* Parameters are counted exactly: the model is built from its config on the meta device (no
  memory, no download) and the PEFT method is applied to it, so trainable counts are peft's own.
* Bytes per parameter follow the regime: fp32 master weights under mixed precision, NF4 with
  double quantisation (4.127 bits) for QLoRA's linear layers with everything else upcast to fp32
  by prepare_model_for_kbit_training, fp32 adapters, fp32 gradients of trainable parameters,
  optimizer state by optimizer (AdamW 8 bytes, 8-bit AdamW 2 bytes plus block statistics,
  paged state outside PyTorch's allocator where only NVML sees it).
* Activations: what autograd keeps per transformer block, per token, as a function of hidden
  and intermediate size, counted by tracing saved tensors (bench/trace_activations.py) for each
  architecture family and regime; with gradient checkpointing only each block's input is kept
  and one block is recomputed at a time. Logits and loss, autocast's 16-bit copies of fp32
  weights, bitsandbytes' dequantised weights and prefix tuning's cache are added where they occur.
* The peak is the largest of: the start of the backward pass, the end of the blocks' backward
  (when weights train, every gradient is there) and the optimizer step.
* Measurements on an H200 (bench/calibrate.py, results/calibration.json) set what tracing on a
  CPU cannot see: GPU/CPU activation ratios, the backward working set, allocator slack, the CUDA
  context, the step-time efficiency and per-layer overheads.
* Each memory term has its own function (_weights_bytes, _optimizer_bytes, _activation_bytes,
  _logits_bytes, ...); estimate() adds them up at the peak; time_terms() and step_time() time a step.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field

from . import cost as _cost
from . import gpus as _gpus
from .errors import FriendlyError

GIB = 2**30

METHODS = ("full", "frozen", "lora", "qlora", "prompt", "ptuning", "prefix")
TASKS = ("causal-lm", "seq-cls")
PRECISIONS = ("fp32", "fp16", "bf16")
WEIGHT_DTYPES = ("fp32", "fp16", "bf16")
# The dtype each known hub checkpoint loads in when from_pretrained is given no dtype (transformers 5 loads
# dtype="auto": the config's dtype, else that of the weight files). Facts and sources: docs/sources.md,
# "Checkpoint dtypes".
CHECKPOINT_DTYPES = {
    "bigscience/bloom-560m": "fp16", "bigscience/bloom-1b1": "fp16",   # no dtype in config.json; fp16 weight files
    "xlm-roberta-base": "fp32", "xlm-roberta-large": "fp32",            # no dtype in config.json; fp32 weight files
    "roberta-base": "fp32", "roberta-large": "fp32",
    "EleutherAI/gpt-neox-20b": "fp16",                                  # config.json: "torch_dtype": "float16"
    "microsoft/Phi-3-mini-4k-instruct": "bf16", "microsoft/Phi-3-medium-4k-instruct": "bf16",   # "bfloat16"
}
_TORCH_NAMES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
_SAFETENSORS_NAMES = {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}
# optimizer -> (bytes of state per trainable parameter when fp32, paged, 8-bit, foreach temporaries)
OPTIMIZERS = {
    "adamw": dict(state=8, paged=False, eight_bit=False, temp=0),  # Trainer default: adamw_torch_fused
    "adamw_torch_fused": dict(state=8, paged=False, eight_bit=False, temp=0),
    "adamw_torch": dict(state=8, paged=False, eight_bit=False, temp=4),  # foreach: one temporary list
    "adam": dict(state=8, paged=False, eight_bit=False, temp=4),  # torch.optim.Adam, foreach
    "adamw_8bit": dict(state=2, paged=False, eight_bit=True, temp=0),
    "paged_adamw_8bit": dict(state=2, paged=True, eight_bit=True, temp=0),
    "paged_adamw_32bit": dict(state=8, paged=True, eight_bit=False, temp=0),
    "sgd": dict(state=0, paged=False, eight_bit=False, temp=0),  # Trainer's SGD: no momentum
}
BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}

# bitsandbytes NF4: 4 bits a weight + one absmax per 64 weights, itself 8-bit with double
# quantisation (plus an fp32 constant per 256 blocks), else fp32.
NF4_BITS = {True: 4 + 8 / 64 + 32 / (64 * 256), False: 4 + 32 / 64}
# bitsandbytes 8-bit optimizers: two 1-byte states + an fp32 absmax per 256 values each; tensors
# smaller than 4096 elements keep 32-bit state.
ADAM8_BYTES = 2 + 2 * 4 / 256
ADAM8_MIN_SIZE = 4096

# Saved activations per transformer block, in bytes per token: c_h * hidden + c_i * intermediate
# (+ c_att * heads * seq for eager attention), traced with bench/trace_activations.py
# (transformers 5.23, torch 2.13). Regimes: full = all weights trainable, frozen = frozen
# weights with a gradient flowing to the input (prompt/prefix methods, the base under LoRA),
# qlora = NF4 base after prepare_model_for_kbit_training; amp = fp32 weights under autocast,
# bf16 = 16-bit weights, fp32 = no autocast. c_att counts eager attention probabilities (BLOOM);
# sdpa's flash/memory-efficient kernels on a GPU keep none.
ACTIVATION_COEFFS = {
    "roberta": {"full-amp": (34.0, 4.0), "full-bf16": (26.0, 4.0), "full-fp32": (40.0, 8.0),
                "frozen-amp": (24.0, 2.0), "frozen-bf16": (20.0, 2.0), "frozen-fp32": (28.0, 4.0),
                "qlora-amp": (26.0, 4.0)},
    "bloom": {"full-amp": (2.0, 7.9), "full-bf16": (1.7, 6.9), "full-fp32": (3.5, 13.9),
              "frozen-amp": (1.2, 4.6), "frozen-bf16": (0.9, 3.6), "frozen-fp32": (1.8, 7.3),
              "qlora-amp": (1.8, 7.0)},
    "gpt-neox": {"full-amp": (18.0, 4.0), "full-bf16": (16.0, 4.0), "full-fp32": (32.0, 8.0),
                 "frozen-amp": (12.0, 2.0), "frozen-bf16": (10.0, 2.0), "frozen-fp32": (20.0, 4.0),
                 "qlora-amp": (11.6, 4.1)},
    "phi3": {"full-amp": (30.0, 8.0), "full-bf16": (26.0, 8.0), "full-fp32": (44.0, 16.0),
             "frozen-amp": (16.0, 6.0), "frozen-bf16": (16.0, 6.0), "frozen-fp32": (24.0, 12.0),
             "qlora-amp": (15.6, 12.1)},
}
ATTENTION_PROBS_BYTES = {"bloom": 6.0}  # eager attention: fp32 softmax + its 16-bit copy (H200 fit)
CPU_ATTENTION_PROBS_BYTES = 12.0  # sdpa's math kernel on a CPU keeps probabilities when dropout > 0
FAMILY_OF_MODEL_TYPE = {"roberta": "roberta", "xlm-roberta": "roberta", "bert": "roberta",
                        "bloom": "bloom", "gpt_neox": "gpt-neox", "phi3": "phi3", "llama": "phi3",
                        "mistral": "phi3", "qwen2": "phi3", "gemma": "phi3"}

# What tracing on a CPU cannot see, set from measurements on one H200 (bench/calibrate.py; the
# runs and their errors are in results/calibration.json and docs/estimator.md).
CALIBRATION = {
    "gpu": "H200",
    "date": "2026-11-22",
    # nvidia-smi's view beyond PyTorch's reserved memory
    "driver_reserved_gib": 0.604,  # NVML's "used" on the idle GPU, before any process (H200)
    "context_gib": 0.745,  # CUDA context, cuBLAS workspaces and lazily loaded kernels
    "bnb_context_gib": 0.05,  # bitsandbytes' CUDA library
    # activations: GPU traces of saved tensors / CPU traces (the table above), per family
    "activation_scale": {"roberta": 0.83, "bloom": 1.08, "phi3": 1.0, "gpt-neox": 1.0},
    "lora_bytes": {"amp": 3.0, "bf16": 8.2, "fp32": 8.2},  # per token per adapted input feature
    "backward_factor": {"default": 1.0, "bloom": 1.3},  # a block's backward, in blocks' activations
    "logits_bytes": 13.0,  # per logit: 16-bit logits, fp32 copy, log-softmax, their gradients
    # allocator slack (reserved - allocated)
    "slack_gib": 0.10,
    "slack_causal_lm_gib": 0.57,  # logits, their fp32 copies and gradients: large short-lived tensors
    "slack_per_large_grad": 1.2,  # full fine-tuning: the largest gradient (embeddings) needs new segments
    "slack_per_attention": 0.75,  # eager attention's probabilities of one block
    "slack_per_cache": 0.27,  # prefix tuning's cache
    "slack_per_step_temp": 0.31,  # foreach optimizers' temporaries
    # step time = compute / efficiency + memory traffic / bandwidth efficiency + overheads
    "efficiency": 0.75,  # fraction of the GPU's dense peak reached by the matrix products
    "bandwidth_efficiency": 0.80,  # fixed: a device copy reached 4.3 of 4.8 TB/s on the H200
    "attention_bytes": 56.0,  # bytes moved per eager attention probability per pass
    "step_overhead_s": 0.0,  # per optimizer step (Trainer, optimizer launch)
    "block_overhead_s": 0.00092,  # per block per pass (kernel launches of one block)
    "adapter_overhead_s": 0.00017,  # per LoRA-adapted linear layer per pass
    "quant_overhead_s": 0.00022,  # per NF4 linear layer per pass (bitsandbytes' dequantise + matmul)
    "checkpoint_overhead_s": 0.0014,  # per checkpointed block (torch.utils.checkpoint's bookkeeping)
    "optimizer_tensor_overhead_s": 0.000059,  # bitsandbytes' optimizers: one launch per tensor
}


# --------------------------------------------------------------------------- model facts
@dataclass(frozen=True)
class ModelFacts:
    """Everything the estimate needs from a model with its method applied, counted on meta."""

    name: str
    family: str
    model_type: str
    task: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    vocab: int
    base_params: int  # the model with its task head, before the method
    total_params: int  # with the method's added parameters (peft's "all params")
    trainable_params: int
    trainable_sizes: tuple  # numel of each trainable tensor (8-bit optimizers treat small ones apart)
    trainable_embedding_params: int  # trainable nn.Embedding weights (Trainer keeps 32-bit state for them)
    added_params: int  # parameters the method adds (adapters, prompt encoders, saved head copies)
    block_linear_params: int  # nn.Linear weights of one block
    block_params: int  # every parameter of one block (weights, biases, norms)
    largest_linear: int  # the largest nn.Linear weight of a block (QLoRA dequantises it whole)
    linears_per_block: int
    adapted_per_block: int  # LoRA-wrapped linear layers per block
    adapted_inputs_per_block: int  # their input features, summed
    head_params: int  # output head (lm_head / classifier) weights
    quantized_params: int  # what NF4 would quantise: the blocks' linear weights
    trainable_blocks: int  # blocks whose weights train (frozen method), else all
    causal: bool
    attention_dropout: float


def _config_from(model, num_labels: int):
    """A transformers config from a hub id we know offline, a config object or a local folder."""
    import transformers

    if isinstance(model, transformers.PretrainedConfig):
        config = model.__class__.from_dict(model.to_dict())
        name = getattr(model, "name_or_path", "") or model.model_type
    elif isinstance(model, (str, os.PathLike)) and os.path.isdir(model):
        if not os.path.exists(os.path.join(model, "config.json")):
            raise FriendlyError(f"{model} is a folder without config.json: not a model checkpoint.")
        config = transformers.AutoConfig.from_pretrained(model)
        name = os.path.basename(os.path.normpath(str(model)))
    elif isinstance(model, str):
        from . import tiny

        if model not in tiny.FULL_CONFIGS:
            raise FriendlyError(
                f"Unknown model {model!r}. Pass a hub id with an offline config "
                f"({', '.join(tiny.FULL_CONFIGS)}), a local checkpoint folder, or a transformers "
                "config object (e.g. AutoConfig.from_pretrained(...))."
            )
        config = tiny.full_config(model)
        name = model
    else:
        raise FriendlyError(f"model must be a hub id, a folder or a config object, not {type(model).__name__}.")
    config.num_labels = num_labels
    return config, name


def _blocks(model, layers: int):
    """The ModuleList holding the transformer blocks."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == layers:
            return module
    raise FriendlyError(f"Cannot find the {layers} transformer blocks of {type(model).__name__}.")


@contextlib.contextmanager
def _quiet():
    """Silence library chatter while counting on meta (deprecation warnings, bitsandbytes' CPU notice)."""
    bnb_logger = logging.getLogger("bitsandbytes")
    level = bnb_logger.level
    bnb_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        bnb_logger.setLevel(level)


def _peft_config(method: str, task: str, lora_r: int, lora_targets, num_virtual_tokens: int, head_modules=None):
    with _quiet():
        import peft

    task_type = "SEQ_CLS" if task == "seq-cls" else "CAUSAL_LM"
    saved = dict(modules_to_save=list(head_modules)) if head_modules else {}   # else peft's own: classifier, score
    if method in ("lora", "qlora"):
        return peft.LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05,
                               target_modules=lora_targets, task_type=task_type, **saved)
    if method == "prompt":
        return peft.PromptTuningConfig(task_type=task_type, num_virtual_tokens=num_virtual_tokens, **saved)
    if method == "ptuning":
        return peft.PromptEncoderConfig(task_type=task_type, num_virtual_tokens=num_virtual_tokens, **saved)
    if method == "prefix":
        return peft.PrefixTuningConfig(task_type=task_type, num_virtual_tokens=num_virtual_tokens, **saved)
    return None


@functools.lru_cache(maxsize=64)
def _facts_cached(config_json: str, config_class: str, name: str, task: str, method: str, lora_r: int,
                  lora_targets, trainable_blocks, num_virtual_tokens: int, head_modules=None) -> ModelFacts:
    import torch
    import transformers

    config = getattr(transformers, config_class).from_dict(json.loads(config_json))
    auto = (transformers.AutoModelForSequenceClassification if task == "seq-cls"
            else transformers.AutoModelForCausalLM)
    layers = config.num_hidden_layers
    targets = list(lora_targets) if isinstance(lora_targets, tuple) else lora_targets
    with torch.device("meta"), _quiet():
        model = auto.from_config(config)
        base_params = sum(p.numel() for p in model.parameters())
        head = model.get_output_embeddings() if task == "causal-lm" else None
        if head is None:
            head = getattr(model, "classifier", None) or getattr(model, "score", None)
        head_params = sum(p.numel() for p in head.parameters()) if head is not None else 0
        blocks = _blocks(model, layers)
        linears = [m for m in blocks[0].modules() if isinstance(m, torch.nn.Linear)]
        block_linear = sum(m.weight.numel() for m in linears)
        block_all = sum(p.numel() for p in blocks[0].parameters())
        largest = max((m.weight.numel() for m in linears), default=0)
        n_trainable_blocks = layers
        if method == "frozen":
            k = 2 if trainable_blocks is None else int(trainable_blocks)
            if not 0 <= k <= layers:
                raise FriendlyError(f"trainable_blocks={k}: this model has {layers} blocks.")
            n_trainable_blocks = k
            for p in model.parameters():
                p.requires_grad_(False)
            for block in list(blocks)[layers - k:]:
                for p in block.parameters():
                    p.requires_grad_(True)
            if task == "seq-cls" and head is not None:  # a new head must learn
                for p in head.parameters():
                    p.requires_grad_(True)
            for module in head_modules or ():          # and whatever else the recipe counts as its head
                _submodule(model, module).requires_grad_(True)
        peft_config = _peft_config(method, task, lora_r, targets, num_virtual_tokens, head_modules)
        if peft_config is not None:
            import peft

            try:
                model = peft.get_peft_model(model, peft_config)
            except ValueError as err:  # e.g. target modules not found
                raise FriendlyError(f"peft could not apply {method} to {name}: {err}") from None
        adapted = [m for m in _blocks(model, layers)[0].modules() if hasattr(m, "lora_A")]
        embeddings = sum(m.weight.numel() for m in model.modules()
                         if isinstance(m, torch.nn.Embedding) and m.weight.requires_grad)
        trainable = [p.numel() for p in model.parameters() if p.requires_grad]
        total = sum(p.numel() for p in model.parameters())
    family = FAMILY_OF_MODEL_TYPE.get(config.model_type, "phi3")
    heads = config.num_attention_heads
    intermediate = getattr(config, "intermediate_size", None) or 4 * config.hidden_size
    dropout = getattr(config, "attention_probs_dropout_prob", 0.0) or getattr(config, "attention_dropout", 0.0)
    return ModelFacts(
        name=name, family=family, model_type=config.model_type, task=task, layers=layers,
        hidden=config.hidden_size, intermediate=intermediate, heads=heads, vocab=config.vocab_size,
        base_params=base_params, total_params=total, trainable_params=sum(trainable),
        trainable_sizes=tuple(trainable), trainable_embedding_params=embeddings, added_params=total - base_params,
        block_linear_params=block_linear, block_params=block_all, largest_linear=largest, linears_per_block=len(linears),
        adapted_per_block=len(adapted), adapted_inputs_per_block=sum(m.in_features for m in adapted),
        head_params=head_params, quantized_params=block_linear * layers,
        trainable_blocks=n_trainable_blocks, causal=task == "causal-lm" or family != "roberta",
        attention_dropout=float(dropout or 0.0),
    )


def model_facts(model, *, task="causal-lm", num_labels=2, method="full", lora_r=8, lora_targets=None,
                trainable_blocks=None, num_virtual_tokens=20, head_modules=None) -> ModelFacts:
    """Count the model with its method applied (cached: repeated estimates are instant). head_modules: the
    modules that train whole beside the method, as peft's modules_to_save (None: the task head alone)."""
    _check_choice("task", task, TASKS)
    _check_choice("method", method, METHODS)
    config, name = _config_from(model, num_labels)
    targets = tuple(lora_targets) if isinstance(lora_targets, (list, tuple)) else lora_targets
    if method == "qlora" and targets is None:
        targets = "all-linear"  # QLoRA adapts every linear layer to make up for quantisation
    return _facts_cached(config.to_json_string(use_diff=False), type(config).__name__, name, task, method,
                         int(lora_r), targets, trainable_blocks, int(num_virtual_tokens),
                         tuple(head_modules) if head_modules else None)


def _submodule(model, name: str):
    """The module `name` names (a dotted path, or the last part of one, as peft's modules_to_save matches)."""
    for path, module in model.named_modules():
        if path == name or path.endswith("." + name):
            return module
    raise FriendlyError(f"head_modules names {name!r}, which this model does not have.")


def _check_choice(what: str, value, choices) -> None:
    if value not in choices:
        raise FriendlyError(f"Unknown {what} {value!r}; choose one of {', '.join(map(str, choices))}.")


# --------------------------------------------------------------------------- memory terms
# One function per term of a training step's memory, each in bytes; estimate() adds them up.
def _dtype_name(value) -> str | None:
    """'fp32' for torch.float32, 'float32' or 'fp32'; None for anything else (or nothing)."""
    text = str(value).replace("torch.", "") if value is not None else None
    return _TORCH_NAMES.get(text, text if text in WEIGHT_DTYPES else None)


def _safetensors_dtype(folder) -> str | None:
    """The dtype of the first floating tensor in a folder's first safetensors file (its header only)."""
    import struct
    from pathlib import Path

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    with open(files[0], "rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(size))
    return next((_SAFETENSORS_NAMES[v["dtype"]] for k, v in header.items()
                 if k != "__metadata__" and v.get("dtype") in _SAFETENSORS_NAMES), None)


def checkpoint_dtype(model) -> tuple:
    """(dtype, why): what `model`'s weights load in when from_pretrained is given no dtype, as transformers 5
    resolves its default dtype="auto": the config's dtype, else the weight files', else fp32."""
    import transformers

    if isinstance(model, str) and model in CHECKPOINT_DTYPES:
        return CHECKPOINT_DTYPES[model], f"{model}'s own dtype (docs/sources.md)"
    if isinstance(model, transformers.PretrainedConfig):
        found = _dtype_name(getattr(model, "dtype", None) or getattr(model, "torch_dtype", None))
        return (found, "the config's dtype") if found else ("fp32", "the config names no dtype: fp32 assumed")
    if isinstance(model, (str, os.PathLike)) and os.path.isdir(model):
        config = json.loads(open(os.path.join(model, "config.json")).read()) \
            if os.path.exists(os.path.join(model, "config.json")) else {}
        found = _dtype_name(config.get("dtype") or config.get("torch_dtype"))
        if found:
            return found, "its config.json's dtype"
        found = _safetensors_dtype(model)
        if found:
            return found, "its weight files' dtype"
    return "fp32", "no dtype known for it: fp32 assumed"


def _weights_dtype(method: str, weights_dtype: str | None) -> str:
    """How the base weights are held: 'nf4' under QLoRA, else `weights_dtype` (fp32 when not given)."""
    return "nf4" if method == "qlora" else (weights_dtype or "fp32")


def _adapter_bytes(facts: ModelFacts) -> int:
    """The parameters the method adds (LoRA matrices, prompt encoders, copies of the head): fp32."""
    return facts.added_params * 4


def _weights_bytes(facts: ModelFacts, wdtype: str, double_quant: bool) -> dict:
    """Weights on the GPU by kind and dtype (name -> bytes): the base model's, then the adapters.

    QLoRA (wdtype 'nf4') quantises the blocks' linear layers; prepare_model_for_kbit_training
    leaves everything else in fp32."""
    if wdtype == "nf4":
        parts = {"weights (NF4, blocks' linear layers)": facts.quantized_params * NF4_BITS[double_quant] / 8,
                 "weights (fp32: embeddings, head, norms)": (facts.base_params - facts.quantized_params) * 4}
    else:
        parts = {f"weights ({wdtype})": facts.base_params * BYTES[wdtype]}
    if facts.added_params:
        parts["trainable adapters (fp32)"] = _adapter_bytes(facts)
    return parts


def _trainable_bytes(facts: ModelFacts, wdtype: str) -> int:
    """Bytes of one trainable parameter, and of its gradient: adapters are fp32, trained weights keep their dtype."""
    return 4 if (facts.added_params or wdtype in ("fp32", "nf4")) else BYTES[wdtype]


def _gradient_bytes(facts: ModelFacts, trainable_bytes: int) -> int:
    """Gradients of every trainable parameter (what the optimizer step holds)."""
    return facts.trainable_params * trainable_bytes


def _weight_gradient_bytes(facts: ModelFacts, method: str, trainable_bytes: int) -> tuple:
    """(head, blocks): gradients of the model's own weights where they train (full, frozen), else none."""
    trains_weights = method in ("full", "frozen")
    head = facts.head_params * trainable_bytes if trains_weights else 0.0
    blocks = facts.block_params * trainable_bytes * (_saving_blocks(facts, method) if trains_weights else 0)
    return head, blocks


def _optimizer_state_bytes(sizes, optimizer: str, param_bytes: int) -> float:
    """Optimizer state of parameters of these sizes (numel), as the optimizer keeps it."""
    opt = OPTIMIZERS[optimizer]
    if opt["eight_bit"]:
        return sum(n * ADAM8_BYTES if n >= ADAM8_MIN_SIZE else n * 8 for n in sizes)
    # torch keeps Adam's two moments in the parameter's dtype; bitsandbytes 32-bit in fp32
    per = opt["state"] * (param_bytes / 4 if not opt["paged"] else 1)
    return sum(sizes) * per


def _optimizer_bytes(facts: ModelFacts, optimizer: str, trainable_bytes: int) -> tuple:
    """(in PyTorch's allocator, paged): the optimizer state of the trainable parameters.

    Paged state lives outside PyTorch's allocator, where only NVML sees it."""
    state = _optimizer_state_bytes(facts.trainable_sizes, optimizer, trainable_bytes)
    if OPTIMIZERS[optimizer]["eight_bit"]:  # Trainer registers nn.Embedding weights for 32-bit state with bitsandbytes
        state += facts.trainable_embedding_params * (8 - ADAM8_BYTES)
    return (0.0, state) if OPTIMIZERS[optimizer]["paged"] else (state, 0.0)


def _optimizer_temporaries_bytes(facts: ModelFacts, optimizer: str) -> int:
    """Temporaries of a foreach optimizer step (a list the size of the trainable parameters)."""
    return facts.trainable_params * OPTIMIZERS[optimizer]["temp"]


def _sequence_lengths(method: str, seq_len: int, num_virtual_tokens: int) -> tuple:
    """(queries, keys/values) per sequence: prompt and p-tuning prepend virtual tokens to the
    input, prefix tuning adds them to the keys and values only."""
    extra_tokens = num_virtual_tokens if method in ("prompt", "ptuning") else 0
    kv_extra = num_virtual_tokens if method == "prefix" else 0
    return seq_len + extra_tokens, seq_len + extra_tokens + kv_extra


def _saving_blocks(facts: ModelFacts, method: str) -> int:
    """Blocks that keep activations for the backward: the trained ones under `frozen`, else all."""
    return facts.trainable_blocks if method == "frozen" else facts.layers


def _activation_regime(method: str, precision: str, wdtype: str) -> tuple:
    """(row of ACTIVATION_COEFFS, column of CALIBRATION['lora_bytes']) for this recipe."""
    if wdtype == "nf4":
        return "qlora-amp", "amp"
    kind = "amp" if (precision != "fp32" and wdtype == "fp32") else ("fp32" if wdtype == "fp32" else "bf16")
    trained = "full" if method in ("full", "frozen") else "frozen"
    return f"{trained}-{kind}", kind


def _attention_probs_coeff(facts: ModelFacts, on_gpu: bool) -> float:
    """Bytes kept per attention probability: eager attention (BLOOM) keeps them everywhere, sdpa
    keeps them only in its CPU math kernel with attention dropout (RoBERTa)."""
    if not on_gpu and facts.family == "roberta" and facts.attention_dropout > 0:
        return CPU_ATTENTION_PROBS_BYTES
    return ATTENTION_PROBS_BYTES.get(facts.family, 0.0)


def _block_activation_bytes(facts: ModelFacts, method: str, precision: str, wdtype: str, tokens: int,
                            s_kv: int, c_att: float) -> float:
    """What autograd keeps for one block's backward, for `tokens` tokens (0 when no block trains)."""
    if not _saving_blocks(facts, method):
        return 0.0
    cal = CALIBRATION
    regime, kind = _activation_regime(method, precision, wdtype)
    c_h, c_i = ACTIVATION_COEFFS.get(facts.family, ACTIVATION_COEFFS["phi3"])[regime]
    block = cal["activation_scale"].get(facts.family, 1.0) * tokens * (c_h * facts.hidden + c_i * facts.intermediate)
    block += tokens * facts.heads * s_kv * c_att
    block += tokens * cal["lora_bytes"][kind] * facts.adapted_inputs_per_block
    if precision != "fp32" and wdtype == "fp32":  # autocast keeps a 16-bit copy of each fp32 weight it multiplies
        block += 2 * facts.block_linear_params
    return block


def _activation_bytes(facts: ModelFacts, method: str, block: float, tokens: int, wdtype: str,
                      checkpointing: bool) -> tuple:
    """(kept through the forward, of the block being recomputed): the activations of every saving block.

    With gradient checkpointing each block keeps only its input, in the residual stream's dtype,
    and one block at a time is recomputed during the backward."""
    blocks = _saving_blocks(facts, method)
    if checkpointing:
        stream_bytes = 4 if wdtype in ("fp32", "nf4") else 2
        return blocks * tokens * facts.hidden * stream_bytes, block
    return blocks * block, 0.0


def _backward_working_bytes(facts: ModelFacts, block: float) -> float:
    """The working set of one block's backward, in multiples of its saved activations (calibrated)."""
    beta = CALIBRATION["backward_factor"]
    return beta.get(facts.family, beta["default"]) * block


# TRL's SFTTrainer (1.x) scores tokens through a fused LM head (trl.kernels.chunked_logprob): the logits exist one
# tile of at most 4,096 tokens x 32,768 vocabulary entries at a time, in the compute dtype, recomputed in the backward
FUSED_HEAD_TILE = (4096, 32768)


def _logits_bytes(facts: ModelFacts, micro_batch: int, seq_len: int, fused_head: bool = False,
                  precision: str = "bf16") -> float:
    """Causal LM: the logits over the vocabulary, their fp32 copy, log-softmax and their gradients; under a fused
    head (TRL's SFTTrainer), one tile of logits in the compute dtype."""
    if facts.task != "causal-lm":
        return 0.0
    if fused_head:
        tokens, vocab = FUSED_HEAD_TILE
        return min(micro_batch * seq_len, tokens) * min(facts.vocab, vocab) * BYTES[precision]
    return micro_batch * seq_len * facts.vocab * CALIBRATION["logits_bytes"]


def _head_copy_bytes(facts: ModelFacts, precision: str, wdtype: str) -> float:
    """Causal LM under autocast: the 16-bit copy of the fp32 output head (vocab x hidden) autocast makes."""
    amp = precision != "fp32"
    return 2 * facts.head_params if (amp and facts.task == "causal-lm" and wdtype in ("fp32", "nf4")) else 0.0


def _dequantised_weight_bytes(facts: ModelFacts, method: str, precision: str) -> float:
    """QLoRA: bitsandbytes dequantises one weight to bf16 at a time; fp16 autocast casts it once more."""
    if method != "qlora":
        return 0.0
    return 2 * facts.largest_linear * (2 if precision == "fp16" else 1)


def _prefix_cache_bytes(facts: ModelFacts, method: str, micro_batch: int, s_kv: int) -> float:
    """Prefix tuning: the forward returns every layer's keys and values, prefix included, in fp32
    (the concatenation with the fp32 prefix promotes them); the cache lives until the loss is taken."""
    if method != "prefix":
        return 0.0
    return _saving_blocks(facts, method) * 2 * micro_batch * s_kv * facts.hidden * 4


@dataclass
class _Memory:
    """The memory terms of one training step, in bytes (each made by its function above)."""

    weights: dict  # name -> bytes
    optimizer_state: float  # in PyTorch's allocator
    optimizer_state_paged: float
    gradients: float  # of every trainable parameter
    head_gradients: float  # of the model's own weights, where they train
    block_gradients: float
    early_gradients: float  # present when the backward starts: the adapters' (or the head's)
    activations: float  # kept through the forward
    block_activations: float  # one block's
    recomputed_block: float  # gradient checkpointing: one block's, recomputed
    backward_working_set: float
    prefix_cache: float
    logits: float
    head_copy: float
    dequantised_weight: float
    optimizer_temporaries: float

    def phases(self, method: str) -> dict:
        """Bytes beyond the weights and the optimizer state at each phase of a step where a peak can be.

        At the start of the backward every activation is kept and the head's backward (logits,
        loss) or a block's backward (working set, a dequantised weight) runs on top. Where weights
        train (full, frozen) gradients grow as activations are freed: at the end of the blocks the
        gradients of every block are there with one block's activations. The optimizer step holds
        all gradients (+ foreach temporaries)."""
        start = (self.activations + self.prefix_cache
                 + max(self.logits + self.head_copy, self.block_backward()) + self.early_gradients)
        end = (self.block_activations + self.backward_working_set + self.dequantised_weight
               + self.block_gradients + self.head_gradients) if method in ("full", "frozen") else 0.0
        step = self.gradients + self.optimizer_temporaries
        return {"backward (start)": start, "backward (end)": end, "optimizer step": step}

    def block_backward(self) -> float:
        """What one block's backward adds: its recomputed activations, working set, dequantised weight."""
        return self.recomputed_block + self.backward_working_set + self.dequantised_weight


def _peak(phases: dict) -> tuple:
    """(phase, bytes) of the largest phase (a tie goes to the name that sorts last)."""
    phase = max((v, k) for k, v in phases.items())[1]
    return phase, max(phases.values())


def _allocator_slack_bytes(facts: ModelFacts, method: str, m: _Memory, micro_batch: int, s_q: int, s_kv: int,
                           c_att: float, trainable_bytes: int, fused_head: bool = False) -> float:
    """PyTorch's reserved less allocated memory at the peak: a calibrated base, more for a causal
    LM's large short-lived tensors, and a share of the largest transient tensors."""
    cal = CALIBRATION
    trains_weights = method in ("full", "frozen")
    largest_grad = max(facts.trainable_sizes, default=0) * trainable_bytes if trains_weights else 0.0
    attention_probs = micro_batch * facts.heads * s_q * s_kv * c_att  # one eager block's probabilities
    # the causal-LM share is for the full logits' large short-lived tensors, which a fused head never makes
    full_logits = facts.task == "causal-lm" and not fused_head
    slack = (cal["slack_gib"] + (cal["slack_causal_lm_gib"] if full_logits else 0.0)) * GIB
    slack += (cal["slack_per_large_grad"] * largest_grad + cal["slack_per_attention"] * attention_probs
              + cal["slack_per_cache"] * m.prefix_cache + cal["slack_per_step_temp"] * m.optimizer_temporaries)
    return slack


def _cuda_context_bytes(gpu_spec, method: str, optimizer: str) -> float:
    """The CUDA context, cuBLAS workspaces and kernels (+ bitsandbytes' library); none without a GPU."""
    if gpu_spec is None:
        return 0.0
    opt = OPTIMIZERS[optimizer]
    context = CALIBRATION["context_gib"] * GIB
    if method == "qlora" or opt["eight_bit"] or opt["paged"]:
        context += CALIBRATION["bnb_context_gib"] * GIB
    return context


def _driver_reserved_bytes(gpu_spec) -> float:
    """What the driver keeps on an idle GPU: NVML counts it as used; none without a GPU."""
    return 0.0 if gpu_spec is None else CALIBRATION["driver_reserved_gib"] * GIB


# --------------------------------------------------------------------------- the estimate
@dataclass
class Estimate:
    """Peak memory and step time of one training configuration (GiB and seconds)."""

    peak_allocated_gib: float
    peak_reserved_gib: float
    peak_device_gib: float
    step_time_s: float | None
    breakdown: dict  # name -> GiB at the peak; sums to peak_device_gib
    trainable_params: int
    total_params: int
    inputs: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    gpu: str | None = None
    usable_gib: float | None = None
    tokens_per_s: float | None = None
    time_terms: dict | None = None  # what step_time_s is made of (see time_terms())
    components: dict = field(default_factory=dict)  # every component in GiB, at the peak or not

    @property
    def needed_gib(self) -> float:
        """GPU memory the process needs at its peak: device-used less the driver's own reservation,
        which NVML counts as used but the GPU's reported total (`usable_gib`) already leaves out."""
        return self.peak_device_gib - self.components.get("driver_reserved", 0.0)

    @property
    def fits(self) -> bool | None:
        """Whether the process's peak (`needed_gib`) stays within the GPU's usable memory (None without gpu).

        True also when the margin is within the estimate's error: `fit_status` says 'tight' then."""
        return None if self.usable_gib is None else self.needed_gib <= self.usable_gib

    @property
    def fit_status(self) -> str | None:
        """'fits', 'tight' (fits by less than the estimate's error) or 'does not fit'; None without gpu."""
        return None if self.usable_gib is None else fit_status(self.needed_gib, self.usable_gib)

    def verdict(self) -> str:
        """The fit verdict with its margin, e.g. 'fits a T4: 7.3 of 14.56 GiB, 7.3 GiB (50 %) to spare'."""
        if self.gpu is None:
            return f"no GPU named: peak {self.peak_device_gib:.1f} GiB, no verdict"
        return fit_verdict(self.needed_gib, self.gpu, self.usable_gib)

    def as_dict(self) -> dict:
        return {
            "peak_allocated_gib": round(self.peak_allocated_gib, 3),
            "peak_reserved_gib": round(self.peak_reserved_gib, 3),
            "peak_device_gib": round(self.peak_device_gib, 3),
            "step_time_s": None if self.step_time_s is None else round(self.step_time_s, 4),
            "tokens_per_s": None if self.tokens_per_s is None else round(self.tokens_per_s, 1),
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "breakdown": {k: round(v, 3) for k, v in self.breakdown.items()},
            "components": {k: round(v, 4) for k, v in self.components.items()},
            "gpu": self.gpu,
            "usable_gib": None if self.usable_gib is None else round(self.usable_gib, 2),
            "needed_gib": round(self.needed_gib, 3),
            "fits": self.fits,
            "fit_status": self.fit_status,
            "verdict": self.verdict() if self.gpu else None,
            "inputs": self.inputs,
            "notes": self.notes,
            "calibration": {"gpu": CALIBRATION["gpu"], "date": CALIBRATION["date"]},
        }

    def table(self) -> str:
        i = self.inputs
        lines = [
            f"Estimate for {i.get('model')} ({i.get('task')}), method {i.get('method')}"
            + (f" r={i.get('lora_r')}" if i.get("method") in ("lora", "qlora") else ""),
            f"  optimizer {i.get('optimizer')}, precision {i.get('precision')}, weights "
            f"{i.get('weights_dtype')}, gradient checkpointing {'on' if i.get('gradient_checkpointing') else 'off'}, "
            f"micro-batch {i.get('micro_batch')} x seq {i.get('seq_len')}"
            + (f", accumulation {i.get('grad_accum')}" if i.get("grad_accum", 1) > 1 else ""),
            f"  parameters: {self.total_params:,} total, {self.trainable_params:,} trainable "
            f"({100 * self.trainable_params / max(self.total_params, 1):.4g} %)",
            "",
            f"  {'component (at the peak)':52s} {'GiB':>8s}",
        ]
        for name, gib in self.breakdown.items():
            lines.append(f"  {name:52s} {gib:8.2f}")
        lines += [
            f"  {'-' * 61}",
            f"  {'peak allocated (torch.cuda.max_memory_allocated)':52s} {self.peak_allocated_gib:8.2f}",
            f"  {'peak reserved (torch.cuda.max_memory_reserved)':52s} {self.peak_reserved_gib:8.2f}",
            f"  {'peak device used (NVML, as helpers.memory reads it)':52s} {self.peak_device_gib:8.2f}",
        ]
        if self.gpu:
            if self.components.get("driver_reserved"):
                label = "needed on the GPU (less the driver's reservation)"
                lines.append(f"  {label:52s} {self.needed_gib:8.2f}")
            lines.append(f"  {self.verdict()}")
            lines.append(f"  step time (one optimizer step): {self.step_time_s:.3f} s"
                         f"  ({self.tokens_per_s:,.0f} tokens/s)")
            lines.append("  (a steady step on fixed-length batches; a whole run, with its padding, the loop's fixed "
                         "costs, evaluations and checkpoints: helpers.wholerun)")
        for note in self.notes:
            lines.append(f"  note: {note}")
        lines.append(f"  (calibrated on {CALIBRATION['gpu']}, {CALIBRATION['date']}; see docs/estimator.md)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _check_recipe(method, optimizer, precision, weights_dtype, micro_batch, seq_len, grad_accum,
                  gradient_checkpointing) -> None:
    """Refuse choices estimate() does not know and recipes that cannot train."""
    _check_choice("optimizer", optimizer, OPTIMIZERS)
    _check_choice("precision", precision, PRECISIONS)
    if weights_dtype is not None:
        _check_choice("weights_dtype", weights_dtype, WEIGHT_DTYPES)
    for what, value in (("micro_batch", micro_batch), ("seq_len", seq_len), ("grad_accum", grad_accum)):
        if int(value) != value or value < 1:
            raise FriendlyError(f"{what} must be a positive whole number, got {value!r}.")
    if method == "prefix" and gradient_checkpointing:
        # peft refuses this pair when checkpointing is on first; switched on afterwards (e.g. by
        # TrainingArguments(gradient_checkpointing=True)) the prefix silently gets no gradient
        # (seen here with peft 0.21.2, transformers 5.23), so there is nothing worth estimating.
        raise FriendlyError("Prefix tuning does not work with gradient checkpointing: peft refuses it, and "
                            "when checkpointing is switched on later the prefix receives no gradient. "
                            "Turn gradient checkpointing off (or use prompt tuning / LoRA).")


def _breakdown(m: _Memory, phase: str, optimizer: str, checkpointing: bool, slack: float, context: float,
               driver: float) -> dict:
    """What the peak is made of, name -> GiB, in the order the table shows it."""
    breakdown = {name: v / GIB for name, v in m.weights.items()}
    if m.optimizer_state:
        breakdown[f"optimizer state ({optimizer})"] = m.optimizer_state / GIB
    if phase == "backward (start)":
        if m.early_gradients:
            breakdown["gradients"] = m.early_gradients / GIB
        breakdown["activations" + (" (block inputs, checkpointed)" if checkpointing else "")] = m.activations / GIB
        if m.prefix_cache:
            breakdown["prefix keys/values cache (fp32, all layers)"] = m.prefix_cache / GIB
        if m.logits + m.head_copy >= m.block_backward():
            if m.logits:
                breakdown["logits and loss"] = m.logits / GIB
            if m.head_copy:
                breakdown["16-bit copy of the output head (autocast)"] = m.head_copy / GIB
        else:
            if m.recomputed_block:
                breakdown["activations of the recomputed block"] = m.recomputed_block / GIB
            breakdown["backward working set (one block)"] = m.backward_working_set / GIB
            if m.dequantised_weight:
                breakdown["dequantised 4-bit weight (transient)"] = m.dequantised_weight / GIB
    elif phase == "backward (end)":
        breakdown["gradients (blocks and head)"] = (m.block_gradients + m.head_gradients) / GIB
        breakdown["activations and working set (one block)"] = (
            m.block_activations + m.backward_working_set + m.dequantised_weight) / GIB
    else:
        breakdown["gradients"] = m.gradients / GIB
        if m.optimizer_temporaries:
            breakdown["optimizer step temporaries"] = m.optimizer_temporaries / GIB
    breakdown["allocator slack (reserved - allocated)"] = slack / GIB
    if m.optimizer_state_paged:
        breakdown["optimizer state (paged: outside PyTorch)"] = m.optimizer_state_paged / GIB
    if context:
        breakdown["CUDA context and kernels"] = context / GIB
    if driver:
        breakdown["driver-reserved memory (NVML counts it)"] = driver / GIB
    return breakdown


def _components(m: _Memory, slack: float, context: float, driver: float) -> dict:
    """Every memory term in GiB, whether or not it is part of the peak."""
    return {k: v / GIB for k, v in dict(
        weights=sum(m.weights.values()), gradients=m.gradients, optimizer_state=m.optimizer_state,
        optimizer_state_paged=m.optimizer_state_paged, activations=m.activations,
        block_activations=m.block_activations, backward_working_set=m.backward_working_set,
        prefix_cache=m.prefix_cache, logits=m.logits, head_copy=m.head_copy,
        dequantised_weight=m.dequantised_weight, optimizer_temporaries=m.optimizer_temporaries,
        allocator_slack=slack, cuda_context=context, driver_reserved=driver).items()}


def _step_time(facts: ModelFacts, gpu_spec, method: str, optimizer: str, micro_batch: int, s_q: int,
               seq_len: int, checkpointing: bool, precision: str, grad_accum: int, trainable_bytes: int) -> tuple:
    """(seconds per optimizer step, tokens per second, time_terms); all None without a GPU."""
    if gpu_spec is None:
        return None, None, None
    terms = time_terms(facts, gpu_spec, method, optimizer, micro_batch, s_q, checkpointing, precision,
                       grad_accum, trainable_bytes)
    seconds = step_time(terms)
    return seconds, grad_accum * micro_batch * seq_len / seconds, terms  # the data's tokens, not virtual ones


def _notes(method: str, weights_dtype: str | None, phase: str, gpu_spec, precision: str) -> list:
    """Caveats worth printing with the estimate."""
    notes = []
    if method == "qlora" and (weights_dtype or "fp32") != "fp32":
        notes.append("QLoRA: weights outside the NF4 layers are counted in fp32, as "
                     "prepare_model_for_kbit_training leaves them.")
    if phase == "optimizer step":
        notes.append("the peak is at the optimizer step: gradients and optimizer temporaries outweigh activations")
    if gpu_spec is not None:
        if gpu_spec.name != CALIBRATION["gpu"]:
            notes.append(f"time on {gpu_spec.name} is extrapolated from the {CALIBRATION['gpu']} calibration: its "
                         "datasheet throughput and bandwidth, the H200 host's per-layer overheads; memory "
                         "includes the H200's driver reservation and context")
        if precision == "bf16" and not gpu_spec.bf16:
            notes.append(f"{gpu_spec.name} has no native bf16: use fp16 there (bf16 would be emulated).")
    notes.append(ALLOCATOR_NOTE)
    return notes


# Measured on an H200, 2026-12-05 (results/wholerun_validation.2026-12-05.json): 05's bench runs, batches of varying
# length, reserved 1.3-3.6 GiB beyond their tensors with the default allocator, and so little with expandable
# segments (0.04-0.13 GiB there), where the estimate fell within 1 %.
ALLOCATOR_NOTE = ("reserved memory is calibrated on batches of one length; batches of varying length fragment PyTorch's "
                  "default allocator (up to 46 % more device memory measured, 05's QLoRA on an H200), which the "
                  "notebooks avoid with PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (then within 1 %)")


def _inputs(facts: ModelFacts, wdtype: str, phase: str, *, task, num_labels, method, lora_r, lora_targets,
            num_virtual_tokens, optimizer, precision, gradient_checkpointing, micro_batch, seq_len,
            grad_accum) -> dict:
    """The recipe as estimated, with the arguments its method ignores set to None."""
    lora = method in ("lora", "qlora")
    return dict(model=facts.name, task=task, num_labels=num_labels if task == "seq-cls" else None,
                method=method, lora_r=lora_r if lora else None,
                lora_targets=(list(lora_targets) if isinstance(lora_targets, (list, tuple)) else lora_targets)
                if lora else None,
                trainable_blocks=facts.trainable_blocks if method == "frozen" else None,
                num_virtual_tokens=num_virtual_tokens if method in ("prompt", "ptuning", "prefix") else None,
                optimizer=optimizer, precision=precision, weights_dtype=wdtype,
                gradient_checkpointing=bool(gradient_checkpointing), micro_batch=int(micro_batch),
                seq_len=int(seq_len), grad_accum=int(grad_accum), phase_at_peak=phase)


def estimate(model, *, task="causal-lm", num_labels=2, method="full", lora_r=8, lora_targets=None,
             trainable_blocks=None, num_virtual_tokens=20, optimizer="adamw", precision="bf16",
             weights_dtype=None, double_quant=True, gradient_checkpointing=False, micro_batch=1,
             seq_len=512, grad_accum=1, gpu=None, head_modules=None, fused_head=False) -> Estimate:
    """Estimate peak memory (allocated, reserved, device-used) and step time of a training run.

    model: a hub id with an offline config (helpers.tiny.FULL_CONFIGS), a local checkpoint
    folder or a transformers config. method: full | frozen (train the last `trainable_blocks`)
    | lora | qlora | prompt | ptuning | prefix. precision: the Trainer's mixed precision
    (fp16/bf16 = autocast over fp32 weights) or fp32. weights_dtype: the dtype the weights are
    loaded in (default: the checkpoint's own, as from_pretrained loads it without dtype=, see checkpoint_dtype;
    QLoRA: NF4 blocks, the rest fp32 after prepare_model_for_kbit_training).
    gpu: a name from helpers.gpus (None: no CUDA context and no step time, e.g. a CPU run).
    head_modules: modules that train whole beside the method (peft's modules_to_save; None: the task head).
    fused_head: the loss scores tokens through a fused LM head that never makes the full logits (TRL's
    SFTTrainer; helpers.recipe.read sets it for an SFTConfig).
    step_time_s is the time of one optimizer step (grad_accum micro-batches).
    """
    _check_recipe(method, optimizer, precision, weights_dtype, micro_batch, seq_len, grad_accum,
                  gradient_checkpointing)
    dtype_note = None
    if weights_dtype is None and method != "qlora":     # QLoRA: NF4 blocks, the rest fp32, whatever it loads in
        weights_dtype, why = checkpoint_dtype(model)
        dtype_note = (f"weights assumed {weights_dtype}: {why}, as from_pretrained loads them without dtype=; "
                      "pass weights_dtype= for another (the notebooks load fp32 for mixed precision)")
        if weights_dtype == "fp16" and precision == "fp16":
            dtype_note += ("; fp16 weights under fp16 mixed precision: the Trainer's gradient scaler refuses fp16 "
                           "gradients, load with dtype=torch.float32")
    gpu_spec = _gpus.get(gpu) if gpu is not None else None
    facts = model_facts(model, task=task, num_labels=num_labels, method=method, lora_r=lora_r,
                        lora_targets=lora_targets, trainable_blocks=trainable_blocks,
                        num_virtual_tokens=num_virtual_tokens, head_modules=head_modules)
    wdtype = _weights_dtype(method, weights_dtype)
    trainable_bytes = _trainable_bytes(facts, wdtype)
    b, s = micro_batch, seq_len
    s_q, s_kv = _sequence_lengths(method, s, num_virtual_tokens)
    c_att = _attention_probs_coeff(facts, on_gpu=gpu_spec is not None)
    block = _block_activation_bytes(facts, method, precision, wdtype, b * s_q, s_kv, c_att)
    activations, recomputed = _activation_bytes(facts, method, block, b * s_q, wdtype, gradient_checkpointing)
    state, paged_state = _optimizer_bytes(facts, optimizer, trainable_bytes)
    grads = _gradient_bytes(facts, trainable_bytes)
    head_grads, block_grads = _weight_gradient_bytes(facts, method, trainable_bytes)
    m = _Memory(weights=_weights_bytes(facts, wdtype, double_quant),
                optimizer_state=state, optimizer_state_paged=paged_state,
                gradients=grads, head_gradients=head_grads, block_gradients=block_grads,
                early_gradients=grads if facts.added_params else head_grads,
                activations=activations, block_activations=block, recomputed_block=recomputed,
                backward_working_set=_backward_working_bytes(facts, block),
                prefix_cache=_prefix_cache_bytes(facts, method, b, s_kv),
                logits=_logits_bytes(facts, b, s, fused_head, precision),
                head_copy=_head_copy_bytes(facts, precision, wdtype),
                dequantised_weight=_dequantised_weight_bytes(facts, method, precision),
                optimizer_temporaries=_optimizer_temporaries_bytes(facts, optimizer))
    phase, dynamic = _peak(m.phases(method))
    slack = _allocator_slack_bytes(facts, method, m, b, s_q, s_kv, c_att, trainable_bytes, fused_head)
    context, driver = _cuda_context_bytes(gpu_spec, method, optimizer), _driver_reserved_bytes(gpu_spec)
    peak_alloc = sum(m.weights.values()) + m.optimizer_state + dynamic
    peak_reserved = peak_alloc + slack
    peak_device = peak_reserved + context + driver + m.optimizer_state_paged
    seconds, tokens_per_s, terms = _step_time(facts, gpu_spec, method, optimizer, b, s_q, s, gradient_checkpointing,
                                              precision, grad_accum, trainable_bytes)
    inputs = _inputs(facts, wdtype, phase, task=task, num_labels=num_labels, method=method, lora_r=lora_r,
                     lora_targets=lora_targets, num_virtual_tokens=num_virtual_tokens, optimizer=optimizer,
                     precision=precision, gradient_checkpointing=gradient_checkpointing,
                     micro_batch=micro_batch, seq_len=seq_len, grad_accum=grad_accum)
    return Estimate(
        peak_allocated_gib=peak_alloc / GIB, peak_reserved_gib=peak_reserved / GIB,
        peak_device_gib=peak_device / GIB, step_time_s=seconds,
        breakdown=_breakdown(m, phase, optimizer, gradient_checkpointing, slack, context, driver),
        trainable_params=facts.trainable_params, total_params=facts.total_params, inputs=inputs,
        notes=([dtype_note] if dtype_note else []) + _notes(method, weights_dtype, phase, gpu_spec, precision),
        gpu=gpu_spec.name if gpu_spec else None,
        usable_gib=gpu_spec.usable_gib if gpu_spec else None, tokens_per_s=tokens_per_s, time_terms=terms,
        components=_components(m, slack, context, driver))


def _block_forward_flops(facts: ModelFacts, b: int, s: int) -> float:
    """One block's forward over b x s tokens: its linear layers and the attention's QK^T and PV (sdpa's flash
    kernels skip the masked half of a causal attention)."""
    eager = facts.family in ATTENTION_PROBS_BYTES
    attention = 4 * s * facts.hidden * (0.5 if facts.causal and not eager else 1.0)
    return b * s * (2 * facts.block_linear_params + attention)


def _head_forward_flops(facts: ModelFacts, b: int, s: int) -> float:
    """A causal LM's output head over b x s tokens (a classifier's head is negligible)."""
    return 2 * b * s * facts.head_params if facts.task == "causal-lm" else 0.0


def forward_flops(facts: ModelFacts, b: int, s: int) -> float:
    """The whole forward pass over b x s tokens: every block and the head (an evaluation batch)."""
    return facts.layers * _block_forward_flops(facts, b, s) + _head_forward_flops(facts, b, s)


def optimizer_traffic_bytes(facts: ModelFacts, optimizer: str, trainable_bytes: int) -> float:
    """Bytes one optimizer update reads and writes: parameters, gradients and the two moments."""
    opt = OPTIMIZERS[optimizer]
    state_bytes = opt["state"] * (1 if opt["eight_bit"] else trainable_bytes / 4)
    return facts.trainable_params * (3 * trainable_bytes + 2 * state_bytes)


def optimizer_launches(facts: ModelFacts, optimizer: str) -> int:
    """bitsandbytes' optimizers launch once per parameter tensor (torch's fused and foreach ones do not)."""
    opt = OPTIMIZERS[optimizer]
    return len(facts.trainable_sizes) if opt["eight_bit"] or opt["paged"] else 0


def time_terms(facts: ModelFacts, gpu, method: str, optimizer: str, b: int, s: int, checkpointing: bool,
               precision: str, grad_accum: int = 1, trainable_bytes: int = 4) -> dict:
    """The quantities step time is made of, per optimizer step (calibration fits their weights).

    flops: matrix products; bytes: memory traffic of dequantisation and the optimizer;
    attention_elements: eager attention probabilities streamed; *_passes: a block's forward or
    backward (kernel launches cost time whatever their size); optimizer_tensors: bitsandbytes'
    optimizers launch once per parameter tensor.
    """
    t = b * s
    eager = facts.family in ATTENTION_PROBS_BYTES
    block_fwd, head_fwd = _block_forward_flops(facts, b, s), _head_forward_flops(facts, b, s)
    L = facts.layers
    if method == "full":
        bwd_blocks, bwd_mult = L, 2.0
    elif method == "frozen":
        bwd_blocks, bwd_mult = facts.trainable_blocks, 2.0
    else:  # frozen base: the gradient flows back to the input (or the first adapter) only
        bwd_blocks, bwd_mult = L, 1.0
    recompute = bwd_blocks if checkpointing else 0
    flops = (L + recompute) * block_fwd + bwd_mult * bwd_blocks * block_fwd + 2 * head_fwd
    passes = L + recompute + bwd_blocks
    dequant = passes * facts.block_linear_params * 4.5 if method == "qlora" else 0.0  # read 0.5 B, write + read 2 B
    attention_elements = passes * t * facts.heads * s if eager else 0.0
    optimizer_bytes = optimizer_traffic_bytes(facts, optimizer, trainable_bytes)
    return {
        "flops": grad_accum * flops,
        "peak_flops": 1e12 * (gpu.tflops if precision != "fp32" else gpu.fp32_tflops),
        "bytes": grad_accum * dequant + optimizer_bytes,
        "attention_elements": grad_accum * attention_elements,
        "bandwidth": gpu.bandwidth_gbs * 1e9,
        "block_passes": grad_accum * passes,
        "adapter_passes": grad_accum * passes * facts.adapted_per_block,
        "quant_passes": grad_accum * passes * (facts.linears_per_block if method == "qlora" else 0),
        "checkpointed_blocks": grad_accum * recompute,
        "optimizer_tensors": optimizer_launches(facts, optimizer),
        "steps": 1,
    }


def step_time_parts(terms: dict, cal: dict | None = None) -> dict:
    """Seconds per optimizer step, split: `arithmetic` (matrix products), `memory_traffic` (bytes moved)
    and `overheads` (per-layer kernel launches and bookkeeping, which do not grow with the batch)."""
    cal = cal or CALIBRATION
    return {
        "arithmetic": terms["flops"] / (terms["peak_flops"] * cal["efficiency"]),
        "memory_traffic": (terms["bytes"] + terms["attention_elements"] * cal["attention_bytes"])
        / (terms["bandwidth"] * cal["bandwidth_efficiency"]),
        "overheads": terms["block_passes"] * cal["block_overhead_s"]
        + terms["adapter_passes"] * cal["adapter_overhead_s"]
        + terms["quant_passes"] * cal["quant_overhead_s"]
        + terms["checkpointed_blocks"] * cal["checkpoint_overhead_s"]
        + terms["optimizer_tensors"] * cal["optimizer_tensor_overhead_s"]
        + terms["steps"] * cal["step_overhead_s"],
    }


def step_time(terms: dict, cal: dict | None = None) -> float:
    """Seconds per optimizer step from `time_terms` and the calibrated constants."""
    return sum(step_time_parts(terms, cal).values())


# --------------------------------------------------------------------------- fit mode
@dataclass
class Fit:
    """The largest micro-batch that fits on `gpu`, the accumulation for the effective batch."""

    micro_batch: int
    grad_accum: int
    estimate: Estimate
    gpu: str
    effective_batch: int
    fits: bool
    message: str

    def __iter__(self):  # micro_batch, grad_accum, estimate = fit(...)
        return iter((self.micro_batch, self.grad_accum, self.estimate))

    def as_dict(self) -> dict:
        return {"gpu": self.gpu, "effective_batch": self.effective_batch, "micro_batch": self.micro_batch,
                "grad_accum": self.grad_accum, "fits": self.fits, "message": self.message,
                "estimate": self.estimate.as_dict()}


def fit(model, *, gpu="T4", effective_batch=16, headroom_gib=0.0, **kwargs) -> Fit:
    """Largest micro-batch (a divisor of effective_batch) whose peak (`needed_gib`) fits on `gpu`.

    Returns Fit(micro_batch, grad_accum, estimate, ...); unpack it as a tuple if you like.
    `headroom_gib` keeps that much memory free (e.g. for evaluation or fragmentation).
    """
    if int(effective_batch) != effective_batch or effective_batch < 1:
        raise FriendlyError(f"effective_batch must be a positive whole number, got {effective_batch!r}.")
    spec = _gpus.get(gpu)
    kwargs.pop("micro_batch", None)
    kwargs.pop("grad_accum", None)
    budget = spec.usable_gib - headroom_gib
    best = None
    for micro in sorted((d for d in range(1, effective_batch + 1) if effective_batch % d == 0)):
        est = estimate(model, gpu=spec.name, micro_batch=micro, grad_accum=effective_batch // micro, **kwargs)
        if est.needed_gib > budget:
            break  # memory grows with the micro-batch: larger ones will not fit either
        best = est
    if best is None:
        est = estimate(model, gpu=spec.name, micro_batch=1, grad_accum=effective_batch, **kwargs)
        message = (f"Does not fit on {spec.name} even with micro-batch 1"
                   + (f" while keeping {headroom_gib:.2f} GiB free for the estimate's error (--headroom; 0 to risk it)"
                      if headroom_gib else "")
                   + f": {est.verdict()}"
                   + ". Try gradient checkpointing, a shorter sequence, LoRA/QLoRA or an 8-bit/paged optimizer.")
        return Fit(1, effective_batch, est, spec.name, effective_batch, False, message)
    micro = best.inputs["micro_batch"]
    message = (f"micro-batch {micro} x {effective_batch // micro} accumulation steps = {effective_batch} on "
               f"{spec.name}: {best.verdict()}"
               + (f" (keeping {headroom_gib:.2f} GiB free)" if headroom_gib else "")
               + f", {best.step_time_s:.2f} s per optimizer step")
    return Fit(micro, effective_batch // micro, best, spec.name, effective_batch, True, message)


def error(estimated: float | None, measured: float | None) -> float | None:
    """Relative error of an estimate: (estimated - measured) / measured (0.05 = 5 % too high).

    None when either figure is missing (e.g. no NVML reading, or no step time without a GPU).
    """
    if measured is None or estimated is None:
        return None
    if measured == 0:
        raise FriendlyError("error(): the measured value is 0, a relative error is undefined.")
    return (estimated - measured) / measured


def gpu_key(name: str | None) -> str | None:
    """The estimator's name for a GPU ('NVIDIA H200' -> 'H200'), or None for a CPU or an unknown GPU."""
    if not name or str(name).strip().lower() == "cpu":
        return None
    try:
        return _gpus.get(name).name
    except FriendlyError:
        return None


def compare(est: Estimate, measured: dict) -> dict:
    """Estimated, measured and relative error for each figure both have (a notebook's last table)."""
    out = {}
    for key in ("peak_allocated_gib", "peak_reserved_gib", "peak_device_gib", "step_time_s"):
        e, m = getattr(est, key), measured.get(key)
        if e is not None and m:
            out[key] = {"estimated": round(e, 3), "measured": round(m, 3), "error": round(error(e, m), 4)}
    return out


# --------------------------------------------------------------------------- verdicts and whole runs
# A margin smaller than this share of the estimate is within the estimator's own error: its largest
# device-memory error on the calibration runs was 5.1 % (docs/estimator.md), and --fit keeps 5 % free.
# The notebooks' bench runs missed by more on a few recipes (05's QLoRA by -31 %), so even "fits" is
# the estimate's word, not a promise.
TIGHT_FRACTION = 0.05

# Whole notebook runs took this many times the estimated steady step time: measured / estimated of the
# notebooks' H200 bench runs that estimate time at the data's typical length (results/*.bench.json,
# 2026-11-22/23): 01 3.36; 03 1.53; 04 1.66, 1.38, 3.39; 05 1.20 to 3.95 (README "Will it fit?" has the
# causes: warm-up, padding, per-micro-batch launches). results.whole_run_ratios() recomputes them; 02
# is not among them, its notebook estimates time at the longest quote (0.78x and 1.47x of that).
WHOLE_RUN_FACTOR = (1.2, 4.0)


def fit_status(needed_gib: float, usable_gib: float) -> str:
    """'does not fit' above usable_gib; 'tight' when the estimate's error could take it there; else 'fits'."""
    if needed_gib > usable_gib:
        return "does not fit"
    if needed_gib * (1 + TIGHT_FRACTION) > usable_gib:
        return "tight"
    return "fits"


def _article(name: str) -> str:
    return "an" if name[:1].upper() in "AEFHILMNORSX" else "a"  # an H200, an L4, an A100; a T4, a V100


def fit_verdict(needed_gib: float, gpu: str, usable_gib: float | None = None, measured: bool = False) -> str:
    """The verdict for `needed_gib` of memory on `gpu`, with its margin, e.g.

    'fits a T4: 12.7 of 14.56 GiB, 1.9 GiB (13 %) to spare'
    'tight: may not fit a T4: 14.1 of 14.56 GiB, only 0.4 GiB (3 %) to spare, within the estimate's 5 % error'
    'does NOT fit a T4: 16.1 of 14.56 GiB, 1.5 GiB over'

    measured=True: `needed_gib` was measured (needed_from_measured), so a tight margin is not the
    estimate's error but what another GPU's driver, CUDA context and fragmentation can take.
    """
    spec = _gpus.get(gpu)
    usable = spec.usable_gib if usable_gib is None else usable_gib
    on = f"{_article(spec.name)} {spec.name}: {needed_gib:.1f} of {usable:.2f} GiB"
    spare = usable - needed_gib
    share = f"{100 * abs(spare) / usable:.0f} %"
    status = fit_status(needed_gib, usable)
    if status == "does not fit":
        return f"does NOT fit {on}, {-spare:.1f} GiB over"
    if status == "tight":
        why = ("another driver, CUDA context or fragmentation can take that" if measured
               else f"within the estimate's {100 * TIGHT_FRACTION:.0f} % error")
        return f"tight: may not fit {on}, only {spare:.1f} GiB ({share}) to spare, {why}"
    return f"fits {on}, {spare:.1f} GiB ({share}) to spare"


def needed_from_measured(device_used_gib: float, gpu_name: str | None) -> float:
    """What a measured run needed of a GPU's usable memory: NVML's device-used (helpers.memory) less the
    driver's reservation where it was measured (the calibration GPU's, 0.60 GiB on the H200). On other
    GPUs nothing is subtracted, which errs on the safe side (a T4 reserves about 0.3-0.45 GiB)."""
    if gpu_key(gpu_name) == CALIBRATION["gpu"]:
        return device_used_gib - CALIBRATION["driver_reserved_gib"]
    return device_used_gib


def verdict(plan) -> str:
    """The fit verdict of an Estimate (or a Fit) with its margin: what a notebook prints."""
    plan = getattr(plan, "estimate", plan)
    return plan.verdict()


def _unit(seconds: float) -> tuple:
    """(divisor, format, unit) to write `seconds` in: s under 2 minutes, min under 2 hours, else h."""
    if seconds < 120:
        return 1, ".0f", "s"
    if seconds < 2 * 3600:
        return 60, ".1f" if seconds < 600 else ".0f", "min"
    return 3600, ".1f", "h"


def _duration(seconds: float) -> str:
    """'45 s', '12 min', '1.3 h'."""
    div, fmt, unit = _unit(seconds)
    return f"{seconds / div:{fmt}} {unit}"


def _span(low_s: float, high_s: float) -> str:
    """'40-90 s', '5-16 min' or '1.3-2.9 h': one unit for both ends, chosen by the upper one."""
    div, fmt, unit = _unit(high_s)
    return f"{low_s / div:{fmt}}-{high_s / div:{fmt}} {unit}"


def _amount(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def _dollars(low: float, high: float) -> str:
    digits = 2 if high >= 0.1 else 3  # a few cents still show
    return f"${low:.{digits}f}-{high:.{digits}f}"


def bill_text(bill: dict | None) -> str:
    """' → 1.5-3.0 compute units ≈ $0.15-0.30 at 1.19 CU/h (2026-03 rates)' of a cost.colab_cost_range; '' for None."""
    if not bill:
        return ""
    (u0, u1), (d0, d1) = bill["units"], bill["dollars"]
    return (f" → {_amount(u0)}-{_amount(u1)} compute units ≈ {_dollars(d0, d1)} at {bill['rate']} CU/h "
            f"({bill['date']} rates)")


@dataclass
class RunTime:
    """A whole run's time on one GPU as a range (seconds), with where each end comes from."""

    gpu: str
    steps: int
    samples: float | None
    estimate_s: float  # steps x the estimate's steady step time
    low_s: float
    high_s: float
    factor: tuple  # the whole-run error the range applies to estimate_s
    floor_s: float | None = None  # the longest measured run on a GPU at least as fast, scaled to this run
    floor_source: str | None = None
    notes: list = field(default_factory=list)
    table: str = _cost.DEFAULT_TABLE
    price: str = "payg"

    @property
    def hours(self) -> tuple:
        return self.low_s / 3600, self.high_s / 3600

    @property
    def bill(self) -> dict | None:
        """Colab compute units and dollars of both ends (helpers.cost), or None where Colab does not rent the GPU."""
        if not _cost.is_colab_gpu(self.gpu, self.table):
            return None
        return _cost.colab_cost_range(self.low_s, self.high_s, gpu=self.gpu, table=self.table, price=self.price)

    def as_dict(self) -> dict:
        bill = self.bill
        return {"gpu": self.gpu, "steps": self.steps, "samples": self.samples, "estimate_s": round(self.estimate_s, 1),
                "low_s": round(self.low_s, 1), "high_s": round(self.high_s, 1), "factor": list(self.factor),
                "floor_s": None if self.floor_s is None else round(self.floor_s, 1), "floor_source": self.floor_source,
                "units": None if bill is None else [round(u, 4) for u in bill["units"]],
                "dollars": None if bill is None else [round(d, 4) for d in bill["dollars"]],
                "rate_table": self.table if bill else None, "notes": self.notes, "text": str(self)}

    def __str__(self) -> str:
        low, high = self.factor
        text = (f"{self.gpu}: {self.steps:,} steps ≈ {_span(self.low_s, self.high_s)} (the estimate's "
                f"{_duration(self.estimate_s)} × {low:g}-{high:g}, the notebooks' whole-run error on the H200")
        if self.floor_s is not None and self.floor_s >= low * self.estimate_s:
            text += f"; not below {_duration(self.floor_s)}: {self.floor_source}"
        text += ")"
        return text + bill_text(self.bill)


def run_time(plan, *, steps: int, gpu: str | None = None, samples: float | None = None, tokens: float | None = None,
             measured=(), factor: tuple = WHOLE_RUN_FACTOR, table: str = _cost.DEFAULT_TABLE,
             price: str = "payg") -> RunTime:
    """A whole run of `steps` optimizer steps on the plan's GPU, as a range of seconds.

    The range is the estimate's steady step time x `steps`, widened by the estimator's known whole-run
    error (WHOLE_RUN_FACTOR, measured on the notebooks' H200 benches). `measured`: rates of the same
    recipe measured on real GPUs (helpers.results.measured_rate): where one ran on a GPU at least as
    fast as this one in every figure of the table, the low end is never below that run's time scaled to
    the same samples (or tokens, or steps), since a slower GPU cannot beat it. `samples` defaults to
    steps x micro-batch x accumulation of the plan (give it where the plan packs rows); give `tokens` to
    scale a tokens/s measurement (else such a record is scaled by steps of the same batch).
    Compute units and dollars of both ends: `.bill` (helpers.cost, `table`, `price`).
    """
    plan = getattr(plan, "estimate", plan)  # a Fit works too
    if plan.step_time_s is None or plan.gpu is None:
        raise FriendlyError("run_time needs an estimate made for a GPU (gpu=...): this one has no step time.")
    if gpu is not None and _gpus.get(gpu).name != plan.gpu:
        raise FriendlyError(f"This plan was estimated for {plan.gpu}, not {gpu}: estimate it again with gpu={gpu!r}.")
    if int(steps) != steps or steps < 1:
        raise FriendlyError(f"steps must be a positive whole number, got {steps!r}.")
    low, high = factor
    if not 0 < low < high:
        raise FriendlyError(f"factor must be (low, high) with 0 < low < high, got {factor!r}.")
    if samples is None:
        samples = steps * plan.inputs.get("micro_batch", 1) * plan.inputs.get("grad_accum", 1)
    per_step = samples / steps  # e.g. 8 packed rows that the plan models as one row of 8x the length
    estimate_s = plan.step_time_s * steps
    notes, floor_s, floor_source = [], None, None
    for rate in measured:
        if rate.gpu is None:
            notes.append(f"{rate}: not used, its GPU ({rate.gpu_name}) is not in helpers.gpus")
            continue
        if not _gpus.at_least_as_fast(rate.gpu, plan.gpu):
            notes.append(f"{rate}: not used as a floor, the {rate.gpu} is not at least as fast as the {plan.gpu} "
                         "in every figure")
            continue
        seconds, how = rate.seconds_for(samples=samples, tokens=tokens, steps=steps, samples_per_step=per_step)
        if seconds is None:
            notes.append(f"{rate}: not used, {how}")
        elif floor_s is None or seconds > floor_s:
            floor_s, floor_source = seconds, f"{rate}, {how}"
    low_s, high_s = low * estimate_s, high * estimate_s
    if floor_s is not None and floor_s > low_s:
        low_s = floor_s
        if floor_s >= high_s:  # the estimate is further off than its known error: keep the band's width
            high_s = floor_s * high / low
            notes.append(f"the measured {_duration(floor_s)} is above the estimate's whole band "
                         f"({_duration(estimate_s)} x {low:g}-{high:g}): the range starts there instead")
    return RunTime(gpu=plan.gpu, steps=int(steps), samples=samples, estimate_s=estimate_s, low_s=low_s,
                   high_s=high_s, factor=(low, high), floor_s=floor_s, floor_source=floor_source, notes=notes,
                   table=table, price=price)


# --------------------------------------------------------------------------- presets and CLI
# One per notebook recipe (and per method of notebook 05). Figures not published by the posts
# (01's batch and length) are this project's choices, stated in the notebooks.
PRESETS = {
    "lora-xlmr-large": dict(
        notebook="01", model="xlm-roberta-large", task="seq-cls", num_labels=214, method="lora", lora_r=16,
        lora_targets=["query", "value"], optimizer="adamw", precision="fp16", micro_batch=8, seq_len=512,
        weights_dtype="fp32", gpu="T4"),
    "qlora-neox-20b": dict(
        notebook="02", model="EleutherAI/gpt-neox-20b", task="causal-lm", method="qlora", lora_r=8,
        lora_targets=["query_key_value"], optimizer="paged_adamw_8bit", precision="fp16",
        gradient_checkpointing=True, micro_batch=1, seq_len=64, grad_accum=8, gpu="T4"),
    "qlora-phi3-mini": dict(
        notebook="03", model="microsoft/Phi-3-mini-4k-instruct", task="causal-lm", method="qlora", lora_r=16,
        lora_targets="all-linear", optimizer="paged_adamw_32bit", precision="fp16",
        gradient_checkpointing=True, micro_batch=1, seq_len=1024, grad_accum=4, fused_head=True,
        gpu="T4"),  # SFTTrainer: TRL's fused LM head
    "full-bloom-560m": dict(
        notebook="04", model="bigscience/bloom-560m", task="seq-cls", num_labels=2, method="full",
        optimizer="adam", precision="fp16", micro_batch=1, seq_len=1024, grad_accum=16, weights_dtype="fp32",
        gpu="T4"),  # the notebook loads fp32 weights (the checkpoint's are fp16: the scaler refuses fp16 gradients)
}
for _method, _extra in {
    "full": {}, "frozen": dict(trainable_blocks=2), "prompt": dict(num_virtual_tokens=20),
    "ptuning": dict(num_virtual_tokens=20), "prefix": dict(num_virtual_tokens=20),
    "lora-qv": dict(method="lora", lora_r=8, lora_targets=["query", "value"]),
    "lora-all": dict(method="lora", lora_r=8, lora_targets="all-linear"),
    "qlora": dict(lora_r=8, lora_targets="all-linear", optimizer="paged_adamw_8bit"),
}.items():
    PRESETS[f"roberta-large-{_method}"] = dict(
        notebook="05", model="roberta-large", task="seq-cls", num_labels=2, method=_method,
        optimizer="adamw", precision="fp16", micro_batch=32, seq_len=256, weights_dtype="fp32", gpu="T4")
    PRESETS[f"roberta-large-{_method}"].update(_extra)

ESTIMATE_KEYS = ("task", "num_labels", "method", "lora_r", "lora_targets", "trainable_blocks",
                 "num_virtual_tokens", "optimizer", "precision", "weights_dtype", "double_quant",
                 "gradient_checkpointing", "micro_batch", "seq_len", "grad_accum", "gpu", "fused_head")


def preset(name: str) -> dict:
    """The settings of a preset (a copy: change what you like and pass it to estimate(**...))."""
    if name not in PRESETS:
        raise FriendlyError(f"Unknown preset {name!r}. Presets: {', '.join(PRESETS)}.")
    settings = dict(PRESETS[name])
    settings.pop("notebook", None)
    return settings


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected on/off, got {text!r}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m helpers.estimate",
        description="Estimate peak GPU memory and step time of a fine-tuning recipe before training.",
        epilog="Example: python -m helpers.estimate --preset qlora-neox-20b --gpu T4 --fit --effective-batch 8",
    )
    p.add_argument("--preset", help=f"a recipe: {', '.join(PRESETS)}")
    p.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    p.add_argument("--model", help="hub id with an offline config, or a local checkpoint folder")
    p.add_argument("--task", choices=TASKS)
    p.add_argument("--num-labels", type=int)
    p.add_argument("--method", choices=METHODS)
    p.add_argument("--lora-r", type=int)
    p.add_argument("--lora-targets", help="comma-separated module names, or all-linear")
    p.add_argument("--trainable-blocks", type=int, help="method frozen: how many last blocks train")
    p.add_argument("--num-virtual-tokens", type=int)
    p.add_argument("--optimizer", choices=list(OPTIMIZERS))
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--weights-dtype", choices=WEIGHT_DTYPES)
    p.add_argument("--double-quant", type=_bool, metavar="on|off")
    p.add_argument("--gradient-checkpointing", type=_bool, metavar="on|off")
    p.add_argument("--micro-batch", type=int)
    p.add_argument("--seq-len", type=int)
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--gpu", help=f"one of {', '.join(_gpus.known())}, or 'none'")
    p.add_argument("--fit", action="store_true", help="find the largest micro-batch that fits on --gpu")
    p.add_argument("--effective-batch", type=int, help="with --fit: micro-batch x accumulation")
    p.add_argument("--headroom", type=float, help="with --fit: GiB to keep free (default: 5 %% of the GPU's "
                   "usable memory, the estimator's largest error on its calibration runs)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.list_presets:
        for name, settings in PRESETS.items():
            print(f"{name:28s} notebook {settings['notebook']}: {settings['model']}, {settings['method']}")
        return 0
    try:
        settings = preset(args.preset) if args.preset else {}
    except FriendlyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    overrides = {k: getattr(args, k) for k in ESTIMATE_KEYS if getattr(args, k, None) is not None}
    if args.model:
        overrides["model"] = args.model
    if "lora_targets" in overrides and overrides["lora_targets"] != "all-linear":
        overrides["lora_targets"] = [t.strip() for t in overrides["lora_targets"].split(",") if t.strip()]
    settings.update(overrides)
    if settings.get("gpu") in ("none", "None", ""):
        settings["gpu"] = None
    if "model" not in settings:
        print("Give --preset or --model (see --help; --list-presets lists the recipes).", file=sys.stderr)
        return 2
    model = settings.pop("model")
    try:
        if args.fit:
            gpu = settings.pop("gpu", None) or "T4"
            effective = args.effective_batch or settings.get("micro_batch", 1) * settings.get("grad_accum", 1)
            headroom = args.headroom if args.headroom is not None else round(0.05 * _gpus.get(gpu).usable_gib, 2)
            result = fit(model, gpu=gpu, effective_batch=effective, headroom_gib=headroom, **settings)
            print(json.dumps(result.as_dict(), indent=2) if args.json
                  else result.estimate.table() + "\n\n" + result.message)
        else:
            result = estimate(model, **settings)
            print(json.dumps(result.as_dict(), indent=2) if args.json else result.table())
    except FriendlyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

