"""Supervised fine-tuning with TRL: the pieces notebook 03 and scripts/train_sft.py share.

The recipe is written once, in configs/sft_recipe.yaml (`RECIPE`): the LoRA, 4-bit and SFTConfig keywords
and the early stopping. The notebook's Recipe cell shows the same values as Python literals (and says whether
they still equal the file: `recipe_file_differences`); scripts/train_sft.py, launched on one GPU or many with
`accelerate launch`, builds its configs from the file. The rest is plumbing:

* data: the accounting question-answer rows (committed sample, the generator in
  data/make_accounting.py, a user's CSV/JSON/JSONL, or a hub dataset), checked and split;
* formatting: each row becomes chat text with the tokenizer's chat template, the user turn
  "{PROMPT_PREFIX}: [{input}]" and, for training rows, the assistant turn with the answer;
* evaluation: greedy generation with left padding, a parser that reads a journal entry back into
  (Dr/Cr, account, amount) lines, and exact-match scores.
"""
from __future__ import annotations

import importlib.util
import re
import time
from collections import Counter
from decimal import Decimal, InvalidOperation

from transformers import TrainerCallback

from . import data as _data
from . import recipe as _recipe
from . import runtime
from .errors import FriendlyError

# The user turn: "{PROMPT_PREFIX}: [{question}]" (the recipe's "{prefix}: [{input}]").
PROMPT_PREFIX = "Record the journal entry (Dr/Cr, account, amount per line) or answer briefly"

# The smoke profile's tiny Phi-3-style chat model (helpers.tiny): 2 layers of width 128. Its weights
# are random and stay frozen under LoRA, so the output head must be able to express confident
# predictions: initializer_range 0.1 (instead of 0.02) gives its random logits that range. At width 64
# the adapters learned the look of an answer but no line that parses; at 128, 300 steps on a CPU teach
# most answers the form of a journal entry (not yet the right accounts: that needs a pretrained base).
SMOKE_MODEL = dict(hidden_size=128, intermediate_size=256, initializer_range=0.1)

RECIPE_FILE = runtime.repo_root() / "configs" / "sft_recipe.yaml"
RECIPE_PARTS = ("lora", "quantization", "training", "early_stopping")



def load_recipe(path=RECIPE_FILE) -> dict:
    """The recipe file: {"lora": LoraConfig keywords, "quantization": BitsAndBytesConfig keywords,
    "training": SFTConfig keywords, "early_stopping": EarlyStoppingCallback keywords}."""
    import yaml

    from pathlib import Path

    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise FriendlyError(f"The recipe file {path} cannot be read ({error}). Name an existing YAML file with "
                            f"the parts {', '.join(RECIPE_PARTS)} (configs/sft_recipe.yaml is the model).") from None
    missing = [part for part in RECIPE_PARTS if not isinstance((loaded or {}).get(part), dict)]
    if missing:
        raise FriendlyError(f"The recipe file {path} lacks {', '.join(missing)}: it needs the parts "
                            f"{', '.join(RECIPE_PARTS)}, as in configs/sft_recipe.yaml.")
    return loaded


# The recipe's numbers, in one place. tests/test_sft_script.py checks that the notebook's Recipe cell and
# configs/deepspeed_zero3.yaml (gradient accumulation and clipping) agree with it.
RECIPE = load_recipe()


def _value(config, key):
    value = config.get(key) if isinstance(config, dict) else getattr(config, key, None)
    value = getattr(value, "value", value)          # enums (peft's TaskType, TrainingArguments' optimizer)
    return sorted(value) if isinstance(value, (set, frozenset)) else value


