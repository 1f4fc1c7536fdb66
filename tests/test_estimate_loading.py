"""What the estimator assumes of how a model loads and scores: the checkpoint's own dtype, as transformers 5 loads it, and TRL's fused LM head (issue 18)."""
import json

import torch
import transformers
from safetensors.torch import save_file

from helpers import estimate


def test_known_hub_checkpoints_load_in_their_own_dtype():
    assert estimate.checkpoint_dtype("bigscience/bloom-560m")[0] == "fp16"        # its weight files are fp16
    assert estimate.checkpoint_dtype("xlm-roberta-large")[0] == "fp32"
    assert estimate.checkpoint_dtype("EleutherAI/gpt-neox-20b")[0] == "fp16"      # config.json: float16
    assert estimate.checkpoint_dtype("microsoft/Phi-3-mini-4k-instruct")[0] == "bf16"


def test_a_folder_says_its_dtype_in_its_config_or_its_weight_files(tmp_path):
    with_config = tmp_path / "a"
    with_config.mkdir()
    (with_config / "config.json").write_text(json.dumps({"model_type": "bert", "dtype": "bfloat16"}))
    assert estimate.checkpoint_dtype(str(with_config)) == ("bf16", "its config.json's dtype")
    weights_only = tmp_path / "b"
    weights_only.mkdir()
    (weights_only / "config.json").write_text(json.dumps({"model_type": "bert"}))
    save_file({"ids": torch.zeros(3, dtype=torch.int64), "w": torch.zeros(2, 2, dtype=torch.float16)},
              str(weights_only / "model.safetensors"))
    assert estimate.checkpoint_dtype(str(weights_only)) == ("fp16", "its weight files' dtype")
    config = transformers.BertConfig()
    assert estimate.checkpoint_dtype(config)[0] == "fp32"                       # names none: fp32
    config.dtype = torch.bfloat16
    assert estimate.checkpoint_dtype(config) == ("bf16", "the config's dtype")


def test_the_estimate_says_which_dtype_it_assumed_and_warns_of_fp16_under_the_fp16_scaler():
    kwargs = dict(task="seq-cls", method="full", optimizer="adam", precision="fp16", micro_batch=1, seq_len=256)
    default = estimate.estimate("bigscience/bloom-560m", **kwargs)
    as_loaded = estimate.estimate("bigscience/bloom-560m", weights_dtype="fp32", **kwargs)
    assert default.inputs["weights_dtype"] == "fp16" and as_loaded.inputs["weights_dtype"] == "fp32"
    assert default.peak_allocated_gib < as_loaded.peak_allocated_gib
    assert any("weights assumed fp16" in n and "refuses fp16 gradients" in n for n in default.notes)
    assert not any("weights assumed" in n for n in as_loaded.notes)
    qlora = estimate.estimate("EleutherAI/gpt-neox-20b", method="qlora", lora_targets=["query_key_value"],
                              optimizer="paged_adamw_8bit", precision="fp16", micro_batch=1, seq_len=64)
    assert qlora.inputs["weights_dtype"] == "nf4" and not any("weights assumed" in n for n in qlora.notes)


def test_trls_fused_head_never_makes_the_full_logits():
    """TRL 1.x's SFTTrainer scores tokens one tile of logits at a time (trl.kernels.chunked_logprob): no 13 bytes
    per logit and no causal-LM allocator slack. Measured on the H200 (2026-12-04, notebook 03 real): 1.918 GiB."""
    from helpers import recipe
    from trl import SFTConfig

    kwargs = dict(task="causal-lm", method="qlora", lora_r=16, lora_targets="all-linear", optimizer="paged_adamw_32bit",
                  precision="bf16", gradient_checkpointing=True, micro_batch=4, seq_len=110, grad_accum=4, gpu="H200")
    whole = estimate.estimate("microsoft/Phi-3-mini-4k-instruct", **kwargs)
    tiled = estimate.estimate("microsoft/Phi-3-mini-4k-instruct", fused_head=True, **kwargs)
    assert tiled.components["logits"] < whole.components["logits"] / 5
    assert abs(tiled.peak_device_gib / 4.873 - 1) < 0.05       # 03 bench on the H200, 2026-11-23: 4.873 GiB
    config = SFTConfig(output_dir="unused", per_device_train_batch_size=4, report_to=[], use_cpu=True, bf16=False)
    assert recipe.read("microsoft/Phi-3-mini-4k-instruct", training=config, seq_len=110, task="causal-lm").fused_head
    assert not recipe.read("microsoft/Phi-3-mini-4k-instruct", training=dict(per_device_train_batch_size=4),
                           seq_len=110, task="causal-lm").fused_head
