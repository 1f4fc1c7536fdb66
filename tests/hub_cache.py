"""A local Hugging Face hub cache under the recipes' real ids, so that the `full` profile runs offline.

`build_hub_cache(root)` writes, under `root`:

* hub/: the hub cache (HF_HUB_CACHE) with one repository per model and dataset the notebooks'
  `full` profile downloads, in the layout huggingface_hub itself writes:
  `models--<org>--<name>/refs/main` (a 40-hex commit) and `snapshots/<commit>/<files>` (plain
  files, no blobs/ folder: transformers and huggingface_hub read a snapshot either way).
  Models are tiny random checkpoints of the real architecture (helpers.tiny), with a tokenizer
  trained offline on the notebook's own sample. Dataset repositories hold small tables with the
  real datasets' columns, splits and file layout, filled from the samples in data/.
* datasets/: the datasets cache (HF_DATASETS_CACHE). With HF_HUB_OFFLINE=1, `datasets.load_dataset`
  (5.x) never reads the hub cache: it goes straight to the Arrow files a former online load left
  here (`<org>___<name>/<config>/0.0.0/<commit>/<name>-<split>.arrow`). We write them the way an
  online load does: the dataset's own builder (parquet, json or csv) reads the snapshot above,
  with the repository id, config and commit an online load would give it.
* home/: HF_HOME (nothing is written there; it keeps the real ~/.cache/huggingface out of reach).

Nothing here is a real model or the real data: see the ORIGIN.txt of each snapshot. The commits
are made up (hashes of what shaped the content), the sizes small (tens to a few hundred rows), so a
notebook's `full` profile runs every line but the download, on a CPU, in about a minute.

Sources of the real schemas (checked 2026-12; the hub pages and their dataset_info):
* Abirate/english_quotes: one split, train (2,508 rows), columns quote (string), author (string),
  tags (list of strings), in quotes.jsonl (huggingface.co/datasets/Abirate/english_quotes viewer;
  the dataset_info of its copy ybelkada/english_quotes_copy).
* stanfordnlp/imdb, config plain_text: train (25,000), test (25,000), unsupervised (50,000, label -1);
  text (string), label (class label neg/pos); plain_text/<split>-00000-of-00001.parquet
  (huggingface.co/datasets/stanfordnlp/imdb/tree/main/plain_text and its README's dataset_info).
* nyu-mll/glue, config mrpc: train (3,668), validation (408), test (1,725, label -1); sentence1,
  sentence2 (string), label (class label not_equivalent/equivalent), idx (int32);
  mrpc/<split>-00000-of-00001.parquet (commit 85520db "Add mrpc data files" of nyu-mll/glue).
* JAdeojo/consumer_complaints_cfpb: train_consumer_complaints.csv and test_consumer_complaints.csv,
  and a README.md of 22 bytes ("license: odbl", no dataset_info): its columns are NOT published.
  We use the CFPB's own field names (cfpb.github.io/api/ccdb/fields.html: Product, Issue,
  Sub-issue, Consumer complaint narrative, Complaint ID), the names notebook 01 expects.
  `build_hub_cache(root, complaint_columns={...})` renames them, to test what 01 does with others.

Run as a script to build a cache and print its environment: python tests/hub_cache.py /tmp/hub
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
FORMAT = "1"      # bump to rebuild every cache built by an older version of this file

# hub id -> (helpers.tiny family, the sample its tokenizer is trained on, config overrides). The
# overrides are the ones each notebook's smoke profile uses, so the tiny models train as well there.
TINY = dict(initializer_range=0.1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
MODELS = {
    "xlm-roberta-large": ("xlm-roberta", "complaints.csv", TINY),                          # 01
    "EleutherAI/gpt-neox-20b": ("gpt-neox", "quotes.csv",                                   # 02
                                dict(hidden_size=192, intermediate_size=768, initializer_range=0.1)),
    "microsoft/Phi-3-mini-4k-instruct": ("chat", "accounting.csv",                          # 03
                                         dict(hidden_size=128, intermediate_size=256, initializer_range=0.1)),
    "bigscience/bloom-560m": ("bloom", "movie_reviews.csv", dict(hidden_size=128)),         # 04
    # 05 trains "frozen but last 4 blocks" of roberta-large: 5 blocks, so that one stays frozen
    "roberta-large": ("roberta", "paraphrases.csv",                                         # 05
                      dict(hidden_size=128, intermediate_size=256, num_hidden_layers=5, **TINY)),
    "roberta-base": ("roberta", "paraphrases.csv", dict(hidden_size=64, intermediate_size=128, **TINY)),    # 05
}

# The CFPB names of the complaint table's columns, in the CFPB export's order.
COMPLAINT_COLUMNS = ["Product", "Issue", "Sub-issue", "Consumer complaint narrative", "Complaint ID"]
# Rows per split: enough to clean and split, few enough for a CPU run of about a minute (02 needs 168
# quotes; 05 trains 10 methods for 20 epochs, so one batch of 32 pairs an epoch).
SIZES = dict(quotes=360, imdb=(100, 100, 50), mrpc=(32, 32, 32), complaints=(320, 80))


def environment(root) -> dict:
    """The variables that point huggingface_hub, transformers and datasets at the cache in `root`."""
    root = Path(root)
    return {"HF_HOME": str(root / "home"), "HF_HUB_CACHE": str(root / "hub"),
            "HF_DATASETS_CACHE": str(root / "datasets")}


def build_hub_cache(root, *, models=True, complaint_columns=None) -> dict:
    """Write the cache under `root` (once: a second call with the same arguments only checks) and
    return its environment variables. `models=False` writes the datasets only; `complaint_columns`
    renames the complaint table's columns and orders them as the dict does ({"Sub-issue": "sub_issue", ...})."""
    root = Path(root)
    key = _key(models, complaint_columns)
    marker = root / "hub_cache.json"
    if marker.exists() and json.loads(marker.read_text()).get("key") == key:
        return environment(root)
    shutil.rmtree(root, ignore_errors=True)
    env = environment(root)
    for path in env.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    hub, datasets_cache = Path(env["HF_HUB_CACHE"]), Path(env["HF_DATASETS_CACHE"])
    if models:
        for repo_id, (family, corpus, overrides) in MODELS.items():
            write_model(hub, repo_id, family, corpus, overrides, tiny_cache=root / "tiny")
        shutil.rmtree(root / "tiny", ignore_errors=True)     # the snapshots hold copies
    repos = dataset_repos(complaint_columns)
    for repo_id, config, files, readme in repos:
        snapshot = write_snapshot(hub, "dataset", repo_id, files, readme, key)
        prepare_arrow_cache(snapshot, repo_id, config, datasets_cache)
    marker.write_text(json.dumps({"key": key, "models": list(MODELS) if models else [],
                                  "datasets": [repo_id for repo_id, *_ in repos]}, indent=1))
    return env