def recipe_file_differences(path=RECIPE_FILE, **parts) -> list[str]:
    """Where the given configs (lora=LoraConfig, quantization=BitsAndBytesConfig, training=dict of SFTConfig
    keywords, early_stopping=dict) differ from the recipe file: one line per key; [] when they agree."""
    recipe = load_recipe(path)
    differences = []
    for part, config in parts.items():
        written = recipe[part]
        keys = list(written) + ([k for k in config if k not in written] if isinstance(config, dict) else [])
        for key in keys:
            if _value(config, key) != written.get(key):
                differences.append(f"{part}.{key}: here {_value(config, key)!r}, in the file {written.get(key)!r}")
    return differences


# ----------------------------------------------------------------------------- the configs of the script
def quantization_config(compute_dtype, quant_storage=None, recipe=RECIPE):
    """The recipe's BitsAndBytesConfig (4-bit NF4, double quantisation); matrix products in `compute_dtype`.

    `quant_storage` is the dtype the packed 4-bit weights are stored in. Leave it None (uint8) on one
    GPU; under FSDP or DeepSpeed ZeRO-3 set it to the dtype of the other weights (bf16), because
    those shard flat tensors of a single dtype.
    """
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(**recipe["quantization"], bnb_4bit_compute_dtype=compute_dtype,
                              bnb_4bit_quant_storage=quant_storage or torch.uint8)


def lora_config(recipe=RECIPE):
    """The recipe's LoraConfig: adapters on every linear layer of the transformer blocks."""
    from peft import LoraConfig

    return LoraConfig(**recipe["lora"])


def early_stopping(recipe=RECIPE):
    """Stop when the evaluation loss has not improved by `threshold` for `patience` evaluations."""
    from transformers import EarlyStoppingCallback

    return EarlyStoppingCallback(**recipe["early_stopping"])


def adapters_for_precision(trainer) -> set:
    """Put the trainable parameters in the dtype the run's mixed precision can step; returns their dtypes.

    TRL 1.16 casts a quantised model's trainable parameters to bf16 whatever the precision (as the QLoRA
    paper did, on bf16 GPUs). Under fp16 (a T4, a V100) the Trainer's GradScaler then meets bf16 gradients
    and the first optimizer step fails on CUDA ("_amp_foreach_non_finite_check_and_unscale_cuda" not
    implemented for 'BFloat16'; trl issue 4901). fp16 mixed precision keeps its trainable (master) weights in
    fp32, so they go back to fp32 there. Under bf16 and fp32 nothing changes. Call it after building the
    SFTTrainer and before training (the optimizer is created at the start of training).
    """
    import torch

    if trainer.args.fp16:
        for parameter in trainer.model.parameters():
            if parameter.requires_grad and parameter.dtype != torch.float32:
                parameter.data = parameter.data.float()
    return {p.dtype for p in trainer.model.parameters() if p.requires_grad}


