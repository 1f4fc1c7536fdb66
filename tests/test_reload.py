"""helpers.reload: a saved adapter, loaded by a new Python process, predicts what the trained model predicts.

Two real fresh processes (run side by side to save time): a LoRA classifier (tiny RoBERTa, trained head
saved with the adapter) and a QLoRA causal LM (tiny GPT-NeoX in NF4 through bitsandbytes on the CPU). On
CPU in fp32 both give identical logits. The CLI's generation, merging and the error paths run in this
process. About 15 s (each child spends ~7 s importing torch, transformers and peft).
"""
import stat
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import transformers
from peft import LoraConfig, PromptTuningConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, BitsAndBytesConfig

from conftest import private_tiny_cache

from helpers import reload, tiny
from helpers.errors import FriendlyError

BATCH = {"input_ids": torch.tensor([[0, 17, 230, 41, 99, 5, 2], [0, 61, 8, 300, 2, 1, 1]]),
         "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]])}


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    with private_tiny_cache(tmp_path_factory.mktemp("tiny-cache")):
        yield {"roberta": tiny.tiny_checkpoint("roberta", corpus="paraphrases.csv", vocab_size=512),
               "neox": tiny.tiny_checkpoint("gpt-neox", corpus="quotes.csv", vocab_size=512)}


def as_if_trained(model):
    """LoRA starts as a no-op (B = 0); move B so that the adapter changes the predictions."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    return model.eval()


def lora_classifier(path):
    transformers.set_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=5)
    return as_if_trained(get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"])))


def four_bit(path):
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=config, dtype=torch.float32)
    reload.keep_cpu_4bit_layout(model)  # as a notebook does before training on a CPU
    return model


def qlora_lm(path):
    transformers.set_seed(0)
    lora = LoraConfig(task_type="CAUSAL_LM", r=8, target_modules="all-linear")
    return as_if_trained(get_peft_model(four_bit(path), lora))


@pytest.fixture(scope="module")
def fresh(paths, tmp_path_factory):
    """Reference predictions in this process; the same adapters' predictions from two new processes."""
    root = tmp_path_factory.mktemp("adapters")
    classifier, lm = lora_classifier(paths["roberta"]), qlora_lm(paths["neox"])
    classifier.save_pretrained(root / "classifier")
    lm.save_pretrained(root / "qlora")
    with ThreadPoolExecutor(2) as pool:  # the children start while this process computes its references
        jobs = {"classifier": pool.submit(reload.predictions_in_fresh_process, paths["roberta"], root / "classifier",
                                          task="seq-cls", batch=BATCH, device="cpu"),
                "qlora": pool.submit(reload.predictions_in_fresh_process, paths["neox"], root / "qlora",
                                     task="causal-lm", batch=BATCH, load_in_4bit=True, device="cpu")}
        reference = {"classifier": reload.predict(classifier, BATCH)["logits"],
                     "qlora": reload.predict(lm, BATCH)["logits"]}
        reloaded = {name: job.result() for name, job in jobs.items()}
    return reference, reloaded, {"classifier": classifier, "qlora": lm, "qlora_dir": root / "qlora"}


def test_lora_classifier_reloaded_in_a_fresh_process_gives_the_same_logits(fresh, capsys):
    reference, reloaded, _ = fresh
    assert reloaded["classifier"].shape == (2, 5), "the number of classes is read from the adapter's saved head"
    assert reload.compare(reference["classifier"], reloaded["classifier"], atol=1e-5) == 0.0
    assert "identical" in capsys.readouterr().out


def test_qlora_lm_reloaded_in_a_fresh_process_gives_the_same_logits(fresh):
    reference, reloaded, _ = fresh
    assert reloaded["qlora"].shape == (2, 7, reference["qlora"].shape[-1])
    assert torch.equal(reloaded["qlora"], reference["qlora"])


def test_the_adapter_matters(fresh, paths):
    """Control: the base alone predicts something else, so equal logits above mean the adapter came back."""
    reference, _, _ = fresh
    base = reload.predict(reload.load(paths["roberta"], task="seq-cls", num_labels=5), BATCH)["logits"]
    with pytest.raises(reload.ReloadMismatch, match="more than the tolerance"):
        reload.compare(reference["classifier"], base, atol=1e-5)


def test_cli_generates_the_same_greedy_tokens(paths, tmp_path):
    transformers.set_seed(0)
    lm = as_if_trained(get_peft_model(AutoModelForCausalLM.from_pretrained(paths["neox"]),
                                      LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["query_key_value"])))
    lm.save_pretrained(tmp_path / "adapter")
    expected = reload.predict(lm, BATCH, generate=4)
    save_file(BATCH, str(tmp_path / "in.safetensors"))
    assert reload.main(["--base", paths["neox"], "--adapter", str(tmp_path / "adapter"), "--task", "causal-lm",
                        "--inputs", str(tmp_path / "in.safetensors"), "--out", str(tmp_path / "out.safetensors"),
                        "--generate", "4"]) == 0
    got = load_file(str(tmp_path / "out.safetensors"))
    assert got["generated"].shape == (2, 7 + 4)
    reload.compare(expected["generated"], got["generated"], what="generated ids")
    assert torch.equal(expected["logits"], got["logits"])


