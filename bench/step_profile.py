"""Where a training step's time goes, against what the whole-run estimate counts for it.

    python bench/step_profile.py --out results/step_profile.DATE.json       # on the GPU (about 2.5 minutes)
    python bench/step_profile.py --quick                                   # a CPU check of the script itself

Why: on the H200 (2026-12-04, docs/estimator.md "Whole runs") MiniLM's steps cost more the more tokens a batch
held, about 55-63 µs per padded token beyond the estimate (notebook 01: 130 ms a step at 8 x 205 tokens where
35 ms were counted; 04's batch 16: 61 ms at 16 x 40 against 28 ms), while batch 1 and SmolLM2's steps (03) came
within 5 %. Compute cannot explain it: MiniLM's products at 1,640 tokens take well under a millisecond on an
H200. This measures each suspect apart, on the real small models, without the Trainer:

* the step's wall time, steady (no synchronisation between steps, as in training);
* from torch.profiler: the GPU's busy time (sum of kernel times), how many kernels were launched, and how
  many times the host waited for the GPU (stream/device synchronisations and device-to-host copies), with the
  kernels that took longest;
* switched one at a time: the padding mask (all ones vs padded rows), dropout (the config's vs none), LoRA vs
  full fine-tuning, batch shapes from batch 1 to 8 x 512; SmolLM2 (03's model) as the control, and
  XLM-RoBERTa-large at 01's bench shapes (random weights of its exact config: time does not depend on them);
* beside each, the estimate of the same micro-batch and update (helpers.wholerun, this host's probe when
  NB_HOST_COSTS names one);
* what a step at a batch length not seen before costs over the same length seen once (`new_shapes`), with
  cuDNN's attention on and off: the suspect left after the H200 profile of 2026-12-05 (docs/estimator.md), where
  every case repeated one shape and showed no per-token cost.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from helpers import pretrained, recipe, runtime, tiny, wholerun  # noqa: E402

SHAPES = ((1, 17), (16, 40), (8, 205), (8, 512))        # 04's batch 1 and 16, 01's mean and longest batch
# CUDA runtime calls at which the host waits for the GPU (.item() and a bool of a GPU tensor end in one); copies
# (cudaMemcpy*) are counted apart
SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def _encoder(method: str, dropout: bool, device: str, name: str = "encoder"):
    """MiniLM (`encoder`, the real weights) or XLM-RoBERTa-large (`xlmr`, random weights of its exact config)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    extra = {} if dropout else {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    if name == "xlmr":
        config = tiny.full_config("xlm-roberta-large")
        for key, value in (extra | {"num_labels": 10}).items():
            setattr(config, key, value)
        model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(pretrained.folder("encoder"), num_labels=10,
                                                                   dtype=torch.float32, **extra)
    if method == "lora":   # 01's recipe
        model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=16,
                                                 lora_dropout=0.1 if dropout else 0.0, target_modules=["query", "value"],
                                                 modules_to_save=["classifier", "pooler"]))
    return model.to(device)