# ----------------------------------------------------------------------------- the hub layout
def commit_of(*parts) -> str:
    """A made-up commit: 40 hex digits that change with what shaped the snapshot."""
    return hashlib.sha1(json.dumps([FORMAT, *parts], sort_keys=True, default=str).encode()).hexdigest()


def repo_folder(hub: Path, kind: str, repo_id: str) -> Path:
    """models--org--name or datasets--org--name, as huggingface_hub names them."""
    return hub / f"{kind}s--{repo_id.replace('/', '--')}"


def write_snapshot(hub: Path, kind: str, repo_id: str, files: dict, readme: str | None, *key) -> Path:
    """A snapshot folder with `files` ({relative path: bytes, or a folder to copy}) and refs/main.

    Returns the snapshot folder (its name is the commit)."""
    commit = commit_of(kind, repo_id, *key)
    repo = repo_folder(hub, kind, repo_id)
    snapshot = repo / "snapshots" / commit
    shutil.rmtree(repo, ignore_errors=True)
    snapshot.mkdir(parents=True)
    for name, content in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copytree(content, target, dirs_exist_ok=True)
        else:
            target.write_bytes(content)
    if readme is not None:
        (snapshot / "README.md").write_text(readme)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)          # no newline, as huggingface_hub writes it
    return snapshot


