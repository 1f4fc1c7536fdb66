"""Notebook 05 (methods compared): its data sample, the real-size parameter counts of its methods, and
the library behaviour it relies on (prefix tuning with the pinned transformers, a 4-bit model whose new
head stays unquantised, the optimizer that `optim=` names). CPU only, a few seconds.
"""
import math
import random
from pathlib import Path

import pandas as pd
import pytest
from conftest import load_script, private_tiny_cache
import torch

from helpers import data, estimate, metrics, tiny

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "paraphrases.csv"
NOTEBOOK = ROOT / "notebooks" / "05_methods_compared.ipynb"


def generator():
    return load_script(ROOT / "data" / "make_paraphrases.py")


@pytest.fixture(scope="module")
def raw():
    return pd.read_csv(SAMPLE)


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory):
    """A tiny RoBERTa like the notebook's, in a private cache."""
    with private_tiny_cache(tmp_path_factory.mktemp("tiny-cache")):
        yield tiny.tiny_checkpoint("roberta", corpus="paraphrases.csv", hidden_size=64, intermediate_size=128,
                                   initializer_range=0.1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def test_sample_has_mrpc_shape(raw):
    assert list(raw.columns) == ["sentence1", "sentence2", "label"]
    assert SAMPLE.stat().st_size < 300_000
    assert len(raw) == 1000 and set(raw["label"]) == {0, 1}
    assert 0.62 <= raw["label"].mean() <= 0.72, "about two thirds paraphrases, like MRPC"
    words = raw["sentence1"].str.split().str.len()
    assert 10 <= words.median() <= 30, "news sentences of MRPC's length"


def test_the_signal_is_the_extra_clause_and_only_noise_breaks_it(raw):
    """Every negative pair carries ', but ...'; no positive pair does; 3 % of labels are flipped."""
    module = generator()
    rng = random.Random(1)
    for _ in range(300):
        assert ", but " not in " ".join(module.pair(1, rng))
        assert ", but " in " ".join(module.pair(0, rng))
    cue = (raw["sentence1"] + " " + raw["sentence2"]).str.contains(", but ")
    disagree = (cue != (raw["label"] == 0)).mean()
    assert 0.01 <= disagree <= 0.06


def test_negative_pairs_change_a_fact_their_sentences_tell():
    module = generator()
    rng = random.Random(2)
    for tell in module.TELLERS:
        for _ in range(30):
            facts = module._facts(rng)
            changed = module._changed(facts, tell, rng)
            assert any(facts[k] != changed[k] for k in module.CHANGEABLE[tell.__name__]), tell.__name__


def test_a_bag_of_words_learns_it_but_not_perfectly(raw):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    text = raw["sentence1"] + " " + raw["sentence2"]
    x_train, x_test, y_train, y_test = train_test_split(text, raw["label"], test_size=0.2, random_state=42,
                                                        stratify=raw["label"])
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2)
    model = LogisticRegression(max_iter=2000, C=10).fit(vectorizer.fit_transform(x_train), y_train)
    scores = metrics.classification_scores(y_test, model.predict(vectorizer.transform(x_test)))
    assert scores["accuracy"] >= metrics.majority_baseline(y_train, y_test)["accuracy"] + 0.25
    assert scores["accuracy"] < 0.995, "3 % label noise: nothing should be perfect"


# roberta-large with a two-class head: 1024 x 1024 + 1024 (dense) + 1024 x 2 + 2 (out_proj)
HEAD = 1_051_650
LAYERS, HIDDEN, INTERMEDIATE = 24, 1024, 4096


