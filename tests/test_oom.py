"""helpers.oom: an out-of-memory error becomes advice with the estimator's numbers. CPU only, a few seconds:
the estimates count parameters on the meta device, and the training run is a tiny BLOOM."""
import re
import weakref

import numpy as np
import pytest
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

from helpers import checkpoints, faults, gpus, oom
from helpers.errors import FriendlyError


@pytest.fixture(autouse=True)
def no_fault_from_outside(monkeypatch):
    """A fault set for a whole test session (e.g. to run the notebooks with it) must not leak in here."""
    monkeypatch.delenv(faults.FAULT_ENV, raising=False)

# notebook 01's recipe with a micro-batch a T4 cannot hold
XLMR = dict(task="seq-cls", num_labels=214, method="lora", lora_r=16, lora_targets=["query", "value"],
            micro_batch=32, seq_len=512, grad_accum=1, precision="fp16", gradient_checkpointing=False)


def advice_for(model, error, **recipe):
    with pytest.raises(oom.OutOfMemoryAdvice) as caught:
        with oom.advice(model, **recipe):
            raise error
    return caught.value


def test_out_of_memory_becomes_ranked_fixes_with_numbers():
    err = advice_for("xlm-roberta-large", faults.out_of_memory_error(3), **XLMR)
    text = str(err)
    assert isinstance(err, FriendlyError) and isinstance(err.__cause__, torch.cuda.OutOfMemoryError)
    assert err._render_traceback_() == [f"OutOfMemoryAdvice: {text}"]
    assert "CPU-only run" in text and "T4" in text and "PyTorch said: CUDA out of memory" in text
    # the T4's usable memory is 14.56 GiB, what Colab's T4s report to PyTorch (helpers/gpus.py; it was 14.9,
    # the 16 GB as sold); the peak compared with it is what the process needs (helpers.estimate's needed_gib)
    assert re.search(r"Estimated peak of this recipe on a T4: 1\d\.\d GiB, against 14\.56 GiB usable: "
                     r"does NOT fit, \d\.\d GiB over", text)
    for words in ("Smaller micro-batches, more accumulation", "micro-batch 16 x accumulation 2",
                  "Gradient checkpointing", "activation_checkpointing=True", "4-bit", "QLoRA", "max_length=256"):
        assert words in text, words
    assert err.estimate.needed_gib > gpus.get("T4").usable_gib
    assert err.fixes and all(f.fits for f in err.fixes)
    assert all(f.peak_gib < err.estimate.peak_device_gib for f in err.fixes)
    assert all(f.micro_batch * f.grad_accum == 32 for f in err.fixes), "every fix keeps the effective batch"
    assert err.fixes[0].what.startswith("Smaller micro-batches"), "the fix that changes nothing else comes first"
    assert len(re.findall(r"-> \d+\.\d GiB, fits, \d+\.\d GiB \(\d+ %\) to spare", text)) == len(err.fixes)


def test_when_no_single_fix_is_enough_a_combination_is_offered():
    """NeoX-20B with LoRA on 16-bit weights: only checkpointing and a 4-bit base together fit a T4."""
    err = advice_for("EleutherAI/gpt-neox-20b", RuntimeError("CUDA error: out of memory"), method="lora",
                     lora_targets=["query_key_value"], weights_dtype="fp16", micro_batch=1, seq_len=64, grad_accum=8,
                     precision="fp16")
    assert not any(f.fits for f in err.fixes[:-1])
    assert err.fixes[-1].fits and err.fixes[-1].what == "Together: gradient checkpointing + a 4-bit base (QLoRA)"
    assert "still too much" in str(err)


def test_the_advice_names_the_gpu_asked_for():
    assert "for a L4" in str(advice_for("xlm-roberta-large", faults.out_of_memory_error(1), **XLMR, gpu="L4"))


def test_other_errors_pass_through_untouched():
    for error in (ValueError("bad label"), RuntimeError("expected scalar type Float"), KeyError("x")):
        with pytest.raises(type(error)) as caught:
            with oom.advice("xlm-roberta-large", **XLMR):
                raise error
        assert caught.value is error


def test_a_model_the_estimator_cannot_read_still_gets_advice():
    text = str(advice_for("my-org/my-model", faults.out_of_memory_error(1), task="seq-cls"))
    assert "No estimate for this recipe" in text and "gradient_accumulation_steps" in text and "QLoRA" in text


def test_the_failed_steps_tensors_are_freed():
    held = []

    def failing_step():
        activations = torch.ones(1024)
        held.append(weakref.ref(activations))
        raise faults.out_of_memory_error(1)

    with pytest.raises(oom.OutOfMemoryAdvice):
        with oom.advice("xlm-roberta-large", **XLMR):
            failing_step()
    assert held[0]() is None, "the frame of the failed step should no longer hold its tensors"


def test_a_smoke_run_with_a_simulated_oom_ends_in_advice(tiny_bloom, tmp_path, monkeypatch, capsys):
    """NB_FAULT=oom@2 in a tiny training run: the path a notebook takes under nbmake."""
    monkeypatch.setenv(faults.FAULT_ENV, "oom@2")
    rng = np.random.default_rng(0)
    rows = [{"input_ids": rng.integers(5, 500, 8).tolist(), "labels": int(rng.integers(2))} for _ in range(16)]
    transformers.set_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bloom, num_labels=2)
    model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query_key_value"]))
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, gradient_accumulation_steps=2,
                             max_steps=3, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True)
    collator = DataCollatorWithPadding(transformers.PreTrainedTokenizerFast.from_pretrained(tiny_bloom))
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
    with pytest.raises(oom.OutOfMemoryAdvice) as caught:
        with oom.advice(tiny_bloom, task="seq-cls", method="lora", lora_r=4, lora_targets=["query_key_value"],
                        micro_batch=4, grad_accum=2, seq_len=8):
            checkpoints.train_or_resume(trainer)
    assert trainer.state.global_step == 1
    text = str(caught.value)
    assert "simulated at the start of step 2" in text
    assert "The estimate says this recipe fits, so something else holds memory" in text
