"""Bad input, notebook by notebook: a message that names the problem and the fix, or rows cleaned and reported.

Every case is a file built in tmp_path from the notebook's own sample in data/ (so the rest of the file is
valid), plus the environment a user would set. Each runs at two levels:

1. unit: the helpers.data (and helpers.sft) calls each notebook's Data cells make, in the same order;
2. notebook: the notebook itself, through its user-file parameter. One kernel per notebook runs the setup
   cells once; then, for every case, it sets NB_DATA (and NB_TEXT_COLUMN / NB_LABEL_COLUMN /
   NB_TEXT2_COLUMN) inside the kernel and re-runs the Configuration and Data cells, capturing the error
   (name and message) or the printed report.

For every case: the only exception that may escape is a DataError / FriendlyError (never a library's); an
error's message must name the problem and the fix; a handled case must say what it did (rows dropped
with a count, or a note); and no evaluation split may hold a label the training split lacks.
"""
from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from helpers import data, sft

ROOT = Path(__file__).resolve().parent.parent
USER_VARS = (data.DATA_ENV, data.TEXT_COLUMN_ENV, data.LABEL_COLUMN_ENV, data.TEXT2_COLUMN_ENV)
FRIENDLY = ("DataError", "FriendlyError")


# ----------------------------------------------------------------------------- the notebooks
@dataclass(frozen=True)
class Spec:
    key: str
    notebook: str
    sample: str
    text: str                       # default of NB_TEXT_COLUMN
    label: str | None               # default of NB_LABEL_COLUMN (03: the answer)
    labels: str | None              # "class", "binary", "answer" (03) or None (02)
    text2: str | None = None        # default of NB_TEXT2_COLUMN (05)
    misnamed: tuple = ()            # (column, near name, the variable that names it)
    evals: tuple = ("val_df", "test_df")     # the notebook's evaluation frames
    max_chars: int = data.MAX_CHARS

    @property
    def classified(self) -> bool:
        return self.labels in ("class", "binary")


NOTEBOOKS = {
    "01": Spec("01", "01_complaint_classification", "complaints.csv", "Consumer complaint narrative", "Sub-issue",
               "class", misnamed=("Sub-issue", "Sub issue", "NB_LABEL_COLUMN")),
    "02": Spec("02", "02_qlora_gpt_neox_20b", "quotes.csv", "quote", None, None,
               misnamed=("quote", "quotes", "NB_TEXT_COLUMN"), evals=("eval_df",), max_chars=2_000),
    "03": Spec("03", "03_accounting_sft", "accounting.csv", "input", "output", "answer",
               misnamed=("output", "outputs", "NB_LABEL_COLUMN")),
    "04": Spec("04", "04_gradient_accumulation", "movie_reviews.csv", "text", "label", "binary",
               misnamed=("text", "review_text", "NB_TEXT_COLUMN")),
    "05": Spec("05", "05_methods_compared", "paraphrases.csv", "sentence1", "label", "binary", text2="sentence2",
               misnamed=("sentence2", "sentence_2", "NB_TEXT2_COLUMN"), evals=("test_df",)),
}


@dataclass
class Outcome:
    error: str | None = None        # the exception's type name
    message: str = ""               # its message, or everything the Data cells printed
    rows: int | None = None         # training rows
    train_labels: set | None = None
    eval_labels: set | None = None
    texts: list = field(default_factory=list)   # a few training texts (unit level)


# ----------------------------------------------------------------------------- unit level: the data cells' calls
def load_01(path, spec):
    text, label = data.column_names(spec.text, spec.label)
    source = str(path)
    table = data.read_table(path)
    table, report = data.clean_table(table, text, label, source=source, max_chars=20_000, label_kind="class")
    counts = table[label].value_counts()
    small = counts[counts < 7].index
    splittable = table[~table[label].isin(small)]
    data.require_rows(splittable, 10, source, "to split them three ways", what="rows in sub-issues of 7+ rows")
    train, val, test, notes = data.split_three(splittable, label, seed=42, source=source)
    in_train_only = table[table[label].isin(small)]
    train = pd.concat([train, in_train_only])
    notes.insert(0, f"{len(small)} classes with fewer than 7 rows ({len(in_train_only)} rows) kept in train only")
    return report, notes, train, [val, test], text, label