def quiet_config_logs() -> None:
    """Keep `log_level="info"` for the Trainer, without the model config it prints at every save.

    The Trainer sets the verbosity of the whole `transformers` logger; these modules only report
    loading and saving configs, tokenizers and weights, which at info level floods the output.
    """
    import logging

    for name in ("transformers.configuration_utils", "transformers.generation.configuration_utils",
                 "transformers.tokenization_utils_base", "transformers.processing_utils",
                 "transformers.modeling_utils", "transformers.utils.hub"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ----------------------------------------------------------------------------- the data
def _generator():
    path = runtime.repo_root() / "data" / "make_accounting.py"
    spec = importlib.util.spec_from_file_location("make_accounting", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate_rows(n: int, seed: int = 0):
    """`n` fresh rows from data/make_accounting.py's generator, as a DataFrame (input, output)."""
    import pandas as pd

    return pd.DataFrame(_generator().generate(n, seed=seed))


def load_rows(source: str = "accounting.csv", input_column: str = "input", output_column: str = "output",
              rows: int | None = None, seed: int = 0, **hub_kwargs):
    """The question-answer table, checked: (DataFrame with columns input/output, cleaning report).

    source: a file in data/ ("accounting.csv"), "generate:N" (N rows from the generator), a path to a
    CSV/JSON/JSONL file, or a hub dataset id (its "train" split).
    """
    from pathlib import Path

    if source.startswith("generate:"):
        frame = generate_rows(int(source.split(":", 1)[1]), seed=seed)
        origin = f"generator (data/make_accounting.py, {len(frame)} rows, seed {seed})"
    elif (runtime.repo_root() / "data" / source).is_file():
        origin = str(_data.sample_path(source))
        frame = _data.read_table(origin)
    elif Path(source).expanduser().exists() or Path(source).suffix.lower() in _data.READERS:
        origin = source
        frame = _data.read_table(source)
    else:
        origin = source
        frame = _data.load_hub(source, split=hub_kwargs.pop("split", "train"), **hub_kwargs).to_pandas()
    if output_column in frame.columns:  # answers are text, even when a file holds only numbers
        frame[output_column] = frame[output_column].map(lambda v: v if v is None or v != v else str(v))
    frame, report = _data.clean_table(frame, input_column, output_column, source=origin)
    frame = frame.rename(columns={input_column: "input", output_column: "output"})
    frame["output"] = frame["output"].astype(str)
    if rows and len(frame) > rows:
        frame = frame.sample(n=rows, random_state=seed).reset_index(drop=True)
    return frame, report


def split(frame, validation: float = 0.1, test: float = 0.1, seed: int = RECIPE["training"]["seed"]):
    """Train / validation / test rows with scikit-learn, as in the recipe."""
    from sklearn.model_selection import train_test_split

    train, rest = train_test_split(frame, test_size=validation + test, random_state=seed)
    val, held_out = train_test_split(rest, test_size=test / (validation + test), random_state=seed)
    return train.reset_index(drop=True), val.reset_index(drop=True), held_out.reset_index(drop=True)


def messages(question: str, answer: str | None = None, prefix: str = PROMPT_PREFIX) -> list[dict]:
    """The conversation of one row: the user's question and, for training, the assistant's answer."""
    turns = [{"role": "user", "content": f"{prefix}: [{question}]"}]
    if answer is not None:
        turns.append({"role": "assistant", "content": answer})
    return turns


def chat_text(tokenizer, question: str, answer: str | None = None, prefix: str = PROMPT_PREFIX) -> str:
    """A row as the model sees it, through the tokenizer's own chat template.

    With an answer: the whole exchange (a training row). Without: the user turn and the opening of
    the assistant's turn (a test prompt), so the model writes the answer itself.
    """
    if tokenizer.chat_template is None:
        raise FriendlyError("This tokenizer has no chat template. Use an instruct/chat model (e.g. "
                            "microsoft/Phi-3-mini-4k-instruct) or set tokenizer.chat_template.")
    return tokenizer.apply_chat_template(messages(question, answer, prefix), tokenize=False,
                                         add_generation_prompt=answer is None)


def to_dataset(frame, tokenizer, with_answer: bool = True, prefix: str = PROMPT_PREFIX):
    """A `datasets.Dataset` with the chat text in column `text` (and the original columns)."""
    from datasets import Dataset

    texts = [chat_text(tokenizer, q, a if with_answer else None, prefix)
             for q, a in zip(frame["input"], frame["output"])]
    return Dataset.from_dict({"text": texts, "input": list(frame["input"]), "output": list(frame["output"])})


# ----------------------------------------------------------------------------- generation
def generate_answers(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 16) -> list[str]:
    """Greedy answers to chat prompts, in batches padded on the left.

    A decoder writes after the last position of each row, so padding must go on the left: with
    right padding the pad tokens would sit between a short prompt and its answer.
    """
    import torch

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    stops = [tokenizer.eos_token_id]
    for marker in ("<|end|>", "<|endoftext|>"):
        token_id = tokenizer.convert_tokens_to_ids(marker)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id not in stops:
            stops.append(token_id)
    was_training = model.training
    model.eval()
    answers = []
    try:
        device = next(p for p in model.parameters()).device
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True).to(device)
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=stops)
            new = out[:, batch["input_ids"].shape[1]:]
            answers += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


