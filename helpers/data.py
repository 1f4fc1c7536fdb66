"""Loading and checking the data a notebook trains on.

Three sources, one path through the code:

* the committed sample in data/ (smoke and bench profiles, offline);
* a user's own CSV / JSON / JSONL file, named by NB_DATA (columns by NB_TEXT_COLUMN and
  NB_LABEL_COLUMN, or the notebook's own documented names);
* the hub dataset of the recipe (full profile), through `datasets.load_dataset`.

Whatever the source, `clean_table` checks it the same way and *reports* what it changed (rows
dropped, and why, with counts). Problems the code cannot fix raise a `DataError` that names the
problem and the fix.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FriendlyError
from .runtime import repo_root

DATA_ENV = "NB_DATA"
TEXT_COLUMN_ENV = "NB_TEXT_COLUMN"
LABEL_COLUMN_ENV = "NB_LABEL_COLUMN"
READERS = (".csv", ".tsv", ".json", ".jsonl")


class DataError(FriendlyError):
    pass


@dataclass
class Report:
    """What cleaning did to a table; printed by the notebooks, asserted by the tests."""

    source: str
    rows_in: int = 0
    rows_out: int = 0
    dropped: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def drop(self, reason: str, count: int) -> None:
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(count)

    def __str__(self) -> str:
        lines = [f"{self.source}: {self.rows_in} rows read, {self.rows_out} kept"]
        lines += [f"  dropped {n} rows: {reason}" for reason, n in self.dropped.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def sample_path(name: str) -> Path:
    """A committed sample in data/ by file name."""
    path = repo_root() / "data" / name
    if not path.exists():
        raise DataError(f"The sample {name} is missing from {path.parent}. Regenerate it with "
                        f"`python data/make_{Path(name).stem}.py`.")
    return path


def user_file() -> str | None:
    """The user's data file named by NB_DATA, or None."""
    value = os.environ.get(DATA_ENV, "").strip()
    return value or None


def column_names(text_default: str, label_default: str | None) -> tuple[str, str | None]:
    """Text and label column names: NB_TEXT_COLUMN / NB_LABEL_COLUMN, else the notebook's."""
    return (os.environ.get(TEXT_COLUMN_ENV) or text_default,
            os.environ.get(LABEL_COLUMN_ENV) or label_default)