def load_02(path, spec):
    text, _ = data.column_names(spec.text, None)
    table, report = data.clean_table(data.read_table(path), text, None, source=str(path), max_chars=2_000)
    data.require_rows(table, 168, str(path), "160 to train on, a few to evaluate")
    shuffled = table.sample(frac=1.0, random_state=0).reset_index(drop=True)
    return report, [], shuffled[:160], [shuffled[160:224]], text, None


def load_03(path, spec):
    question, answer = data.column_names(spec.text, spec.label)
    table, report = sft.load_rows(str(path), question, answer)
    data.require_rows(table, 20, str(path), "to split 80 / 10 / 10 with a few rows in each part")
    train, val, test = sft.split(table)
    return report, [], train, [val, test], "input", None


def load_04(path, spec):
    text, label = data.column_names(spec.text, spec.label)
    table, report = data.clean_table(data.read_table(path), text, label, source=str(path), label_kind="binary")
    data.require_rows(table, 50, str(path), "16 rows for the gradient checks, and a few batches to train on")
    shuffled = table.sample(frac=1.0, random_state=1).reset_index(drop=True)
    n_train, n_val = int(0.7 * len(shuffled)), int(0.1 * len(shuffled))
    train, val, test = shuffled[:n_train], shuffled[n_train:n_train + n_val], shuffled[n_train + n_val:]
    train, evals, notes = data.move_unseen_labels(train, [val, test], label)
    return report, notes, train, evals, text, label


def load_05(path, spec):
    from sklearn.model_selection import train_test_split

    text, label = data.column_names(spec.text, spec.label)
    text2 = os.environ.get(data.TEXT2_COLUMN_ENV, spec.text2).strip() or None
    table, report = data.clean_table(data.read_table(path), text, label, source=str(path), extra_text_columns=[text2],
                                     label_kind="binary", column_env={text2: data.TEXT2_COLUMN_ENV})
    data.require_rows(table, 20, str(path), "16 pairs to train on, 4 to test")
    train, test = train_test_split(table, test_size=0.2, random_state=42, stratify=table[label])
    return report, [], train, [test], text, label


LOADERS = {"01": load_01, "02": load_02, "03": load_03, "04": load_04, "05": load_05}


def run_unit(spec, path, env, monkeypatch) -> Outcome:
    for name in USER_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        report, notes, train, evals, text, label = LOADERS[spec.key](path, spec)
    except Exception as err:  # noqa: BLE001 - the point is to see which type escapes
        return Outcome(error=type(err).__name__, message=str(err))
    printed = "\n".join([str(report)] + [f"note: {n}" for n in notes])
    outcome = Outcome(message=printed, rows=len(train), texts=train[text].astype(str).tolist())
    if label:
        outcome.train_labels = set(map(str, train[label]))
        outcome.eval_labels = set().union(*(set(map(str, f[label])) for f in evals))
    return outcome


# ----------------------------------------------------------------------------- the cases
def sample(spec) -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / spec.sample)


def write_csv(frame, tmp, name="mine.csv", **kwargs) -> Path:
    path = tmp / name
    frame.to_csv(path, index=False, **kwargs)
    return path


def write_jsonl(frame, tmp, name="mine.jsonl") -> Path:
    path = tmp / name
    with path.open("w", encoding="utf-8") as handle:
        for row in frame.to_dict("records"):
            row = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}   # NaN -> null
            handle.write(json.dumps(row) + "\n")
    return path


def filled(frame, column):
    """Row positions whose `column` holds a text no other row has (the sample's blank rows and
    duplicates left alone, so a case changes exactly the rows it means to)."""
    counts = frame[column].value_counts()
    return [i for i, v in enumerate(frame[column]) if isinstance(v, str) and v.strip() and counts[v] == 1]


def dropped(outcome, reason: str) -> int:
    """How many rows the printed report says were dropped for `reason` (0 when it says nothing)."""
    match = re.search(r"dropped (\d+) rows: " + re.escape(reason), outcome.message)
    return int(match.group(1)) if match else 0


@dataclass
class Case:
    file: Path | None
    env: dict = field(default_factory=dict)
    error: list = field(default_factory=list)      # patterns the error message must all match
    report: list = field(default_factory=list)     # patterns the printed report must all match
    check: Callable | None = None                  # more checks on a handled case's Outcome


