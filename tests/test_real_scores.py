"""The two scores the `real` profile judges learning by: 02's continuation_score and 03's token F1."""
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from helpers import qlora, sft


def test_token_f1_reads_amounts_as_numbers_and_gives_partial_credit():
    entry = "Debit Rent expense $1,850; credit Cash $1,850"
    assert sft.token_f1(entry, "debit rent expense 1850.00; credit cash 1,850") == 1.0
    assert sft.token_f1("the weather is sunny", entry) == 0.0
    wrong_amount = sft.token_f1("Debit Rent expense $1,580; credit Cash $1,580", entry)
    assert 0.5 < wrong_amount < 1.0, "the right accounts with a wrong amount earn part of the score"
    assert sft.mean_token_f1([entry, "nothing alike"], [entry, entry]) == 0.5


def test_continuation_score_is_the_models_own_loss_on_the_continuation(tiny_bloom):
    model = AutoModelForCausalLM.from_pretrained(tiny_bloom, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bloom)
    prompt, continuation = "the film was", " a delight from start to finish"
    score = qlora.continuation_score(model, tokenizer, prompt, continuation)

    ids = tokenizer(prompt + continuation, return_tensors="pt")["input_ids"]
    labels = ids.clone()
    labels[:, :len(tokenizer(prompt)["input_ids"])] = -100       # the loss of the continuation's tokens only
    with torch.no_grad():
        mean_loss = model(input_ids=ids, labels=labels).loss.item()
    assert score["tokens"] == len(score["ranks"]) == int((labels != -100).sum())
    assert score["log_likelihood"] == pytest.approx(-mean_loss * score["tokens"], rel=1e-4)
    assert 0 <= score["first_choices"] <= score["tokens"]
    with pytest.raises(ValueError, match="continuation"):
        qlora.continuation_score(model, tokenizer, prompt, "")
