"""The saved adapter, reloaded in a fresh process, gives the same predictions.

Reloading in the notebook's own process proves less than it seems: the trained model is still in
memory, and so are caches, seeds and patched modules. This module loads the saved files in a
NEW Python process, as a user of the adapter would:

    python -m helpers.reload --base <path or hub id> --adapter <dir> --task seq-cls \\
        --inputs batch.safetensors --out predictions.safetensors

writes the logits (and with ``--generate N`` the greedy continuation of N tokens) for the token ids
and attention masks in the inputs file. `predictions_in_fresh_process` runs it from a notebook,
`compare` checks the result against the trained model's, and `export_merged` writes a standalone
model with the adapter merged into the weights where that means something.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import checkpoints, runtime
from .errors import FriendlyError

TASKS = ("seq-cls", "causal-lm")
HEAD_NAMES = ("score.weight", "classifier.out_proj.weight", "classifier.weight")  # transformers' classification heads
DEFAULT_SKIP_4BIT = {"seq-cls": ["classifier", "score"]}  # a new head stays unquantised, as the notebooks keep it


class ReloadError(FriendlyError):
    """Reloading in a fresh process failed; the message carries the end of its error output."""


class ReloadMismatch(FriendlyError):
    """The reloaded model's predictions differ from the trained model's beyond the tolerance."""


class NothingToMerge(FriendlyError):
    """The model has no weight change to merge (prompt-learning methods, or not a PEFT model)."""


# ----------------------------------------------------------------------------- loading (the child's side)
def modules_saved_whole(adapter_dir) -> list[str]:
    """The modules an adapter saved whole (peft's modules_to_save): they trained unquantised, so stay so."""
    path = Path(adapter_dir) / "adapter_config.json" if adapter_dir else None
    if path is None or not path.exists():
        return []
    return list(json.loads(path.read_text()).get("modules_to_save") or [])


def num_labels_of_adapter(adapter_dir) -> int | None:
    """The number of classes of a classification adapter, read from its saved head (None if none)."""
    from safetensors import safe_open

    path = Path(adapter_dir) / "adapter_model.safetensors"
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        for suffix in HEAD_NAMES:
            for key in f.keys():
                if key.endswith(suffix):
                    return f.get_slice(key).get_shape()[0]
    return None


def _check_task(task, generate=None) -> None:
    if task not in TASKS:
        raise FriendlyError(f"task {task!r}: use one of {', '.join(TASKS)}.")
    if generate and task != "causal-lm":
        raise FriendlyError("generate= needs task='causal-lm': a classifier has nothing to generate.")


def _torch_dtype(dtype):
    import torch

    return dtype if isinstance(dtype, torch.dtype) else getattr(torch, _dtype_name(dtype))


def _dtype_name(dtype) -> str:
    """'bfloat16' for torch.bfloat16 or "torch.bfloat16" (the spelling of the CLI and the layout files)."""
    return str(dtype).replace("torch.", "")


def _unquantised(p) -> bool:
    return p.is_floating_point() and getattr(p, "quant_state", None) is None


def dtype_layout(model) -> dict:
    """{parameter name: dtype} of the model's unquantised parameters, as training left them.

    k-bit preparation turns a 4-bit model's norms, embeddings and head to fp32 (notebook 02's lean
    preparation only the norms); loaded again in the compute dtype they would compute differently.
    Pass this to predictions_in_fresh_process(dtype_layout=...) to reload the very same model.
    """
    return {name: _dtype_name(p.dtype) for name, p in model.named_parameters() if _unquantised(p)}


def apply_dtype_layout(model, layout: dict) -> int:
    """Cast the parameters named in `layout` to their dtype there; returns how many changed."""
    changed = 0
    for name, p in model.named_parameters():
        wanted = layout.get(name)
        if wanted and _unquantised(p) and _dtype_name(p.dtype) != wanted:
            p.data = p.data.to(_torch_dtype(wanted))
            changed += 1
    return changed


def load(base=None, adapter_dir=None, merged_dir=None, *, task="seq-cls", load_in_4bit=False, dtype="float32",
         num_labels=None, skip_modules=None, device="cpu", compute_dtype=None, layout=None):
    """The model as a user would load it: base (+ adapter), or a merged folder. Eval mode.

    dtype: the weights'; compute_dtype: the 4-bit layers' matrix products (default: dtype); layout:
    a dtype_layout() of the trained model, applied once everything is loaded."""
    import torch
    import transformers

    _check_task(task)
    auto = (transformers.AutoModelForSequenceClassification if task == "seq-cls"
            else transformers.AutoModelForCausalLM)
    torch_dtype = _torch_dtype(dtype)
    if merged_dir:
        return auto.from_pretrained(merged_dir, dtype=torch_dtype).to(device).eval()
    if base is None:
        raise FriendlyError("Give the base model (--base) to load an adapter on, or a merged model (--merged).")
    kwargs = {}
    if task == "seq-cls":
        labels = num_labels or (num_labels_of_adapter(adapter_dir) if adapter_dir else None)
        if labels:
            kwargs["num_labels"] = labels
    if load_in_4bit:
        # the notebooks' QLoRA loading: NF4, double quantisation, matrix products in `dtype`
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=_torch_dtype(compute_dtype or dtype),
            # None (not []) when there is nothing to add: transformers then keeps its own default (lm_head)
            llm_int8_skip_modules=skip_modules if skip_modules is not None else
            (list(dict.fromkeys(DEFAULT_SKIP_4BIT.get(task, []) + modules_saved_whole(adapter_dir))) or None))
        kwargs["device_map"] = {"": 0} if device == "cuda" else None
    model = auto.from_pretrained(base, dtype=torch_dtype, **kwargs)
    if load_in_4bit and device == "cpu":
        keep_cpu_4bit_layout(model)
    if not load_in_4bit:
        model = model.to(device)
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    if layout:
        apply_dtype_layout(model, layout)
    return model.eval()


