"""helpers.wholerun: the whole-run estimate read off a Trainer before it trains (issue 18), on a CPU in seconds."""
import json

import numpy as np
import pytest
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

from helpers import recipe, wholerun
from helpers.errors import FriendlyError

LORA = LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=["query_key_value"])
HOST = dict(wholerun.FALLBACK_HOST, source="test host", block_pass_s=0.001, micro_batch_s=0.01, update_s=0.02,
            eval_batch_s=0.005, warmup_first_s=3.0, warmup_s=0.5, checkpoint_fixed_s=0.1, checkpoint_gbs=0.5)


def trainer_in(path, output_dir, rows=40, **arguments):
    rng = np.random.default_rng(0)
    data = [{"input_ids": rng.integers(5, 500, rng.integers(4, 60)).tolist(), "labels": int(rng.integers(2))}
            for _ in range(rows)]
    base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    base.config.pad_token_id = 3
    settings = dict(per_device_train_batch_size=4, gradient_accumulation_steps=2, num_train_epochs=3,
                    save_strategy="steps", save_steps=5, eval_strategy="steps", eval_steps=5,
                    per_device_eval_batch_size=8) | arguments
    args = TrainingArguments(output_dir=str(output_dir), use_cpu=True, report_to="none", **settings)
    collator = DataCollatorWithPadding(transformers.PreTrainedTokenizerFast.from_pretrained(path))
    return Trainer(model=get_peft_model(base, LORA), args=args, train_dataset=data, eval_dataset=data[:16],
                   data_collator=collator)


def recipe_of(trainer):
    return recipe.read("bigscience/bloom-560m", training=trainer.args, peft_config=LORA, seq_len=64)


def test_the_estimate_counts_the_runs_updates_batches_evaluations_and_checkpoints(tiny_bloom, tmp_path):
    trainer = trainer_in(tiny_bloom, tmp_path)
    plan = wholerun.from_trainer(trainer, recipe_of(trainer), gpu="H200", host=HOST, first_in_process=True)
    # 40 rows in micro-batches of 4: 10 a epoch, 5 updates of 2; 3 epochs: 15 updates, 30 micro-batches
    assert (plan.updates, plan.micro_batches) == (15, 30)
    parts = plan.parts
    assert parts["fixed cost per micro-batch"] == pytest.approx(30 * 0.01)
    assert parts["optimizer updates"] >= 15 * 0.02
    # every 5 updates: 3 evaluations of 2 batches (16 rows by 8) and 3 checkpoints
    assert parts["evaluations"] > 3 * 2 * 0.005
    assert parts["checkpoint writes"] > 3 * 0.1
    assert parts["warm-up (kernels load, first steps)"] == 3.0                # the first run of the process
    assert plan.low_s < plan.estimate_s < plan.high_s
    # batches are padded to their longest row, never beyond the longest in the data
    assert plan.padding["mean_row_length"] < plan.padding["mean_padded_length"] <= plan.padding["longest"] < 60
    # the distinct shapes of training and evaluation batches, counted (not costed): at most one per batch
    assert 2 <= plan.padding["distinct_shapes"] <= 30 + 2
    figures = plan.as_dict()
    assert figures["estimated_wall_s"] == round(plan.estimate_s, 1) and "estimated_parts_s" in figures
    assert "test host" in plan.table() and "H200: 15 updates (30 micro-batches)" in str(plan)


def test_padding_follows_the_data_and_the_sampler(tiny_bloom, tmp_path):
    plain = trainer_in(tiny_bloom, tmp_path / "a")
    grouped = trainer_in(tiny_bloom, tmp_path / "b", train_sampling_strategy="group_by_length")
    padded_plain = wholerun.from_trainer(plain, recipe_of(plain), gpu="H200", host=HOST).padding
    padded_grouped = wholerun.from_trainer(grouped, recipe_of(grouped), gpu="H200", host=HOST).padding
    assert padded_grouped["mean_padded_length"] < padded_plain["mean_padded_length"]   # sorted batches pad less


