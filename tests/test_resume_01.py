"""Notebook 01: resume after a disconnect, out-of-memory advice (issue 7). The cases live in resume_cases.py."""
from resume_cases import interrupted_then_resumed, out_of_memory_ends_in_advice, uninterrupted

NAME = "01_complaint_classification"


def test_a_disconnected_run_resumes_and_ends_like_an_uninterrupted_one(tmp_path):
    assert interrupted_then_resumed(NAME, 11, tmp_path) == uninterrupted(NAME, tmp_path)


def test_out_of_memory_ends_in_advice_with_numbers(tmp_path):
    out_of_memory_ends_in_advice(NAME, tmp_path)