@pytest.mark.parametrize("name, settings, expected", [
    ("frozen but last 4 blocks", dict(method="frozen", trainable_blocks=4), 4 * 12_596_224 + HEAD),
    ("prompt tuning", dict(method="prompt", num_virtual_tokens=20), 20 * HIDDEN + HEAD),
    ("prefix tuning", dict(method="prefix", num_virtual_tokens=20), 20 * LAYERS * 2 * HIDDEN + HEAD),
    ("LoRA q,v", dict(method="lora", lora_r=8, lora_targets=["query", "value"]),
     LAYERS * 2 * 8 * (HIDDEN + HIDDEN) + HEAD),
    ("LoRA all-linear", dict(method="lora", lora_r=8, lora_targets="all-linear"),
     LAYERS * 8 * (8 * HIDDEN + 2 * (HIDDEN + INTERMEDIATE)) + HEAD),
    ("LoRA all-linear r=64", dict(method="lora", lora_r=64, lora_targets="all-linear"),
     LAYERS * 64 * (8 * HIDDEN + 2 * (HIDDEN + INTERMEDIATE)) + HEAD),
])
def test_real_size_trainable_counts_follow_from_the_shapes(name, settings, expected):
    """What the estimator counts with peft on the meta device is what the shapes say (and the notebook
    asserts that its own runs count the same)."""
    facts = estimate.model_facts("roberta-large", task="seq-cls", num_labels=2, **settings)
    assert facts.trainable_params == expected, name


def test_lora_all_linear_leaves_the_head_to_modules_to_save():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    config = tiny.full_config("roberta-large")
    config.num_labels = 2
    with torch.device("meta"):
        model = get_peft_model(AutoModelForSequenceClassification.from_config(config),
                               LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules="all-linear",
                                          modules_to_save=["classifier"]))
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A" in n}
    assert len(adapted) == 24 * 6 and not any("classifier" in n for n in adapted)
    trainable_head = [n for n, p in model.named_parameters() if p.requires_grad and "classifier" in n]
    assert trainable_head and all("modules_to_save" in n for n in trainable_head)


def test_prefix_tuning_runs_with_the_pinned_transformers(tiny_roberta):
    """Prefix tuning feeds past key/values to every layer; the cache API changed in transformers 5."""
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_roberta)
    model = get_peft_model(AutoModelForSequenceClassification.from_pretrained(tiny_roberta, num_labels=2),
                           PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=5))
    batch = tokenizer(["Acme shares rose.", "Globex cut jobs."], ["Acme stock gained.", "It was denied."],
                      padding=True, return_tensors="pt")
    loss = model(**batch, labels=torch.tensor([1, 0])).loss
    loss.backward()
    prefix = [p for n, p in model.named_parameters() if "prompt_encoder" in n and p.requires_grad]
    assert math.isfinite(loss.item()) and prefix and prefix[0].grad.abs().sum() > 0


def test_four_bit_model_keeps_the_new_head_unquantised_and_trains(tiny_roberta):
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BitsAndBytesConfig

    four_bit = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.float32, llm_int8_skip_modules=["classifier"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_roberta, num_labels=2,
                                                               quantization_config=four_bit, dtype=torch.float32)
    assert isinstance(model.roberta.encoder.layer[0].attention.self.query, bnb.nn.Linear4bit)
    assert type(model.classifier.dense) is torch.nn.Linear
    model = get_peft_model(prepare_model_for_kbit_training(model, use_gradient_checkpointing=False),
                           LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules="all-linear"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_roberta)
    batch = tokenizer(["Acme shares rose."], ["Acme stock gained."], return_tensors="pt")
    model(**batch, labels=torch.tensor([1])).loss.backward()
    lora_grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_grads and all(g is not None for g in lora_grads)


def test_the_optimizer_optim_names_is_what_the_notebook_builds(tmp_path):
    """The notebook builds its own two-group optimizer from Trainer.get_optimizer_cls_and_kwargs."""
    import bitsandbytes as bnb
    from transformers import Trainer, TrainingArguments

    for optim, wanted in (("adamw_torch", torch.optim.AdamW), ("paged_adamw_8bit", bnb.optim.AdamW)):
        args = TrainingArguments(output_dir=str(tmp_path), optim=optim, use_cpu=True, report_to="none")
        optimizer_class, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
        assert issubclass(optimizer_class, wanted), optim
    assert kwargs["is_paged"] and kwargs["optim_bits"] == 8