def keep_cpu_4bit_layout(model) -> None:
    """Keep bitsandbytes' trainable 4-bit layout on a CPU (what the notebooks do before training).

    On processors with AVX512-BF16, bitsandbytes 0.50 repacks a Linear4bit the first time it runs
    in eval mode without gradients (bitsandbytes/nn/modules.py, Linear4bit.forward), which computes
    through another kernel (logits about 3e-3 apart on the tests' tiny model) and can no longer
    train; the notebooks keep the plain layout, so the reloaded model must too for its logits to
    be comparable.
    """
    for module in model.modules():
        if type(module).__name__ in ("Linear4bit", "LinearNF4"):
            module.support_avx512bf16_for_cpu = False


ROWS_AT_ONCE = 32   # rows per forward pass in predict()


def predict(model, batch: dict, generate: int | None = None, autocast=None) -> dict:
    """{"logits": fp32 on the CPU} and, with `generate`, {"generated": greedy ids, prompt included}.

    In eval mode (no dropout), the model's own mode restored afterwards; the notebook computes its
    reference with this too, so both sides predict the same way. On a CPU it keeps bitsandbytes'
    trainable 4-bit layout (see keep_cpu_4bit_layout), so the model can still train afterwards.
    autocast: a dtype to compute under torch.autocast, for a model whose parameters mix dtypes that only
    autocast reconciles (as during mixed-precision training); None: as it is.
    """
    import torch

    device = next(model.parameters()).device
    if device.type == "cpu":
        keep_cpu_4bit_layout(model)
    inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    was_training = model.training
    model.eval()
    out = {}
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=_torch_dtype(autocast) if autocast else None,
                                             enabled=autocast is not None):
            # ROWS_AT_ONCE rows at a time: 05's 408 test pairs in one fp32 pass ran out of a T4's memory
            rows = next(iter(inputs.values())).shape[0]
            out["logits"] = torch.cat([model(**{k: v[i:i + ROWS_AT_ONCE] for k, v in inputs.items()}).logits.float().cpu()
                                       for i in range(0, rows, ROWS_AT_ONCE)])
            if generate:
                pad = getattr(model.config, "pad_token_id", None)
                if pad is None:
                    pad = getattr(model.config, "eos_token_id", None)
                out["generated"] = model.generate(**inputs, max_new_tokens=int(generate), do_sample=False,
                                                  pad_token_id=pad).cpu()
    finally:
        model.train(was_training)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.reload",
                                description="Load a saved adapter (or merged model) in this fresh process and "
                                            "write its predictions for the given token ids.")
    p.add_argument("--base", help="base model: a local folder or a hub id")
    p.add_argument("--adapter", help="adapter folder written by save_pretrained")
    p.add_argument("--merged", help="a merged model folder (instead of --base/--adapter)")
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--inputs", required=True, help="safetensors file with input_ids and attention_mask")
    p.add_argument("--out", required=True, help="safetensors file to write: logits (and generated)")
    p.add_argument("--load-in-4bit", action="store_true", help="load the base in NF4 with double quantisation")
    p.add_argument("--dtype", default="float32", help="weights dtype, and compute dtype of 4-bit layers")
    p.add_argument("--compute-dtype", help="4-bit layers' compute dtype, when not --dtype")
    p.add_argument("--dtype-layout", help="JSON file {parameter: dtype} (dtype_layout() of the trained model)")
    p.add_argument("--autocast", help="predict under torch.autocast in this dtype (e.g. bfloat16)")
    p.add_argument("--num-labels", type=int, help="seq-cls: classes (default: read from the adapter's head)")
    p.add_argument("--skip-modules", help="4-bit: comma-separated modules to leave unquantised "
                                          "(default for seq-cls: classifier,score)")
    p.add_argument("--generate", type=int, help="causal-lm: also generate this many greedy tokens")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    return p


