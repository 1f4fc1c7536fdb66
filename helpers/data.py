"""Loading and checking the data a notebook trains on.

Three sources, one path through the code:

* the committed sample in data/ (smoke and bench profiles, offline);
* a user's own CSV / JSON / JSONL file, named by NB_DATA (columns by NB_TEXT_COLUMN and
  NB_LABEL_COLUMN, or the notebook's own documented names);
* the hub dataset of the recipe (full profile), through `datasets.load_dataset`.

Whatever the source, `clean_table` checks it the same way and *reports* what it changed (rows
dropped, and why, with counts). Problems the code cannot fix raise a `DataError` that names the
problem and the fix.

Choices, and why:
* Encoding: UTF-8 (with or without Excel's byte-order mark) and UTF-16 with a byte-order mark are
  read as they are. Other bytes are read as Windows-1252, what Excel writes for "CSV" on Western
  systems and by far the most common non-UTF-8 file a learner has; the report says so and shows the
  accented characters it found, so a wrong guess is visible rather than silent. A UTF-8 file with a
  few broken bytes, or bytes Windows-1252 does not define, stops with a DataError (no safe guess).
* Long texts are cut at `MAX_CHARS`, not dropped: the notebooks' tokenizers truncate far earlier,
  so the cut changes nothing a model sees, keeps the example, and bounds memory and time (02's
  `full` recipe does not truncate, so it cuts at 2,000 characters, far beyond any quote).
* Duplicates: exact duplicate rows are dropped; for class labels, the same text with different
  labels is dropped in every copy (no label can be trusted for it, and copies could land in train
  and test at once).
* Labels are converted when that is unambiguous ("1", 1.0, True -> 1; names mixed with numbers ->
  names) and noted; fractions (a score, not a class), lists, a label column with one value per
  row, and, for binary notebooks, a third label or a label with a single row raise a DataError.
* Splits never put a label in evaluation that training lacks (`split_three`, `move_unseen_labels`).
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
TEXT2_COLUMN_ENV = "NB_TEXT2_COLUMN"   # notebook 05's second sentence
READERS = (".csv", ".tsv", ".json", ".jsonl")

# Texts longer than this are cut (and counted). The longest input a notebook feeds a model is 1,024
# tokens, a few thousand characters, where its tokenizer truncates anyway: a cut at 20,000 characters
# changes nothing a model sees, keeps the row, and stops one pasted-in book (or a CSV whose unclosed
# quote swallowed the rows after it) from costing minutes and gigabytes to tokenise.
MAX_CHARS = 20_000
FALLBACK_ENCODING = "cp1252"          # Windows-1252: what Excel and many Windows tools write as "CSV"
LABEL_KINDS = (None, "class", "binary")


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

    def note(self, text: str) -> None:
        self.notes.append(text)

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
    return ((os.environ.get(TEXT_COLUMN_ENV) or "").strip() or text_default,
            (os.environ.get(LABEL_COLUMN_ENV) or "").strip() or label_default)


_HOW_TO_POINT = (f"Set {DATA_ENV} to the file's full path: in a notebook, run "
                 f"`import os; os.environ['{DATA_ENV}'] = '/content/my_data.csv'` before the configuration "
                 f"cell; in a shell, `{DATA_ENV}=/path/to/my_data.csv make run`. Unset {DATA_ENV} to use the sample.")


def locate(path) -> Path:
    """The file a (possibly relative) path names: from the working folder, else from the repository.

    A notebook's working folder is notebooks/, so `data/my.csv` given relative to the checkout is
    found too.
    """
    path = Path(str(path).strip()).expanduser()
    if path.exists() or path.is_absolute():
        return path
    in_repo = repo_root() / path
    return in_repo if in_repo.exists() else path


def _not_found(given) -> DataError:
    path = Path(str(given).strip()).expanduser()
    looked = [path.resolve()] + ([] if path.is_absolute() else [(repo_root() / path).resolve()])
    near = []
    for folder in dict.fromkeys(p.parent for p in looked):
        if folder.is_dir():
            near += difflib.get_close_matches(path.name, [p.name for p in folder.iterdir()], n=3)
    hint = f" Did you mean: {', '.join(dict.fromkeys(near))}?" if near else ""
    where = " and ".join(str(p) for p in dict.fromkeys(looked))
    return DataError(f"Data file not found: {str(given)!r} (looked for {where}).{hint} {_HOW_TO_POINT}")


def _decode(raw: bytes, name: str) -> tuple[str, str | None]:
    """The text of a data file, and a note when it was not plain UTF-8.

    UTF-8 (with or without Excel's byte-order mark) and UTF-16 with a byte-order mark are read as
    they are. A file that is not UTF-8 at all is read as Windows-1252, the encoding Excel and many
    Windows tools write, and the note shows its accented characters so a wrong guess is visible.
    A UTF-8 file with a few broken bytes, or bytes Windows-1252 does not define, stops with a
    DataError: no guess would be safe.
    """
    import codecs

    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16"), "read as UTF-16 (the file starts with a UTF-16 byte-order mark)"
    if b"\x00" in raw:
        kind = "an Excel workbook or another zip file" if raw.startswith(b"PK\x03\x04") else \
            "a binary file, or text in UTF-16 without a byte-order mark"
        raise DataError(f"{name} contains NUL bytes: it looks like {kind}, not a text table. Save it as "
                        "'CSV UTF-8' (Excel: File > Save As > CSV UTF-8), or as JSON Lines, and point "
                        f"{DATA_ENV} at that file.")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        bad = err
    line = raw[:bad.start].count(b"\n") + 1
    where = f"byte {raw[bad.start:bad.start + 1]!r} on line {line}"
    fix = ("Re-save it as UTF-8: Excel: File > Save As > 'CSV UTF-8'; a text editor: Save with encoding "
           "UTF-8; pandas: pd.read_csv(path, encoding='<its encoding>').to_csv(new_path, index=False).")
    loose = raw.decode("utf-8", errors="replace")
    if any(ord(c) > 127 and c != "\ufffd" for c in loose):   # real UTF-8 characters as well as bad bytes
        raise DataError(f"{name} is mostly UTF-8 but has bytes that are not ({where}): part of it was saved "
                        f"in another encoding. {fix}")
    try:
        text = raw.decode(FALLBACK_ENCODING)
    except UnicodeDecodeError:
        raise DataError(f"{name} is not UTF-8 ({where}), nor Windows-1252. {fix}") from None
    shown = "".join(sorted({c for c in text if ord(c) > 127}))[:12]
    return text, (f"{name} is not UTF-8 (first at {where}); read it as Windows-1252 ({FALLBACK_ENCODING}), "
                  f"the usual encoding of Excel's CSV files. Its non-ASCII characters read as {shown!r}: if "
                  "they look wrong, re-save the file as UTF-8")


def _parse_jsonl(text: str, name: str):
    import json

    import pandas as pd

    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{name} could not be parsed as JSONL: line {number} is not valid JSON ({err.msg}: "
                            f"{line[:80]!r}). Each line must be one JSON object, e.g. "
                            '{"text": "...", "label": 1}.') from None
        if not isinstance(row, dict):
            raise DataError(f"{name}: line {number} of a JSONL file must be a JSON object "
                            f'({{"column": value, ...}}), not {type(row).__name__}.')
        rows.append(row)
    return pd.DataFrame(rows)


def _parse_json(text: str, name: str):
    import io
    import json

    import pandas as pd

    try:
        content = json.loads(text)
    except json.JSONDecodeError as err:
        hint = " (one object per line: name the file .jsonl)" if err.msg == "Extra data" else ""
        raise DataError(f"{name} could not be parsed as JSON: {err.msg} at line {err.lineno}{hint}. "
                        "Save it as a list of records, [{\"text\": ..., \"label\": ...}, ...].") from None
    if isinstance(content, dict) and len(content) == 1 and isinstance(next(iter(content.values())), list):
        content = next(iter(content.values()))          # {"data": [...]}: the rows under one key
    if isinstance(content, list):
        if content and not all(isinstance(row, dict) for row in content):
            raise DataError(f"{name}: a JSON file must hold a list of records (objects with the column "
                            "names as keys), e.g. [{\"text\": \"...\", \"label\": 1}].")
        return pd.DataFrame(content)
    try:
        return pd.read_json(io.StringIO(text))           # the other orients pandas writes
    except ValueError as err:
        raise DataError(f"{name}: could not read a table from this JSON ({err}). Save it as a list of "
                        "records, [{\"text\": ..., \"label\": ...}, ...].") from None


def _parse_csv(text: str, name: str, sep: str):
    """A CSV/TSV table, and a note when its header shows another delimiter (';' from European Excel)."""
    import io

    import pandas as pd

    note = None
    header = text.lstrip().split("\n", 1)[0]
    if sep not in header:
        for other, label in ((",", "commas"), (";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if other != sep and other in header:
                expected = "commas" if sep == "," else "tabs"
                note = f"{name} separates its columns with {label}, not {expected}: read it so"
                sep = other
                break
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep)
    except pd.errors.ParserError as err:
        raise DataError(f"{name} could not be parsed as {'TSV' if sep == chr(9) else 'CSV'}: {err}. A text "
                        "with commas or line breaks must be in double quotes; check that line "
                        "(pandas writes valid CSV: df.to_csv(path, index=False)).") from None
    return frame, note


def read_table(path) -> "pd.DataFrame":  # noqa: F821
    """Read a CSV, TSV, JSON (records) or JSONL file into a DataFrame, with clear errors.

    What reading had to decide (an encoding other than UTF-8, another delimiter) is kept in
    `frame.attrs["notes"]`; `clean_table` adds it to its report.
    """
    given = path
    path = locate(path)
    if not path.exists():
        raise _not_found(given)
    if path.is_dir():
        raise DataError(f"{path} is a folder; {DATA_ENV} must name one file ({', '.join(READERS)}).")
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise DataError(f"{path.name}: unsupported file type {suffix or '(none)'}; "
                        f"save it as one of {', '.join(READERS)} and point {DATA_ENV} at it.")
    raw = path.read_bytes()
    if not raw:
        raise DataError(f"{path} is empty (0 bytes). Point {DATA_ENV} at a file with a header and rows.")
    text, note = _decode(raw, path.name)
    notes = [note] if note else []
    if not text.strip():
        raise DataError(f"{path} holds only blank lines. Point {DATA_ENV} at a file with a header and rows.")
    if suffix in (".csv", ".tsv"):
        frame, note = _parse_csv(text, path.name, "\t" if suffix == ".tsv" else ",")
        notes += [note] if note else []
    elif suffix == ".jsonl":
        frame = _parse_jsonl(text, path.name)
    else:
        frame = _parse_json(text, path.name)
    if frame.empty:
        header = f" ({', '.join(map(str, frame.columns))})" if len(frame.columns) else ""
        raise DataError(f"{path.name} has a header{header} but no rows. Add rows, or point {DATA_ENV} "
                        "at another file.")
    frame.attrs["notes"] = notes
    return frame


def require_columns(frame, columns, source: str, env: dict | None = None) -> None:
    """Raise a DataError naming the missing columns, the nearest existing ones and how to name yours.

    `env` maps a column to the environment variable that names it (e.g. {"text": "NB_TEXT_COLUMN"}).
    """
    missing = [c for c in dict.fromkeys(columns) if c is not None and c not in frame.columns]
    if not missing:
        return
    env = env or {}
    have = [str(c) for c in frame.columns]
    free = [c for c in have if c not in columns]            # columns another wanted name has not claimed
    hints, fixes = [], []
    for column in missing:
        near = difflib.get_close_matches(column, free, n=1, cutoff=0.5)
        hints.append(f"{column!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        if column in env and os.environ.get(env[column], "").strip() == column:
            hints[-1] += f" (named by {env[column]})"
        if column in env:
            fixes.append(f"{env[column]}={near[0] if near else '<your column>'}")
    how = (f"Set {' and '.join(fixes)}" if fixes
           else f"Name yours with {TEXT_COLUMN_ENV} / {LABEL_COLUMN_ENV} (or the notebook's own variables)")
    headerless = any(len(name) > 60 or name.replace(".", "", 1).lstrip("-").isdigit() for name in have)
    header_hint = (" The first line looks like data, not column names: add a header line."
                   if headerless else "")
    raise DataError(
        f"{source}: missing column(s) {', '.join(hints)}. The file has: {', '.join(have)}.{header_hint} "
        f"{how}, or rename the columns in the file."
    )


def _match_columns(frame, wanted, report):
    """Columns whose names differ from the wanted ones only in case or surrounding spaces."""
    renames = {}
    for column in wanted:
        if column is None or column in frame.columns:
            continue
        same = [c for c in frame.columns if str(c).strip().lower() == column.strip().lower()]
        if len(same) == 1:
            renames[same[0]] = column
            report.note(f"column {str(same[0])!r} used as {column!r} (the names differ only in case or spaces)")
    return frame.rename(columns=renames) if renames else frame


def _count(n: int, noun: str) -> str:
    """'1 text', '3 texts'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _py(value):
    """A numpy scalar as the Python value it holds (for messages: 1, not np.int64(1))."""
    return value.item() if hasattr(value, "item") else value


def _is_whole(value) -> bool:
    return float(value).is_integer()


def _to_int(value) -> int:
    """A whole-number label (1, 1.0, "1", " 1.0 ", True) as an int."""
    import numbers

    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Number):
        return int(float(value))
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return int(float(text))