@dataclass(frozen=True)
class CaseType:
    name: str
    requirement: str                               # the issue's case this one covers
    build: Callable
    applies: Callable = lambda spec: True
    notebook_only: bool = False                    # relies on logic that lives in the notebook


CASES: list[CaseType] = []


def case(requirement, applies=lambda spec: True, notebook_only=False):
    def register(build):
        CASES.append(CaseType(build.__name__, requirement, build, applies, notebook_only))
        return build
    return register


@case("missing file")
def missing_file(spec, tmp):
    path = tmp / "my_data.csv"
    return Case(path, error=["Data file not found", re.escape(str(path)), "Set NB_DATA to the file's full path"])


@case("missing file")
def unsupported_file_type(spec, tmp):
    path = tmp / "my_data.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    return Case(path, error=[r"unsupported file type \.xlsx", "save it as one of .csv", "NB_DATA"])


@case("empty file")
def empty_file(spec, tmp):
    path = tmp / "empty.csv"
    path.write_bytes(b"")
    return Case(path, error=["is empty", "Point NB_DATA at a file with a header and rows"])


@case("empty file")
def header_only(spec, tmp):
    path = tmp / "header.csv"
    path.write_text(",".join(sample(spec).columns) + "\n")
    return Case(path, error=["has a header .* but no rows", "NB_DATA"])


@case("missing or misnamed columns")
def misnamed_column(spec, tmp):
    column, near, variable = spec.misnamed
    frame = sample(spec).rename(columns={column: near})
    return Case(write_csv(frame, tmp), error=[f"missing column.*'{column}' \\(did you mean '{near}'\\?\\)",
                                              f"Set {variable}={near}"])


@case("missing or misnamed columns")
def column_variable_names_no_column(spec, tmp):
    return Case(write_csv(sample(spec), tmp), env={"NB_TEXT_COLUMN": "body"},
                error=["missing column.*'body' \\(named by NB_TEXT_COLUMN\\)", "The file has: ", "NB_TEXT_COLUMN"])


@case("missing or misnamed columns", applies=lambda spec: spec.key == "01", notebook_only=True)
def narrative_under_another_name(spec, tmp):
    """Notebook 01 looks for a narrative-like column when the configured one is missing, and says so."""
    frame = sample(spec).rename(columns={spec.text: "narrative"})
    return Case(write_csv(frame, tmp), report=["column 'Consumer complaint narrative' not found; using 'narrative'"])


@case("missing or misnamed columns")
def column_names_differ_in_case(spec, tmp):
    upper = spec.text.upper()     # notebook 01's own column search finds it first and says so
    frame = sample(spec).rename(columns={spec.text: upper})
    return Case(write_csv(frame, tmp), report=[f"(column '{upper}' used as '{spec.text}'|using '{upper}')"])


@case("missing or misnamed columns", applies=lambda spec: spec.key != "03")
def text_column_holds_numbers(spec, tmp):
    frame = sample(spec).assign(likes=range(len(sample(spec))))
    return Case(write_csv(frame, tmp), env={"NB_TEXT_COLUMN": "likes"},
                error=["'likes' holds no text", "Set NB_TEXT_COLUMN to the column that holds the texts"])


@case("missing or misnamed columns", applies=lambda spec: spec.key == "01")
def text_and_label_swapped(spec, tmp):
    return Case(write_csv(sample(spec), tmp), env={"NB_TEXT_COLUMN": spec.label, "NB_LABEL_COLUMN": spec.text},
                error=["looks like a text or id column", "Set NB_LABEL_COLUMN"])


@case("missing or misnamed columns", applies=lambda spec: spec.classified)
def text_and_label_variables_name_one_column(spec, tmp):
    return Case(write_csv(sample(spec), tmp), env={"NB_TEXT_COLUMN": spec.label},
                error=["named as both a text and the label column", "NB_TEXT_COLUMN and NB_LABEL_COLUMN"])


@case("empty or NaN texts")
def empty_and_nan_texts(spec, tmp):
    frame = sample(spec)
    column = spec.text2 or spec.text
    for n, i in enumerate(filled(frame, column)[:30]):
        frame.loc[i, column] = ["", "   ", None, "NaN", "\t"][n % 5]
    return Case(write_csv(frame, tmp), report=[f"dropped \\d+ rows: empty or missing '{column}'"],
                check=lambda o: dropped(o, f"empty or missing '{column}'") >= 30)


