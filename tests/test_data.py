"""Every bad input gets a message that names the problem and the fix, or is cleaned with a count."""
import pandas as pd
import pytest

from helpers import data
from helpers.data import DataError


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_reads_csv_jsonl_json_tsv(tmp_path):
    frames = [
        data.read_table(write(tmp_path, "a.csv", "text,label\nhi,1\n")),
        data.read_table(write(tmp_path, "a.jsonl", '{"text": "hi", "label": 1}\n')),
        data.read_table(write(tmp_path, "a.json", '[{"text": "hi", "label": 1}]')),
        data.read_table(write(tmp_path, "a.tsv", "text\tlabel\nhi\t1\n")),
    ]
    for frame in frames:
        assert frame.to_dict("records") == [{"text": "hi", "label": 1}]


def test_missing_file_suggests_near_names(tmp_path):
    write(tmp_path, "reviews.csv", "text,label\nx,1\n")
    with pytest.raises(DataError, match="Did you mean: reviews.csv"):
        data.read_table(tmp_path / "review.csv")


@pytest.mark.parametrize("name,content,message", [
    ("empty.csv", "", "is empty"),
    ("header.csv", "text,label\n", "no rows"),
    ("odd.csv", "text,label\ncaf\x81,1\n".encode("latin-1"), "not UTF-8 .* nor Windows-1252"),
    ("mixed.csv", "text,label\nna\u00efve,1\n".encode() + "caf\xe9,0\n".encode("latin-1"), "mostly UTF-8"),
    ("book.csv", b"PK\x03\x04\x00\x00rest", "Excel workbook"),
    ("blank.csv", "\n  \n", "only blank lines"),
    ("notes.txt", "hello", "unsupported file type"),
    ("broken.jsonl", '{"text": "a"\n', "could not be parsed"),
])
def test_unreadable_files_say_why(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message):
        data.read_table(write(tmp_path, name, content))


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        data.read_table(tmp_path)


def test_misnamed_column_gets_a_suggestion():
    frame = pd.DataFrame({"review_text": ["a"], "label": [1]})
    with pytest.raises(DataError, match="did you mean 'review_text'"):
        data.clean_table(frame, "review", "label", source="x.csv")


def test_cleaning_drops_and_counts():
    frame = pd.DataFrame({
        "text": ["good", "good", "", None, "  ", "bad", "fine", "ok"],
        "label": [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, None, 1.0],
        "other": range(8),
    })
    clean, report = data.clean_table(frame, "text", "label", source="t")
    assert clean["text"].tolist() == ["good", "bad", "ok"]
    assert clean["label"].tolist() == [1, 0, 1] and clean["label"].dtype.kind == "i"
    assert report.dropped == {"empty or missing 'text'": 3, "empty or missing 'label'": 1, "exact duplicate rows": 1}
    assert (report.rows_in, report.rows_out) == (8, 3)
    assert "dropped 3 rows" in str(report)


def test_windows_1252_is_read_and_reported(tmp_path):
    frame = data.read_table(write(tmp_path, "excel.csv", "text,label\ncaf\xe9 cr\xe8me,1\n".encode("cp1252")))
    assert frame["text"].tolist() == ["caf\u00e9 cr\u00e8me"]
    _, report = data.clean_table(frame, "text", "label", source="excel.csv")
    assert "Windows-1252" in str(report) and "\u00e8\u00e9" in str(report)


def test_utf8_bom_and_utf16_are_read(tmp_path):
    bom = data.read_table(write(tmp_path, "bom.csv", "\ufefftext,label\nhi,1\n".encode("utf-8")))
    assert list(bom.columns) == ["text", "label"] and not bom.attrs["notes"]
    wide = data.read_table(write(tmp_path, "wide.tsv", "text\tlabel\nhi\t1\n".encode("utf-16")))
    assert wide.to_dict("records") == [{"text": "hi", "label": 1}] and "UTF-16" in wide.attrs["notes"][0]


def test_semicolon_csv_is_read_and_reported(tmp_path):
    frame = data.read_table(write(tmp_path, "euro.csv", "text;label\nhi, there;1\n"))
    assert frame.to_dict("records") == [{"text": "hi, there", "label": 1}] and "semicolons" in frame.attrs["notes"][0]


