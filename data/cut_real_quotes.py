"""Cut data/real_quotes.csv: real famous English quotes for notebook 02 in the `real` profile.

Source
    Quotable's quote collection, the data behind the free Quotable quotations API by Luke Peavey.
    repository  https://github.com/quotable-io/data
    commit      20037e8161167d25e971d2dcfe1ee0398eb8eb89 (2023-04-14, "data: change tags schema")
    path        data/quotes.json (git blob e3070044b438fb0123633b4da2572cd2ffa9e3ce, 2,127 quotes)
    licence     MIT: the data repository's package.json says "license": "MIT" and its README says that
                "both the API and the data ... are open source projects"; the API's repository
                (lukePeavey/quotable) carries the MIT text in LICENCE.md (Copyright 2019 Luke Peavey).
                The data repository has no licence file of its own, so keep this notice with the sample.

    Plus one line that Quotable lacks: John F. Kennedy's "Ask not what your country can do for you; ask
    what you can do for your country." from his Inaugural Address of 20 January 1961. The address is a work
    of the United States Government (a President's official speech), so it is in the public domain
    (17 U.S.C. 105). No openly licensed quote collection we could find holds this line, and notebook 02
    completes the prompt "Ask not what your country" before and after training, so it is added here, once.

What is kept, and why
    * `quote` and `author`; Quotable's ids and tags are dropped (the notebook trains on `quote` only).
    * Runs of whitespace inside a quote become one space; every other character is kept as written.
    * Quotes of 20 to 300 characters: shorter ones teach little, longer ones would dominate the short
      sequences the notebook trains on.
    * One copy of each quote: two quotes are the same when they match after lower-casing and dropping
      everything but letters and digits (so a changed comma or dash does not make a second copy).
    * The Kennedy line exactly once; no Quotable quote contains "ask not what your country".
    * The rows are shuffled with a fixed seed, so the file is the same on every run.

Usage
    python data/cut_real_quotes.py SOURCE
SOURCE is either the file data/quotes.json of a checkout of quotable-io/data, or the git directory of a
clone of that repository (then the file is read at the commit above with `git show`). The output is
written with the csv module: UTF-8, a header row, minimal quoting, "\n" line ends.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import subprocess
from pathlib import Path

from helpers.data import write_sample_csv

SEED = 0
COMMIT = "20037e8161167d25e971d2dcfe1ee0398eb8eb89"
SOURCE_PATH = "data/quotes.json"
SOURCE_BLOB = "e3070044b438fb0123633b4da2572cd2ffa9e3ce"
MIN_CHARS, MAX_CHARS = 20, 300
KENNEDY = ("Ask not what your country can do for you; ask what you can do for your country.",
           "John F. Kennedy")
OUT = Path(__file__).with_name("real_quotes.csv")


def read_source(source: Path) -> bytes:
    """The bytes of data/quotes.json, from the file itself or from a git directory at COMMIT."""
    if source.is_dir():
        return subprocess.run(["git", "--git-dir", str(source), "show", f"{COMMIT}:{SOURCE_PATH}"],
                              check=True, capture_output=True).stdout
    return source.read_bytes()


def git_blob_id(data: bytes) -> str:
    # The id git gives a file's content: lets us say whether this is the version the docstring names.
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def same_quote_key(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.casefold())


def cut(records: list[dict]) -> list[tuple[str, str]]:
    rows = []
    seen = {same_quote_key(KENNEDY[0])}
    for record in records:
        quote = " ".join(record["content"].split())
        author = " ".join(record["author"].split())
        if not MIN_CHARS <= len(quote) <= MAX_CHARS:
            continue
        if "ask not what your country" in quote.casefold():
            raise SystemExit(f"the source already holds a Kennedy-like line, check it: {quote!r}")
        key = same_quote_key(quote)
        if key in seen:
            continue
        seen.add(key)
        rows.append((quote, author))
    rows.append(KENNEDY)
    random.Random(SEED).shuffle(rows)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="quotable-io/data's data/quotes.json, or a git dir of it")
    args = parser.parse_args(argv)

    data = read_source(args.source)
    if git_blob_id(data) != SOURCE_BLOB:
        print(f"warning: this is not the quotes.json of commit {COMMIT[:7]}; the sample will differ")
    records = json.loads(data.decode("utf-8"))
    rows = cut(records)
    write_sample_csv(OUT, ["quote", "author"], rows, lineterminator="\n")
    print(f"kept {len(rows) - 1} of {len(records)} Quotable quotes, plus the Kennedy line: {len(rows)} rows "
          f"in {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
