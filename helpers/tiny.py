"""Offline models for the `smoke` and `bench` profiles, loaded like real hub checkpoints.

Nothing here reaches the network. Each function writes an ordinary Hugging Face checkpoint
folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json) and returns its
path, so the notebooks keep the very `from_pretrained(...)` call a hub id would take:

* `tiny_checkpoint("bloom")`: a small random model of the architecture, with a byte-level BPE
  tokenizer trained offline on the text samples in data/ (smoke profile, CPU, seconds).
* `random_checkpoint("bigscience/bloom-560m")`: the exact full-size architecture from
  `FULL_CONFIGS`, random weights (bench profile: memory and speed at real size, no download).

The tokenizers copy the special-token layout of the real ones (ids of <pad>, <s>, </s>, the
chat template of an instruct model), not their vocabulary. Checkpoints are cached under
FINETUNE_CACHE (default ~/.cache/finetune-budget) keyed by everything that shapes them.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import runtime
from .errors import FriendlyError
from .runtime import repo_root

CACHE_ENV = "FINETUNE_CACHE"
_FORMAT_VERSION = "1"  # bump to invalidate every cached checkpoint

# A chat template in the style of Phi-3's: <|user|> ... <|end|> <|assistant|> ... <|end|>.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TokenizerStyle:
    """Special tokens (in id order), what the tokenizer adds around a text, and its roles."""

    specials: tuple
    roles: dict
    template: str | None = None  # "<s> $A </s>"-style post-processing, None for none
    padding_side: str = "right"
    chat_template: str | None = None
    trailing_specials: tuple = ()  # tokens placed after the learned vocabulary (e.g. <mask>)


STYLES = {
    # BLOOM: <unk>=0 <s>=1 </s>=2 <pad>=3, nothing added around a text, left padding.
    "bloom": TokenizerStyle(
        specials=("<unk>", "<s>", "</s>", "<pad>"),
        roles=dict(unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"),
        padding_side="left",
    ),
    # (XLM-)RoBERTa: <s>=0 <pad>=1 </s>=2 <unk>=3, "<s> text </s>", <mask> after the vocabulary.
    "roberta": TokenizerStyle(
        specials=("<s>", "<pad>", "</s>", "<unk>"),
        roles=dict(
            bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
            cls_token="<s>", sep_token="</s>", mask_token="<mask>",
        ),
        template="roberta",
        trailing_specials=("<mask>",),
    ),
    # GPT-NeoX: <|endoftext|>=0 is bos, eos and unk; <|padding|>=1; no pad token is set (the
    # recipe sets pad = eos itself).
    "gpt-neox": TokenizerStyle(
        specials=("<|endoftext|>", "<|padding|>"),
        roles=dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"),
    ),
    # A Phi-3-like chat model: <unk>=0 <s>=1 </s>=2, chat markers, <s> added before a text.
    "chat": TokenizerStyle(
        specials=("<unk>", "<s>", "</s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
        roles=dict(unk_token="<unk>", bos_token="<s>", eos_token="<|end|>", pad_token="<|endoftext|>"),
        template="bos",
        chat_template=CHAT_TEMPLATE,
    ),
}


@dataclass(frozen=True)
class Family:
    """An architecture: its config class, the head it is saved with and its tokenizer style."""

    config_class: str
    saved_as: str  # the Auto class a hub checkpoint of this family is usually saved with
    style: str
    tiny: dict = field(default_factory=dict)


FAMILIES = {
    "bloom": Family(
        "BloomConfig", "AutoModelForCausalLM", "bloom",
        tiny=dict(hidden_size=64, n_layer=2, n_head=4, hidden_dropout=0.0, attention_dropout=0.0),
    ),
    "xlm-roberta": Family(
        "XLMRobertaConfig", "AutoModelForMaskedLM", "roberta",
        tiny=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  max_position_embeddings=514, type_vocab_size=1),
    ),
    "roberta": Family(
        "RobertaConfig", "AutoModelForMaskedLM", "roberta",
        tiny=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  max_position_embeddings=514, type_vocab_size=1),
    ),
    "gpt-neox": Family(
        "GPTNeoXConfig", "AutoModelForCausalLM", "gpt-neox",
        tiny=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                  rotary_pct=0.25, use_parallel_residual=True, tie_word_embeddings=False,
                  max_position_embeddings=2048),
    ),
    "chat": Family(
        "Phi3Config", "AutoModelForCausalLM", "chat",
        tiny=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=4096, tie_word_embeddings=False),
    ),
}

# The exact architectures of the recipes' hub checkpoints (values from their config.json).
# `bench` builds these with random weights; the estimator counts parameters from them.
FULL_CONFIGS = {
    "bigscience/bloom-560m": ("bloom", dict(
        vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16, layer_norm_epsilon=1e-5,
        hidden_dropout=0.0, attention_dropout=0.0)),
    "bigscience/bloom-1b1": ("bloom", dict(
        vocab_size=250880, hidden_size=1536, n_layer=24, n_head=16, layer_norm_epsilon=1e-5,
        hidden_dropout=0.0, attention_dropout=0.0)),
    "xlm-roberta-base": ("xlm-roberta", dict(
        vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5)),
    "xlm-roberta-large": ("xlm-roberta", dict(
        vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
        intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5)),
    "roberta-base": ("roberta", dict(
        vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5)),
    "roberta-large": ("roberta", dict(
        vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
        intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5)),
    "EleutherAI/gpt-neox-20b": ("gpt-neox", dict(
        vocab_size=50432, hidden_size=6144, num_hidden_layers=44, num_attention_heads=64,
        intermediate_size=24576, rotary_pct=0.25, rotary_emb_base=10000, max_position_embeddings=2048,
        use_parallel_residual=True, tie_word_embeddings=False, layer_norm_eps=1e-5)),
    "microsoft/Phi-3-mini-4k-instruct": ("chat", dict(
        vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
        original_max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-5,
        sliding_window=2047, tie_word_embeddings=False)),
    # the scale-out run's full fine-tune (scripts/bench_sft.py): Phi-3-mini's bigger sibling, 14B
    "microsoft/Phi-3-medium-4k-instruct": ("chat", dict(
        vocab_size=32064, hidden_size=5120, intermediate_size=17920, num_hidden_layers=40,
        num_attention_heads=40, num_key_value_heads=10, max_position_embeddings=4096,
        original_max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-5,
        sliding_window=2047, tie_word_embeddings=False)),
}


def cache_dir() -> Path:
    path = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "finetune-budget"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _family(name: str) -> Family:
    if name not in FAMILIES:
        raise FriendlyError(f"Unknown model family {name!r}; choose one of {', '.join(FAMILIES)}.")
    return FAMILIES[name]


def sample_corpus(samples=None) -> list[str]:
    """The texts of committed data samples: what the offline tokenizers are trained on.

    `samples` names files in data/ (one name or a list); None takes every sample. A notebook names
    its own sample, so adding a sample for another notebook does not change its tokenizer.
    """
    import pandas as pd

    data_dir = repo_root() / "data"
    if samples is None:
        paths = sorted(data_dir.glob("*"))
    else:
        paths = [data_dir / name for name in ([samples] if isinstance(samples, str) else samples)]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FriendlyError(f"No data sample at {', '.join(missing)}; see data/README.md.")
    texts: list[str] = []
    for path in paths:
        if path.suffix == ".csv":
            frame = pd.read_csv(path)
        elif path.suffix == ".jsonl":
            frame = pd.read_json(path, lines=True)
        else:
            continue
        for column in frame.columns:
            if pd.api.types.is_string_dtype(frame[column]) or frame[column].dtype == object:
                texts.extend(str(t) for t in frame[column].dropna())
    if not texts:  # an empty data/ still gives a usable tokenizer
        texts = ["the quick brown fox jumps over the lazy dog"] * 10
    return texts


def build_tokenizer(style_name: str, vocab_size: int, corpus: list[str] | None = None):
    """A byte-level BPE tokenizer trained offline, with the special tokens of `style_name`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    style = STYLES[style_name]
    corpus = corpus if corpus is not None else sample_corpus()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(style.trailing_specials),
        special_tokens=list(style.specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    if style.trailing_specials:
        tok.add_special_tokens(list(style.trailing_specials))
    if style.template == "roberta":
        bos, eos = style.roles["bos_token"], style.roles["eos_token"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}",
            pair=f"{bos} $A {eos} {eos} $B {eos}",
            special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))],
        )
    elif style.template == "bos":
        bos = style.roles["bos_token"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, padding_side=style.padding_side, **style.roles
    )
    if style.chat_template:
        tokenizer.chat_template = style.chat_template
    return tokenizer


