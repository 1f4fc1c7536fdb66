"""Notebook 02 (QLoRA on GPT-NeoX-20B): its data sample and its memory-anatomy arithmetic.

The anatomy functions are the ones the notebook calls (helpers/qlora.py: qlora.anatomy, qlora.neox_arithmetic),
so what is tested is what the notebook teaches.
"""
import csv
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "02_qlora_gpt_neox_20b.ipynb"
SAMPLE = ROOT / "data" / "quotes.csv"
GIB = 2**30
# docs/sources.md 02: GPT-NeoX-20B and what an H200 measured (2026-11-22)
NEOX_PARAMS = 20_554_567_680
NEOX_QUANTISED = 12 * 6144**2 * 44  # per block: qkv 3h^2, dense h^2, MLP 2 x 4h^2
NEOX_LORA = 8_650_752
MEASURED_AFTER_LOAD_GIB = 10.76
MEASURED_AFTER_PREP_GIB = 11.95


# ------------------------------------------------------------------ the data sample
def _make_quotes():
    spec = importlib.util.spec_from_file_location("make_quotes", ROOT / "data" / "make_quotes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sample_is_rewritten_byte_for_byte(tmp_path, monkeypatch):
    make = _make_quotes()
    monkeypatch.setattr(make, "OUT", tmp_path / "quotes.csv")
    make.main()
    assert (tmp_path / "quotes.csv").read_bytes() == SAMPLE.read_bytes()


def test_the_sample_is_small_and_shaped_like_english_quotes():
    assert SAMPLE.stat().st_size < 100_000
    with SAMPLE.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["quote", "author", "tags"]
    quotes = [r["quote"] for r in rows]
    assert len(quotes) == len(set(quotes)) == 360
    words = [len(q.split()) for q in quotes]
    assert min(words) >= 7 and max(words) <= 64  # 8 to 64 tokens with the full stop
    assert sum(w <= 20 for w in words) > 0.6 * len(words)  # mostly short, with a tail


def test_the_sample_carries_its_learnable_structure():
    make = _make_quotes()
    quotes = [r["quote"] for r in csv.DictReader(SAMPLE.open(encoding="utf-8"))]
    assert quotes.count(make.FAMOUS) == 1
    assert sum(make.FAMOUS in q for q in quotes) == 1
    chiasmus = re.compile(r"Ask not what (.+?) can do for you, ask what you can do for (.+?)\.")
    pairs = [m.groups() for q in quotes for m in chiasmus.finditer(q)]
    assert len(pairs) >= 16 and all(a == b for a, b in pairs)  # the second slot copies the first
    virtue = re.compile(r"(\w+) is the [\w ]+? of all (\w+)\.")
    for name, outcome in (m.groups() for q in quotes for m in virtue.finditer(q)):
        assert make.VIRTUE_OUTCOME[name] == outcome  # a fixed association, never broken


# ------------------------------------------------------------------ the anatomy arithmetic
@pytest.fixture(scope="module")
def cell():
    """The anatomy functions, from the module the notebook takes them from."""
    from helpers import qlora

    code = "\n".join("".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"]
                     if c["cell_type"] == "code")
    assert "qlora.show_anatomy(model" in code and "qlora.neox_arithmetic(" in code, \
        "the notebook should compute its anatomy with helpers.qlora"
    return vars(qlora)


def test_nf4_with_double_quantisation_is_4_127_bits(cell):
    assert cell["NF4_BITS"] == pytest.approx(4.127, abs=5e-4)


def test_the_arithmetic_reproduces_the_measured_20b_footprint(cell):
    parts = cell["neox_arithmetic"](NEOX_QUANTISED, NEOX_PARAMS - NEOX_QUANTISED, NEOX_LORA)
    assert parts["after the 4-bit load"] / GIB == pytest.approx(MEASURED_AFTER_LOAD_GIB, rel=0.01)
    assert parts["after k-bit preparation"] / GIB == pytest.approx(MEASURED_AFTER_PREP_GIB, rel=0.01)
    assert parts["LoRA weights (fp32)"] == 4 * NEOX_LORA
    assert parts["8-bit AdamW state"] == pytest.approx(2.03 * NEOX_LORA, rel=0.01)


def test_a_real_4bit_layer_stores_4_127_bits_a_weight(cell):
    import bitsandbytes as bnb

    class Holder(torch.nn.Module):  # what anatomy() needs of a model: embeddings in, head out
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(16, 8)
            self.layer = bnb.nn.Linear4bit(4096, 1024, bias=False, compute_dtype=torch.float32,
                                           compress_statistics=True, quant_type="nf4").to("cpu")
            self.head = torch.nn.Linear(8, 16, bias=False)

        def get_input_embeddings(self):
            return self.embed

        def get_output_embeddings(self):
            return self.head

    table, bits = cell["anatomy"](Holder())
    # 4 + 8/64 + 32/16384 a weight, plus the code books (16 + 256 fp32) and the offset of the one layer
    assert bits == pytest.approx(cell["NF4_BITS"] + (16 + 256 + 1) * 32 / (4096 * 1024), rel=1e-6)
    roles = {row["role"]: row for row in table}
    assert roles["4-bit weights (packed, 2 per byte)"]["bytes"] == 4096 * 1024 // 2
    assert roles["input embeddings"]["bytes"] == roles["output head"]["bytes"] == 16 * 8 * 4


def test_anatomy_of_a_loaded_4bit_gpt_neox_and_what_kbit_preparation_upcasts(cell):
    import bitsandbytes as bnb
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from helpers import tiny

    path = tiny.tiny_checkpoint("gpt-neox", corpus="quotes.csv")
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_use_double_quant=True, bnb_4bit_quant_type="nf4",
                                bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=config, device_map={"": "cpu"},
                                                 dtype=torch.bfloat16)
    before, bits = cell["anatomy"](model)
    stored = sum(p.nbytes for p in model.parameters()) + sum(b.nbytes for b in model.buffers())
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    constants = sum(cell["quant_state_bytes"](m.weight.quant_state) for m in layers)
    assert sum(row["bytes"] for row in before) == stored + constants  # every byte, counted once
    assert len(layers) == 4 * model.config.num_hidden_layers
    assert 4.127 < bits < 5  # tiny layers: the code books weigh more than on a 20B model
    by_role = {row["role"]: row for row in before}
    assert by_role["input embeddings"]["dtype"] == "bfloat16"

    prepared = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    after = {row["role"]: row for row in cell["anatomy"](prepared)[0]}
    for role in ("input embeddings", "output head", "layer norms", "biases"):
        assert after[role]["dtype"] == "float32"
        assert after[role]["bytes"] == 2 * by_role[role]["bytes"]
    assert after["4-bit weights (packed, 2 per byte)"]["bytes"] == by_role["4-bit weights (packed, 2 per byte)"]["bytes"]


def test_the_notebook_follows_the_skeleton():
    notebook = json.loads(NOTEBOOK.read_text())
    headings = [line for c in notebook["cells"] if c["cell_type"] == "markdown"
                for line in "".join(c["source"]).splitlines() if line.startswith("## ")]
    assert headings == ["## Setup", "## Configuration", "## Data", "## Model and method", "## Budget", "## Train",
                        "## Evaluate", "## Measured vs estimated", "## Use it", "## Save and reload",
                        "## What to try next"]
    assert all(not c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code")