def test_broken_jsonl_names_the_line(tmp_path):
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        data.read_table(write(tmp_path, "b.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 0}\n'))


def test_json_rows_under_one_key(tmp_path):
    frame = data.read_table(write(tmp_path, "d.json", '{"data": [{"text": "a", "label": 1}]}'))
    assert frame.to_dict("records") == [{"text": "a", "label": 1}]


def test_missing_file_says_where_it_looked_and_how_to_point(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        data.read_table("nowhere/mine.csv")
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "mine.csv") in message and "os.environ['NB_DATA']" in message


def test_relative_path_is_also_found_from_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(data.read_table("data/movie_reviews.csv")) > 100


def test_load_hub_reports_a_missing_local_file():
    with pytest.raises(DataError, match="Data file not found"):
        data.load_hub("/no/such/folder/my_rows")


def test_same_name_for_text_and_label_is_refused():
    with pytest.raises(DataError, match="both a text and the label"):
        data.clean_table(pd.DataFrame({"text": ["a"]}), "text", "text", source="t")


def test_column_differing_in_case_is_used_and_noted():
    clean, report = data.clean_table(pd.DataFrame({" Text": ["a", "b"], "LABEL": [0, 1]}), "text", "label", source="t")
    assert list(clean.columns) == ["text", "label"] and "differ only in case" in report.notes[0]


def test_missing_column_names_the_variable_to_set():
    frame = pd.DataFrame({"sentence_1": ["a"], "sentence2": ["b"], "label": [1]})
    with pytest.raises(DataError, match="NB_TEXT_COLUMN=sentence_1"):
        data.clean_table(frame, "sentence1", "label", source="t", extra_text_columns=["sentence2"])
    with pytest.raises(DataError, match="did you mean 'sentence_2'.*NB_TEXT2_COLUMN=sentence_2"):
        data.clean_table(frame.rename(columns={"sentence2": "sentence_2", "sentence_1": "sentence1"}), "sentence1",
                         "label", source="t", extra_text_columns=["sentence2"],
                         column_env={"sentence2": "NB_TEXT2_COLUMN"})


def test_headerless_csv_is_recognised(tmp_path):
    frame = data.read_table(write(tmp_path, "h.csv", "A long review of a film that I liked a lot overall,1\nbad,0\n"))
    with pytest.raises(DataError, match="looks like data, not column names"):
        data.clean_table(frame, "text", "label", source="h.csv")


def test_pairs_drop_a_row_when_either_text_is_empty_and_dedupe_on_both():
    frame = pd.DataFrame({"a": ["x", "x", "x", "", "y"], "b": ["p", "p", "q", "r", None], "label": [1, 1, 0, 1, 0]})
    clean, report = data.clean_table(frame, "a", "label", source="t", extra_text_columns=["b"], label_kind="class")
    assert clean[["a", "b"]].values.tolist() == [["x", "p"], ["x", "q"]]
    assert report.dropped == {"empty or missing 'a'": 1, "empty or missing 'b'": 1, "exact duplicate rows": 1}


def test_conflicting_labels_drop_every_copy():
    frame = pd.DataFrame({"text": ["a", "a", "b", "c", "c", "d", "e", "f"], "label": list("xyxyxyxy")})
    clean, report = data.clean_table(frame, "text", "label", source="t", label_kind="class")
    assert clean["text"].tolist() == ["b", "d", "e", "f"]
    assert report.dropped == {"same text with conflicting labels (every copy dropped)": 4}


def test_a_category_column_named_as_text_is_refused():
    frame = pd.DataFrame({"text": ["cards", "loans"] * 10, "label": [f"issue {i % 5}" for i in range(20)]})
    with pytest.raises(DataError, match="'text' looks like a category, not a text"):
        data.clean_table(frame, "text", "label", source="t", label_kind="class")


@pytest.mark.parametrize("labels,expected,note", [
    ([1.0, 0.0, 1.0, 0.0], [1, 0, 1, 0], "4 rows read, 4 kept"),
    (["1", "0", " 1", "0.0"], [1, 0, 1, 0], "read as whole numbers"),
    ([True, False, True, False], [1, 0, 1, 0], "true/false"),
    ([1, "0", 1.0, 0], [1, 0, 1, 0], "read as whole numbers"),
    (["pos", "neg", "pos ", "neg"], ["pos", "neg", "pos", "neg"], "'neg' -> 0"),
])
def test_binary_labels_are_converted_when_unambiguous(labels, expected, note):
    frame = pd.DataFrame({"text": ["a", "b", "c", "d"], "label": pd.Series(labels, dtype=object)})
    clean, report = data.clean_table(frame, "text", "label", source="t", label_kind="binary")
    assert clean["label"].tolist() == expected and note in str(report)


@pytest.mark.parametrize("labels,message", [
    ([0.2, 0.9, 0.4, 0.7], "fractional numbers .* score or a probability"),
    ([0, 1, 1, 2], "3 distinct labels"),
    ([0, 1] * 5 + ["l"], "3 distinct labels .* rare ones \\('l'\\) look like typos"),
    ([1, 1, 1, 1], "every row has the label 1"),
    ([0, 1, 1, 1], "label 0 has a single row"),
    ([[0], [1], [0], [1]], "labels in 'label' are lists"),
])
def test_binary_labels_that_cannot_be_used_are_refused(labels, message):
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(len(labels))], "label": pd.Series(labels, dtype=object)})
    with pytest.raises(DataError, match=message):
        data.clean_table(frame, "text", "label", source="t", label_kind="binary")


def test_class_labels_mixing_names_and_numbers_become_names():
    frame = pd.DataFrame({"text": list("abcd"), "label": pd.Series(["Billing", 3, "3", 3.0], dtype=object)})
    clean, report = data.clean_table(frame, "text", "label", source="t", label_kind="class")
    assert clean["label"].tolist() == ["Billing", "3", "3", "3"] and "mix names and numbers" in str(report)