def test_a_longer_run_or_a_slower_host_takes_longer(tiny_bloom, tmp_path):
    trainer = trainer_in(tiny_bloom, tmp_path)
    short = wholerun.from_trainer(trainer, recipe_of(trainer), gpu="H200", host=HOST, first_in_process=False)
    longer = wholerun.from_trainer(trainer_in(tiny_bloom, tmp_path / "l", num_train_epochs=6),
                                   recipe_of(trainer), gpu="H200", host=HOST, first_in_process=False)
    slow_host = wholerun.from_trainer(trainer, recipe_of(trainer), gpu="H200",
                                      host=HOST | {"micro_batch_s": 0.1, "update_s": 0.2}, first_in_process=False)
    on_t4 = wholerun.from_trainer(trainer, recipe_of(trainer), gpu="T4", host=HOST)
    # twice the epochs: twice the batches, evaluations and checkpoints; one warm-up all the same
    warm_up = HOST["warmup_s"]
    assert longer.estimate_s - warm_up == pytest.approx(2 * (short.estimate_s - warm_up), rel=0.02)
    # 30 micro-batches 0.09 s dearer, 15 updates 0.18 s dearer
    assert slow_host.estimate_s == pytest.approx(short.estimate_s + 30 * 0.09 + 15 * 0.18)
    assert on_t4.parts["micro-batches at their padded lengths"] > short.parts["micro-batches at their padded lengths"]
    assert on_t4.bill is not None and short.bill is None       # Colab rents T4s, not H200s
    assert any("H200 host" in note for note in on_t4.notes)


def test_host_costs_come_from_a_probe_file_or_say_what_is_wrong(tmp_path, monkeypatch):
    probe = tmp_path / "host.json"
    probe.write_text(json.dumps(HOST))
    monkeypatch.setenv(wholerun.HOST_COSTS_ENV, str(probe))
    assert wholerun.host_costs()["source"] == "test host"
    probe.write_text(json.dumps({"gpu": "H200"}))
    with pytest.raises(FriendlyError, match="not a host probe"):
        wholerun.host_costs()
    monkeypatch.setenv(wholerun.HOST_COSTS_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(FriendlyError, match="No host probe at"):
        wholerun.host_costs()


def test_no_estimate_without_a_gpu(tiny_bloom, tmp_path):
    trainer = trainer_in(tiny_bloom, tmp_path)
    assert wholerun.from_trainer(trainer, recipe_of(trainer)) is None       # this CPU: no time model
    with pytest.raises(FriendlyError, match="updates must be"):
        wholerun.plan(recipe_of(trainer), gpu="H200", updates=0, host=HOST)


def test_the_estimate_is_of_the_model_the_trainer_holds_not_the_recipes_hub_model(tiny_bloom, tmp_path):
    trainer = trainer_in(tiny_bloom, tmp_path)
    assert wholerun.model_that_trains(trainer.model) == str(tiny_bloom)
    stand_in = wholerun.from_trainer(trainer, recipe_of(trainer), gpu="H200", host=HOST)   # recipe: BLOOM-560m
    as_written = wholerun.plan(recipe_of(trainer), gpu="H200", updates=15, host=HOST,
                               batches=[(4, 64)] * 30, first_in_process=True)
    assert any("the recipe's stand-in" in note for note in stand_in.notes)
    assert stand_in.parts["micro-batches at their padded lengths"] < as_written.parts[
        "micro-batches at their padded lengths"]


def test_a_host_that_launches_slower_scales_every_launch_bound_cost():
    slow = HOST | {"block_pass_s": 2 * wholerun._estimate.CALIBRATION["block_overhead_s"]}
    assert wholerun.host_factor(slow) == pytest.approx(2.0)
    cal = wholerun._calibration(slow)
    for name in wholerun.LAUNCH_OVERHEADS:
        assert cal[name] == pytest.approx(2 * wholerun._estimate.CALIBRATION[name])
    assert wholerun._calibration(wholerun.FALLBACK_HOST) == wholerun._estimate.CALIBRATION | {"step_overhead_s": 0.0}


def test_the_committed_probe_is_the_default_and_names_its_machine(monkeypatch):
    monkeypatch.delenv(wholerun.HOST_COSTS_ENV, raising=False)
    costs = wholerun.host_costs()
    assert costs["gpu"] == "H200" and "probe on NVIDIA H200" in costs["source"] and costs["date"]
    assert all(costs[k] >= 0 for k in wholerun.HOST_KEYS) and costs["block_pass_s"] > 0


def test_the_hand_loop_estimates_its_run_on_a_gpu(tiny_bloom, tmp_path, monkeypatch, capsys):
    import torch
    from torch.utils.data import DataLoader

    from helpers import loop, runtime

    trainer = trainer_in(tiny_bloom, tmp_path)
    rows = trainer.train_dataset
    order = torch.Generator()
    loader = DataLoader(rows, batch_size=4, shuffle=True, drop_last=True, collate_fn=trainer.data_collator,
                        generator=order)
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)          # as on the GPU: the loop plans its run
    monkeypatch.setattr(runtime, "physical_gpu", lambda: "NVIDIA H200")
    monkeypatch.setenv(wholerun.HOST_COSTS_ENV, "")
    plan = loop._whole_run_plan("batch 4", recipe_of(trainer).changed(grad_accum=1), loader, order, seed=0, epochs=2,
                                max_updates=None, updates_per_epoch=len(loader), model=trainer.model,
                                checkpoint_every=16)
    assert plan is not None and (plan.updates, plan.micro_batches) == (20, 20)
    assert plan.parts["checkpoint writes"] > 0 and "estimated before training" in capsys.readouterr().out
    assert plan.padding["longest"] < 60                     # the data's rows, not the recipe's 64 tokens


