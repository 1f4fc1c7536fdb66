"""The estimator's memory terms one at a time, against figures worked out by hand (CPU, no download)."""
import pytest

from helpers import estimate as est
from helpers import gpus

GIB = 2**30
NEOX = "EleutherAI/gpt-neox-20b"


@pytest.fixture(scope="module")
def neox_qlora():
    return est.model_facts(NEOX, method="qlora", lora_r=8, lora_targets=["query_key_value"])


@pytest.fixture(scope="module")
def roberta_full():
    return est.model_facts("roberta-base", task="seq-cls", method="full")


def test_qlora_weights_are_4127_bits_per_quantised_weight_and_fp32_elsewhere(neox_qlora):
    facts = neox_qlora
    quantised = 44 * 12 * 6144**2  # 44 blocks of qkv (3h^2) + dense (h^2) + MLP (8h^2)
    parts = est._weights_bytes(facts, "nf4", double_quant=True)
    assert list(parts) == ["weights (NF4, blocks' linear layers)", "weights (fp32: embeddings, head, norms)",
                           "trainable adapters (fp32)"]
    assert parts["weights (NF4, blocks' linear layers)"] * 8 / quantised == pytest.approx(4.127, abs=5e-4)
    assert parts["weights (fp32: embeddings, head, norms)"] == (20_554_567_680 - quantised) * 4
    assert parts["trainable adapters (fp32)"] == 8_650_752 * 4
    # without double quantisation each block of 64 weights keeps an fp32 absmax: 4.5 bits
    single = est._weights_bytes(facts, "nf4", double_quant=False)["weights (NF4, blocks' linear layers)"]
    assert single * 8 / quantised == pytest.approx(4.5)


def test_weights_follow_their_dtype(roberta_full):
    p = roberta_full.base_params
    assert est._weights_bytes(roberta_full, "fp32", True) == {"weights (fp32)": 4 * p}
    assert est._weights_bytes(roberta_full, "bf16", True) == {"weights (bf16)": 2 * p}
    # trained 16-bit weights keep 16-bit gradients; trained fp32 and NF4-based adapters are fp32
    assert est._trainable_bytes(roberta_full, "bf16") == 2
    assert est._trainable_bytes(roberta_full, "fp32") == 4


def test_full_fine_tuning_peaks_at_the_step_with_16_bytes_a_parameter(roberta_full):
    """fp32 weights 4 + AdamW's moments 8 + gradients 4; a foreach AdamW adds a 4-byte temporary."""
    p = roberta_full.trainable_params
    assert p == roberta_full.base_params  # every weight trains
    for optimizer, per_param in (("adamw", 16), ("adamw_torch", 20)):
        e = est.estimate("roberta-base", task="seq-cls", method="full", optimizer=optimizer, precision="fp32",
                         micro_batch=1, seq_len=128)
        assert e.inputs["phase_at_peak"] == "optimizer step"
        assert e.peak_allocated_gib * GIB == pytest.approx(per_param * p, rel=1e-12)


def test_slack_of_full_fine_tuning_grows_with_the_embedding_gradient(roberta_full):
    e = est.estimate("roberta-base", task="seq-cls", method="full", precision="fp32", micro_batch=1, seq_len=128)
    embedding_grad = 50265 * 768 * 4  # the largest trainable tensor, fp32
    # without a GPU, sdpa's math kernel keeps RoBERTa's dropped-out probabilities: 12 bytes each
    attention_probs = 1 * 12 * 128 * 128 * 12
    expected = 0.10 + (1.2 * embedding_grad + 0.75 * attention_probs) / GIB
    assert e.components["allocator_slack"] == pytest.approx(expected, rel=1e-12)
    assert e.peak_reserved_gib - e.peak_allocated_gib == pytest.approx(e.components["allocator_slack"], rel=1e-9)


