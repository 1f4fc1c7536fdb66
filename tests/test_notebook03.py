"""Notebook 03 (accounting SFT): its data, the chat formatting, the recipe's configs and the scorer.

The sample must carry checkable answers (every entry balances and parses back), the formatting must
follow the chat template (answers in training rows only), the recipe file must say what the recipe says
with today's argument names, and exact match must mean the same entry whatever its layout.
"""
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from helpers import sft

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "accounting.csv"


@pytest.fixture(scope="module")
def table():
    return pd.read_csv(SAMPLE)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from helpers import tiny

    return AutoTokenizer.from_pretrained(tiny.tiny_checkpoint("chat", corpus="accounting.csv", **sft.SMOKE_MODEL))


def test_sample_is_small_with_input_and_output_columns(table):
    assert list(table.columns) == ["input", "output"]
    assert SAMPLE.stat().st_size < 200_000
    assert table["input"].is_unique, "a question in both training and test rows would leak"


def test_every_journal_entry_parses_and_balances(table):
    entries = table[table["output"].map(sft.is_entry)]
    assert 0.85 <= len(entries) / len(table) <= 0.95
    for answer in entries["output"]:
        lines = sft.parse_entry(answer)
        assert len(lines) == answer.count("\n") + 1, answer
        assert sum(a for s, _, a in lines if s == "Dr") == sum(a for s, _, a in lines if s == "Cr"), answer
        assert [s for s, _, _ in lines] == sorted((s for s, _, _ in lines), key=lambda s: s != "Dr"), "debits first"
    concepts = table[~table["output"].map(sft.is_entry)]["output"]
    assert set(concepts) <= {"Debit", "Credit", "Asset", "Contra asset", "Liability", "Equity", "Revenue", "Expense",
                             "Balance sheet", "Income statement", "Statement of owner's equity", "Increase", "Decrease"}


def test_the_generator_scales_up_with_new_rows():
    more = sft.generate_rows(1500, seed=7)
    assert len(more) == 1500 and more["input"].is_unique
    assert more["output"].map(sft.is_entry).mean() > 0.9


def test_parser_reads_common_layouts():
    assert sft.parse_entry("Debit: Owner’s Drawings $1,250.5\n- Cr Cash 1250.50\nThat is all.") == [
        ("Dr", "owners drawings", Decimal("1250.50")), ("Cr", "cash", Decimal("1250.50"))]
    assert sft.parse_entry("Dr Cash.00") == [], "an amount needs its own place on the line"
    assert sft.parse_entry("no entry here") == []


def test_exact_match_ignores_layout_but_not_content():
    reference = "Dr Supplies 450.00\nCr Cash 450.00"
    assert sft.score_one("Cr Cash $450\nDr supplies 450.00", reference)["exact"]
    wrong_amount = sft.score_one("Dr Supplies 450.00\nCr Cash 540.00", reference)
    assert not wrong_amount["exact"] and wrong_amount["accounts"] and not wrong_amount["amounts"]
    wrong_side = sft.score_one("Dr Cash 450.00\nCr Supplies 450.00", reference)
    assert not wrong_side["exact"] and not wrong_side["accounts"] and wrong_side["amounts"]
    assert sft.score_one("credit.", "Credit")["exact"] and not sft.score_one("Debit", "Credit")["exact"]
    scores = sft.score([reference, "Debit"], [reference, "Credit"])
    assert scores["exact_match"] == 0.5 and scores["entry_exact_match"] == 1.0 and scores["concept_exact_match"] == 0.0


def test_chat_formatting_puts_answers_in_training_rows_only(tokenizer):
    question, answer = "Cedar Cafe paid $1,850 for this month's rent.", "Dr Rent Expense 1,850.00\nCr Cash 1,850.00"
    train = sft.chat_text(tokenizer, question, answer)
    prompt = sft.chat_text(tokenizer, question)
    assert f"{sft.PROMPT_PREFIX}: [{question}]" in train and answer in train
    assert train.startswith(prompt), "the test prompt is the training row cut where the answer begins"
    assert answer not in prompt and prompt.endswith("<|assistant|>\n")
    ids = tokenizer(train)["input_ids"]
    assert ids.count(tokenizer.bos_token_id) == 1, "the template must not add a second BOS"
    rows = sft.to_dataset(pd.DataFrame({"input": [question], "output": [answer]}), tokenizer, with_answer=False)
    assert rows[0]["text"] == prompt and rows[0]["output"] == answer