def read_table(path) -> "pd.DataFrame":  # noqa: F821
    """Read a CSV, TSV, JSON (records) or JSONL file into a DataFrame, with clear errors."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.exists():
        near = difflib.get_close_matches(path.name, [p.name for p in path.parent.glob("*")], n=3) \
            if path.parent.exists() else []
        hint = f" Did you mean: {', '.join(near)}?" if near else ""
        raise DataError(f"Data file not found: {path}.{hint} Check the path given in {DATA_ENV}.")
    if path.is_dir():
        raise DataError(f"{path} is a folder; {DATA_ENV} must name one file ({', '.join(READERS)}).")
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise DataError(f"{path.name}: unsupported file type {suffix or '(none)'}; "
                        f"save it as one of {', '.join(READERS)}.")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes). Point {DATA_ENV} at a file with a header and rows.")
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path.name} is not valid UTF-8 (byte {err.start}: {raw[err.start:err.start + 1]!r}). "
            "Re-save it as UTF-8 (e.g. pandas: df.to_csv(path, encoding='utf-8'))."
        ) from None
    try:
        if suffix in (".csv", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        elif suffix == ".jsonl":
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_json(path)
    except (ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path.name} could not be parsed as {suffix[1:].upper()}: {err}. "
                        "Check the file's format and its delimiter/quoting.") from None
    if frame.empty:
        raise DataError(f"{path.name} has a header but no rows.")
    return frame


def require_columns(frame, columns, source: str) -> None:
    """Raise a DataError naming the missing columns and the nearest existing ones."""
    missing = [c for c in columns if c is not None and c not in frame.columns]
    if not missing:
        return
    have = [str(c) for c in frame.columns]
    hints = []
    for column in missing:
        near = difflib.get_close_matches(column, have, n=1, cutoff=0.5)
        hints.append(f"{column!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    raise DataError(
        f"{source}: missing column(s) {', '.join(hints)}. The file has: {', '.join(have)}. "
        f"Name yours with {TEXT_COLUMN_ENV} / {LABEL_COLUMN_ENV}, or rename them in the file."
    )


def clean_table(frame, text_column: str, label_column: str | None, source: str,
                max_chars: int | None = None, drop_duplicates: bool = True):
    """Check and clean a text(/label) table; return (clean frame, Report).

    Empty or missing texts and missing labels are dropped with a count; exact duplicate rows
    too; integer-valued float labels become ints; texts longer than `max_chars` are cut (the
    tokenizer truncates anyway, this only keeps memory bounded) and counted.
    """
    import pandas as pd

    require_columns(frame, [text_column, label_column], source)
    report = Report(source=source, rows_in=len(frame))
    columns = [text_column] + ([label_column] if label_column else [])
    frame = frame[columns].copy()

    texts = frame[text_column]
    not_text = texts.notna() & ~texts.map(lambda v: isinstance(v, str))
    if not_text.any():
        report.notes.append(f"{int(not_text.sum())} non-text values in {text_column!r} read as text")
        frame.loc[not_text, text_column] = texts[not_text].astype(str)
    empty = frame[text_column].isna() | (frame[text_column].astype(str).str.strip() == "")
    report.drop(f"empty or missing {text_column!r}", empty.sum())
    frame = frame[~empty]

    if label_column:
        missing = frame[label_column].isna() | (frame[label_column].astype(str).str.strip() == "")
        report.drop(f"missing {label_column!r}", missing.sum())
        frame = frame[~missing]
        labels = frame[label_column]
        if pd.api.types.is_float_dtype(labels):
            if (labels == labels.round()).all():
                frame[label_column] = labels.astype(int)
            else:
                raise DataError(
                    f"{source}: labels in {label_column!r} are fractional numbers "
                    f"(e.g. {labels[labels != labels.round()].iloc[0]}). A classifier needs class "
                    "names or whole numbers; is this the right column?"
                )
        elif labels.map(type).nunique() > 1:  # e.g. 1 and "1" mixed: make them one type
            frame[label_column] = labels.astype(str)
            report.notes.append(f"labels of mixed types in {label_column!r} were all read as text")

    if drop_duplicates:
        dupes = frame.duplicated()
        report.drop("exact duplicate rows", dupes.sum())
        frame = frame[~dupes]

    if max_chars:
        long = frame[text_column].str.len() > max_chars
        if long.any():
            report.notes.append(f"{int(long.sum())} texts longer than {max_chars} characters were cut")
            frame.loc[long, text_column] = frame.loc[long, text_column].str.slice(0, max_chars)

    if frame.empty:
        raise DataError(f"{source}: no usable rows are left after cleaning ({report.dropped}).")
    report.rows_out = len(frame)
    return frame.reset_index(drop=True), report


def split_three(frame, label_column: str | None, fractions=(0.7, 0.1, 0.2), seed: int = 0):
    """Shuffle and split into train/validation/test, stratified by label where possible.

    Classes with fewer than 3 rows cannot appear in every split; they go to train only and the
    returned note says how many (the split stays stratified for the rest).
    """
    import pandas as pd
    from sklearn.model_selection import train_test_split

    if abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"split fractions {fractions} must add up to 1")
    notes = []
    rare = pd.Series(dtype=bool, index=frame.index)
    if label_column:
        counts = frame[label_column].value_counts()
        rare_labels = counts[counts < 3].index
        rare = frame[label_column].isin(rare_labels)
        if rare.any():
            notes.append(f"{len(rare_labels)} classes with fewer than 3 rows ({int(rare.sum())} rows) "
                         "kept in train only: they cannot be stratified across three splits")
    common = frame[~rare] if label_column else frame
    stratify = common[label_column] if label_column else None
    train, rest = train_test_split(common, test_size=fractions[1] + fractions[2], random_state=seed,
                                   stratify=stratify)
    # A class with a single row left after the first cut (e.g. 3-6 rows in all) cannot be stratified
    # again: that row goes to test, and the rest of the second cut stays stratified.
    lone = pd.Series(False, index=rest.index)
    if label_column:
        rest_counts = rest[label_column].value_counts()
        lone = rest[label_column].isin(rest_counts[rest_counts < 2].index)
    shared = rest[~lone]
    val, test = train_test_split(shared, test_size=fractions[2] / (fractions[1] + fractions[2]),
                                 random_state=seed, stratify=shared[label_column] if label_column else None)
    test = pd.concat([test, rest[lone]])
    if label_column and rare.any():
        train = pd.concat([train, frame[rare]])
    train = train.sample(frac=1.0, random_state=seed)
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True), notes


def load_hub(dataset_id: str, **kwargs):
    """`datasets.load_dataset` with a clear message when the hub cannot be reached."""
    try:
        from datasets import load_dataset

        return load_dataset(dataset_id, **kwargs)
    except Exception as err:  # connection errors come in many types across datasets versions
        text = str(err)
        offline = any(word in text.lower() for word in ("connection", "offline", "resolve", "internet",
                                                         "couldn't reach", "max retries", "network"))
        if offline or os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
            raise DataError(
                f"Cannot download {dataset_id!r} from the Hugging Face hub (no internet access). "
                f"Run the offline profiles (NB_PROFILE=smoke or bench), or point {DATA_ENV} at a local file."
            ) from None
        raise


def write_sample_csv(path, header, rows, lineterminator: str = "\r\n") -> None:
    """Write a data/ sample as UTF-8 CSV (the one writer every data/make_*.py uses) and say so."""
    import csv

    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator=lineterminator)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {path} ({path.stat().st_size / 1024:.0f} KB)")


def synthetic_rows(tokenizer, n_rows: int, median_tokens: float, sigma: float, sentences: list[str],
                   labels=(0, 1), max_tokens: int | None = None, seed: int = 0):
    """Rows for the `bench` profile: real sentences strung together to a target token length.

    Lengths follow a log-normal with the given median and shape, the usual profile of user
    reviews and complaints (many short, a long tail); `max_tokens` caps the draw. The texts carry
    no signal worth learning: bench measures memory and speed at real size, not accuracy.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    counts = [max(1, len(tokenizer(s, add_special_tokens=False)["input_ids"])) for s in sentences]
    targets = rng.lognormal(np.log(median_tokens), sigma, size=n_rows).astype(int) + 1
    if max_tokens:
        targets = np.minimum(targets, max_tokens)
    texts = []
    for target in targets:
        parts, total = [], 0
        while total < target:
            i = int(rng.integers(len(sentences)))
            parts.append(sentences[i])
            total += counts[i]
        texts.append(" ".join(parts))
    return pd.DataFrame({"text": texts, "label": rng.choice(list(labels), size=n_rows)})


def sentences_of(texts, limit: int = 2000) -> list[str]:
    """Split texts into sentences (on '. '), keeping at most `limit` distinct ones."""
    seen: dict[str, None] = {}
    for text in texts:
        for piece in str(text).replace("! ", ". ").replace("? ", ". ").split(". "):
            piece = piece.strip()
            if piece:
                seen.setdefault(piece if piece.endswith(".") else piece + ".", None)
            if len(seen) >= limit:
                return list(seen)
    return list(seen)