def _label_kind_of(value) -> str:
    """'int', 'frac' or 'text' for one label value (bools count as whole numbers)."""
    import numbers

    if isinstance(value, numbers.Number):
        return "int" if _is_whole(value) else "frac"
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return "text"
    if number != number or number in (float("inf"), float("-inf")):
        return "text"
    return "int" if number.is_integer() else "frac"


def _unify_labels(labels, column: str, source: str, kind, report):
    """One type for every label; convert when unambiguous (and say so), refuse when not."""
    import pandas as pd

    def example(mask):
        return _py(labels[mask].iloc[0])

    if kind is None:   # the label column may hold free text (e.g. an answer): only numbers are unified
        if pd.api.types.is_float_dtype(labels):    # e.g. whole numbers with blanks: pandas reads 1 as 1.0
            if (labels == labels.round()).all():
                return labels.astype(int)
            raise DataError(
                f"{source}: labels in {column!r} are fractional numbers (e.g. {example(labels != labels.round())}). "
                f"A classifier needs class names or whole numbers; is this the right column? Set "
                f"{LABEL_COLUMN_ENV} to the column that holds the classes.")
        if labels.map(type).nunique() > 1:  # e.g. 1 and "1" mixed: make them one type
            report.note(f"labels of mixed types in {column!r} were all read as text")
            return labels.astype(str)
        return labels

    kinds = labels.map(_label_kind_of)
    found = ", ".join(f"{k}: {n}" for k, n in kinds.value_counts().items())
    if (kinds == "frac").any() and not (kinds == "text").any():
        raise DataError(
            f"{source}: labels in {column!r} are fractional numbers (e.g. {example(kinds == 'frac')!r}), "
            f"but a classifier needs {'two classes (e.g. 0/1)' if kind == 'binary' else 'classes'}. Is it a "
            f"score or a probability? Turn it into classes in the file (e.g. 1 where it is above 0.5), or set "
            f"{LABEL_COLUMN_ENV} to the column that holds the classes.")
    if (kinds == "int").all():
        # 1.0 -> 1 goes without a note (a CSV column of whole numbers with blanks is read as floats);
        # "1" or True -> 1 is noted: as text, "1" and 1 would have been two different classes
        changed = labels.map(lambda v: isinstance(v, (str, bool)))
        if changed.any():
            report.note(f"{_count(int(changed.sum()), 'label')} in {column!r} written as text or true/false "
                        f"(e.g. {example(changed)!r}) read as whole numbers")
        return labels.map(_to_int).astype(int)
    as_text = labels.map(lambda v: str(_to_int(v)) if _label_kind_of(v) == "int" else str(v).strip())
    if (kinds != "text").any():
        numbers = (kinds != "text") & ~labels.map(lambda v: isinstance(v, str))
        shown = numbers if numbers.any() else kinds != "text"
        report.note(f"labels in {column!r} mix names and numbers ({found}); all were read as text, "
                    f"e.g. {example(shown)!r} as {as_text[shown].iloc[0]!r}")
    spaced = labels.map(lambda v: isinstance(v, str) and v != v.strip())
    if spaced.any():
        report.note(f"{_count(int(spaced.sum()), 'label')} in {column!r} had spaces around them, removed "
                    f"(e.g. {example(spaced)!r})")
    return as_text