def write_model(hub: Path, repo_id: str, family: str, corpus: str, overrides: dict, tiny_cache: Path) -> Path:
    """A tiny random checkpoint of `family`, saved as the snapshot of the model repository `repo_id`."""
    from helpers import tiny

    old = os.environ.get(tiny.CACHE_ENV)
    os.environ[tiny.CACHE_ENV] = str(tiny_cache)          # never the shared ~/.cache/finetune-budget
    try:
        folder = Path(tiny.tiny_checkpoint(family, corpus=corpus, **overrides))
    finally:
        if old is None:
            os.environ.pop(tiny.CACHE_ENV)
        else:
            os.environ[tiny.CACHE_ENV] = old
    snapshot = write_snapshot(hub, "model", repo_id, {".": folder}, None, family, corpus, overrides)
    (snapshot / "ORIGIN.txt").write_text(
        f"Not {repo_id}: a tiny random {family} model (helpers.tiny) with a tokenizer trained on "
        f"data/{corpus}, written by tests/hub_cache.py for the offline tests of the full profile.\n")
    return snapshot


# ----------------------------------------------------------------------------- the datasets
def _parquet(frame, features=None) -> bytes:
    """A frame as parquet bytes (with the features datasets reads back, when given)."""
    import io

    import datasets

    table = datasets.Dataset.from_pandas(frame, features=features, preserve_index=False)
    buffer = io.BytesIO()
    table.to_parquet(buffer)
    return buffer.getvalue()


def _card(pretty_name: str, yaml_body: str) -> str:
    return f"---\npretty_name: {pretty_name}\n{yaml_body}---\n\n# {pretty_name} (offline test copy)\n\n" \
           "Small rows from this repository's data/ samples, shaped like the real dataset.\n"


def dataset_repos(complaint_columns=None):
    """(repo id, config or None, files, README) of every dataset repository the notebooks load."""
    import datasets
    import pandas as pd

    repos = []

    # 02: Abirate/english_quotes, quotes.jsonl, one split (train); tags are lists of strings
    quotes = pd.read_csv(DATA / "quotes.csv").head(SIZES["quotes"])
    lines = [json.dumps({"quote": q, "author": a, "tags": [t] if isinstance(t, str) else []})
             for q, a, t in zip(quotes["quote"], quotes["author"], quotes["tags"])]
    repos.append(("Abirate/english_quotes", None, {"quotes.jsonl": ("\n".join(lines) + "\n").encode()},
                  _card("English quotes", "language:\n- en\n")))

    # 04: stanfordnlp/imdb, config plain_text: train, test, unsupervised (label -1)
    reviews = pd.read_csv(DATA / "movie_reviews.csv").sample(frac=1.0, random_state=0).reset_index(drop=True)
    n_train, n_test, n_unsup = SIZES["imdb"]
    imdb = {"train": reviews[:n_train], "test": reviews[n_train:n_train + n_test],
            "unsupervised": reviews[n_train + n_test:n_train + n_test + n_unsup].assign(label=-1)}
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    files = {f"plain_text/{split}-00000-of-00001.parquet": _parquet(frame, features) for split, frame in imdb.items()}
    repos.append(("stanfordnlp/imdb", "plain_text", files, _card("IMDB", _yaml("plain_text", features, imdb))))

    # 05: nyu-mll/glue, config mrpc: train, validation, test (label -1), with idx
    pairs = pd.read_csv(DATA / "paraphrases.csv").sample(frac=1.0, random_state=0).reset_index(drop=True)
    pairs["idx"] = range(len(pairs))
    n_train, n_val, n_test = SIZES["mrpc"]
    mrpc = {"train": pairs[:n_train], "validation": pairs[n_train:n_train + n_val],
            "test": pairs[n_train + n_val:n_train + n_val + n_test].assign(label=-1)}
    mrpc = {split: frame[["sentence1", "sentence2", "label", "idx"]].reset_index(drop=True)
            for split, frame in mrpc.items()}
    for frame in mrpc.values():
        frame["idx"] = range(len(frame))                 # each split counts from 0, as GLUE's do
    features = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["not_equivalent", "equivalent"]),
                                  "idx": datasets.Value("int32")})
    files = {f"mrpc/{split}-00000-of-00001.parquet": _parquet(frame, features) for split, frame in mrpc.items()}
    repos.append(("nyu-mll/glue", "mrpc", files, _card("GLUE", _yaml("mrpc", features, mrpc))))

    # 01: JAdeojo/consumer_complaints_cfpb, two CSV files; its README holds only the licence
    complaints = complaint_table()
    n_train, n_test = SIZES["complaints"]
    complaints = complaints.sample(n=n_train + n_test, random_state=0).reset_index(drop=True)
    if complaint_columns:          # other names, in the order of the dict
        complaints = complaints.rename(columns=complaint_columns)[list(complaint_columns.values())]
    files = {"train_consumer_complaints.csv": complaints[:n_train].to_csv(index=False).encode(),
             "test_consumer_complaints.csv": complaints[n_train:].to_csv(index=False).encode()}
    repos.append(("JAdeojo/consumer_complaints_cfpb", None, files, "---\nlicense: odbl\n---\n"))
    return repos


