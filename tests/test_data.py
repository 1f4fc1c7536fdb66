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
    ("latin.csv", "text,label\ncaf\xe9,1\n".encode("latin-1"), "not valid UTF-8"),
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
    assert report.dropped == {"empty or missing 'text'": 3, "missing 'label'": 1, "exact duplicate rows": 1}
    assert (report.rows_in, report.rows_out) == (8, 3)
    assert "dropped 3 rows" in str(report)


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
