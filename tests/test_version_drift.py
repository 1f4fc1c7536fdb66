"""Every keyword argument the notebooks and scripts pass to the libraries exists in the pinned versions.

APIs moved a lot (transformers 5, TRL 1.x, peft 0.2x): `evaluation_strategy`, `warmup_ratio`,
`SFTTrainer(tokenizer=...)` all stopped working. This test reads the code of every notebook and
script, finds calls to classes and functions of those libraries, and checks each keyword against
the installed signature, failing loudly with the call and the keywords that no longer exist.
"""
import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate")


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            # IPython magics and shell escapes are not Python
            lines.append("" if line.lstrip().startswith(("%", "!")) else line)
    return "\n".join(lines)


def library_names(tree: ast.AST) -> dict:
    """Local name -> dotted path, for names imported from the checked libraries."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in LIBRARIES:
                    names[alias.asname or alias.name] = alias.name
    return names


def dotted(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def resolve(path: str):
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def unknown_keywords(code: str) -> list[str]:
    """Calls whose keywords are not in the installed library's signature."""
    tree = ast.parse(code)
    names = library_names(tree)
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.keywords:
            continue
        name = dotted(node.func)
        if not name or name.split(".")[0] not in names:
            continue
        target = names[name.split(".")[0]] + name[len(name.split(".")[0]):]
        try:
            obj = resolve(target)
            signature = inspect.signature(obj)
        except (ImportError, AttributeError) as err:
            problems.append(f"line {node.lineno}: {target} does not exist ({err})")
            continue
        except (TypeError, ValueError):  # builtins without a signature
            continue
        params = signature.parameters
        if any(p.kind == p.VAR_KEYWORD for p in params.values()):
            continue  # takes **kwargs: nothing to check by name
        bad = [k.arg for k in node.keywords if k.arg and k.arg not in params]
        if bad:
            problems.append(f"line {node.lineno}: {target}({', '.join(bad)}=...) not accepted")
    return problems


SOURCES = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "scripts").glob("*.py")) + \
    sorted((ROOT / "helpers").glob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_keywords_exist_in_pinned_versions(path):
    code = notebook_code(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
    problems = unknown_keywords(code)
    assert not problems, f"{path.name} uses arguments the installed libraries do not take:\n" + "\n".join(problems)


def test_the_check_catches_moved_arguments():
    old_style = (
        "from transformers import TrainingArguments\n"
        "from peft import LoraConfig\n"
        "TrainingArguments(output_dir='x', evaluation_strategy='steps', warmup_ratio=0.1)\n"
        "LoraConfig(r=8, lora_alpha=16)\n"
    )
    problems = unknown_keywords(old_style)
    assert len(problems) == 1 and "evaluation_strategy" in problems[0] and "warmup_ratio" in problems[0]