def test_the_plan_gives_the_peak_at_the_runs_largest_batch(tiny_bloom, tmp_path):
    from helpers import estimate

    trainer = trainer_in(tiny_bloom, tmp_path)
    plan = wholerun.from_trainer(trainer, recipe_of(trainer), gpu="H200", host=HOST)
    as_run = recipe_of(trainer).changed(model=str(tiny_bloom), precision="fp32")      # what from_trainer estimates
    at_recipe_length = estimate.estimate(as_run.model, gpu="H200", **as_run.estimator_kwargs()).peak_device_gib
    assert plan.as_dict()["estimated_peak_device_gib_at_largest_batch"] == round(plan.peak_device_gib, 3)
    assert plan.peak_device_gib < at_recipe_length        # the rows are shorter than the recipe's 64 tokens
    assert "peak device memory at the largest batch" in plan.table()


def test_a_qlora_trainer_of_a_4bit_model_is_estimated_as_qlora(tmp_path):
    """02's path: a 4-bit model (bitsandbytes on the CPU) with LoRA, read through its BitsAndBytesConfig."""
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, DataCollatorForLanguageModeling

    from conftest import private_tiny_cache
    from helpers import reload, tiny

    with private_tiny_cache(tmp_path / "cache"):
        path = tiny.tiny_checkpoint("gpt-neox", corpus="quotes.csv", vocab_size=512)
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(path, quantization_config=quantization, dtype=torch.float32)
    reload.keep_cpu_4bit_layout(base)
    lora = LoraConfig(task_type="CAUSAL_LM", r=8, target_modules=["query_key_value"])
    model = get_peft_model(prepare_model_for_kbit_training(base, use_gradient_checkpointing=False), lora)
    rng = np.random.default_rng(0)
    rows = [{"input_ids": rng.integers(5, 500, rng.integers(6, 30)).tolist()} for _ in range(16)]
    tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(path)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none", max_steps=6,
                             per_device_train_batch_size=2, gradient_accumulation_steps=2, optim="paged_adamw_8bit")
    trainer = Trainer(model=model, args=args, train_dataset=rows,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    as_written = recipe.read("EleutherAI/gpt-neox-20b", training=args, peft_config=lora, quantization=quantization,
                             seq_len=64)
    plan = wholerun.from_trainer(trainer, as_written, gpu="H200", host=HOST)
    assert as_written.method == "qlora" and (plan.updates, plan.micro_batches) == (6, 12)
    assert plan.parts["optimizer updates"] > 6 * HOST["update_s"]      # bitsandbytes: a launch per tensor
    assert any("stand-in" in note for note in plan.notes)              # the tiny model, not the 20B one


def test_the_probe_fits_the_hosts_costs_and_says_how_far_they_can_be_trusted(tmp_path):
    """On a CPU the probe runs end to end (twelve short Trainer runs, an evaluation, two checkpoint writes): every
    cost is a number, the block cost is positive, and its spread over the repeats is recorded."""
    costs = wholerun.probe(out=tmp_path / "host.json", steps=20, require_gpu=False)
    assert costs["gpu"] == "CPU" and len(costs["runs"]) == 12
    assert costs["block_pass_s"] > 0 and costs["fit_residual_rms_s"] >= 0
    assert 0 <= costs["block_pass_relative_stderr"] < 1
    assert wholerun.host_costs(tmp_path / "host.json")["block_pass_s"] == costs["block_pass_s"]
    with pytest.raises(FriendlyError, match="at least 20 steps"):
        wholerun.probe(steps=5, require_gpu=False)
