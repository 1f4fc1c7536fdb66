"""Notebook 02: resumed from a late checkpoint (both recipes), it ends like an uninterrupted run, hence
determinism; out-of-memory advice (issue 7). The cases live in resume_cases.py."""
from resume_cases import out_of_memory_ends_in_advice, resumed_from_a_late_checkpoint_ends_like_the_uninterrupted_run

NAME = "02_qlora_gpt_neox_20b"
LATE_STEP = 15          # of 20 optimizer steps, a checkpoint every 5: the last before the end


def test_resumed_from_a_late_checkpoint_both_recipes_end_like_an_uninterrupted_run(tmp_path):
    # Each recipe resumes from its own folder: both are put back as they were at step 15, so that one run
    # resumes both (no single disconnect leaves that, but each folder is exactly what one leaves). Bit-identical
    # weights after a resume also prove determinism: the same seed, the same weights.
    resumed_from_a_late_checkpoint_ends_like_the_uninterrupted_run(NAME, LATE_STEP, tmp_path, runs=2)


def test_out_of_memory_ends_in_advice_with_numbers(tmp_path):
    out_of_memory_ends_in_advice(NAME, tmp_path)