def _check_classes(frame, column: str, source: str, kind: str, report) -> None:
    counts = [(_py(name), int(n)) for name, n in frame[column].value_counts().items()]   # largest first
    shown = ", ".join(f"{name!r}: {n}" for name, n in counts[:8]) + (", ..." if len(counts) > 8 else "")
    fix_column = f"set {LABEL_COLUMN_ENV} to the column that holds the classes"
    if len(counts) == 1:
        raise DataError(f"{source}: every row has the label {counts[0][0]!r} in {column!r}. A classifier needs "
                        f"examples of at least two classes: use a file with both, or {fix_column}.")
    if kind == "binary":
        if len(counts) != 2:
            rare = [repr(name) for name, n in counts if n <= max(2, 0.01 * len(frame))]
            typo = (f" The rare ones ({', '.join(rare)}) look like typos: fix or remove those rows."
                    if rare and len(counts) - len(rare) == 2 else "")
            raise DataError(f"{source}: this notebook trains a two-class model, but {column!r} has {len(counts)} "
                            f"distinct labels ({shown}).{typo} Otherwise {fix_column} (two values, e.g. 0/1).")
        (smallest, n_smallest) = counts[-1]
        if n_smallest < 2:
            raise DataError(f"{source}: label {smallest!r} has a single row (of {len(frame)}). A two-class "
                            "model needs at least 2 rows of each label, one to train on and one to test, and "
                            "far more to learn it: add examples of that label.")
        if n_smallest < 10:
            report.note(f"label {smallest!r} has only {_count(n_smallest, 'row')} of {len(frame)}: too few to learn "
                        "it or to measure it; expect results near the majority baseline")
        names = sorted(name for name, _ in counts)
        if names != [0, 1]:
            report.note(f"labels {names[0]!r} / {names[1]!r} are mapped in sorted order: "
                        f"{names[0]!r} -> 0, {names[1]!r} -> 1")