# ----------------------------------------------------------------------------- scoring
_LINE = re.compile(
    r"^\s*(?:[-*•]\s*)?(dr|cr|debit|credit)\b\.?\s*:?\s*([A-Za-z][^\d$]*?)(?:\s+|\s*[:=\-–]\s*)\$?\s*"
    r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\s*$",
    re.IGNORECASE)


def normalise_account(name: str) -> str:
    """'Owner’s  Capital:' -> 'owners capital' (case, apostrophes, spacing and punctuation ignored)."""
    name = name.lower().replace("’", "'").replace("'", "")
    name = re.sub(r"[^a-z0-9 ]+", " ", name)
    return " ".join(name.split())


def _amount(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "")).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def parse_entry(text: str) -> list[tuple[str, str, Decimal]]:
    """The (side, account, amount) lines of a journal entry written one account per line.

    Accepts 'Dr Cash 450.00', 'Debit: Cash $450', '- Cr Accounts Payable 1,200'; lines that do not
    look like an entry line are ignored. Sides come back as 'Dr' / 'Cr', accounts normalised.
    """
    lines = []
    for raw in str(text).splitlines():
        match = _LINE.match(raw)
        if not match:
            continue
        side, account, amount = match.groups()
        value = _amount(amount)
        if value is None:
            continue
        lines.append(("Dr" if side.lower().startswith("d") else "Cr", normalise_account(account), value))
    return lines


def is_entry(answer: str) -> bool:
    """Whether a reference answer is a journal entry (else a short concept answer)."""
    return bool(parse_entry(answer))


def normalise_answer(text: str) -> str:
    """A short answer compared without case, punctuation or a trailing full stop ('Credit.' == 'credit')."""
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", first.lower().replace("’", "'")).split())


def score_one(prediction: str, reference: str) -> dict:
    """Exact match of one answer, and for journal entries the softer partial checks."""
    if not is_entry(reference):
        return {"kind": "concept", "exact": normalise_answer(prediction) == normalise_answer(reference)}
    want, got = parse_entry(reference), parse_entry(prediction)
    debits = sum(a for s, _, a in got if s == "Dr")
    credits = sum(a for s, _, a in got if s == "Cr")
    return {
        "kind": "entry",
        "exact": Counter(got) == Counter(want),  # same lines, in any order
        "accounts": Counter((s, a) for s, a, _ in got) == Counter((s, a) for s, a, _ in want),
        "amounts": Counter(x for _, _, x in got) == Counter(x for _, _, x in want),
        "parsed": bool(got),
        "balanced": bool(got) and debits == credits,
    }


def score(predictions: list[str], references: list[str]) -> dict:
    """Exact-match rates over the rows: all rows, journal entries, concept questions, partial checks."""
    rows = [score_one(p, r) for p, r in zip(predictions, references)]
    entries = [r for r in rows if r["kind"] == "entry"]
    concepts = [r for r in rows if r["kind"] == "concept"]

    def rate(items, key):
        return round(sum(bool(i[key]) for i in items) / len(items), 4) if items else None

    return {
        "exact_match": rate(rows, "exact"),
        "entry_exact_match": rate(entries, "exact"),
        "entry_accounts_correct": rate(entries, "accounts"),
        "entry_amounts_correct": rate(entries, "amounts"),
        "entry_parsed": rate(entries, "parsed"),
        "entry_balanced": rate(entries, "balanced"),
        "concept_exact_match": rate(concepts, "exact"),
        "rows": len(rows), "entry_rows": len(entries), "concept_rows": len(concepts),
    }


_WORD_OR_AMOUNT = re.compile(r"\d[\d,]*(?:\.\d+)?|[a-z]+")


