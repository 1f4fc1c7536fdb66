"""Where the estimator's activation coefficients come from: count what autograd saves.

For each architecture family and training regime this builds small random models of the same
code (transformers' own modelling files) on the CPU, runs one forward pass with
`torch.autograd.graph.saved_tensors_hooks` recording every tensor kept for the backward pass,
and fits the bytes saved per transformer block to

    bytes = tokens * (c_h * hidden + c_i * intermediate) + tokens * heads * seq * c_att

by least squares over several shapes (blocks = difference between a 3- and a 2-block model, so
embeddings and head drop out). The printed table is what `helpers/estimate.py` holds in
`ACTIVATION_COEFFS`; the GPU calibration (bench/calibrate.py) then checks the whole estimate
against measured peaks.

    python bench/trace_activations.py            # about 5 minutes on 2 CPU cores

Regimes: `full` (every weight trainable), `frozen` (weights frozen, the input needs a gradient:
prompt and prefix methods, the frozen base under LoRA), `qlora` (NF4 base after
prepare_model_for_kbit_training). `amp` = fp32 weights under autocast (Trainer fp16/bf16),
`bf16`/`fp32` = weights and activations in that dtype, no autocast. The LoRA increment per
adapted linear layer (`c_lora`, bytes per token per input feature) is fitted separately.
Autocast on the CPU uses bf16 (same byte sizes as fp16 on a GPU).
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings

import numpy as np
import torch

FAMILIES = {  # family -> task the recipes use it for
    "roberta": "seq-cls",
    "bloom": "seq-cls",
    "gpt-neox": "causal-lm",
    "phi3": "causal-lm",
}
SHAPES = [  # hidden, intermediate, heads, batch, seq
    (256, 1024, 4, 1, 64), (256, 1024, 4, 2, 64), (256, 512, 4, 1, 128),
    (128, 1024, 4, 2, 32), (256, 1024, 8, 1, 96), (128, 512, 2, 3, 64),
]


def saved_bytes(model, batch: dict, autocast_dtype=None) -> int:
    """Bytes of the distinct non-parameter storages autograd keeps after one forward pass."""
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in param_storages:
            seen[ptr] = storage.nbytes()
        return tensor

    device = next(model.parameters()).device.type
    amp = torch.autocast(device, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), amp:
        model(**batch)
    return sum(seen.values())


def small_config(family: str, layers: int, h: int, i: int, heads: int):
    import transformers

    if family == "roberta":
        return transformers.RobertaConfig(
            vocab_size=1000, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=i, max_position_embeddings=1030, type_vocab_size=1, num_labels=2,
            pad_token_id=1)
    if family == "bloom":
        return transformers.BloomConfig(vocab_size=1000, hidden_size=h, n_layer=layers, n_head=heads,
                                        hidden_dropout=0.0, attention_dropout=0.0, num_labels=2,
                                        pad_token_id=3)
    if family == "gpt-neox":
        return transformers.GPTNeoXConfig(
            vocab_size=1000, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=i, rotary_pct=0.25, use_parallel_residual=True,
            tie_word_embeddings=False, max_position_embeddings=2048)
    if family == "phi3":
        return transformers.Phi3Config(
            vocab_size=1000, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=heads, intermediate_size=i, max_position_embeddings=4096,
            tie_word_embeddings=False, pad_token_id=0)
    raise ValueError(family)


QV = {"roberta": ["query", "value"], "bloom": ["query_key_value"], "gpt-neox": ["query_key_value"],
      "phi3": ["qkv_proj"]}


def build(family: str, regime: str, layers: int, h: int, i: int, heads: int, tmp: str):
    """(model, autocast dtype) for a regime name such as 'full-amp', 'frozen-bf16', 'lora-amp'."""
    import peft
    import transformers

    task = FAMILIES[family]
    auto = (transformers.AutoModelForSequenceClassification if task == "seq-cls"
            else transformers.AutoModelForCausalLM)
    config = small_config(family, layers, h, i, heads)
    kind, precision = regime.split("-")
    peft_task = "SEQ_CLS" if task == "seq-cls" else "CAUSAL_LM"
    if kind == "qlora":
        path = os.path.join(tmp, f"{family}-{layers}-{h}-{i}-{heads}")
        if not os.path.exists(path):
            auto.from_config(config, dtype=torch.bfloat16).save_pretrained(path)
        quant = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            llm_int8_skip_modules=["classifier", "score"] if task == "seq-cls" else None)
        model = auto.from_pretrained(path, quantization_config=quant)
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_dropout=0.1, target_modules=QV[family],
                                                           task_type=peft_task))
        model.train()
        return model, torch.bfloat16
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = auto.from_config(config, dtype=dtype)
    model.train()
    if kind == "frozen":
        for p in model.parameters():
            p.requires_grad_(False)
        model.enable_input_require_grads()
    elif kind == "lora":
        model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_dropout=0.1, target_modules=QV[family],
                                                           task_type=peft_task))
    return model, (torch.bfloat16 if precision == "amp" else None)


def linear_params_per_block(model) -> int:
    block = None
    for name, module in model.named_modules():
        if name.endswith(("layer.0", "h.0", "layers.0")):
            block = module
            break
    return sum(m.weight.numel() for n, m in block.named_modules()
               if isinstance(m, torch.nn.Linear) and "lora_" not in n)


def per_block(family: str, regime: str, tmp: str):
    """Rows (tokens*h, tokens*i, tokens*heads*seq, linear params) and saved bytes per block."""
    rows, ys = [], []
    for h, i, heads, b, s in SHAPES:
        if family == "bloom":
            i = 4 * h  # BLOOM's MLP is fixed at 4h
        values = []
        for layers in (2, 3):
            torch.manual_seed(0)
            model, amp = build(family, regime, layers, h, i, heads, tmp)
            ids = torch.randint(5, 900, (b, s))
            labels = ids if FAMILIES[family] == "causal-lm" else torch.randint(0, 2, (b,))
            values.append(saved_bytes(model, dict(input_ids=ids, labels=labels), amp))
        t = b * s
        rows.append([t * h, t * i, t * heads * s, linear_params_per_block(model), t * adapted_inputs(family, h)])
        ys.append(values[1] - values[0])
    return np.array(rows, float), np.array(ys, float)


def adapted_inputs(family: str, h: int) -> int:
    """Input features summed over the LoRA-adapted linears of one block (QV above)."""
    return 2 * h if family == "roberta" else h


def main() -> None:
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    tmp = tempfile.mkdtemp()
    print("family    regime        c_h     c_i   c_att  copy_B/param  c_lora  max_fit_err")
    for family in FAMILIES:
        frozen = {}
        for regime in ("full-amp", "full-bf16", "full-fp32", "frozen-amp", "frozen-bf16", "frozen-fp32",
                       "lora-amp", "lora-bf16", "qlora-amp"):
            x, y = per_block(family, regime, tmp)
            kind, precision = regime.split("-")
            if kind in ("lora", "qlora"):
                # the frozen base of the same precision, then the increment per adapted input feature
                base_regime = "frozen-" + precision if kind == "lora" else None
                if base_regime:
                    base = x[:, :4] @ frozen[base_regime]
                    c_lora = float(np.linalg.lstsq(x[:, 4:5], y - base, rcond=None)[0][0])
                    coef = frozen[base_regime]
                    fit = base + c_lora * x[:, 4]
                else:  # qlora: fit base coefficients with the LoRA increment of lora-amp held fixed
                    c_lora = frozen["c_lora-amp"]
                    coef = np.linalg.lstsq(x[:, :3], y - c_lora * x[:, 4], rcond=None)[0]
                    coef = np.append(coef, 0.0)
                    fit = x[:, :4] @ coef + c_lora * x[:, 4]
                frozen["c_lora-" + precision] = c_lora
            else:
                coef = np.linalg.lstsq(x[:, :4], y, rcond=None)[0]
                fit = x[:, :4] @ coef
                frozen[regime] = coef
                c_lora = float("nan")
            err = float(np.max(np.abs(fit - y) / y))
            print(f"{family:9s} {regime:11s} {coef[0]:6.2f} {coef[1]:7.2f} {coef[2]:7.2f} {coef[3]:10.2f}"
                  f"  {c_lora:7.2f}  {err:8.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