def test_a_text_column_named_as_label_is_refused():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": [f"free text {i}" for i in range(30)]})
    with pytest.raises(DataError, match="looks like a text or id column"):
        data.clean_table(frame, "text", "label", source="t", label_kind="class")


def test_a_number_column_named_as_text_is_refused():
    with pytest.raises(DataError, match="holds no text"):
        data.clean_table(pd.DataFrame({"text": [1, 0, 1], "label": ["a", "b", "c"]}), "text", "label", source="t")


def test_nothing_left_names_the_column_and_its_variable():
    frame = pd.DataFrame({"input": ["q1", "q2"], "output": ["", None]})
    with pytest.raises(DataError, match="2 dropped for empty or missing 'output'.*NB_LABEL_COLUMN"):
        data.clean_table(frame, "input", "output", source="t")


def test_require_rows():
    data.require_rows(pd.DataFrame({"a": range(5)}), 5, "t", "why")
    with pytest.raises(DataError, match="4 usable rows .* at least 5 \\(why\\)"):
        data.require_rows(pd.DataFrame({"a": range(4)}), 5, "t", "why")


def test_move_unseen_labels():
    train = pd.DataFrame({"label": ["a", "b"]})
    val, test = pd.DataFrame({"label": ["a", "c"]}), pd.DataFrame({"label": ["c", "d", "b"]})
    train, (val, test), notes = data.move_unseen_labels(train, [val, test], "label")
    assert sorted(train["label"]) == ["a", "b", "c", "c", "d"] and val["label"].tolist() == ["a"]
    assert test["label"].tolist() == ["b"] and "3 evaluation rows of 2 labels" in notes[0]


def test_split_with_too_few_rows_says_so():
    frame = pd.DataFrame({"text": list("abcd"), "label": ["x", "y", "x", "y"]})
    with pytest.raises(DataError, match="cannot split 4 rows in 2 classes \\(4 rows of classes with fewer than 3"):
        data.split_three(frame, "label", source="t")


def test_fractional_labels_are_refused():
    frame = pd.DataFrame({"text": ["a", "b"], "label": [0.5, 1.0]})
    with pytest.raises(DataError, match="fractional"):
        data.clean_table(frame, "text", "label", source="t")


def test_mixed_label_types_become_text():
    frame = pd.DataFrame({"text": ["a", "b"], "label": [1, "1"]})
    clean, report = data.clean_table(frame, "text", "label", source="t")
    assert clean["label"].tolist() == ["1", "1"] and "mixed types" in report.notes[0]


def test_long_texts_are_cut_and_reported():
    clean, report = data.clean_table(pd.DataFrame({"text": ["x" * 50, "y"]}), "text", None, source="t", max_chars=10)
    assert clean["text"].str.len().max() == 10 and "longer than 10" in report.notes[0]


def test_nothing_left_is_an_error():
    with pytest.raises(DataError, match="no usable rows"):
        data.clean_table(pd.DataFrame({"text": ["", None], "label": [1, 0]}), "text", "label", source="t")


def test_split_keeps_rare_classes_in_train():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(62)], "label": ["a"] * 30 + ["b"] * 30 + ["c", "d"]})
    train, val, test, notes = data.split_three(frame, "label", seed=0)
    assert len(train) + len(val) + len(test) == 62
    assert {"c", "d"} <= set(train["label"])
    assert not {"c", "d"} & (set(val["label"]) | set(test["label"]))
    assert "2 classes" in notes[0]
    assert abs((val["label"] == "a").mean() - 0.5) < 0.2  # stratified


def test_split_handles_classes_of_three_to_six_rows():
    sizes = {"big": 60, "three": 3, "four": 4, "five": 5, "six": 6}
    labels = [name for name, n in sizes.items() for _ in range(n)]
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(len(labels))], "label": labels})
    train, val, test, _ = data.split_three(frame, "label", seed=3)
    assert len(train) + len(val) + len(test) == len(frame)
    assert set(train["label"]) == set(sizes)  # every class is trained on
    assert not set(train["text"]) & (set(val["text"]) | set(test["text"]))


def test_column_names_from_environment(monkeypatch):
    monkeypatch.setenv("NB_TEXT_COLUMN", "narrative")
    assert data.column_names("text", "label") == ("narrative", "label")


def test_synthetic_rows_follow_the_length_profile():
    class WordTokenizer:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": text.split()}

    sentences = ["one two three four.", "five six."]
    rows = data.synthetic_rows(WordTokenizer(), 400, median_tokens=40, sigma=0.5, sentences=sentences, seed=1)
    lengths = rows["text"].str.split().str.len()
    assert 35 <= lengths.median() <= 48 and set(rows["label"]) == {0, 1}
    capped = data.synthetic_rows(WordTokenizer(), 50, median_tokens=400, sigma=0.1, sentences=sentences,
                                 max_tokens=30, seed=1)
    assert capped["text"].str.split().str.len().max() <= 33


def test_sentences_of_splits_and_dedupes():
    assert data.sentences_of(["A b. C d! A b."]) == ["A b.", "C d.", ]


def test_load_hub_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="NB_PROFILE=smoke"):
        data.load_hub("someone/never-downloaded-dataset")