@case("empty or NaN texts")
def every_text_empty(spec, tmp):
    frame = sample(spec).assign(**{spec.text: ""})
    return Case(write_csv(frame, tmp), error=["no usable rows", f"empty or missing '{spec.text}'",
                                              f"Is '{spec.text}' the right column\\? Set NB_TEXT_COLUMN"])


@case("rows without a label or answer", applies=lambda spec: spec.label is not None)
def missing_labels(spec, tmp):
    frame = sample(spec)
    rows = filled(frame, spec.text)
    frame.loc[rows[5:30], spec.label] = None
    frame.loc[rows[30:35], spec.label] = "  " if spec.labels in ("class", "answer") else None
    return Case(write_csv(frame, tmp), report=[f"dropped \\d+ rows: empty or missing '{spec.label}'"],
                check=lambda o: dropped(o, f"empty or missing '{spec.label}'") >= 30)


@case("rows without a label or answer", applies=lambda spec: spec.label is not None)
def every_label_missing(spec, tmp):
    frame = sample(spec).assign(**{spec.label: None})
    return Case(write_csv(frame, tmp), error=["no usable rows", f"empty or missing '{spec.label}'",
                                              f"Is '{spec.label}' the right column\\? Set NB_LABEL_COLUMN"])


@case("labels with a single example", applies=lambda spec: spec.labels == "class")
def class_with_a_single_example(spec, tmp):
    frame = sample(spec)
    frame.loc[filled(frame, spec.text)[3], spec.label] = "Seen once"

    def check(outcome):
        assert "Seen once" in outcome.train_labels and "Seen once" not in outcome.eval_labels
        return True
    return Case(write_csv(frame, tmp), report=["classes with fewer than 7 rows .* kept in train only"], check=check)


@case("labels with a single example", applies=lambda spec: spec.labels == "binary")
def third_label_seen_once(spec, tmp):
    frame = sample(spec)
    frame.loc[filled(frame, spec.text)[7], spec.label] = 2
    return Case(write_csv(frame, tmp), error=["two-class model, but 'label' has 3 distinct labels",
                                              r"rare ones \(2\) look like typos: fix or remove those rows"])


@case("labels with a single example", applies=lambda spec: spec.labels == "binary")
def second_label_seen_once(spec, tmp):
    frame = sample(spec).assign(label=0)
    frame.loc[filled(frame, spec.text)[7], "label"] = 1
    return Case(write_csv(frame, tmp), error=["label 1 has a single row", "add examples of that label"])


@case("labels at evaluation never seen in training", applies=lambda spec: spec.labels == "class")
def rare_classes(spec, tmp):
    frame = sample(spec)
    rows = filled(frame, spec.text)
    frame.loc[rows[10:12], spec.label] = "Two rows"
    frame.loc[rows[20:25], spec.label] = "Five rows"

    def check(outcome):
        assert {"Two rows", "Five rows"} <= outcome.train_labels
        assert not {"Two rows", "Five rows"} & outcome.eval_labels
        return True
    return Case(write_csv(frame, tmp), report=["classes with fewer than 7 rows"], check=check)


@case("labels at evaluation never seen in training", applies=lambda spec: spec.key == "04")
def label_only_where_the_shuffle_sends_evaluation(spec, tmp):
    """Notebook 04 cuts like the study (shuffle with seed 1, then 70/10/20, not stratified): three rows of
    label 1 placed where that shuffle puts validation and test would never be trained on."""
    frame = sample(spec).assign(label=0)
    order = pd.RangeIndex(len(frame)).to_series().sample(frac=1.0, random_state=1).index
    frame.loc[list(order[int(0.7 * len(frame)):][:3]), "label"] = 1

    def check(outcome):
        assert outcome.train_labels == {"0", "1"} and outcome.eval_labels == {"0"}
        return True
    return Case(write_csv(frame, tmp), report=["label 1 has only 3 rows", "3 evaluation rows of 1 label never seen "
                                               r"in training \(1\) moved to train"], check=check)