def test_merged_lora_predicts_like_the_adapter_and_leaves_it_intact(fresh, tmp_path):
    reference, _, models = fresh
    merged = reload.export_merged(models["classifier"], tmp_path / "merged")
    assert merged.exact and (tmp_path / "merged" / "config.json").exists()
    logits = reload.predict(reload.load(merged_dir=tmp_path / "merged", task="seq-cls"), BATCH)["logits"]
    assert reload.compare(reference["classifier"], logits, atol=1e-5) < 1e-5  # W + BA summed once: rounding only
    assert any("lora_A" in n for n, _ in models["classifier"].named_parameters()), "merge worked on a copy"
    assert torch.equal(reload.predict(models["classifier"], BATCH)["logits"], reference["classifier"])


def test_merged_qlora_is_a_16_bit_model_that_differs_by_the_quantisation_error(fresh, paths, tmp_path):
    reference, _, models = fresh
    merged = reload.export_merged(models["qlora"], tmp_path / "merged", base=paths["neox"], dtype=torch.float16)
    assert not merged.exact and 0.02 < merged.quantisation_error < 0.3 and "NF4(W) + BA" in merged.note
    logits = reload.predict(reload.load(merged_dir=tmp_path / "merged", task="causal-lm"), BATCH)["logits"]
    # the merge itself is faithful: the 16-bit base with the adapter unmerged predicts the same, up to fp16 rounding
    unmerged = reload.predict(reload.load(paths["neox"], models["qlora_dir"], task="causal-lm", dtype="float16"),
                              BATCH)["logits"]
    assert (logits - unmerged).abs().max().item() < 5e-3
    # but it is not the 4-bit model that was trained: the notebook must show both, not claim equality
    assert (logits - reference["qlora"]).abs().max().item() > 2e-2


@pytest.mark.parametrize("make", ["prompt", "plain"])
def test_nothing_to_merge_says_why(paths, tmp_path, make):
    model = AutoModelForSequenceClassification.from_pretrained(paths["roberta"], num_labels=2)
    if make == "prompt":
        model = get_peft_model(model, PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=4))
    with pytest.raises(reload.NothingToMerge, match="nothing to merge" if make == "prompt" else "not a PEFT model"):
        reload.export_merged(model, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_compare_checks_shapes_ids_and_nan(capsys):
    with pytest.raises(reload.ReloadMismatch, match="shapes differ"):
        reload.compare(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(reload.ReloadMismatch, match="1 of 4 differ"):
        reload.compare(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4]), what="generated ids")
    with pytest.raises(reload.ReloadMismatch):
        reload.compare(torch.zeros(2), torch.tensor([0.0, float("nan")]))
    assert reload.compare(torch.ones(2), torch.ones(2) + 1e-6, atol=1e-5) == pytest.approx(1e-6, rel=0.1)


