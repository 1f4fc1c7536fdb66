"""Cut data/real_reviews.csv: real labelled review sentences for notebook 04's `real` profile.

Source
    Data set    "Sentiment Labelled Sentences", UCI Machine Learning Repository, data set 331
                (https://archive.ics.uci.edu/dataset/331/sentiment+labelled+sentences), made for
                Kotzias, Denil, de Freitas and Smyth, "From Group to Individual Labels using Deep
                Features", KDD 2015. 3,000 sentences, 1,000 each from IMDB (movies), Amazon
                (phones and accessories) and Yelp (restaurants), 500 positive and 500 negative
                per site, chosen by the authors to be clearly positive or negative.
    Copy used   github.com/Shubhammawa/Sentiment-analysis-cnn, commit
                a698f9843338fab51afab9a23680ed08e5edde3b (HEAD; the files were added in
                ba72913791aa03fd79651dcf6bf3babe8fe5a921), folder
                "Datasets/sentiment labelled sentences/": amazon_cells_labelled.txt,
                imdb_labelled.txt, yelp_labelled.txt (SHA-256 below). It is the UCI zip unpacked
                as is (its readme.txt, .DS_Store and __MACOSX entries are there too); some other
                copies on GitHub have had the double quotes stripped from the IMDB file.

Licence
    The UCI Machine Learning Repository publishes this data set under Creative Commons
    Attribution 4.0 International (CC BY 4.0), stated on the data set's UCI page. The readme.txt
    inside the zip states no licence; it asks users to cite the paper above. Attribution:
    Dimitrios Kotzias, "Sentiment Labelled Sentences", UCI Machine Learning Repository, 2015,
    https://archive.ics.uci.edu/dataset/331, CC BY 4.0. The sentences themselves were taken from
    larger review corpora (IMDB reviews from Maas et al. 2011, Amazon reviews from McAuley and
    Leskovec 2013, the Yelp data set challenge); the CC BY 4.0 grant is UCI's.

What is kept, and why
    * Every sentence with its 0/1 label (0 = negative, 1 = positive), as `text`, `label`.
    * Surrounding whitespace is stripped (the IMDB file pads each sentence with two spaces
      before the tab); the text is otherwise verbatim.
    * Duplicates are dropped, comparing texts case-folded and with runs of whitespace collapsed
      ("Great phone." and "Great Phone." are one sentence to an uncased model such as MiniLM):
      the first copy in file order (amazon, imdb, yelp) is kept. A copy in both the training
      and the test split would flatter the test score.
    * The larger class is then cut down, at random with a fixed seed, to the size of the
      smaller one, so the classes are exactly balanced; rows are shuffled with a fixed seed.
    * Result: 2,976 rows, 1,488 per label (21 duplicates dropped, then 3 surplus positives).

Run
    python data/cut_real_reviews.py SOURCE

SOURCE is either the folder holding the three *_labelled.txt files or the fetched repository's
git directory (the files are then read with `git show COMMIT:PATH`). Each file's SHA-256 is
checked so the output is the same byte for byte. The CSV is written with the csv module: UTF-8,
a header row, QUOTE_MINIMAL, "\\n" line ends.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

SEED = 0

SOURCE_COMMIT = "a698f9843338fab51afab9a23680ed08e5edde3b"
SOURCE_DIR = "Datasets/sentiment labelled sentences"
SOURCE_SHA256 = {
    "amazon_cells_labelled.txt": "47003fc0a0d4840b00e96e715b6189bad09e7443a3da41c4cbe12ffc79f86ae3",
    "imdb_labelled.txt": "a5851cfed830b68d4b18fa11f7e9fa85debee7566be0933c9a679ce747c86d67",
    "yelp_labelled.txt": "c76468b7b5c6e56a0804d728345c5f84aa2142ddb214420f61cc9cfd4c00d2ea",
}
OUT = Path(__file__).with_name("real_reviews.csv")


def read_source(source: Path, name: str) -> bytes:
    """The bytes of one *_labelled.txt, from a plain folder or from the fetched git directory."""
    if (source / name).is_file():
        return (source / name).read_bytes()
    spec = f"{SOURCE_COMMIT}:{SOURCE_DIR}/{name}"
    return subprocess.run(["git", "--git-dir", str(source), "show", spec],
                          check=True, capture_output=True).stdout


def parse(raw: bytes, name: str) -> list[tuple[str, int]]:
    """(sentence, label) pairs from one file: one `sentence<TAB>label` per line."""
    pairs = []
    for number, line in enumerate(raw.decode("utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        # Split on the last tab only, and do not read the file as CSV: the sentences contain
        # double quotes that are part of the text, not quoting.
        text, label = line.rsplit("\t", 1)
        if label.strip() not in ("0", "1"):
            sys.exit(f"{name} line {number}: label {label!r} is not 0 or 1")
        pairs.append((text.strip(), int(label)))
    return pairs


def cut(pairs: list[tuple[str, int]], seed: int = SEED) -> list[tuple[str, int]]:
    """Deduplicated, balanced and shuffled rows."""
    seen, unique = set(), []
    for text, label in pairs:
        key = " ".join(text.casefold().split())
        if key in seen:
            continue
        seen.add(key)
        unique.append((text, label))

    rng = random.Random(seed)
    by_label = {label: [row for row in unique if row[1] == label] for label in (0, 1)}
    size = min(len(rows) for rows in by_label.values())
    rows = []
    for label in (0, 1):
        members = by_label[label]
        # Sample only where there is a surplus, so the smaller class is kept whole and in order.
        rows.extend(rng.sample(members, size) if len(members) > size else members)
    rng.shuffle(rows)
    return rows


def write(rows: list[tuple[str, int]], out: Path) -> None:
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path,
                        help="folder with the three *_labelled.txt files, or the fetched git directory")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT.name})")
    args = parser.parse_args(argv)

    pairs = []
    for name, expected in SOURCE_SHA256.items():  # amazon, imdb, yelp: the order of the docstring
        raw = read_source(args.source, name)
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected:
            sys.exit(f"{name}: SHA-256 {digest} is not the pinned {expected}; "
                     "this is not the file the docstring describes")
        pairs.extend(parse(raw, name))

    rows = cut(pairs)
    write(rows, args.out)
    counts = Counter(label for _, label in rows)
    print(f"read {len(pairs)} sentences; wrote {len(rows)} rows ({counts[0]} negative, "
          f"{counts[1]} positive) to {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