def clean_table(frame, text_column: str, label_column: str | None, source: str,
                max_chars: int | None = MAX_CHARS, drop_duplicates: bool = True, *,
                extra_text_columns=(), label_kind: str | None = None, column_env: dict | None = None):
    """Check and clean a text(/label) table; return (clean frame, Report).

    - Columns: missing ones raise a DataError with the nearest names and the variable that names
      them; a name that differs only in case or spaces is used (noted). `extra_text_columns` are
      further text columns (sentence pairs); `column_env` names their variables.
    - Texts: non-text values are read as text (noted; a column of numbers only is refused); rows
      with any text column empty, blank or missing are dropped with a count; texts longer than
      `max_chars` are cut (noted, with the rows).
    - Labels: rows without one are dropped; unhashable values (lists, objects) are refused; types
      are unified (`_unify_labels`). `label_kind` says what the labels are:
      None: anything, e.g. an answer text (notebook 03): only decimals like 1.0 become ints;
      "class": classes (whole numbers or names; "1", 1.0 and 1 are one class; decimals like 0.37
      are refused; almost one label per row is refused as a text column);
      "binary": exactly two classes, each with at least 2 rows (fewer than 10 is noted); text
      labels are noted with the order they map to 0/1.
    - Duplicates: exact duplicate rows (all text columns and the label) are dropped with a count.
      For class labels, the same text(s) with *different* labels are all dropped: no label can be
      trusted for them, and copies could sit in train and test at once.
    Raises DataError when no usable row is left, naming the reason that removed most rows.
    """
    if label_kind not in LABEL_KINDS:
        raise ValueError(f"label_kind must be one of {LABEL_KINDS}")
    texts = [text_column] + [c for c in extra_text_columns if c]
    env = {text_column: TEXT_COLUMN_ENV, label_column: LABEL_COLUMN_ENV, **(column_env or {})}
    report = Report(source=source, rows_in=len(frame))
    report.notes += list(frame.attrs.get("notes", []))
    if label_column is not None and label_column in texts:
        raise DataError(f"{source}: {label_column!r} is named as both a text and the label column. Set "
                        f"{TEXT_COLUMN_ENV} and {LABEL_COLUMN_ENV} to two different columns.")
    columns = texts + ([label_column] if label_column else [])
    frame = _match_columns(frame, columns, report)
    require_columns(frame, columns, source, env)
    frame = frame[columns].copy()
    reasons = {}                                               # reason -> the column it is about

    for column in texts:
        values = frame[column].astype(object)
        not_text = values.notna() & ~values.map(lambda v: isinstance(v, str))
        if not_text.any():
            if not_text.sum() == values.notna().sum():
                raise DataError(f"{source}: {column!r} holds no text, only values like {values[not_text].iloc[0]!r}: "
                                f"is it the right column? Set {env.get(column, TEXT_COLUMN_ENV)} to the column "
                                "that holds the texts.")
            report.note(f"{_count(int(not_text.sum()), 'non-text value')} in {column!r} "
                        f"(e.g. {values[not_text].iloc[0]!r}) read as text")
            values = values.map(lambda v: str(v) if v is not None and v == v and not isinstance(v, str) else v)
        frame[column] = values
        empty = values.isna() | (values.astype(str).str.strip() == "")
        reason = f"empty or missing {column!r}"
        reasons[reason] = column
        report.drop(reason, empty.sum())
        frame = frame[~empty]

    if label_column:
        labels = frame[label_column].astype(object)
        unhashable = labels.map(lambda v: isinstance(v, (list, dict, set, tuple)))
        if unhashable.any():
            raise DataError(f"{source}: labels in {label_column!r} are {type(labels[unhashable].iloc[0]).__name__}s "
                            f"(e.g. {labels[unhashable].iloc[0]!r}). Each row needs one label, a name or a whole "
                            f"number: flatten that column in the file, or set {LABEL_COLUMN_ENV} to another.")
        missing = labels.isna() | (labels.astype(str).str.strip() == "")
        reason = f"empty or missing {label_column!r}"
        reasons[reason] = label_column
        report.drop(reason, missing.sum())
        frame = frame[~missing]
        if not frame.empty:
            frame[label_column] = _unify_labels(frame[label_column].astype(object) if label_kind else
                                                frame[label_column], label_column, source, label_kind, report)
        if label_kind == "class" and len(frame) >= 20 and frame[label_column].nunique() > 0.5 * len(frame):
            raise DataError(f"{source}: {label_column!r} has {frame[label_column].nunique()} distinct labels in "
                            f"{len(frame)} rows, almost one per row: it looks like a text or id column, not a "
                            f"class. Set {LABEL_COLUMN_ENV} to the column that holds the classes (and "
                            f"{TEXT_COLUMN_ENV} to the text).")

    if drop_duplicates and not frame.empty:
        dupes = frame.duplicated()
        report.drop("exact duplicate rows", dupes.sum())
        frame = frame[~dupes]
        if label_column and label_kind:
            conflict = frame.groupby(texts, sort=False)[label_column].transform("nunique") > 1
            if conflict.sum() > 0.5 * len(frame):
                raise DataError(f"{source}: {int(conflict.sum())} of {len(frame)} rows share their text with rows of "
                                f"another label: {text_column!r} looks like a category, not a text. Set "
                                f"{env.get(text_column, TEXT_COLUMN_ENV)} to the column that holds the texts.")
            if conflict.any():
                first = frame[conflict].iloc[0]
                labels_of_first = frame[(frame[texts] == first[texts]).all(axis=1)][label_column].tolist()
                what = "text" if len(texts) == 1 else "pair"
                report.drop(f"same {what} with conflicting labels (every copy dropped)", conflict.sum())
                report.note(f"e.g. {str(first[text_column])[:60]!r}... labelled {labels_of_first}")
                frame = frame[~conflict]

    if max_chars and not frame.empty:
        for column in texts:
            long = frame[column].str.len() > max_chars
            if long.any():
                rows = [int(i) + 1 for i in frame.index[long][:5]]   # 1 = the first row after the header
                report.note(f"{_count(int(long.sum()), 'text')} in {column!r} longer than {max_chars:,} characters "
                            f"cut to {max_chars:,}, to bound memory and time; rows {rows} of the file: if one "
                            "holds several rows' worth of text, a quote before it is not closed")
                frame.loc[long, column] = frame.loc[long, column].str.slice(0, max_chars)

    if frame.empty:
        main = max(report.dropped, key=report.dropped.get) if report.dropped else None
        column = reasons.get(main)
        fix = (f" Is {column!r} the right column? Set {env.get(column, 'the notebook variable')} to name "
               "another, or fill in its values." if column else "")
        raise DataError(f"{source}: no usable rows are left after cleaning: {report.rows_in} read, "
                        + "; ".join(f"{n} dropped for {reason}" for reason, n in report.dropped.items())
                        + f".{fix}")
    if label_column and label_kind:
        _check_classes(frame, label_column, source, label_kind, report)
    report.rows_out = len(frame)
    return frame.reset_index(drop=True), report