@case("labels at evaluation never seen in training", applies=lambda spec: spec.key == "05")
def label_with_two_rows(spec, tmp):
    frame = sample(spec).assign(label=0)
    frame.loc[filled(frame, spec.text)[3:5], "label"] = 1

    def check(outcome):
        assert outcome.train_labels == {"0", "1"}
        return True
    return Case(write_csv(frame, tmp), report=["label 1 has only 2 rows"], check=check)


ACCENTED = " Caf\u00e9 cr\u00e8me, na\u00efve \u2013 \u00a35."


def _with_accents(spec):
    frame = sample(spec)
    for i in filled(frame, spec.text)[:20]:
        frame.loc[i, spec.text] = frame.loc[i, spec.text] + ACCENTED
    return frame


@case("non-UTF-8 bytes")
def windows_1252_file(spec, tmp):
    def check(outcome):
        assert all(c in outcome.message for c in "\u00a3\u00e8\u00e9\u00ef\u2013"), "the note shows the accents"
        assert outcome.texts == [] or any(ACCENTED.strip() in t for t in outcome.texts), "accents decoded"
        return True
    return Case(write_csv(_with_accents(spec), tmp, encoding="cp1252"),
                report=["is not UTF-8 .* read it as Windows-1252", "re-save the file as UTF-8"], check=check)


@case("non-UTF-8 bytes")
def bytes_of_no_known_encoding(spec, tmp):
    path = write_csv(sample(spec), tmp)
    raw = path.read_bytes()
    cut = raw.index(b"\n", 2000)
    path.write_bytes(raw[:cut] + b" \x81\x8d\x9d" + raw[cut:])
    return Case(path, error=[r"is not UTF-8 \(byte b'\\x81' on line \d+\), nor Windows-1252",
                             "Re-save it as UTF-8"])


@case("non-UTF-8 bytes")
def utf8_with_a_latin1_patch(spec, tmp):
    path = write_csv(_with_accents(spec), tmp)
    raw = path.read_bytes()
    cut = raw.index(b"\n", 2000)
    path.write_bytes(raw[:cut] + b" caf\xe9" + raw[cut:])
    return Case(path, error=[r"mostly UTF-8 but has bytes that are not \(byte b'\\xe9' on line \d+\)",
                             "Re-save it as UTF-8"])


@case("non-UTF-8 bytes")
def utf8_with_excel_byte_order_mark(spec, tmp):
    def check(outcome):
        assert outcome.rows > 100
        return True
    return Case(write_csv(_with_accents(spec), tmp, encoding="utf-8-sig"), report=["rows read"], check=check)