def main(argv=None) -> int:
    from safetensors.torch import load_file, save_file

    args = _parser().parse_args(argv)
    _check_task(args.task, args.generate)
    model = load(args.base, args.adapter, args.merged, task=args.task, load_in_4bit=args.load_in_4bit,
                 dtype=args.dtype, num_labels=args.num_labels, device=args.device, compute_dtype=args.compute_dtype,
                 skip_modules=args.skip_modules.split(",") if args.skip_modules else None,
                 layout=json.loads(Path(args.dtype_layout).read_text()) if args.dtype_layout else None)
    batch = load_file(args.inputs)
    save_file({k: v.contiguous() for k, v in predict(model, batch, args.generate, args.autocast).items()}, args.out)
    return 0


# ----------------------------------------------------------------------------- the notebook's side
def predictions_in_fresh_process(base=None, adapter_dir=None, merged_dir=None, *, task, batch, load_in_4bit=False,
                                 generate=None, dtype=None, num_labels=None, skip_modules=None, device=None,
                                 compute_dtype=None, dtype_layout=None, autocast=None, timeout=900):
    """Logits (or, with `generate`, greedy ids) of the saved model, loaded by a new Python process.

    base: the base model (folder or hub id) and adapter_dir the saved adapter; or merged_dir alone.
    batch: {"input_ids", "attention_mask"} tensors (other keys are ignored). dtype: "float32"
    (default), "float16" or "bfloat16" (or the torch dtype): the weights' dtype, and the compute
    dtype of 4-bit layers. num_labels: classes of a classifier (default: read from the adapter).
    skip_modules: 4-bit only, modules left unquantised (default: a classifier's new head and the
    modules the adapter saved whole, its modules_to_save).
    device: where the child runs (default: CUDA when there is one); on a small GPU free the
    notebook's model first. The child inherits this Python and environment (Colab, nbmake).

    compute_dtype: the 4-bit layers' (default: dtype). dtype_layout: the trained model's
    dtype_layout(), for a model whose unquantised parameters are not all in `dtype` (k-bit preparation).
    autocast: predict under torch.autocast in this dtype (as predict(..., autocast=) on the trained model).

    On a CPU in fp32 the logits are identical to the trained model's (`predict`), 4-bit included.
    On a GPU, with the same dtypes everywhere, they differ only by the order of floating-point sums
    (different kernels, batch shapes): compare with a tolerance relative to the logits' size (e.g.
    1e-3 x their max).
    """
    import torch
    from safetensors.torch import load_file, save_file

    _check_task(task, generate)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory(prefix="reload-") as tmp:
        inputs, out = Path(tmp) / "inputs.safetensors", Path(tmp) / "out.safetensors"
        save_file({k: v.detach().cpu().contiguous() for k, v in batch.items() if torch.is_tensor(v)
                   and k in ("input_ids", "attention_mask", "token_type_ids")}, str(inputs))
        command = [sys.executable, "-m", "helpers.reload", "--task", task, "--inputs", str(inputs),
                   "--out", str(out), "--dtype", _dtype_name(dtype or "float32"), "--device", device]
        for flag, value in (("--base", base), ("--adapter", adapter_dir), ("--merged", merged_dir),
                            ("--num-labels", num_labels), ("--generate", generate),
                            ("--skip-modules", ",".join(skip_modules) if skip_modules else None)):
            if value is not None:
                command += [flag, str(value)]
        if load_in_4bit:
            command.append("--load-in-4bit")
        if compute_dtype is not None:
            command += ["--compute-dtype", _dtype_name(compute_dtype)]
        if autocast is not None:
            command += ["--autocast", _dtype_name(autocast)]
        if dtype_layout:
            layout_file = Path(tmp) / "layout.json"
            layout_file.write_text(json.dumps(dtype_layout))
            command += ["--dtype-layout", str(layout_file)]
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)  # this helpers/, whatever sys.path says
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ReloadError(f"Reloading in a fresh process took more than {timeout} s and was stopped. "
                              "Pass a larger timeout= (a big model loads slowly from a slow disk).") from None
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-25:])
            raise ReloadError(f"Reloading in a fresh process failed (exit code {done.returncode}). "
                              f"The end of its error output:\n{tail}")
        result = load_file(str(out))
    return result["generated"] if generate else result["logits"]


