"""Notebook 01: resumed from a late checkpoint, it ends like an uninterrupted run; out-of-memory advice (issue 7).
The cases live in resume_cases.py."""
from resume_cases import out_of_memory_ends_in_advice, resumed_from_a_late_checkpoint_ends_like_the_uninterrupted_run

NAME = "01_complaint_classification"
LATE_STEP = 121         # of 132 optimizer steps (6 epochs of 22), a checkpoint every 11: the last before the end


def test_resumed_from_a_late_checkpoint_it_ends_like_an_uninterrupted_run(tmp_path):
    resumed_from_a_late_checkpoint_ends_like_the_uninterrupted_run(NAME, LATE_STEP, tmp_path)


def test_out_of_memory_ends_in_advice_with_numbers(tmp_path):
    out_of_memory_ends_in_advice(NAME, tmp_path)
