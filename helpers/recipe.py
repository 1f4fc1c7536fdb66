"""A training recipe read off the objects a notebook builds, so that no figure of it is written twice.

The notebook's Recipe cell holds the literal configs: a peft config (`LoraConfig`, `PromptTuningConfig`, ...),
a `BitsAndBytesConfig` where the model is quantised, and the training arguments (a `TrainingArguments` /
`SFTConfig`, or the dict of keywords that builds one). `read` turns them, with the model and the sequence
length, into a `Recipe`: the one set of figures that the estimator, the out-of-memory advice and the
measurement record all take.

    >>> recipe = read("xlm-roberta-large", task="seq-cls", num_labels=214, peft_config=lora_config,
    ...               training=TRAINING, seq_len=512)
    >>> recipe.estimate(gpu="T4").verdict()          # fp16 on a T4, bf16 where the GPU has it
    >>> with recipe.advice():                          # an out-of-memory error becomes advice with numbers
    ...     trainer.train()
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import estimate as _estimate
from . import gpus as _gpus
from .errors import FriendlyError

# peft's config classes by name -> the estimator's method (their classes are checked by name, so that reading
# a recipe needs no peft import)
PEFT_METHODS = {"LoraConfig": "lora", "PromptTuningConfig": "prompt", "PromptEncoderConfig": "ptuning",
                "PrefixTuningConfig": "prefix"}
PEFT_TASKS = {"SEQ_CLS": "seq-cls", "CAUSAL_LM": "causal-lm"}
# what TrainingArguments calls an optimizer -> the estimator's name for the same memory behaviour
OPTIMIZER_NAMES = {"adamw_torch_fused": "adamw_torch_fused", "adamw_torch": "adamw_torch", "adamw": "adamw",
                   "adamw_8bit": "adamw_8bit", "adamw_bnb_8bit": "adamw_8bit", "paged_adamw_8bit": "paged_adamw_8bit",
                   "paged_adamw_32bit": "paged_adamw_32bit", "adam": "adam"}
TRAINER_DEFAULT_OPTIMIZER = "adamw_torch_fused"     # TrainingArguments' default with torch >= 2.8


class RecipeError(FriendlyError):
    """A recipe the estimator cannot read (the message names the field and the choices)."""


def _field(training, name, default=None):
    """One keyword of the training arguments, whether they are a TrainingArguments or a dict."""
    if isinstance(training, dict):
        return training.get(name, default)
    return getattr(training, name, default)


def _optimizer(training) -> str:
    optim = _field(training, "optim", TRAINER_DEFAULT_OPTIMIZER)
    optim = getattr(optim, "value", optim)              # TrainingArguments keeps an OptimizerNames enum
    if optim not in OPTIMIZER_NAMES:
        raise RecipeError(f"optim={optim!r}: the estimator knows {sorted(OPTIMIZER_NAMES)}. Pick one of them, or "
                          "estimate with the nearest (its optimizer state per parameter is what matters).")
    return OPTIMIZER_NAMES[optim]


def _precision(training) -> str:
    if _field(training, "bf16", False):
        return "bf16"
    return "fp16" if _field(training, "fp16", False) else "fp32"


def _targets(targets):
    """peft keeps target_modules as a set (or the string 'all-linear'); the estimator takes a sorted list."""
    if targets is None or isinstance(targets, str):
        return targets
    return sorted(targets)


@dataclass(frozen=True)
class Recipe:
    """What sets a run's memory and time. Build it with `read`; change a field with `changed`."""

    model: object                  # a hub id the estimator knows offline, a checkpoint folder or a config
    task: str                      # causal-lm | seq-cls
    method: str                    # full | frozen | lora | qlora | prompt | ptuning | prefix
    micro_batch: int
    grad_accum: int
    seq_len: int
    precision: str                 # fp32 | fp16 | bf16: the Trainer's mixed precision
    optimizer: str
    gradient_checkpointing: bool = False
    num_labels: int = 2
    lora_r: int | None = None
    lora_targets: object = None
    num_virtual_tokens: int | None = None
    trainable_blocks: int | None = None
    weights_dtype: str | None = None    # the dtype the weights load in (None: the checkpoint's own)
    double_quant: bool = True
    head_modules: tuple | None = None   # what trains whole beside the method (modules_to_save; None: the task head)
    fused_head: bool = False            # TRL's SFTTrainer: logits one tile at a time, never whole

    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.grad_accum

    def changed(self, **changes) -> "Recipe":
        """The same recipe with some fields changed (e.g. another seq_len, or the full profile's batch)."""
        return dataclasses.replace(self, **changes)

    def for_gpu(self, gpu: str | None) -> "Recipe":
        """The recipe as it would run on `gpu`: mixed precision as the notebooks choose it there (bf16 where the
        GPU has it natively, else fp16). A recipe read on a CPU (fp32) counts as mixed precision on a GPU."""
        if gpu is None:
            return self
        return self.changed(precision="bf16" if _gpus.get(gpu).bf16 else "fp16")

    def estimator_kwargs(self) -> dict:
        """The keywords of helpers.estimate.estimate (and of helpers.oom.advice) for this recipe."""
        kwargs = dict(task=self.task, num_labels=self.num_labels, method=self.method, micro_batch=self.micro_batch,
                      grad_accum=self.grad_accum, seq_len=self.seq_len, precision=self.precision,
                      optimizer=self.optimizer, gradient_checkpointing=self.gradient_checkpointing,
                      double_quant=self.double_quant)
        optional = dict(lora_r=self.lora_r, lora_targets=self.lora_targets, num_virtual_tokens=self.num_virtual_tokens,
                        trainable_blocks=self.trainable_blocks, weights_dtype=self.weights_dtype,
                        head_modules=self.head_modules, fused_head=self.fused_head or None)
        return kwargs | {k: v for k, v in optional.items() if v is not None}

    def estimate(self, gpu: str | None = None, **changes) -> "_estimate.Estimate":
        """helpers.estimate.estimate of this recipe on `gpu` (its precision there), with `changes` applied."""
        recipe = self.for_gpu(gpu).changed(**changes) if changes else self.for_gpu(gpu)
        return _estimate.estimate(recipe.model, gpu=gpu, **recipe.estimator_kwargs())

    def advice(self, gpu: str | None = None):
        """helpers.oom.advice for this recipe: an out-of-memory error inside becomes OutOfMemoryAdvice."""
        from . import oom, runtime  # they import torch; a recipe read for an estimate needs neither

        kwargs = self.estimator_kwargs()
        if self.precision == "fp32" and not runtime.cuda_available():
            kwargs.pop("precision")           # a CPU run: the advice gives a T4's figures, in a T4's precision
        return oom.advice(self.model, gpu=gpu, **kwargs)

    def describe(self) -> str:
        """One line: the figures of the recipe that set its memory."""
        method = self.method + (f" r={self.lora_r}" if self.lora_r else "") + \
            (f" ({self.num_virtual_tokens} virtual tokens)" if self.num_virtual_tokens else "") + \
            (f" (last {self.trainable_blocks} blocks)" if self.trainable_blocks else "")
        return (f"{method}, micro-batch {self.micro_batch} x {self.seq_len} tokens, accumulation {self.grad_accum}, "
                f"{self.precision}, {self.optimizer}, gradient checkpointing "
                f"{'on' if self.gradient_checkpointing else 'off'}")

    def as_dict(self) -> dict:
        """For the measurement record."""
        fields = dataclasses.asdict(self)
        fields["model"] = getattr(self.model, "name_or_path", None) or str(self.model)
        return fields