def tolerance(reference, device: str, *, on_cpu: float = 1e-5, floor: float = 0.0) -> float:
    """How far a reloaded model's logits may be from `reference` and still be the same model: `on_cpu` on a CPU
    (the same kernels in the same order), else 1e-3 of the largest |logit| (at least of `floor`): GPU kernels pick
    their algorithm by the batch's shape, so the order of the sums, and so the rounding, may differ."""
    if device == "cpu":
        return on_cpu
    return 1e-3 * max(floor, reference.abs().max().item())


def compare(reference, reloaded, atol: float = 1e-5, what: str = "logits") -> float:
    """Print the largest difference between two predictions; raise ReloadMismatch beyond `atol`.

    Integer tensors (generated ids) must be equal; `atol` applies to floating-point ones.
    """
    import torch

    reference, reloaded = torch.as_tensor(reference).cpu(), torch.as_tensor(reloaded).cpu()
    if reference.shape != reloaded.shape:
        raise ReloadMismatch(f"{what}: shapes differ ({tuple(reference.shape)} trained, {tuple(reloaded.shape)} "
                             "reloaded): the reloaded model is not the same model, or the inputs differ.")
    if not reference.is_floating_point():
        differing = int((reference != reloaded).sum())
        print(f"{what}: {'identical' if not differing else f'{differing} of {reference.numel()} differ'}")
        if differing:
            raise ReloadMismatch(f"{what}: {differing} of {reference.numel()} differ after reloading. Check that the "
                                 "base, its dtype and quantisation are those of the training run.")
        return 0.0
    difference = (reference.double() - reloaded.double()).abs().max().item() if reference.numel() else 0.0
    print(f"{what}: max |difference| {difference:.2e} (tolerance {atol:.0e})"
          + (", identical" if difference == 0 else ""))
    if not difference <= atol:  # also catches NaN
        raise ReloadMismatch(
            f"{what} differ by up to {difference:.3g} after reloading, more than the tolerance {atol:g}. Check that "
            "the base model, its dtype and quantisation are those of the training run, and that the folder is the "
            "adapter just saved.")
    return difference


# ----------------------------------------------------------------------------- merging
@dataclass
class Merged:
    """What `export_merged` wrote, and how it relates to the trained model."""

    directory: Path
    exact: bool  # True: the same function as the trained model, up to float rounding
    note: str  # in words, for the notebook to print
    quantisation_error: float | None = None  # 4-bit base: mean relative error |W - NF4(W)| / |W| of its layers


def _is_4bit(model) -> bool:
    return any(type(m).__name__ in ("Linear4bit", "LinearNF4") for m in model.modules())


def _save_atomic(model, directory: Path, tokenizer=None) -> None:
    """Write to a temporary folder, then put it in place of `directory` (removed through checkpoints.remove,
    which on Google Drive empties the old files first, so that Drive's trash does not keep their gigabytes)."""
    tmp = directory.with_name(directory.name + ".partial")
    checkpoints.remove(tmp, say=None)
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    checkpoints.remove(directory, say=None)
    tmp.rename(directory)


