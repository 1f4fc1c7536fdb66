"""The offline checkpoints load through the same calls as hub checkpoints, with real token layouts."""
import pytest
import torch
from conftest import private_tiny_cache
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from helpers import tiny
from helpers.errors import FriendlyError


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    with private_tiny_cache(tmp_path_factory.mktemp("tiny-cache")):
        yield


CORPUS = "movie_reviews.csv"


def test_bloom_tiny_checkpoint_loads_as_classifier():
    path = tiny.tiny_checkpoint("bloom", corpus=CORPUS)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 1, 2, 3)
    assert tokenizer.padding_side == "left"
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    batch = tokenizer(["a gripping film", "dull"], padding=True, return_tensors="pt")
    assert model(**batch).logits.shape == (2, 2)
    # a trained BPE, not characters: a common word is one token
    assert len(tokenizer.tokenize(" movie")) == 1


def test_roberta_style_wraps_text_and_has_mask():
    path = tiny.tiny_checkpoint("xlm-roberta", corpus=CORPUS)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer("the movie")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and tokenizer.pad_token_id == 1
    assert tokenizer.mask_token_id == len(tokenizer) - 1
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == "xlm-roberta" and config.pad_token_id == 1


def test_gpt_neox_tiny_is_causal_lm_with_endoftext():
    path = tiny.tiny_checkpoint("gpt-neox", corpus=CORPUS)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id == 0
    model = AutoModelForCausalLM.from_pretrained(path)
    # transformers 5 keeps rotary_pct as rope_parameters["partial_rotary_factor"]
    assert model.config.rope_parameters["partial_rotary_factor"] == 0.25 and model.config.use_parallel_residual
    out = model.generate(**tokenizer("the movie", return_tensors="pt"), max_new_tokens=3, do_sample=False,
                         pad_token_id=0)
    assert out.shape[1] == len(tokenizer("the movie")["input_ids"]) + 3


def test_chat_tiny_renders_template():
    path = tiny.tiny_checkpoint("chat", corpus=CORPUS)
    tokenizer = AutoTokenizer.from_pretrained(path)
    messages = [{"role": "user", "content": "Record the sale."}, {"role": "assistant", "content": "Dr Cash"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == "<|user|>\nRecord the sale.<|end|>\n<|assistant|>\nDr Cash<|end|>\n"
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>\n")
    assert tokenizer("hi")["input_ids"][0] == tokenizer.bos_token_id


def test_cache_reuses_a_built_checkpoint():
    first = tiny.tiny_checkpoint("bloom", corpus=CORPUS)
    assert tiny.tiny_checkpoint("bloom", corpus=CORPUS) == first
    assert tiny.tiny_checkpoint("bloom", corpus=CORPUS, hidden_size=32) != first


def test_unknown_family_and_model_get_clear_errors():
    with pytest.raises(FriendlyError, match="Unknown model family"):
        tiny.tiny_checkpoint("llama-9000")
    with pytest.raises(FriendlyError, match="No offline config"):
        tiny.full_config("someone/unknown-model")
    with pytest.raises(FriendlyError, match="No data sample"):
        tiny.tiny_checkpoint("bloom", corpus="nope.csv")


# Parameter counts of the full-size configs, built on the meta device (no memory), against the
# figures published for the real checkpoints.
@pytest.mark.parametrize("model_id,auto,expected", [
    ("bigscience/bloom-560m", AutoModelForCausalLM, 559_214_592),
    ("EleutherAI/gpt-neox-20b", AutoModelForCausalLM, 20_554_567_680),
    ("microsoft/Phi-3-mini-4k-instruct", AutoModelForCausalLM, 3_821_079_552),
])
def test_full_configs_have_the_real_sizes(model_id, auto, expected):
    with torch.device("meta"):
        model = auto.from_config(tiny.full_config(model_id))
    assert sum(p.numel() for p in model.parameters()) == expected


def test_xlm_roberta_large_classifier_size_matches_recipe():
    # docs/sources.md 01: 562,951,596 in all once LoRA (r=16 on query/value) and the classifier's trainable
    # copy are added; their 2,841,814 parameters come on top of the bare classifier counted here.
    config = tiny.full_config("xlm-roberta-large")
    config.num_labels = 214
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == 562_951_596 - 2_841_814


def test_random_checkpoint_loads_like_a_hub_model(monkeypatch):
    small = ("bloom", dict(vocab_size=4096, hidden_size=32, n_layer=1, n_head=2))
    monkeypatch.setitem(tiny.FULL_CONFIGS, "test/bloom-small", small)
    path = tiny.random_checkpoint("test/bloom-small", dtype="float32", tokenizer_vocab=1024, corpus=CORPUS)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.hidden_size == 32 and model.config.vocab_size == 4096
    assert AutoTokenizer.from_pretrained(path).pad_token_id == 3
    assert (tiny.Path(path) / "ORIGIN.txt").exists()


def test_count_parameters_counts_trainable():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert tiny.count_parameters(model) == (8, 23)
