"""helpers.training.measured (the one measured-run call) and helpers.session (issue 16), on a CPU in seconds."""
import shutil

import numpy as np
import pytest
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

from helpers import faults, recipe, session, training
from helpers.errors import FriendlyError
from helpers.oom import OutOfMemoryAdvice

LORA = LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=["query_key_value"])
TRAINING = dict(per_device_train_batch_size=4, gradient_accumulation_steps=2, num_train_epochs=2, learning_rate=1e-2,
                save_strategy="steps", save_steps=2, save_total_limit=2, logging_steps=1, seed=0)
ROWS = 24


@pytest.fixture(autouse=True)
def no_fault_from_outside(monkeypatch):
    monkeypatch.delenv(faults.FAULT_ENV, raising=False)


def trainer_in(path, output_dir):
    rng = np.random.default_rng(0)
    rows = [{"input_ids": rng.integers(5, 500, rng.integers(4, 14)).tolist(), "labels": int(rng.integers(2))}
            for _ in range(ROWS)]
    transformers.set_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    base.config.pad_token_id = 3
    args = TrainingArguments(output_dir=str(output_dir), use_cpu=True, report_to="none", disable_tqdm=True,
                             dataloader_pin_memory=False, **TRAINING)
    collator = DataCollatorWithPadding(transformers.PreTrainedTokenizerFast.from_pretrained(path))
    return Trainer(model=get_peft_model(base, LORA), args=args, train_dataset=rows, data_collator=collator)


def recipe_of(trainer):
    return recipe.read("bigscience/bloom-560m", training=trainer.args, peft_config=LORA, seq_len=16)


def test_a_measured_run_gives_the_records_figures_and_resumes_to_the_same_weights(tiny_bloom, tmp_path, capsys):
    first = trainer_in(tiny_bloom, tmp_path / "whole")
    whole = training.measured(first, recipe_of(first), name="lora", identity={"data": "x"}, samples=2 * ROWS)
    figures = whole.figures()
    assert figures["optimizer_steps"] == 6 and figures["resumed_from"] is None and figures["samples"] == 48
    assert figures["samples_per_s"] > 0 and figures["peak_rss_gib"] > 0 and len(figures["weights_fingerprint"]) == 16
    assert "lora: 6 optimizer steps in" in capsys.readouterr().out
    # the same run stopped after step 4: its last checkpoint removed, run again, it resumes there
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "checkpoint-6")
    again = trainer_in(tiny_bloom, tmp_path / "cut")
    resumed = training.measured(again, recipe_of(again), name="lora", identity={"data": "x"}, samples=2 * ROWS)
    printed = capsys.readouterr().out
    assert "resuming from step 4" in printed and "cover steps 5 to 6 only" in printed
    assert resumed.resumed_from == 4 and resumed.samples == 2 * 4 * 2      # this call's 2 steps x effective batch 8
    assert resumed.weights_fingerprint == whole.weights_fingerprint


def test_another_runs_checkpoints_are_set_aside_not_resumed(tiny_bloom, tmp_path, capsys):
    first = trainer_in(tiny_bloom, tmp_path / "run")
    training.measured(first, recipe_of(first), name="lora", identity={"data": "a"})
    again = trainer_in(tiny_bloom, tmp_path / "run")
    other = training.measured(again, recipe_of(again), name="lora", identity={"data": "b"})
    assert other.resumed_from is None and "starting at step 0" in capsys.readouterr().out


def test_out_of_memory_inside_becomes_advice_with_the_recipes_figures(tiny_bloom, tmp_path, monkeypatch):
    trainer = trainer_in(tiny_bloom, tmp_path / "oom")
    monkeypatch.setenv(faults.FAULT_ENV, "oom@1")
    with pytest.raises(OutOfMemoryAdvice) as advice:
        training.measured(trainer, recipe_of(trainer), name="lora")
    assert "micro-batch 4 x 16 tokens, accumulation 2" in str(advice.value)


def test_a_profile_changes_only_what_it_names_and_says_so(capsys):
    base = dict(learning_rate=3e-4, num_train_epochs=2)
    assert session.for_profile(base, "smoke", smoke=dict(learning_rate=1e-2)) == dict(learning_rate=1e-2,
                                                                                       num_train_epochs=2)
    assert "smoke: learning_rate 0.0003 -> 0.01" in capsys.readouterr().out
    session.for_profile(base, "smoke", what="post's recipe", smoke=dict(learning_rate=1e-2))
    assert "smoke, post's recipe: learning_rate 0.0003 -> 0.01" in capsys.readouterr().out
    assert session.for_profile(base, "full", smoke=dict(learning_rate=1e-2)) == base
    with pytest.raises(FriendlyError, match="smoke overrides .'learning_rat'.*does not have"):
        session.for_profile(base, "smoke", smoke=dict(learning_rat=1e-2))
    with pytest.raises(FriendlyError, match="not profiles"):
        session.for_profile(base, "smoke", smok=dict(learning_rate=1e-2))


def test_a_profiles_gpu_overrides_apply_on_a_gpu_only(monkeypatch, capsys):
    from helpers import runtime

    base = dict(num_train_epochs=2, max_steps=-1)
    overrides = dict(real=dict(num_train_epochs=1), real_on_gpu=dict(num_train_epochs=3, max_steps=90))
    monkeypatch.setattr(runtime, "device", lambda: "cpu")
    assert session.for_profile(base, "real", **overrides) == dict(num_train_epochs=1, max_steps=-1)
    monkeypatch.setattr(runtime, "device", lambda: "cuda")
    assert session.for_profile(base, "real", **overrides) == dict(num_train_epochs=3, max_steps=90)
    assert "real on a GPU: num_train_epochs 1 -> 3" in capsys.readouterr().out
    assert session.for_profile(base, "smoke", **overrides) == base      # another profile's GPU keys change nothing
    monkeypatch.setattr(runtime, "device", lambda: "cpu")   # a typo in the GPU keys stops on a CPU too
    with pytest.raises(FriendlyError, match="real_on_gpu overrides .'max_step'"):
        session.for_profile(base, "real", real_on_gpu=dict(max_step=90))


def test_the_session_mounts_drive_through_checkpoints_setup(monkeypatch, tmp_path, capsys):
    from helpers import checkpoints

    asked = []
    monkeypatch.setattr(checkpoints, "setup", lambda notebook, profile: asked.append((notebook, profile)) or tmp_path)
    monkeypatch.setenv("NB_PROFILE", "smoke")
    monkeypatch.setenv("NB_OUTPUT_DIR", str(tmp_path / "out"))
    started = session.start("01_x")
    assert asked == [("01_x", "smoke")] and started.checkpoints == tmp_path
    assert (started.profile, started.device, started.precision) == ("smoke", "cpu", "fp32")
    assert started.source.startswith("01_x · profile smoke · CPU") and started.gpu is None
    assert "profile   : SMOKE" in capsys.readouterr().out                # the banner
    assert started.trainer_defaults == dict(use_cpu=True, dataloader_pin_memory=False, report_to="none",
                                            disable_tqdm=True)


def test_each_profile_gets_its_model():
    from helpers import tiny

    assert tiny.checkpoint_for("full", "xlm-roberta-large", family="xlm-roberta") == "xlm-roberta-large"
    smoke = tiny.checkpoint_for("smoke", "xlm-roberta-large", family="xlm-roberta", corpus="complaints.csv",
                                hidden_size=64)
    assert smoke == tiny.tiny_checkpoint("xlm-roberta", corpus="complaints.csv", hidden_size=64)