def _dequantised(module):
    """The fp32 weight a bitsandbytes 4-bit layer computes with."""
    import bitsandbytes.functional as bf

    weight, state = module.weight, module.weight.quant_state
    data = weight.data
    if getattr(state, "packing_format_for_cpu", False):  # repacked for CPU inference: undo on a copy
        data, state = bf._convert_weight_packed_for_cpu_inverse(data.clone(), copy.deepcopy(state))
    return bf.dequantize_4bit(data, state).float()


def _quantisation_error(quantised_model, full_model) -> float:
    """Mean over the 4-bit layers of |W - dequantised NF4(W)| / |W| (Frobenius norms)."""
    full = dict(full_model.named_modules())
    errors = []
    for name, module in quantised_model.named_modules():
        if type(module).__name__ not in ("Linear4bit", "LinearNF4"):
            continue
        twin = full.get(name.replace("base_model.model.", "", 1).replace(".base_layer", ""))
        if twin is None:
            continue
        w = twin.weight.detach().float().cpu()
        errors.append(((w - _dequantised(module).cpu()).norm() / w.norm()).item())
    return sum(errors) / len(errors) if errors else float("nan")


def export_merged(peft_model, directory, *, base=None, tokenizer=None, dtype=None, in_place=False) -> Merged:
    """Write a standalone model with the adapter merged into the weights; say how it relates to the trained one.

    * LoRA on a 16/32-bit base: `merge_and_unload()` adds (alpha/r)·B·A to each adapted weight. The
      merged model computes the same function: predictions equal up to float rounding (about 1e-6
      relative in fp32). Works on a copy unless `in_place`, because merge_and_unload changes the
      PeftModel it is called on (its LoRA layers are gone afterwards).
    * LoRA on a 4-bit base (QLoRA): a merged 4-bit file would need re-quantising W + BA, which
      loses the adapter's small change in NF4's rounding. So the adapter is merged into a 16-bit
      copy of the base loaded unquantised from `base` (default: the adapter's base_model_name_or_path)
      in `dtype` (bf16 where the GPU has it, else fp16). That model differs from the trained one by
      the quantisation error: training saw NF4(W) + BA, the merged model computes W + BA. Neither
      is wrong, but their predictions differ by more than rounding; `quantisation_error` (mean
      |W - NF4(W)| / |W|) says how far the base weights moved, and a notebook should show the
      predictions of both rather than claim they are equal. Needs memory for the 16-bit base on the
      CPU (2 bytes a parameter: 40 GB for a 20B model).
    * Prompt tuning, P-tuning, prefix tuning: raise NothingToMerge. They learn virtual tokens fed
      alongside every input, not a change of the weights; the adapter folder is the model.
    """
    import torch

    directory = Path(directory)
    if not hasattr(peft_model, "peft_config"):
        raise NothingToMerge(f"{type(peft_model).__name__} is not a PEFT model, so there is no adapter to merge: "
                             "its weights are the model; save it with save_pretrained.")
    config = peft_model.peft_config[peft_model.active_adapter]
    if config.is_prompt_learning:
        raise NothingToMerge(
            f"{config.peft_type.value} learns virtual tokens that are fed alongside every input, not a change of "
            "the model's weights: there is nothing to merge. The adapter folder (a few KB) is what to keep; load it "
            "with PeftModel.from_pretrained(base_model, adapter_dir).")
    if not hasattr(peft_model, "merge_and_unload"):
        raise NothingToMerge(f"peft cannot merge a {config.peft_type.value} adapter into the weights: keep the adapter "
                             "folder and load it with PeftModel.from_pretrained(base_model, adapter_dir).")
    if not _is_4bit(peft_model):
        _check_disk_for(directory, sum(p.numel() * p.element_size() for p in peft_model.parameters()))
        model = peft_model if in_place else copy.deepcopy(peft_model)
        _save_atomic(model.merge_and_unload(), directory, tokenizer)
        return Merged(directory, True, "adapter merged into the weights: the same model, predictions equal up to "
                                       "float rounding")

    import transformers
    from peft import PeftModel

    base = base or config.base_model_name_or_path
    dtype = dtype or (torch.bfloat16 if runtime.has_native_bf16() else torch.float16)
    _check_room_for(peft_model, dtype)
    from .tiny import count_parameters

    _check_disk_for(directory, count_parameters(peft_model)[1] * torch.finfo(dtype).bits / 8)
    seq_cls = config.task_type == "SEQ_CLS"
    auto = transformers.AutoModelForSequenceClassification if seq_cls else transformers.AutoModelForCausalLM
    labels = {}
    if seq_cls:
        c = peft_model.config
        labels = dict(num_labels=c.num_labels, id2label=c.id2label, label2id=c.label2id)
    full = auto.from_pretrained(base, dtype=dtype, **labels)
    error = _quantisation_error(peft_model, full)
    with tempfile.TemporaryDirectory(prefix="adapter-") as tmp:
        peft_model.save_pretrained(tmp)
        merged = PeftModel.from_pretrained(full, tmp).merge_and_unload()
    _save_atomic(merged, directory, tokenizer)
    note = (f"adapter merged into a {str(dtype).replace('torch.', '')} copy of the unquantised base: it computes "
            f"W + BA where training saw NF4(W) + BA (base weights {100 * error:.1f} % apart on average), so its "
            "predictions differ from the 4-bit model's by more than rounding")
    return Merged(directory, False, note, error)