def test_mrpc_majority_figures_in_the_notebook():
    """279 of MRPC's 408 validation pairs are paraphrases: always answering 1 scores 0.684 / 0.812."""
    accuracy = 279 / 408
    f1 = 2 * accuracy / (1 + accuracy)          # precision = accuracy, recall = 1
    assert (round(accuracy, 3), round(f1, 3)) == (0.684, 0.812)
    assert "0.684" in NOTEBOOK.read_text(encoding="utf-8") and "0.812" in NOTEBOOK.read_text(encoding="utf-8")


def test_notebook_keeps_every_method_config_visible():
    source = NOTEBOOK.read_text(encoding="utf-8")
    for needle in ("PromptTuningConfig(task_type=\\\"SEQ_CLS\\\"", "PromptEncoderConfig(task_type=\\\"SEQ_CLS\\\"",
                   "PrefixTuningConfig(task_type=\\\"SEQ_CLS\\\"", "target_modules=[\\\"query\\\", \\\"value\\\"]",
                   "target_modules=\\\"all-linear\\\"", "bnb_4bit_use_double_quant=True",
                   "bnb_4bit_quant_type=\\\"nf4\\\"", "prepare_model_for_kbit_training",
                   "trainer.model_accepts_loss_kwargs = False", "training.measured(trainer",
                   "merge_and_unload()", "PeftModel.from_pretrained", "paraphrases.csv"):
        assert needle in source, needle


def test_sample_cleans_like_a_pair_table(raw):
    """The notebook checks a pair as one text joined by an invisible separator: nothing is lost."""
    first, second = raw["sentence1"].str.strip(), raw["sentence2"].str.strip()
    assert not (first + second).str.contains("\x1f").any()
    joined = raw.assign(pair=first + "\x1f" + second)
    clean, report = data.clean_table(joined, "pair", "label", source="sample")
    assert report.rows_out == len(raw) - report.dropped.get("exact duplicate rows", 0)
    assert (clean["pair"].str.split("\x1f", n=1, expand=True).shape[1]) == 2


class FakeStore:
    """A RunStore's three calls, in memory."""

    def __init__(self, finished=None):
        self.records, self.saved = dict(finished or {}), []

    def finished(self, name):
        return self.records.get(name)

    def save(self, name, record, model=None):
        self.saved.append((name, model))
        self.records[name] = record
        return record


def test_the_run_loop_reads_finished_runs_back_and_records_failures_as_not_run(capsys):
    """helpers.compare.stored_or_trained: a finished run is not trained again; a failure is recorded, not faked;
    the advice of an out-of-memory error is kept whole; a (simulated) disconnect stops the loop."""
    from helpers import compare, faults
    from helpers.oom import OutOfMemoryAdvice

    def never(name):
        raise AssertionError("a finished run must not train again")

    store = FakeStore({"done": {"run": {"name": "done", "status": "ok"}}})
    assert compare.stored_or_trained(store, "done", never)["run"]["status"] == "ok" and not store.saved
    kept = compare.stored_or_trained(store, "new", lambda name: ({"run": {"name": name, "status": "ok"}}, "adapter"))
    assert kept["run"]["name"] == "new" and store.saved == [("new", "adapter")]

    def broken(name):
        raise ValueError("x" * 2000)

    failed = compare.stored_or_trained(store, "broken", broken)["run"]
    assert failed["status"] == "not run" and len(failed["error"]) == compare.ERROR_CHARS and "broken" not in store.records
    advice = "Estimated peak of this recipe on a T4: " + "y" * 2000

    def out_of_memory(name):
        raise OutOfMemoryAdvice(advice)

    assert compare.stored_or_trained(store, "oom", out_of_memory)["run"]["error"] == f"OutOfMemoryAdvice: {advice}"
    assert "oom: NOT RUN: OutOfMemoryAdvice:" in capsys.readouterr().out

    def disconnected(name):
        raise faults.SimulatedDisconnect(3)

    with pytest.raises(faults.SimulatedDisconnect):
        compare.stored_or_trained(store, "cut", disconnected)