def test_a_failing_child_shows_the_end_of_its_error_output(tmp_path, monkeypatch):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
                    "echo 'OSError: no adapter_config.json in /nowhere' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(sys, "executable", str(fake))
    with pytest.raises(reload.ReloadError, match="exit code 3") as caught:
        reload.predictions_in_fresh_process("base", "/nowhere", task="seq-cls", batch=BATCH, device="cpu")
    assert isinstance(caught.value, FriendlyError) and "OSError: no adapter_config.json" in str(caught.value)


def test_generate_needs_a_causal_lm():
    with pytest.raises(FriendlyError, match="causal-lm"):
        reload.predictions_in_fresh_process("base", "adapter", task="seq-cls", batch=BATCH, generate=3)


def test_a_mixed_precision_qlora_model_reloads_identically_with_its_dtype_layout(paths, tmp_path):
    """As on a GPU: 4-bit layers computing in bf16, everything else upcast to fp32 by k-bit preparation.
    Loaded back all in bf16 the model computes differently; with the trained model's dtype layout,
    identically (bitsandbytes also casts each 4-bit layer's bias to its input's dtype on the first forward:
    the layout records that too)."""
    from peft import prepare_model_for_kbit_training

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.bfloat16)
    base = AutoModelForCausalLM.from_pretrained(paths["neox"], quantization_config=config, dtype=torch.bfloat16)
    reload.keep_cpu_4bit_layout(base)
    base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    transformers.set_seed(0)
    model = as_if_trained(get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=8, target_modules="all-linear")))
    model.save_pretrained(tmp_path / "adapter")
    reference = reload.predict(model, BATCH)["logits"]
    layout = reload.dtype_layout(model)
    assert "float32" in layout.values() and not any(".weight" in k and "query_key_value.base_layer" in k for k in layout)

    def reloaded(dtype="bfloat16", **kwargs):
        again = reload.load(paths["neox"], tmp_path / "adapter", task="causal-lm", load_in_4bit=True,
                            dtype=dtype, **kwargs)
        return reload.predict(again, BATCH)["logits"]

    assert torch.equal(reloaded(layout=layout), reference)
    assert not torch.equal(reloaded(), reference), "control: all in bf16, the model computes differently"


def test_a_4bit_classifier_reloads_with_the_modules_it_saved_whole_left_unquantised(paths, tmp_path):
    """Notebook 05 (real) trains the pretrained pooler beside the head and keeps both out of the 4-bit
    conversion. The reload must read them from the adapter (its modules_to_save): quantised, the pooler
    cannot be made trainable and peft stops with 'only Tensors of floating point dtype can require gradients'."""
    skip = ["classifier", "roberta.encoder.layer.0.output.dense"]  # (RoBERTa has no pooler: a body layer stands in)
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.float32, llm_int8_skip_modules=skip)
    transformers.set_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(paths["roberta"], num_labels=3, quantization_config=config,
                                                              dtype=torch.float32)
    reload.keep_cpu_4bit_layout(base)
    model = as_if_trained(get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"],
                                                          modules_to_save=skip)))
    model.save_pretrained(tmp_path / "adapter")
    assert reload.modules_saved_whole(tmp_path / "adapter") == skip
    again = reload.load(paths["roberta"], tmp_path / "adapter", task="seq-cls", load_in_4bit=True)
    assert torch.equal(reload.predict(again, BATCH)["logits"], reload.predict(model, BATCH)["logits"])