def _check_disk_for(directory: Path, need: float) -> None:
    """A clear message before writing a model that the disk cannot hold (not an I/O error half-way).

    Also a note when the model goes to Google Drive: a merged model (2 to 8 GB) is made again from the
    adapter in minutes and need not fill free Drive's 15 GB; checkpoints.local_dir is the runtime's disk.
    """
    elsewhere = ("checkpoints.local_dir(NOTEBOOK, PROFILE), the runtime's own disk" if checkpoints.on_drive(directory)
                 else "another directory")
    checkpoints.require_space(directory, need / 2**30, "The merged model",
                              fix=f"Free some space or write it elsewhere ({elsewhere}); the adapter folder already "
                                  "saved is the trained model meanwhile.")
    if checkpoints.on_drive(directory):
        print(f"note: the merged model ({need / 2**30:.1f} GiB) goes to Google Drive and counts against its 15 GB; "
              "checkpoints.local_dir(NOTEBOOK, PROFILE) would keep it on the runtime's disk.")


def _ram_shortfall(need_bytes: float) -> str | None:
    """None when `need_bytes` fit the free RAM (a tenth kept spare); else what is short, in words."""
    import psutil

    free = psutil.virtual_memory().available
    if need_bytes > 0.9 * free:
        return f"about {need_bytes / 2**30:.1f} GiB of memory needed and {free / 2**30:.1f} GiB is free"
    return None


def _check_room_for(peft_model, dtype) -> None:
    import torch

    from .tiny import count_parameters

    _, total = count_parameters(peft_model)
    short = _ram_shortfall(total * torch.finfo(dtype).bits / 8)
    if short:
        raise FriendlyError(f"Merging into a 16-bit base: {short}. Keep the adapter (the small file; load it on the "
                            "4-bit base), or merge on a machine with more memory.")


def merge_shortfall(parameters: int, directory) -> str | None:
    """Before loading a model only to merge it: None when this machine can hold its 16-bit copy in RAM and then
    write it to `directory`; else why not, in words (export_merged would refuse after the load)."""
    need = 2 * parameters
    short = _ram_shortfall(need)
    if short:
        return short
    try:
        checkpoints.require_space(directory, need / 2**30, "The merged model")
    except checkpoints.NotEnoughSpace as err:
        return str(err)
    return None


def checkpoint_bytes(model_path, parameters: int, bytes_per_parameter: int = 2) -> int:
    """Bytes of a checkpoint's weight files: counted in a local folder, else parameters x bytes (16-bit on the hub)."""
    folder = Path(str(model_path))
    if folder.is_dir():
        files = [*folder.glob("*.safetensors"), *folder.glob("*.bin")]
        if files:
            return sum(f.stat().st_size for f in files)
    return parameters * bytes_per_parameter


def read_timeout_s(nbytes: int, slowest_mb_per_s: float = 30.0, floor_s: int = 900) -> int:
    """Seconds to allow a fresh process that reads a checkpoint of `nbytes` (predictions_in_fresh_process): at the
    slowest disk we plan for (a Colab runtime's disk or a Drive mount can fall to tens of MB/s), never below `floor_s`."""
    return max(floor_s, int(nbytes / (slowest_mb_per_s * 1e6)) + floor_s // 3)


if __name__ == "__main__":
    sys.exit(main())
