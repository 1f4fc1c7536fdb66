"""Cut data/real_complaints.csv: real CFPB consumer complaints for notebook 01's `real` profile.

Source
    Repository  github.com/ZiyuYan9/consumer_complaints
    Commit      ecece4d9228ad0198cd175e59e355a768ebd385b (HEAD; the file was last changed in
                715893bebf37fac632374ca7cbcde307069fd35f)
    Path        complaints_sample.csv (3,888,066 bytes, SHA-256 below)
    What it is  a 6,623-row sample of the CFPB Consumer Complaint Database export, all 18 export
                columns ("Date received" ... "Complaint ID"), complaints received 2015-2020, mostly
                2019, uploaded with a "Big Data Management" course homework (BDM_HW3.py).

Licence
    The Consumer Complaint Database is published by the US Consumer Financial Protection Bureau,
    a federal agency; as a work of the US government it is in the public domain in the US
    (17 U.S.C. 105). Narratives are published only with the consumer's consent and are scrubbed
    of personal information by the CFPB: names, account numbers, dates and the like appear as
    XXXX or XX/XX/XXXX. We keep that redaction exactly as published.

What is kept, and why
    * Columns Product, Issue, Sub-issue and Consumer complaint narrative; the label is Sub-issue.
    * Only rows with a non-empty narrative and a non-empty sub-issue (most CFPB rows have no
      narrative: 1,316 of 6,623 here have both).
    * Narratives are kept verbatim, never truncated, but rows whose narrative is longer than
      4,000 characters are dropped (27 rows) to keep the file small.
    * Exact duplicate narratives are kept once, the first in source order (26 rows dropped):
      people often file one text against each credit bureau, and a copy in both the training
      and the test split would flatter the test score.
    * The 10 most frequent sub-issues that remain (ties broken by name). Ten classes of 29 to
      174 examples are something a 22M-parameter encoder can learn in minutes on a CPU; the
      long tail of rare sub-issues (the 11th has 26 rows) is left out.
    * At most 200 rows per class, drawn with a fixed seed (no class reaches the cap in this
      source, but the rule is kept so a larger source gives a file of the same shape).
    * Classes stay uneven, as in the real database; rows are shuffled with a fixed seed.
    * Result: 687 rows, 10 sub-issues, nearly all under two products: credit reporting (526
      rows) and debt collection (152); 9 rows come from five other products. Each sub-issue
      sits under one Issue (Debt was paid under two spellings of one), so Issue gives away part
      of the label: a model should read only the narrative.

Run
    python data/cut_real_complaints.py SOURCE

SOURCE is either the CSV file itself or the fetched repository's git directory (the file is then
read with `git show COMMIT:complaints_sample.csv`). The source's SHA-256 is checked so the output
is the same byte for byte. The CSV is written with the csv module: UTF-8, a header row,
QUOTE_MINIMAL, "\\n" line ends (narratives keep their own line breaks, inside quotes).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

SEED = 0
N_CLASSES = 10
MAX_PER_CLASS = 200
MAX_CHARS = 4000

SOURCE_COMMIT = "ecece4d9228ad0198cd175e59e355a768ebd385b"
SOURCE_PATH = "complaints_sample.csv"
SOURCE_SHA256 = "62db0ac12e10f32b77f876283818fe7f6508fed767791d90dda190fd1922878f"

COLUMNS = ["Product", "Issue", "Sub-issue", "Consumer complaint narrative"]
TEXT, LABEL = "Consumer complaint narrative", "Sub-issue"
OUT = Path(__file__).with_name("real_complaints.csv")


def read_source(source: Path) -> bytes:
    """The bytes of the source CSV, from the file itself or from the fetched git directory."""
    if source.is_dir():
        spec = f"{SOURCE_COMMIT}:{SOURCE_PATH}"
        return subprocess.run(["git", "--git-dir", str(source), "show", spec],
                              check=True, capture_output=True).stdout
    return source.read_bytes()


def cut(raw: bytes, seed: int = SEED) -> list[dict]:
    """The rows to write, as dicts with the four COLUMNS."""
    # newline="" lets the csv module keep line breaks inside quoted narratives as they are.
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    rows, seen = [], set()
    for row in reader:
        text, label = row[TEXT], row[LABEL].strip()
        if not text.strip() or not label or len(text) > MAX_CHARS:
            continue
        if text in seen:
            continue
        seen.add(text)
        rows.append({column: row[column] for column in COLUMNS})

    counts = Counter(row[LABEL] for row in rows)
    # Most frequent first; the name breaks ties so the choice never depends on dict order.
    ranked = sorted(counts, key=lambda label: (-counts[label], label))
    keep = set(ranked[:N_CLASSES])

    rng = random.Random(seed)
    chosen = []
    for label in sorted(keep):
        members = [row for row in rows if row[LABEL] == label]
        if len(members) > MAX_PER_CLASS:
            members = rng.sample(members, MAX_PER_CLASS)
        chosen.extend(members)
    rng.shuffle(chosen)
    return chosen


def write(rows: list[dict], out: Path) -> None:
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, quoting=csv.QUOTE_MINIMAL,
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="complaints_sample.csv, or the fetched git directory")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT.name})")
    args = parser.parse_args(argv)

    raw = read_source(args.source)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_SHA256:
        sys.exit(f"{args.source}: SHA-256 {digest} is not the pinned {SOURCE_SHA256}; "
                 "this is not the file the docstring describes")

    rows = cut(raw)
    write(rows, args.out)
    counts = Counter(row[LABEL] for row in rows)
    print(f"wrote {len(rows)} rows, {len(counts)} sub-issues, to {args.out} "
          f"({args.out.stat().st_size:,} bytes)")
    for label, n in counts.most_common():
        print(f"  {n:4d}  {label}")


if __name__ == "__main__":
    main()
