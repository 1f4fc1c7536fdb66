"""Cut data/real_pairs.csv: real labelled sentence pairs for notebook 05 in the `real` profile.

Source
    The Stanford Natural Language Inference corpus (SNLI 1.0; Bowman, Angeli, Potts and Manning, EMNLP
    2015), its development and test splits, as copied into the e-SNLI repository (Camburu et al., NeurIPS
    2018), which keeps them as plain line-aligned text files small enough for git.
    repository  https://github.com/OanaMariaCamburu/e-SNLI
    commit      7b585a3f077fdea899780eb0473940522ae44a2e (2022-04-29; the files below date from 2019-11-06)
    paths       dataset/eSNLI/s1.dev, s2.dev, labels.dev (9,842 pairs, SNLI's dev pairs with a gold label)
                dataset/eSNLI/s1.test, s2.test, labels.test (9,824 pairs, SNLI's test pairs likewise)
    licence     SNLI is released under the Creative Commons Attribution-ShareAlike 4.0 International
                licence (CC BY-SA 4.0), as its authors' page says; the e-SNLI repository's own LICENSE
                (MIT) covers its code and explanations, not SNLI's sentences. This sample is therefore
                CC BY-SA 4.0 too: credit SNLI (Bowman et al. 2015) and share it alike.

What is kept, and why
    * The pairs labelled entailment (label 1: the second sentence follows from the first) or contradiction
      (label 0: it cannot be true if the first is); neutral pairs are dropped. That makes a binary
      sentence-pair task shaped like GLUE MRPC (sentence1, sentence2, label 0/1), which a 22 M-parameter
      MiniLM can learn from a couple of thousand pairs. It is inference, not paraphrase: the paraphrase
      sets with an open licence (PAWS) could not be had here and are built to defeat small models.
    * At most one pair per premise, so that no premise sits on both sides of the notebook's train/test
      split (SNLI writes one entailed, one neutral and one contradicting hypothesis for every premise).
    * 2,400 pairs, 67 % of them entailments: about MRPC's balance (its training split is 67.4 %
      paraphrases), so the majority-class baseline is the same as the reference table's.
    * The e-SNLI files hold SNLI's tokenised text ("packages ." "does n't" "( one )"); the tokeniser's
      spaces around punctuation, brackets and English clitics are undone ("packages." "doesn't"
      "(one)"). Pairs with a quotation mark standing alone as a token (`` '' or a lone ') are dropped
      rather than guessed at ("workers ' gear" is a possessive, "reads ' Tickets '" a quotation): 141 of
      the 13,212 entailment and contradiction pairs.
    * Everything is chosen and shuffled with a fixed seed, so the file is the same on every run.

Usage
    python data/cut_real_pairs.py SOURCE
SOURCE is either the folder dataset/eSNLI of a checkout of the e-SNLI repository, or the git directory
of a clone of it (then the files are read at the commit above with `git show`). The output is written
with the csv module: UTF-8, a header row, minimal quoting, "\n" line ends.
"""
from __future__ import annotations

import argparse
import random
import re
import subprocess
from pathlib import Path

from helpers.data import write_sample_csv

SEED = 0
COMMIT = "7b585a3f077fdea899780eb0473940522ae44a2e"
FOLDER = "dataset/eSNLI"
SPLITS = ("dev", "test")
ROWS = 2400
POSITIVE_SHARE = 0.67  # MRPC's training split is 67.4 % paraphrases
LABELS = {"entailment": 1, "contradiction": 0}  # neutral pairs are left out
OUT = Path(__file__).with_name("real_pairs.csv")
QUOTE_TOKEN = re.compile(r" (``|''|') ")  # a quotation mark the tokeniser split off as a word of its own


def read_lines(source: Path, name: str) -> list[str]:
    """One e-SNLI file as a list of lines, from a plain folder or from a git directory at COMMIT."""
    if (source / name).is_file():
        text = (source / name).read_text(encoding="utf-8")
    else:
        text = subprocess.run(["git", "--git-dir", str(source), "show", f"{COMMIT}:{FOLDER}/{name}"],
                              check=True, capture_output=True, text=True, encoding="utf-8").stdout
    return text.splitlines()


def detokenise(text: str) -> str:
    """Undo the tokeniser's spaces around punctuation, brackets and clitics.

    "He does n't go ( now ) ." -> "He doesn't go (now)."
    """
    text = " ".join(text.split())
    text = re.sub(r" (n't|'s|'re|'ve|'m|'ll|'d)\b", r"\1", text)
    text = re.sub(r" ([.,;:!?)])", r"\1", text)
    text = text.replace("( ", "(")
    return text


def read_pairs(source: Path) -> list[tuple[str, str, int]]:
    pairs = []
    for split in SPLITS:
        premises = read_lines(source, f"s1.{split}")
        hypotheses = read_lines(source, f"s2.{split}")
        labels = read_lines(source, f"labels.{split}")
        if not len(premises) == len(hypotheses) == len(labels):
            raise SystemExit(f"the {split} files do not have the same number of lines")
        for premise, hypothesis, label in zip(premises, hypotheses, labels):
            label = label.strip()
            if label not in LABELS or QUOTE_TOKEN.search(f" {premise} {hypothesis} "):
                continue
            pairs.append((detokenise(premise), detokenise(hypothesis), LABELS[label]))
    return pairs


def cut(pairs: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    rng = random.Random(SEED)
    by_premise: dict[str, list[tuple[str, str, int]]] = {}
    for pair in pairs:
        by_premise.setdefault(pair[0], []).append(pair)

    # Visit the premises in a seeded order and take one of each premise's pairs at random, until both
    # labels have their share.
    wanted = {1: round(ROWS * POSITIVE_SHARE), 0: ROWS - round(ROWS * POSITIVE_SHARE)}
    rows = []
    premises = sorted(by_premise)
    rng.shuffle(premises)
    for premise in premises:
        choice = rng.choice(by_premise[premise])
        if wanted[choice[2]] > 0:
            wanted[choice[2]] -= 1
            rows.append(choice)
    if any(wanted.values()):
        raise SystemExit(f"the source is too small for {ROWS} pairs: still missing {wanted}")
    rng.shuffle(rows)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="e-SNLI's dataset/eSNLI folder, or a git dir of e-SNLI")
    args = parser.parse_args(argv)

    pairs = read_pairs(args.source)
    rows = cut(pairs)
    write_sample_csv(OUT, ["sentence1", "sentence2", "label"], rows, lineterminator="\n")
    positives = sum(label for _, _, label in rows)
    print(f"kept {len(rows)} of {len(pairs)} entailment/contradiction pairs ({positives} entailments, "
          f"{len(rows) - positives} contradictions) in {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
