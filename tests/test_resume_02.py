"""Notebook 02: resume after a disconnect (both recipes), hence determinism, out-of-memory advice (issue 7). The cases live in resume_cases.py."""
from resume_cases import interrupted_then_resumed, out_of_memory_ends_in_advice, uninterrupted

NAME = "02_qlora_gpt_neox_20b"


def test_a_disconnected_run_resumes_and_ends_like_an_uninterrupted_one(tmp_path):
    # Bit-identical weights after a resume also prove determinism: the same seed, the same weights (a second
    # uninterrupted run, which this test used to make, adds nothing to that)
    assert interrupted_then_resumed(NAME, 5, tmp_path) == uninterrupted(NAME, tmp_path)


def test_out_of_memory_ends_in_advice_with_numbers(tmp_path):
    out_of_memory_ends_in_advice(NAME, tmp_path)