def _token_ids(tokenizer) -> dict:
    ids = {}
    for role in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, role, None)
        if value is not None:
            ids[role] = value
    return ids


def _config(family: Family, overrides: dict, tokenizer):
    import transformers

    config_class = getattr(transformers, family.config_class)
    kwargs = dict(overrides)
    kwargs.update(_token_ids(tokenizer))
    return config_class(**kwargs)


def _key(*parts) -> str:
    blob = json.dumps([_FORMAT_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _write_checkpoint(path: Path, config, tokenizer, saved_as: str, seed: int, dtype=None, device="cpu"):
    import torch
    import transformers

    # One temporary folder per process: several processes (accelerate launch) may build the same one.
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    torch.manual_seed(seed)
    auto = getattr(transformers, saved_as)
    with torch.device(device):
        model = auto.from_config(config, dtype=dtype) if dtype is not None else auto.from_config(config)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "ORIGIN.txt").write_text(
        "Random weights written by helpers.tiny for the offline profiles; not a trained model.\n"
    )
    del model
    if (path / "config.json").exists():  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shutil.rmtree(path, ignore_errors=True)
    try:
        tmp.rename(path)  # only a complete folder ever carries the final name
    except OSError:       # lost the race to another process between the check and the rename
        if not (path / "config.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def tiny_checkpoint(family_name: str, vocab_size: int = 2048, seed: int = 0, corpus=None,
                    **config_overrides) -> str:
    """Path of a tiny random checkpoint of `family_name` (built once, then cached).

    `corpus` names the data sample(s) its tokenizer is trained on (default: all of data/);
    `config_overrides` change the tiny config (e.g. hidden_size=128).
    """
    family = _family(family_name)
    corpus = sample_corpus(corpus)
    overrides = {**family.tiny, **config_overrides}
    key = _key("tiny", family_name, vocab_size, seed, overrides, hashlib.sha256("\n".join(corpus).encode()).hexdigest())
    path = cache_dir() / f"tiny-{family_name}-{key}"
    if not (path / "config.json").exists():
        tokenizer = build_tokenizer(family.style, vocab_size, corpus)
        overrides["vocab_size"] = -(-len(tokenizer) // 8) * 8  # round up: friendlier matrix shapes
        config = _config(family, overrides, tokenizer)
        _write_checkpoint(path, config, tokenizer, family.saved_as, seed)
    return str(path)


def full_config(model_id: str):
    """The exact config of a recipe's hub model, built offline (no download)."""
    if model_id not in FULL_CONFIGS:
        raise FriendlyError(
            f"No offline config for {model_id!r}. Known: {', '.join(FULL_CONFIGS)}. "
            "Add its config.json values to helpers/tiny.py FULL_CONFIGS to bench it."
        )
    family_name, values = FULL_CONFIGS[model_id]
    family = _family(family_name)
    tokenizer_ids = {"bloom": dict(bos_token_id=1, eos_token_id=2, pad_token_id=3),
                     "roberta": dict(bos_token_id=0, pad_token_id=1, eos_token_id=2),
                     "gpt-neox": dict(bos_token_id=0, eos_token_id=0),
                     "chat": dict(bos_token_id=1, eos_token_id=32007, pad_token_id=32000)}[family.style]
    import transformers

    return getattr(transformers, family.config_class)(**copy.deepcopy(values), **tokenizer_ids)


def random_checkpoint(model_id: str, dtype: str = "bfloat16", seed: int = 0, tokenizer_vocab: int = 8192,
                      corpus=None) -> str:
    """Path of a checkpoint with `model_id`'s exact architecture and random weights (bench).

    Built on the GPU when there is one (a 20B model initialises in seconds there), saved in
    `dtype`, and cached. The tokenizer has the real special-token ids but a small offline
    vocabulary: its ids are valid for the model, its text lengths close to the real one's.
    """
    import torch

    family_name, values = FULL_CONFIGS.get(model_id, (None, None))
    if family_name is None:
        full_config(model_id)  # raises the friendly error
    family = _family(family_name)
    texts = sample_corpus(corpus)
    key = _key("random", model_id, values, dtype, seed, tokenizer_vocab,
               hashlib.sha256("\n".join(texts).encode()).hexdigest())
    path = cache_dir() / f"random-{model_id.replace('/', '--')}-{key}"
    if not (path / "config.json").exists():
        tokenizer = build_tokenizer(family.style, tokenizer_vocab, texts)
        config = full_config(model_id)
        if family.style == "chat":  # the offline chat vocabulary has its own marker ids
            config.update(_token_ids(tokenizer))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        # Scaffolding, not the recipe: under NB_EMULATE=T4 a 20B model (41 GB in 16 bits) is written on the whole
        # GPU, and the T4's memory cap holds again for everything the notebook then does with it.
        with runtime.emulation_cap_lifted():
            _write_checkpoint(path, config, tokenizer, family.saved_as, seed,
                              dtype=getattr(torch, dtype), device=device)
    return str(path)


def checkpoint_for(profile: str, model_id: str, *, family: str, corpus=None, **tiny_overrides) -> str:
    """The model a profile trains: `model_id` itself in full (from the hub), its exact architecture with random
    weights in bench (random_checkpoint), the real small pretrained model of `family` in real (MiniLM for encoders,
    SmolLM2-135M-Instruct for causal LMs: helpers.pretrained), and a tiny random one of `family` in smoke
    (tiny_checkpoint, with `tiny_overrides` such as hidden_size=128). `corpus` names the data sample its tokenizer
    learns from."""
    if profile == "full":
        return model_id
    if profile == "real":
        from . import pretrained

        return pretrained.folder(family)
    if profile == "bench":
        return random_checkpoint(model_id, corpus=corpus)
    return tiny_checkpoint(family, corpus=corpus, **tiny_overrides)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters, counting 4-bit packed weights by their real element count."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        quant_state = getattr(param, "quant_state", None)
        if quant_state is not None and hasattr(quant_state, "shape"):
            n = int(math.prod(quant_state.shape))
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total