def require_rows(frame, minimum: int, source: str, why: str, what: str = "usable rows after cleaning") -> None:
    """Raise a DataError when `frame` has fewer than `minimum` rows (`what` says which rows they are)."""
    if len(frame) < minimum:
        raise DataError(f"{source}: {len(frame)} {what}; this notebook needs at least {minimum} ({why}). "
                        f"Use a larger file, or unset {DATA_ENV} to use the sample.")


def move_unseen_labels(train, evals, label_column: str | None):
    """Move evaluation rows whose label never occurs in `train` into `train`; return (train, evals, notes).

    A model cannot predict a class it never trained on; such rows would only measure that. They are
    few (a class of one or two rows the shuffle sent to evaluation), and the note says how many.
    """
    import pandas as pd

    evals = list(evals)
    if not label_column:
        return train, evals, []
    notes, moved = [], []
    for i, frame in enumerate(evals):
        unseen = ~frame[label_column].isin(set(train[label_column]))
        if unseen.any():
            moved.append(frame[unseen])
            evals[i] = frame[~unseen].reset_index(drop=True)
    if moved:
        rows = pd.concat(moved)
        names = sorted(map(str, rows[label_column].unique()))
        notes.append(f"{_count(len(rows), 'evaluation row')} of {_count(len(names), 'label')} never seen in training "
                     f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}) moved to train: "
                     "a model cannot predict a label it never trained on")
        train = pd.concat([train, rows]).reset_index(drop=True)
    return train, evals, notes