def complaint_table():
    """data/complaints.csv with the CFPB's columns: the Issue of each sub-issue (from the sample's
    generator) and a Complaint ID added."""
    import importlib.util

    import pandas as pd

    spec = importlib.util.spec_from_file_location("make_complaints", DATA / "make_complaints.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    issue_of = {sub: issue for issues in make.CLASSES.values() for issue, subs in issues.items() for sub in subs}
    issue_of.update({sub: issue for _, issue, sub in make.SINGLETONS})
    table = pd.read_csv(DATA / "complaints.csv", keep_default_na=False)   # blank narratives stay blank
    table["Issue"] = table["Sub-issue"].map(issue_of)
    table["Complaint ID"] = range(3_000_001, 3_000_001 + len(table))
    return table[COMPLAINT_COLUMNS]


def _yaml(config: str, features, splits: dict) -> str:
    """The dataset card's YAML: the features of one config, and where the files of its splits are."""
    lines = ["dataset_info:", f"  config_name: {config}", "  features:"]
    for name, feature in features.items():
        lines.append(f"  - name: {name}")
        if hasattr(feature, "names"):
            lines += ["    dtype:", "      class_label:", "        names:"]
            lines += [f"          '{i}': {label}" for i, label in enumerate(feature.names)]
        else:
            lines.append(f"    dtype: {feature.dtype}")
    lines += ["configs:", f"- config_name: {config}", "  data_files:"]
    for split in splits:
        lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    return "\n".join(lines) + "\n"


def prepare_arrow_cache(snapshot: Path, repo_id: str, config: str | None, datasets_cache: Path) -> Path:
    """Write the Arrow files an online `load_dataset(repo_id, config)` leaves in the datasets cache.

    The builder is the one datasets picks for the snapshot's files and card (parquet, json or csv),
    named and hashed as the hub loader names them (dataset name, config, the commit as its hash). A
    builder given a repository id only accepts hf:// files, so it writes to a scratch folder and
    the result moves to <org>___<name>/<config>/0.0.0/<commit>/, where the offline loader looks."""
    import datasets
    from datasets.naming import camelcase_to_snakecase

    local = datasets.load_dataset_builder(str(snapshot), name=config)     # reads the card's configs
    scratch = datasets_cache / ".scratch"
    builder = type(local)(cache_dir=str(scratch), dataset_name=camelcase_to_snakecase(repo_id.split("/")[-1]),
                          config_name=local.config.name, hash=snapshot.name, base_path=str(snapshot),
                          info=local.info)
    builder.download_and_prepare()
    built = Path(builder.cache_dir)
    target = datasets_cache / repo_id.replace("/", "___") / built.relative_to(scratch / builder.dataset_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(built), str(target))
    shutil.rmtree(scratch)
    return target


def _key(models: bool, complaint_columns) -> str:
    """What the cache depends on: this file, helpers/tiny.py, the samples and the arguments."""
    digest = hashlib.sha256(FORMAT.encode())
    for path in [Path(__file__), ROOT / "helpers" / "tiny.py", *sorted(p for p in DATA.glob("*") if p.is_file())]:
        digest.update(path.read_bytes())
    digest.update(json.dumps([models, complaint_columns], sort_keys=True).encode())
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/hub_cache.py FOLDER")
    for name, value in build_hub_cache(sys.argv[1]).items():
        print(f"export {name}={value}")