def test_checkpointing_keeps_only_each_blocks_input():
    facts = est.model_facts("roberta-large", task="seq-cls", method="full")
    tokens = 8 * 512
    block = est._block_activation_bytes(facts, "full", "bf16", "fp32", tokens, 512, 0.0)
    # amp over fp32 weights: 0.83 * (34 h + 4 i) per token, plus the 16-bit copy of the block's weights
    assert block == pytest.approx(0.83 * tokens * (34 * 1024 + 4 * 4096) + 2 * facts.block_linear_params)
    kept, recomputed = est._activation_bytes(facts, "full", block, tokens, "fp32", checkpointing=False)
    assert (kept, recomputed) == (24 * block, 0.0)
    kept_ckpt, recomputed_ckpt = est._activation_bytes(facts, "full", block, tokens, "fp32", checkpointing=True)
    assert kept_ckpt == 24 * tokens * 1024 * 4  # fp32 residual stream
    assert recomputed_ckpt == block
    assert kept_ckpt < kept / 10
    # 16-bit weights carry a 16-bit residual stream
    assert est._activation_bytes(facts, "full", block, tokens, "bf16", checkpointing=True)[0] == kept_ckpt / 2


def test_a_frozen_model_with_no_trained_block_keeps_no_block_activations():
    facts = est.model_facts("roberta-base", task="seq-cls", method="frozen", trainable_blocks=0)
    assert est._block_activation_bytes(facts, "frozen", "bf16", "fp32", 4096, 512, 0.0) == 0.0
    assert est._activation_bytes(facts, "frozen", 0.0, 4096, "fp32", checkpointing=True)[0] == 0


def test_virtual_tokens_lengthen_queries_or_only_keys():
    assert est._sequence_lengths("prompt", 100, 20) == (120, 120)
    assert est._sequence_lengths("ptuning", 100, 20) == (120, 120)
    assert est._sequence_lengths("prefix", 100, 20) == (100, 120)
    assert est._sequence_lengths("lora", 100, 20) == (100, 100)


def test_prefix_cache_holds_every_layers_keys_and_values_in_fp32():
    facts = est.model_facts("bigscience/bloom-560m", method="prefix", num_virtual_tokens=10)
    assert est._prefix_cache_bytes(facts, "prefix", 4, 266) == 24 * 2 * 4 * 266 * 1024 * 4
    assert est._prefix_cache_bytes(facts, "prompt", 4, 266) == 0.0


def test_logits_and_the_head_copy_only_for_a_causal_lm():
    facts = est.model_facts("bigscience/bloom-560m", method="lora")
    assert est._logits_bytes(facts, 2, 64) == 2 * 64 * 250880 * 13.0
    assert est._head_copy_bytes(facts, "bf16", "fp32") == 2 * 250880 * 1024  # tied embeddings as lm_head
    assert est._head_copy_bytes(facts, "fp32", "fp32") == 0.0  # no autocast, no copy
    cls = est.model_facts("bigscience/bloom-560m", task="seq-cls", method="lora")
    assert est._logits_bytes(cls, 2, 64) == 0.0
    assert est._head_copy_bytes(cls, "bf16", "fp32") == 0.0


def test_dequantised_weight_is_the_largest_linear_in_bf16_and_twice_under_fp16(neox_qlora):
    mlp_up = 4 * 6144 * 6144
    assert est._dequantised_weight_bytes(neox_qlora, "qlora", "bf16") == 2 * mlp_up
    assert est._dequantised_weight_bytes(neox_qlora, "qlora", "fp16") == 4 * mlp_up
    assert est._dequantised_weight_bytes(neox_qlora, "lora", "fp16") == 0.0


def test_paged_state_leaves_pytorchs_allocator(neox_qlora):
    in_torch, paged = est._optimizer_bytes(neox_qlora, "adamw_8bit", 4)
    assert paged == 0.0
    assert (0.0, in_torch) == est._optimizer_bytes(neox_qlora, "paged_adamw_8bit", 4)
    # the adapters are large tensors: two 1-byte moments + an fp32 absmax per 256 values each
    assert in_torch == pytest.approx(8_650_752 * (2 + 2 * 4 / 256))
    assert est._optimizer_bytes(neox_qlora, "adamw", 4) == (8 * 8_650_752, 0.0)