@case("extremely long texts")
def extremely_long_text(spec, tmp):
    frame = sample(spec)
    row = filled(frame, spec.text)[4]
    frame.loc[row, spec.text] = (frame.loc[row, spec.text] + " ") * (200_000 // len(frame.loc[row, spec.text]))
    return Case(write_csv(frame, tmp), report=[f"1 text in '{spec.text}' longer than {spec.max_chars:,} characters "
                                               f"cut to {spec.max_chars:,}", f"rows \\[{row + 1}\\]"])


@case("duplicate rows")
def duplicate_rows(spec, tmp):
    frame = sample(spec)
    rows = filled(frame, spec.text)[:25]
    frame = pd.concat([frame, frame.iloc[rows]], ignore_index=True)
    return Case(write_csv(frame, tmp), report=["dropped \\d+ rows: exact duplicate rows"],
                check=lambda o: dropped(o, "exact duplicate rows") >= 25)


@case("duplicate rows", applies=lambda spec: spec.classified)
def same_text_with_two_labels(spec, tmp):
    frame = sample(spec)
    copies = frame.iloc[filled(frame, spec.text)[:10]].copy()
    labels = sorted(frame[spec.label].dropna().unique())
    copies[spec.label] = copies[spec.label].map(lambda v: labels[(labels.index(v) + 1) % len(labels)])
    frame = pd.concat([frame, copies], ignore_index=True)
    reason = f"same {'pair' if spec.text2 else 'text'} with conflicting labels (every copy dropped)"
    return Case(write_csv(frame, tmp), report=[re.escape(reason)], check=lambda o: dropped(o, reason) >= 20)


@case("labels of the wrong type", applies=lambda spec: spec.classified)
def labels_are_scores(spec, tmp):
    frame = sample(spec)
    frame[spec.label] = [round((i * 37 % 100) / 100 + 0.005, 3) for i in range(len(frame))]
    return Case(write_csv(frame, tmp), error=["are fractional numbers", "score or a probability",
                                              "set NB_LABEL_COLUMN to the column that holds the classes"])


@case("labels of the wrong type", applies=lambda spec: spec.labels == "class")
def labels_are_lists(spec, tmp):
    frame = sample(spec).astype(object)
    frame[spec.label] = [[v] for v in frame[spec.label]]
    return Case(write_jsonl(frame, tmp), error=["labels in 'Sub-issue' are lists", "Each row needs one label"])


@case("labels of the wrong type", applies=lambda spec: spec.labels == "class")
def labels_mix_names_and_numbers(spec, tmp):
    frame = sample(spec).astype(object)
    top = frame[spec.label].value_counts().index[0]
    frame.loc[frame[spec.label] == top, spec.label] = 7
    frame.loc[frame.index[frame[spec.label] == 7][::2], spec.label] = "7"

    def check(outcome):
        assert "7" in outcome.train_labels and "7" in outcome.eval_labels
        return True
    return Case(write_jsonl(frame, tmp), report=["mix names and numbers"], check=check)


@case("labels of the wrong type", applies=lambda spec: spec.labels == "binary")
def labels_written_as_decimals(spec, tmp):
    frame = sample(spec)
    frame["label"] = frame["label"].astype(float)
    return Case(write_csv(frame, tmp), report=["rows read"], check=lambda o: o.train_labels == {"0", "1"})


@case("labels of the wrong type", applies=lambda spec: spec.labels == "binary")
def labels_as_text_digits(spec, tmp):
    frame = sample(spec).astype(object)
    frame.loc[frame.index[::3], "label"] = frame.loc[frame.index[::3], "label"].astype(str)
    return Case(write_jsonl(frame, tmp), report=[r"labels in 'label' written as text or true/false \(e\.g\. '[01]'\) "
                                                 "read as whole numbers"], check=lambda o: o.train_labels == {"0", "1"})


@case("labels of the wrong type", applies=lambda spec: spec.labels == "binary")
def labels_as_true_false(spec, tmp):
    frame = sample(spec).astype(object)
    frame["label"] = frame["label"].astype(bool)
    return Case(write_jsonl(frame, tmp), report=["true/false"], check=lambda o: o.train_labels == {"0", "1"})


@case("labels of the wrong type", applies=lambda spec: spec.labels == "binary")
def labels_as_words(spec, tmp):
    frame = sample(spec)
    frame["label"] = frame["label"].map({0: "negative", 1: "positive"})
    return Case(write_csv(frame, tmp), report=["'negative' / 'positive' are mapped in sorted order"],
                check=lambda o: o.train_labels == {"negative", "positive"})


@case("labels of the wrong type", applies=lambda spec: spec.labels == "answer")
def answers_are_numbers(spec, tmp):
    frame = sample(spec).astype(object)
    frame.loc[list(range(0, 40)), "output"] = [1200 + i for i in range(40)]
    return Case(write_jsonl(frame, tmp), report=["rows read, 900 kept"])


@case("too few rows")
def too_few_rows(spec, tmp):
    frame = sample(spec).iloc[filled(sample(spec), spec.text)]
    if spec.labels == "binary":
        frame = pd.concat([frame[frame["label"] == 0][:3], frame[frame["label"] == 1][:3]])
    counted = r"(6 usable rows after cleaning|0 rows in sub-issues of 7\+ rows)"     # 01: every class is small
    return Case(write_csv(frame[:6], tmp), error=[counted + "; this notebook needs at least", "Use a larger file"])


@case("other delimiters")
def semicolon_separated(spec, tmp):
    return Case(write_csv(sample(spec), tmp, sep=";"), report=["separates its columns with semicolons"],
                check=lambda o: o.rows > 100)


# ----------------------------------------------------------------------------- checking an outcome
def verify(spec, kind: CaseType, built: Case, outcome: Outcome) -> list[str]:
    """What is wrong with an outcome (empty when it is right)."""
    problems = []
    if outcome.error and outcome.error not in FRIENDLY:
        return [f"{outcome.error} escaped (not a DataError): {outcome.message[:300]}"]
    if built.error:
        if not outcome.error:
            return [f"no error; printed: {outcome.message[:300]}"]
        problems += [f"message lacks /{p}/: {outcome.message}" for p in built.error
                     if not re.search(p, outcome.message, flags=re.S)]
        return problems
    if outcome.error:
        return [f"{outcome.error}: {outcome.message[:400]}"]
    problems += [f"report lacks /{p}/:\n{outcome.message}" for p in built.report
                 if not re.search(p, outcome.message, flags=re.S)]
    if outcome.eval_labels is not None and not outcome.eval_labels <= outcome.train_labels:
        problems.append(f"labels in evaluation never trained on: {outcome.eval_labels - outcome.train_labels}")
    if built.check:
        try:
            if not built.check(outcome):
                problems.append(f"check failed on:\n{outcome.message}")
        except AssertionError as err:
            problems.append(f"check failed: {err}\n{outcome.message}")
    return problems


def applicable(spec, level):
    return [c for c in CASES if c.applies(spec) and not (level == "unit" and c.notebook_only)]


TRIED = {"unit": Counter(), "notebook": Counter()}


# ----------------------------------------------------------------------------- 1. unit level
@pytest.mark.parametrize("key,kind", [(k, c) for k, s in NOTEBOOKS.items() for c in applicable(s, "unit")],
                         ids=lambda v: v if isinstance(v, str) else v.name)
def test_data_loading_of_each_notebook(key, kind, tmp_path, monkeypatch):
    spec = NOTEBOOKS[key]
    built = kind.build(spec, tmp_path)
    outcome = run_unit(spec, built.file, built.env, monkeypatch)
    TRIED["unit"][key] += 1
    problems = verify(spec, kind, built, outcome)
    assert not problems, f"{spec.notebook} / {kind.name}:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------- 2. notebook level
class Kernel:
    """One kernel for one notebook: setup cells once, then Configuration + Data cells per case.

    `start()` launches the kernel and sends it the setup cells without waiting, so that the next
    notebook's imports overlap the current notebook's cases; entering the context waits for them.
    """

    def __init__(self, spec, out_dir):
        import nbformat

        self.spec = spec
        self.nb = nbformat.read(ROOT / "notebooks" / f"{spec.notebook}.ipynb", as_version=4)
        starts = {}
        for i, cell in enumerate(self.nb.cells):
            for line in cell.source.splitlines() if cell.cell_type == "markdown" else []:
                if line.startswith("## "):
                    starts.setdefault(line[3:].strip(), i)
        code = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]
        self.setup = [i for i in code if i < starts["Configuration"]]
        self.body = [i for i in code if starts["Configuration"] < i < starts["Model and method"]]
        self.cells = {i: copy.deepcopy(self.nb.cells[i]) for i in self.setup + self.body}
        self.nb.cells.append(nbformat.v4.new_code_cell(""))          # where ad-hoc code runs
        self.scratch = len(self.nb.cells) - 1
        self.env = {k: v for k, v in os.environ.items() if k not in USER_VARS}
        self.env.update(NB_PROFILE="smoke", NB_OUTPUT_DIR=str(out_dir), MPLBACKEND="Agg", HF_HUB_OFFLINE="1",
                        HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        self.km = self.client = self._sender = None

    def start(self):
        from jupyter_client.manager import KernelManager

        if self.km is None:
            self.km = KernelManager(kernel_name="python3")
            self.km.start_kernel(env=self.env, cwd=str(ROOT / "notebooks"))
            self._sender = self.km.blocking_client()
            self._sender.start_channels()
            self._sender.execute("\n\n".join(self.cells[i].source for i in self.setup), store_history=False)
        return self

    def __enter__(self):
        from nbclient import NotebookClient

        self.start()
        self.client = NotebookClient(self.nb, km=self.km, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT / "notebooks")}})
        self._context = self.client.setup_kernel()
        self._context.__enter__()
        # queued behind the setup cells: fails (NameError) if they did
        self._run(self.scratch, "assert PROFILE == 'smoke' and data is not None")
        return self

    def shutdown(self):
        if self._sender is not None:
            self._sender.stop_channels()
        if self.km is not None and self.km.has_kernel:
            self.km.shutdown_kernel(now=True)
        self.km = self._sender = None

    def __exit__(self, *exc):
        try:
            self._context.__exit__(*exc)
        finally:
            self.shutdown()

    def _run(self, index, source=None) -> str:
        import nbformat

        cell = nbformat.v4.new_code_cell(source) if source is not None else copy.deepcopy(self.cells[index])
        self.client.execute_cell(cell, index)
        return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")

    def run_case(self, env) -> Outcome:
        from nbclient.exceptions import CellExecutionError

        self._run(self.scratch, f"import os\nfor _name in {USER_VARS!r}:\n    os.environ.pop(_name, None)\n"
                                f"os.environ.update({env!r})")
        printed = []
        try:
            for i in self.body:
                printed.append(self._run(i))
        except CellExecutionError as err:
            return Outcome(error=err.ename, message=err.evalue)
        label = {"class": "LABEL", "binary": "LABEL"}.get(self.spec.labels)
        probe = (f"import json as _json\n_evals = [{', '.join(self.spec.evals)}]\n"
                 f"_found = {{'rows': len(train_df)}}\n")
        if label:
            probe += (f"_found['train'] = sorted(map(str, set(train_df[{label}])))\n"
                      f"_found['eval'] = sorted(set().union(*(set(map(str, f[{label}])) for f in _evals)))\n")
        found = json.loads(self._run(self.scratch, probe + "print(_json.dumps(_found))").strip().splitlines()[-1])
        return Outcome(message="".join(printed), rows=found["rows"],
                       train_labels=set(found["train"]) if label else None,
                       eval_labels=set(found["eval"]) if label else None)


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """Kernels by notebook key, created on demand; each test starts the next notebook's in advance."""
    made = {}

    def get(key):
        if key not in made:
            made[key] = Kernel(NOTEBOOKS[key], tmp_path_factory.mktemp(f"figures-{key}"))
        return made[key]
    yield get
    for kernel in made.values():
        kernel.shutdown()


