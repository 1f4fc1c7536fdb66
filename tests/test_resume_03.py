"""Notebook 03: resumed from a late checkpoint, it ends like an uninterrupted run; out-of-memory advice (issue 7).
The cases live in resume_cases.py."""
from resume_cases import out_of_memory_ends_in_advice, resumed_from_a_late_checkpoint_ends_like_the_uninterrupted_run

NAME = "03_accounting_sft"
LATE_STEP = 275         # of 300 optimizer steps, a checkpoint at every evaluation (25): the last before the end


def test_resumed_from_a_late_checkpoint_it_ends_like_an_uninterrupted_run(tmp_path):
    # the Trainer keeps the best checkpoint too and loads it at the end: the resumed run needs the best as of step
    # 275 (resume_cases.stopped_after puts it back), and its weights are the best checkpoint's
    resumed_from_a_late_checkpoint_ends_like_the_uninterrupted_run(NAME, LATE_STEP, tmp_path)


def test_out_of_memory_ends_in_advice_with_numbers(tmp_path):
    out_of_memory_ends_in_advice(NAME, tmp_path)