def test_context_and_driver_only_on_a_gpu():
    t4 = gpus.get("T4")
    assert est._cuda_context_bytes(None, "qlora", "adamw") == 0.0
    assert est._driver_reserved_bytes(None) == 0.0
    assert est._cuda_context_bytes(t4, "lora", "adamw") == pytest.approx(0.745 * GIB)
    assert est._cuda_context_bytes(t4, "lora", "paged_adamw_8bit") == pytest.approx(0.795 * GIB)
    assert est._cuda_context_bytes(t4, "qlora", "adamw") == pytest.approx(0.795 * GIB)
    assert est._driver_reserved_bytes(t4) == pytest.approx(0.604 * GIB)


def _memory(**terms):
    zero = {name: 0.0 for name in est._Memory.__dataclass_fields__}
    return est._Memory(**{**zero, "weights": {}, **terms})


def test_phases_add_what_each_holds():
    m = _memory(activations=100.0, prefix_cache=7.0, logits=30.0, head_copy=5.0, recomputed_block=10.0,
                backward_working_set=12.0, dequantised_weight=3.0, early_gradients=1.0, block_activations=10.0,
                block_gradients=200.0, head_gradients=4.0, gradients=250.0, optimizer_temporaries=50.0)
    # start: activations + cache + the larger of the head's backward (35) and a block's (25) + early gradients
    assert m.phases("full") == {"backward (start)": 143.0, "backward (end)": 229.0, "optimizer step": 300.0}
    assert m.phases("lora")["backward (end)"] == 0.0  # no weight gradients pile up without trained weights
    assert est._peak(m.phases("full")) == ("optimizer step", 300.0)
    assert est._peak(m.phases("lora")) == ("optimizer step", 300.0)
    # a tie goes to the name that sorts last
    assert est._peak({"backward (start)": 5.0, "backward (end)": 5.0, "optimizer step": 1.0})[0] == "backward (start)"


@pytest.mark.parametrize("kwargs", [
    dict(model="roberta-large", task="seq-cls", method="full", micro_batch=8, seq_len=512,
         gradient_checkpointing=True, gpu="A100-80GB"),
    dict(model="roberta-base", task="seq-cls", method="full", micro_batch=1, seq_len=128, optimizer="adamw_torch"),
    dict(model="bigscience/bloom-560m", method="prefix", micro_batch=4, seq_len=256, gpu="H200"),
    dict(model="roberta-large", task="seq-cls", method="lora", lora_targets=["query", "value"], micro_batch=8,
         seq_len=512, gradient_checkpointing=True, gpu="T4"),
    dict(model=NEOX, method="qlora", lora_targets=["query_key_value"], optimizer="paged_adamw_8bit",
         precision="fp16", gradient_checkpointing=True, seq_len=64, gpu="T4"),
])
def test_the_terms_at_the_peak_add_up_to_it(kwargs):
    e = est.estimate(kwargs.pop("model"), **kwargs)
    outside_allocated = ("allocator slack (reserved - allocated)", "optimizer state (paged: outside PyTorch)",
                         "CUDA context and kernels", "driver-reserved memory (NVML counts it)")
    allocated = sum(v for k, v in e.breakdown.items() if k not in outside_allocated)
    assert allocated == pytest.approx(e.peak_allocated_gib, rel=1e-12)
    assert sum(e.breakdown.values()) == pytest.approx(e.peak_device_gib, rel=1e-12)
    c = e.components
    assert e.peak_device_gib == pytest.approx(
        e.peak_reserved_gib + c["cuda_context"] + c["driver_reserved"] + c["optimizer_state_paged"], rel=1e-12)


def test_each_phase_can_hold_the_peak():
    phases = {est.estimate(model, task=task, method="full", gradient_checkpointing=gc, micro_batch=mb,
                           seq_len=s).inputs["phase_at_peak"]
              for model, task, gc, mb, s in (("roberta-large", "seq-cls", True, 8, 512),
                                             ("roberta-base", "seq-cls", False, 1, 128),
                                             ("bigscience/bloom-560m", "causal-lm", False, 8, 512))}
    assert phases == {"backward (start)", "backward (end)", "optimizer step"}