@pytest.mark.parametrize("key", list(NOTEBOOKS))
def test_each_notebook_through_its_user_file_parameter(key, tmp_path, kernels):
    spec = NOTEBOOKS[key]
    kinds = applicable(spec, "notebook")
    failures = []
    with kernels(key) as kernel:
        keys = list(NOTEBOOKS)
        if keys.index(key) + 1 < len(keys):
            kernels(keys[keys.index(key) + 1]).start()        # its imports overlap our cases
        for kind in kinds:
            folder = tmp_path / kind.name
            folder.mkdir()
            built = kind.build(spec, folder)
            outcome = kernel.run_case({data.DATA_ENV: str(built.file), **built.env})
            TRIED["notebook"][key] += 1
            failures += [f"{kind.name}: {p}" for p in verify(spec, kind, built, outcome)]
    print(f"\n{spec.notebook}: {len(kinds)} bad-input cases tried through {data.DATA_ENV}, {len(failures)} failed")
    assert not failures, f"{spec.notebook}:\n" + "\n\n".join(failures)


# ----------------------------------------------------------------------------- coverage and the count
REQUIRED = {
    "missing file": lambda spec: True, "empty file": lambda spec: True,
    "missing or misnamed columns": lambda spec: True, "empty or NaN texts": lambda spec: True,
    "labels with a single example": lambda spec: spec.classified,
    "labels at evaluation never seen in training": lambda spec: spec.classified,
    "non-UTF-8 bytes": lambda spec: True, "extremely long texts": lambda spec: True,
    "duplicate rows": lambda spec: True, "labels of the wrong type": lambda spec: spec.label is not None,
    "rows without a label or answer": lambda spec: spec.label is not None,   # 03: chat rows without an answer
}


def test_every_case_of_the_issue_is_covered_for_every_notebook():
    for spec in NOTEBOOKS.values():
        covered = {c.requirement for c in applicable(spec, "notebook")}
        for requirement, needed in REQUIRED.items():
            if needed(spec):
                assert requirement in covered, f"{spec.notebook}: no case for {requirement!r}"


def test_zz_how_many_cases_were_tried(capsys):
    lines = ["bad-input cases tried:"]
    for level, counts in TRIED.items():
        per = ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))
        lines.append(f"  {level:8s} {sum(counts.values()):4d}  ({per or 'none run'})")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