def test_a_merge_the_disk_cannot_hold_is_refused_before_writing(fresh, tmp_path, monkeypatch):
    """The H200 bench of notebook 02 ran out of disk writing a 40 GB merged model: now a clear message first."""
    import shutil
    from collections import namedtuple

    _, _, models = fresh
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**30, 2**30 - 1024, 1024))
    with pytest.raises(FriendlyError, match="GiB is free at .* the adapter folder already saved"):
        reload.export_merged(models["classifier"], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_predict_runs_many_rows_a_few_at_a_time(paths):
    """408 test pairs in one fp32 pass ran a T4 (emulated) out of memory in 05: predict() takes them in chunks."""
    model = lora_classifier(paths["roberta"])
    rows = 2 * reload.ROWS_AT_ONCE + 3
    batch = {"input_ids": torch.randint(5, 500, (rows, 12)), "attention_mask": torch.ones(rows, 12, dtype=torch.long)}
    sizes = []
    hook = model.get_base_model().register_forward_pre_hook(lambda module, args, kwargs: sizes.append(
        kwargs["input_ids"].shape[0]), with_kwargs=True)
    try:
        logits = reload.predict(model, batch)["logits"]
    finally:
        hook.remove()
    assert sizes == [reload.ROWS_AT_ONCE, reload.ROWS_AT_ONCE, 3]
    with torch.no_grad():
        whole = model(**batch).logits.float()
    assert logits.shape == (rows, 5) and torch.allclose(logits, whole, atol=1e-5)


def test_merge_shortfall_names_what_is_short_before_anything_loads(monkeypatch, tmp_path):
    import shutil
    from collections import namedtuple

    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: namedtuple("vm", "available")(12 * 2**30))   # Colab's RAM
    monkeypatch.setattr(shutil, "disk_usage", lambda path: namedtuple("du", "total used free")(0, 0, 30 * 2**30))
    assert reload.merge_shortfall(2 * 10**9, tmp_path / "merged") is None              # 3.7 GiB in 16-bit: room
    short = reload.merge_shortfall(20_554_567_680, tmp_path / "merged")                 # GPT-NeoX-20B: 38.3 GiB
    assert "38.3 GiB of memory needed and 12.0 GiB is free" in short
    monkeypatch.setattr(psutil, "virtual_memory", lambda: namedtuple("vm", "available")(120 * 2**30))  # an H200 host
    assert "38.3 GiB and 30.0 GiB is free" in reload.merge_shortfall(20_554_567_680, tmp_path / "merged")   # its disk


def test_read_timeout_grows_with_the_checkpoint():
    assert reload.read_timeout_s(100 * 2**20) == 900                       # a small model: the floor
    assert reload.read_timeout_s(41_000_000_000) > 41_000_000_000 / 30e6   # GPT-NeoX-20B at 30 MB/s


def test_checkpoint_bytes_counts_a_folder_else_16_bit_parameters(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 1000)
    assert reload.checkpoint_bytes(tmp_path, parameters=10**9) == 1000
    assert reload.checkpoint_bytes("EleutherAI/gpt-neox-20b", parameters=20_554_567_680) == 41_109_135_360


def test_notebook_02_checks_room_before_loading_for_the_merge():
    import json
    from pathlib import Path

    notebook = json.loads((Path(__file__).parent.parent / "notebooks" / "02_qlora_gpt_neox_20b.ipynb").read_text())
    merge = next("".join(c["source"]) for c in notebook["cells"] if "reload.export_merged(" in "".join(c["source"]))
    assert merge.index("reload.merge_shortfall(") < merge.index("load_4bit()")
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    assert code.count("timeout=READ_TIMEOUT_S") == 3            # every fresh process that reads the checkpoint


def test_the_reload_tolerance_is_rounding_only():
    import torch

    from helpers import reload

    logits = torch.tensor([[-3.0, 0.5], [8.0, -0.2]])
    assert reload.tolerance(logits, "cpu") == 1e-5 and reload.tolerance(logits, "cpu", on_cpu=1e-4) == 1e-4
    assert reload.tolerance(logits, "cuda") == pytest.approx(8e-3)           # 1e-3 of the largest |logit|
    assert reload.tolerance(logits / 100, "cuda", floor=1.0) == pytest.approx(1e-3)