def read(model, *, training, seq_len: int, peft_config=None, quantization=None, task: str | None = None,
         num_labels: int = 2, trainable_blocks: int | None = None, weights_dtype: str | None = None,
         head_modules=None) -> Recipe:
    """The Recipe of these objects.

    training: TrainingArguments / SFTConfig, or the dict of keywords that builds one (per_device_train_batch_size,
    gradient_accumulation_steps, optim, fp16/bf16, gradient_checkpointing are read). peft_config: a peft config or
    None (full fine-tuning; with trainable_blocks, freezing all but the last blocks). quantization: a
    BitsAndBytesConfig; 4-bit with LoRA is QLoRA. task: causal-lm | seq-cls (default: the peft config's task_type).
    head_modules: the modules that train whole beside the method, for freezing (a peft config's own
    modules_to_save are read from it).
    """
    method, lora_r, lora_targets, virtual_tokens = "full", None, None, None
    if peft_config is not None:
        kind = type(peft_config).__name__
        if kind not in PEFT_METHODS:
            raise RecipeError(f"{kind} is not a method the estimator knows: it reads {sorted(PEFT_METHODS)}.")
        method = PEFT_METHODS[kind]
        if method == "lora":
            lora_r, lora_targets = peft_config.r, _targets(peft_config.target_modules)
        else:
            virtual_tokens = peft_config.num_virtual_tokens
        task_type = getattr(getattr(peft_config, "task_type", None), "value", getattr(peft_config, "task_type", None))
        task = task or PEFT_TASKS.get(task_type)
    elif trainable_blocks:
        method = "frozen"
    head_modules = getattr(peft_config, "modules_to_save", None) or head_modules
    four_bit = quantization is not None and getattr(quantization, "load_in_4bit", False)
    if four_bit:
        if method != "lora":
            raise RecipeError("A 4-bit model trains through adapters: the estimator reads 4-bit with a LoraConfig "
                              f"(QLoRA), not with {method!r}.")
        method = "qlora"
    if task not in ("causal-lm", "seq-cls"):
        raise RecipeError(f"task={task!r}: say task='causal-lm' or task='seq-cls' (or give a peft config with its "
                          "task_type).")
    micro_batch = _field(training, "per_device_train_batch_size")
    if micro_batch is None:
        raise RecipeError("The training arguments lack per_device_train_batch_size: the estimator needs the "
                          "micro-batch. Add it to the recipe.")
    return Recipe(model=model, task=task, method=method, micro_batch=int(micro_batch),
                  grad_accum=int(_field(training, "gradient_accumulation_steps", 1) or 1), seq_len=int(seq_len),
                  precision=_precision(training), optimizer=_optimizer(training),
                  # transformers 5 names it activation_checkpointing (gradient_checkpointing is the older name)
                  gradient_checkpointing=bool(_field(training, "activation_checkpointing", None)
                                              or _field(training, "gradient_checkpointing", False)),
                  num_labels=num_labels, lora_r=lora_r, lora_targets=lora_targets, num_virtual_tokens=virtual_tokens,
                  trainable_blocks=trainable_blocks if method == "frozen" else None, weights_dtype=weights_dtype,
                  double_quant=bool(getattr(quantization, "bnb_4bit_use_double_quant", True)) if four_bit else True,
                  head_modules=tuple(head_modules) if head_modules else None,
                  # TRL's SFTTrainer (1.x) always adds its fused LM head (trl.trainer.utils.add_fused_lm_head)
                  fused_head=type(training).__name__ == "SFTConfig" or bool(_field(training, "dataset_text_field")))