def _causal(device: str):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(pretrained.folder("causal"), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.05,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    return model.to(device)


def _batch(rows: int, length: int, padded: bool, device: str, causal: bool):
    generator = torch.Generator().manual_seed(rows * 1000 + length)
    ids = torch.randint(1000, 20000, (rows, length), generator=generator)
    mask = torch.ones_like(ids)
    if padded and rows > 1:   # lengths spread over the batch as dynamic padding leaves them: row i keeps ~i/rows
        for i in range(rows):
            mask[i, max(1, length * (i + 1) // rows):] = 0
    labels = ids.masked_fill(mask == 0, -100) if causal else torch.arange(rows) % 10
    return {k: v.to(device) for k, v in dict(input_ids=ids, attention_mask=mask, labels=labels).items()}


def _synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def measure(model, batch, device: str, precision: str, steps: int) -> dict:
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5, fused=device == "cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    model.train()

    def step():
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)     # as the Trainer does (max_grad_norm=1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    wall = (time.perf_counter() - started) / steps

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    profiled = 3
    try:
        with profile(activities=activities) as prof:
            for _ in range(profiled):
                step()
            _synchronize(device)
        events = prof.events()
    except Exception as problem:    # the timing above stands on its own; say why the breakdown is missing
        return {"wall_ms": round(wall * 1e3, 3), "gpu_busy_ms": None, "kernels": None, "host_waits": None,
                "copies": None, "aten_ops": None, "profile_error": f"{type(problem).__name__}: {problem}"[:300]}
    kernels = [e for e in events if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA]
    runtime_calls = [e for e in events if e.name.startswith("cuda")]
    busy = sum(e.device_time_total for e in kernels)
    by_kernel: dict = {}
    for e in kernels:
        by_kernel[e.name] = by_kernel.get(e.name, 0.0) + e.device_time_total
    top = sorted(by_kernel.items(), key=lambda kv: -kv[1])[:6]
    return {"wall_ms": round(wall * 1e3, 3),
            "gpu_busy_ms": round(busy / 1e3 / profiled, 3) if kernels else None,
            "kernels": len(kernels) // profiled if kernels else None,
            "host_waits": sum(1 for e in runtime_calls if e.name.startswith(SYNC_CALLS)) // profiled,
            "copies": sum(1 for e in runtime_calls if e.name.startswith("cudaMemcpy")) // profiled,
            "aten_ops": sum(1 for e in events if e.name.startswith("aten::")) // profiled,
            "top_kernels_ms": {name[:90]: round(t / 1e3 / profiled, 3) for name, t in top}}


def estimated_ms(method: str, causal: bool, rows: int, length: int, precision: str, gpu: str | None,
                 name: str = "encoder") -> dict | None:
    """The whole-run estimate's figure for one micro-batch and its update on `gpu` (None without a known GPU)."""
    if gpu is None:
        return None
    model = "xlm-roberta-large" if name == "xlmr" else pretrained.folder("causal" if causal else "encoder")
    ran = recipe.Recipe(model=model, task="causal-lm" if causal else "seq-cls", method=method, micro_batch=rows,
                        grad_accum=1, seq_len=length, precision=precision, optimizer="adamw_torch_fused",
                        num_labels=10, lora_r=16 if method == "lora" else None,
                        lora_targets=(["q_proj", "k_proj", "v_proj", "o_proj"] if causal else ["query", "value"])
                        if method == "lora" else None, weights_dtype="fp32")
    run = wholerun.plan(ran, gpu=gpu, updates=1, first_in_process=False)
    parts = run.parts
    return {"micro_batch_ms": round(1e3 * parts["micro-batches at their padded lengths"], 3),
            "fixed_ms": round(1e3 * parts["fixed cost per micro-batch"], 3),
            "update_ms": round(1e3 * parts["optimizer updates"], 3),
            "total_ms": round(1e3 * (run.estimate_s - parts["warm-up (kernels load, first steps)"]
                                     - parts["checkpoint writes"] - parts["evaluations"]), 3)}


def _timed_step(model, batch, device: str, precision: str, optimizer) -> float:
    """Seconds of one synchronised training step (forward, backward, clipping, AdamW)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    trainable = [p for p in model.parameters() if p.requires_grad]
    _synchronize(device)
    started = time.perf_counter()
    with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    _synchronize(device)
    return time.perf_counter() - started


def new_shapes(model, rows: int, lengths, device: str, precision: str, cudnn_attention: bool = True) -> dict:
    """What a batch of a length this process has not seen yet costs, against the same length seen once already.

    Dynamic padding gives every batch the length of its longest row, so a real run meets tens to hundreds of
    shapes (05 real: about 34 an epoch; 01 real: about 205 over its 480 micro-batches). Libraries that plan per
    shape (cuDNN's attention builds and caches a graph for each; cuBLAS picks an algorithm per shape) pay that
    once per shape and process. The suspect for the 2026-12-04 misses of 01 and 04 (docs/estimator.md)."""
    import statistics

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5, fused=device == "cuda")
    model.train()
    previous = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(cudnn_attention)
    try:
        batches = [_batch(rows, length, True, device, causal=False) for length in lengths]
        first = [_timed_step(model, b, device, precision, optimizer) for b in batches]    # each length new
        again = [_timed_step(model, b, device, precision, optimizer) for b in batches]    # each seen once
    finally:
        torch.backends.cuda.enable_cudnn_sdp(previous)
    per_shape = [f - a for f, a in zip(first, again)]
    return {"rows": rows, "lengths": [min(lengths), max(lengths)], "shapes": len(lengths),
            "cudnn_attention": cudnn_attention,
            "first_ms": round(1e3 * statistics.median(first), 3), "again_ms": round(1e3 * statistics.median(again), 3),
            "per_new_shape_ms": round(1e3 * statistics.median(per_shape), 3),
            "per_new_shape_total_s": round(sum(per_shape), 3)}


def cases(quick: bool):
    shapes = SHAPES[:2] if quick else SHAPES
    for rows, length in shapes:                      # 01's recipe as it trains, padded batches
        yield dict(model="encoder", method="lora", rows=rows, length=length, padded=True, dropout=True)
    for rows, length in shapes[1:]:                  # one suspect switched off at a time
        yield dict(model="encoder", method="lora", rows=rows, length=length, padded=False, dropout=True)
        yield dict(model="encoder", method="lora", rows=rows, length=length, padded=True, dropout=False)
        yield dict(model="encoder", method="full", rows=rows, length=length, padded=True, dropout=True)
    if not quick:                                    # the control that came within 5 % (03's model)
        for rows, length in ((1, 17), (4, 256)):
            yield dict(model="causal", method="lora", rows=rows, length=length, padded=True, dropout=True)
        for rows, length in SHAPES[2:]:              # 01's bench model (3.4x its steady estimate in 2026-11)
            for padded in (True, False):
                yield dict(model="xlmr", method="lora", rows=rows, length=length, padded=padded, dropout=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write the measurements to this JSON file")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per case")
    parser.add_argument("--quick", action="store_true", help="two shapes, MiniLM only, 3 steps (a check on a CPU)")
    parser.add_argument("--gpu", help="estimate for this GPU (default: the one in hand; none on a CPU)")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = "bf16" if device == "cuda" and runtime.has_native_bf16() else (
        "fp16" if device == "cuda" else "fp32")
    gpu = args.gpu or wholerun._this_gpu()
    steps = 3 if args.quick else args.steps
    rows_out, loaded = [], {}
    for case in cases(args.quick):
        key = (case["model"], case["method"], case["dropout"])
        if key not in loaded:
            loaded.clear()                          # one model on the device at a time
            if device == "cuda":
                torch.cuda.empty_cache()
            loaded[key] = _causal(device) if case["model"] == "causal" else _encoder(case["method"], case["dropout"],
                                                                                    device, case["model"])
        causal = case["model"] == "causal"
        batch = _batch(case["rows"], case["length"], case["padded"], device, causal)
        measured = measure(loaded[key], batch, device, precision, steps)
        row = case | {"padded_tokens": case["rows"] * case["length"], "measured": measured,
                      "estimated": estimated_ms(case["method"], causal, case["rows"], case["length"], precision, gpu,
                                                case["model"])}
        rows_out.append(row)
        est = row["estimated"]
        print(f"{case['model']:7} {case['method']:4} {case['rows']:2} x {case['length']:3} "
              f"{'padded' if case['padded'] else 'no pad'} {'dropout' if case['dropout'] else 'no drop'}: "
              f"{measured['wall_ms']:7.2f} ms a step (GPU busy {measured['gpu_busy_ms']} ms, "
              f"{measured['kernels']} kernels, {measured['host_waits']} host waits); estimated "
              f"{est['total_ms'] if est else '-'} ms", flush=True)
    # the cost of a shape seen for the first time, with cuDNN's attention and without it (on lengths of their own:
    # a length either variant has met is no longer new to the other's cuBLAS)
    loaded.clear()
    model = _encoder("lora", True, device)
    spans = ((41, 44), (45, 48)) if args.quick else ((41, 81), (81, 121))
    shape_rows = []
    for (low, high), cudnn_attention in zip(spans, (True, False)):
        shape_rows.append(new_shapes(model, 16, range(low, high), device, precision, cudnn_attention))
        r = shape_rows[-1]
        print(f"encoder lora 16 x {low}-{high - 1}, cuDNN attention {'on ' if cudnn_attention else 'off'}: "
              f"{r['first_ms']:7.2f} ms a step at a new length, {r['again_ms']:7.2f} ms seen once: "
              f"{r['per_new_shape_ms']:.2f} ms a new shape", flush=True)
    del model
    out = {"what": "one training step of the real small models, timed and profiled without the Trainer, beside "
                   "the whole-run estimate of the same micro-batch and update (bench/step_profile.py)",
           "gpu": runtime.gpu_info(), "versions": runtime.versions(), "date": runtime.today(),
           "precision": precision, "host_costs": wholerun.host_costs().get("source"), "steps": steps,
           "cases": rows_out, "new_shapes": shape_rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