def answer_tokens(text: str) -> list[str]:
    """The words and amounts of an answer, lower-cased: '$1,850' and '1,850.00' are both '1850.00'."""
    tokens = []
    for token in _WORD_OR_AMOUNT.findall(str(text).lower().replace("’", "'").replace("'", "")):
        if token[0].isdigit():
            value = _amount(token.rstrip(","))
            token = str(value) if value is not None else token
        tokens.append(token)
    return tokens


def token_f1(prediction: str, reference: str) -> float:
    """The softest score: F1 of the words and amounts the answer shares with the reference (SQuAD's token F1,
    in any order, each counted as often as it occurs). 1.0 for the same entry; partial credit for the right
    accounts with a wrong amount, or the right amounts in prose; 0.0 when nothing is shared."""
    got, want = Counter(answer_tokens(prediction)), Counter(answer_tokens(reference))
    if not got or not want:
        return float(got == want)
    shared = sum((got & want).values())
    if not shared:
        return 0.0
    precision, recall = shared / sum(got.values()), shared / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def mean_token_f1(predictions: list[str], references: list[str]) -> float:
    """token_f1 averaged over the rows."""
    scores = [token_f1(p, r) for p, r in zip(predictions, references)]
    return round(sum(scores) / len(scores), 4) if scores else 0.0


# ----------------------------------------------------------------------------- logs
def loss_curve(log_history: list[dict], key: str = "loss") -> tuple[list[int], list[float]]:
    """(steps, values) of a logged quantity from `trainer.state.log_history`."""
    points = [(entry["step"], entry[key]) for entry in log_history if key in entry]
    return [s for s, _ in points], [v for _, v in points]


def curve_gap(reference: tuple, other: tuple, window: int = 5) -> dict:
    """How far a loss curve is from a reference one, step by step, after a moving average.

    Returns the largest and the mean relative difference over the steps both curves logged.
    """
    from .plots import smooth

    ref = dict(zip(reference[0], smooth(list(reference[1]), window)))
    oth = dict(zip(other[0], smooth(list(other[1]), window)))
    steps = sorted(set(ref) & set(oth))
    if not steps:
        raise FriendlyError("the two loss curves share no logged step")
    gaps = [abs(oth[s] - ref[s]) / abs(ref[s]) for s in steps if ref[s]]
    return {"steps": len(steps), "max_relative": round(max(gaps), 4), "mean_relative": round(sum(gaps) / len(gaps), 4)}


# ----------------------------------------------------------------------------- throughput
class ThroughputCallback(TrainerCallback):
    """Tokens per second of the training steps alone (evaluation and checkpoint saving excluded).

    The Trainer counts the tokens it feeds (`include_num_input_tokens_seen`, summed over all
    processes); this callback adds up the time from the start to the end of each optimizer step.
    The first step (CUDA kernels, bitsandbytes set-up, optimizer state) is timed apart.
    """

    def __init__(self):
        self.step_s, self.first_step_s, self.tokens, self.first_tokens = 0.0, None, 0, 0
        self._start = self._tokens_before = None

    @staticmethod
    def _sync():
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync()
        self._start, self._tokens_before = time.perf_counter(), state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kwargs):
        if self._start is None:
            return
        self._sync()
        spent = time.perf_counter() - self._start
        tokens = state.num_input_tokens_seen - self._tokens_before
        if self.first_step_s is None:
            self.first_step_s, self.first_tokens = spent, tokens
        else:
            self.step_s += spent
            self.tokens += tokens

    def summary(self) -> dict:
        """tokens_per_s over the steps after the first, the time they took, and all tokens seen."""
        return {"tokens_per_s": round(self.tokens / self.step_s, 1) if self.step_s else None,
                "train_step_s": round(self.step_s, 3), "first_step_s": round(self.first_step_s or 0.0, 3),
                "train_tokens": int(self.tokens + self.first_tokens)}