def test_generation_pads_on_the_left_and_restores_the_tokenizer(tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    from helpers import tiny

    model = AutoModelForCausalLM.from_pretrained(tiny.tiny_checkpoint("chat", corpus="accounting.csv", **sft.SMOKE_MODEL),
                                                 dtype=torch.float32)
    prompts = [sft.chat_text(tokenizer, "Cash?"), sft.chat_text(tokenizer, "A much longer question about rent " * 3)]
    side = tokenizer.padding_side
    together = sft.generate_answers(model, tokenizer, prompts, max_new_tokens=6, batch_size=2)
    alone = [sft.generate_answers(model, tokenizer, [p], max_new_tokens=6)[0] for p in prompts]
    assert together == alone, "left padding: a short prompt answers the same alone or in a batch"
    assert tokenizer.padding_side == side


def test_the_recipe_file_sets_the_recipe_with_todays_names():
    import torch

    training = sft.RECIPE["training"]
    assert training["lr_scheduler_type"] == "cosine" and training["warmup_steps"] == 0.03
    assert training["optim"] == "paged_adamw_32bit" and training["max_grad_norm"] == 0.3
    assert training["train_sampling_strategy"] == "group_by_length"
    assert training["eval_strategy"] == "steps" and training["save_steps"] == training["eval_steps"]
    assert training["save_total_limit"] == 3 and training["load_best_model_at_end"]
    assert training["metric_for_best_model"] == "eval_loss" and training["greater_is_better"] is False
    assert training["activation_checkpointing"] and training["activation_checkpointing_kwargs"] == {"use_reentrant": False}
    assert training["dataset_text_field"] == "text" and training["packing"] is False and training["max_length"] == 512
    assert training["log_level"] == "info" and training["seed"] == 123
    for gone in ("warmup_ratio", "group_by_length", "evaluation_strategy", "max_seq_length", "gradient_checkpointing"):
        assert gone not in training, gone
    lora = sft.lora_config()
    assert lora.target_modules == "all-linear" and lora.r == 16 and lora.task_type == "CAUSAL_LM"
    q = sft.quantization_config(torch.bfloat16, quant_storage=torch.bfloat16)
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_quant_storage == torch.bfloat16 and sft.quantization_config(torch.float16).bnb_4bit_quant_storage == torch.uint8
    callback = sft.early_stopping()
    assert callback.early_stopping_patience == sft.RECIPE["early_stopping"]["early_stopping_patience"] == 3


def test_recipe_file_differences_name_the_key_that_changed(tmp_path):
    from peft import LoraConfig

    assert sft.recipe_file_differences(lora=sft.lora_config(), training=dict(sft.RECIPE["training"])) == []
    changed = sft.recipe_file_differences(lora=LoraConfig(**{**sft.RECIPE["lora"], "r": 8}),
                                          training={**sft.RECIPE["training"], "learning_rate": 1e-3, "typo_rate": 1})
    assert changed == ["lora.r: here 8, in the file 16", "training.learning_rate: here 0.001, in the file 0.0002",
                       "training.typo_rate: here 1, in the file None"]
    broken = tmp_path / "recipe.yaml"
    broken.write_text("lora: {r: 8}\n")
    from helpers.errors import FriendlyError

    with pytest.raises(FriendlyError, match="lacks quantization, training, early_stopping"):
        sft.load_recipe(broken)


def test_curve_gap_measures_relative_distance():
    steps = list(range(1, 11))
    same = sft.curve_gap((steps, [2.0] * 10), (steps, [2.0] * 10))
    assert same["max_relative"] == 0
    off = sft.curve_gap((steps, [2.0] * 10), (steps, [2.2] * 10), window=1)
    assert off["max_relative"] == pytest.approx(0.1) and off["steps"] == 10


def test_notebook_uses_the_shared_recipe_and_todays_api():
    import json

    cells = json.loads((ROOT / "notebooks" / "03_accounting_sft.ipynb").read_text(encoding="utf-8"))["cells"]
    notebook = "\n".join("".join(c["source"]) for c in cells)
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for needle in ("LoraConfig(r=", "BitsAndBytesConfig(load_in_4bit=True", "TRAINING = dict(", "SFTConfig(",
                   "**PROFILE_TRAINING", "session.for_profile(", "prepare_model_for_kbit_training",
                   "processing_class=tokenizer", "peft_config=LORA", "training.measured(", "recipe.read(",
                   "EarlyStoppingCallback(**EARLY_STOPPING)", "sft.ThroughputCallback()", "trainer.save_state()",
                   "sft.recipe_file_differences(", "accelerate launch", "deepspeed_zero3.yaml"):
        assert needle in notebook, needle
    for gone in ("warmup_ratio=", "group_by_length=True", "evaluation_strategy", "max_seq_length", "tokenizer=tokenizer",
                 " gradient_checkpointing=True", "train_or_resume", "oom.advice", "sft.training_config"):
        assert gone not in code, gone


def test_fp16_training_keeps_the_adapters_fp32(tmp_path, tokenizer):
    """On a T4 (fp16) TRL's bf16 adapters crash the GradScaler at the first step: they must go back to fp32.

    TRL 1.16 casts a 4-bit model's trainable parameters to bf16 whatever `fp16` says; on CUDA the GradScaler
    then fails ('_amp_foreach_non_finite_check_and_unscale_cuda' not implemented for 'BFloat16'). On a CPU the
    crash does not happen, but the dtypes that cause it are the same, so they are what this test checks.
    """
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from helpers import runtime, tiny

    from trl import SFTConfig

    path = tiny.tiny_checkpoint("chat", corpus="accounting.csv", **sft.SMOKE_MODEL)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=sft.quantization_config(torch.float32),
                                                 dtype=torch.float32)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    training = {**sft.RECIPE["training"], "per_device_train_batch_size": 2, "max_length": 64, "max_steps": 1,
                "save_strategy": "no", "load_best_model_at_end": False}
    config = SFTConfig(output_dir=str(tmp_path), **training, fp16=True, bf16=False,   # a T4
                       use_cpu=not runtime.cuda_available(), report_to="none")
    rows = sft.to_dataset(pd.DataFrame({"input": ["Paid rent of $500."] * 4, "output": ["Dr Rent 500\nCr Cash 500"] * 4}),
                          tokenizer)
    trainer = SFTTrainer(model=model, args=config, train_dataset=rows, eval_dataset=rows, processing_class=tokenizer,
                         peft_config=sft.lora_config())
    made_by_trl = {p.dtype for p in trainer.model.parameters() if p.requires_grad}
    assert config.fp16 and made_by_trl == {torch.bfloat16}, "TRL no longer casts to bf16: revisit the fix"
    assert sft.adapters_for_precision(trainer) == {torch.float32}


def test_notebook_and_script_fix_the_adapter_dtype_before_training():
    """Both places that build the SFTTrainer call the fix between building it and training."""
    import json

    notebook = json.loads((ROOT / "notebooks" / "03_accounting_sft.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    script = (ROOT / "scripts" / "train_sft.py").read_text()
    for name, text in (("notebook 03", code), ("scripts/train_sft.py", script)):
        built, fixed = text.find("SFTTrainer(model="), text.find("sft.adapters_for_precision(trainer)")
        trained = text.find("training.measured(") if name == "notebook 03" else text.find("trainer.train(")
        assert -1 < built < fixed < trained, f"{name}: adapters_for_precision must come after SFTTrainer(...) and before training"