def split_three(frame, label_column: str | None, fractions=(0.7, 0.1, 0.2), seed: int = 0, source: str = "data"):
    """Shuffle and split into train/validation/test, stratified by label where possible.

    Classes with fewer than 3 rows cannot appear in every split; they go to train only and the
    returned note says how many (the split stays stratified for the rest). No evaluation split ever
    holds a label that train lacks (`move_unseen_labels`). Too few rows raise a DataError.
    """
    import pandas as pd
    from sklearn.model_selection import train_test_split

    if abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"split fractions {fractions} must add up to 1")
    notes = []
    rare = pd.Series(False, index=frame.index)
    if label_column:
        counts = frame[label_column].value_counts()
        rare_labels = counts[counts < 3].index
        rare = frame[label_column].isin(rare_labels)
        if rare.any():
            notes.append(f"{len(rare_labels)} classes with fewer than 3 rows ({int(rare.sum())} rows) "
                         "kept in train only: they cannot be stratified across three splits")
    common = frame[~rare]
    try:
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
    except ValueError as err:                   # too few rows for the fractions, or for the classes
        per_class = (f" in {frame[label_column].nunique()} classes ({int(rare.sum())} rows of classes with fewer "
                     "than 3 rows stay in train)" if label_column else "")
        raise DataError(f"{source}: cannot split {len(frame)} rows{per_class} into train, validation and test "
                        f"({', '.join(f'{f:.0%}' for f in fractions)}): {str(err).rstrip('.')}. Use a file with "
                        f"more rows{' per class, or fewer classes' if label_column else ''}.") from None
    test = pd.concat([test, rest[lone]])
    if label_column and rare.any():
        train = pd.concat([train, frame[rare]])
    train, (val, test), moved = move_unseen_labels(train, [val, test], label_column)
    notes += moved
    train = train.sample(frac=1.0, random_state=seed)
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True), notes


def _looks_like_path(name: str) -> bool:
    """True for 'data/x.csv', '/tmp/x', './x', '~/x', 'C:\\x': hub ids are 'name' or 'owner/name'."""
    name = str(name).strip()
    return (name.startswith(("/", "~", ".", "\\")) or "\\" in name or ":" in name or name.count("/") > 1
            or Path(name).suffix.lower() in READERS)


def load_hub(dataset_id: str, **kwargs):
    """`datasets.load_dataset` with a clear message when the hub cannot be reached.

    A name that looks like a file path (a missing local file, not a dataset) is reported as such.
    """
    if _looks_like_path(dataset_id):
        raise _not_found(dataset_id)
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
