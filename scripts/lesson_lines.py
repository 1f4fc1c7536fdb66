"""Count the notebooks' code lines by kind: the lesson, plumbing, and the rest (issue 16's yardstick).

    python scripts/lesson_lines.py            # a table per notebook
    python scripts/lesson_lines.py --json     # the same as JSON

A code line is *plumbing* when it names the machinery that keeps a run resumable, measured and recorded, or that
switches on the profile or the device: checkpoint folders and resume, fault hooks, run records and identities,
memory callbacks and save timers, out-of-memory advice, and the profile/device tests. It is *lesson* when it
writes the recipe (a PEFT, quantisation or training config, or their keywords), builds the adapted model, or trains
(forward, backward, optimizer step). Everything else (data, plots, printing) is *other*. Comments and blank lines
are not counted. The rules are simple patterns, so the figures are a yardstick, not an audit.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PLUMBING = re.compile(r"\b(checkpoints\.|faults\.|CKPT\b|RunStore|store\.|run_identity|resume_step|resumed_from|"
                      r"train_or_resume|SaveTimer|save_timer|MemoryCallback|memory_callback|\.tracker\b|oom\.|"
                      r"\.advice\(|results\.(make_record|save_record)|save_record|make_record|fingerprint|"
                      r"PROFILE\s*[=!]=|DEVICE\s*[=!]=|runtime\.(pick|choose_profile|banner|output_dir|scratch_dir|"
                      r"chosen_runs)|require_space|LoopCheckpoint|session\.start|training\.measured|"
                      r"PrinterCallback|physical_gpu|emulat)")
LESSON = re.compile(r"\b(LoraConfig|PromptTuningConfig|PromptEncoderConfig|PrefixTuningConfig|BitsAndBytesConfig|"
                    r"TrainingArguments|SFTConfig|get_peft_model|prepare_model_for_kbit_training|"
                    r"per_device_train_batch_size|gradient_accumulation_steps|learning_rate|num_train_epochs|"
                    r"lora_alpha|lora_dropout|target_modules|bnb_4bit|load_in_4bit|optim=|warmup_steps|"
                    r"\.backward\(|optimizer\.step|zero_grad|trainer\.train\(|requires_grad_)")


def code_lines(cell_source: str) -> list[str]:
    return [line for line in cell_source.splitlines() if line.strip() and not line.strip().startswith("#")]


def count(path: Path) -> dict:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    totals = {"lesson": 0, "plumbing": 0, "other": 0}
    longest = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if source.startswith("# Colab only"):       # the install cell is generated from one template
            continue
        lines = code_lines(source)
        longest.append((len(source.splitlines()), index))
        for line in lines:
            kind = "plumbing" if PLUMBING.search(line) else "lesson" if LESSON.search(line) else "other"
            totals[kind] += 1
    longest.sort(reverse=True)
    return {**totals, "code_lines": sum(totals.values()), "cells_over_30_lines": sum(n > 30 for n, _ in longest),
            "longest_cells": longest[:3]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    counted = {p.stem: count(p) for p in paths}
    if args.json:
        print(json.dumps(counted, indent=1))
        return 0
    print(f"{'notebook':32s} {'lesson':>7s} {'plumbing':>9s} {'other':>6s} {'cells >30':>10s}  longest (lines, cell)")
    for name, c in counted.items():
        print(f"{name:32s} {c['lesson']:7d} {c['plumbing']:9d} {c['other']:6d} {c['cells_over_30_lines']:10d}  "
              f"{c['longest_cells']}")
    total = {k: sum(c[k] for c in counted.values()) for k in ("lesson", "plumbing", "other")}
    print(f"{'all':32s} {total['lesson']:7d} {total['plumbing']:9d} {total['other']:6d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
