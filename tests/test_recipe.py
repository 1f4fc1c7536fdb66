"""helpers.recipe: the estimator's figures read off the notebook's own config objects (issue 16)."""
import pytest
from peft import LoraConfig, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig
from transformers import BitsAndBytesConfig, TrainingArguments

from helpers import estimate, recipe

LORA = LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=16, lora_dropout=0.1, bias="none",
                  target_modules=["query", "value"], modules_to_save=["classifier"])
TRAINING = dict(per_device_train_batch_size=8, gradient_accumulation_steps=4, learning_rate=3e-4, fp16=True)


def test_a_lora_recipe_reads_as_the_estimator_keywords_written_by_hand():
    read = recipe.read("xlm-roberta-large", training=TRAINING, peft_config=LORA, seq_len=512, num_labels=214)
    assert (read.task, read.method, read.lora_r, read.lora_targets) == ("seq-cls", "lora", 16, ["query", "value"])
    assert (read.micro_batch, read.grad_accum, read.precision, read.optimizer) == (8, 4, "fp16", "adamw_torch_fused")
    by_hand = estimate.estimate("xlm-roberta-large", task="seq-cls", num_labels=214, method="lora", lora_r=16,
                                lora_targets=["query", "value"], optimizer="adamw_torch_fused", precision="fp16",
                                micro_batch=8, seq_len=512, grad_accum=4, gpu="T4")
    assert read.estimate(gpu="T4").as_dict() == by_hand.as_dict()


def test_training_arguments_and_their_dict_give_the_same_recipe(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, optim="paged_adamw_8bit",
                             gradient_checkpointing=True, **{k: v for k, v in TRAINING.items() if k != "fp16"})
    from_args = recipe.read("xlm-roberta-large", training=args, peft_config=LORA, seq_len=128)
    from_dict = recipe.read("xlm-roberta-large", training={**TRAINING, "fp16": False, "optim": "paged_adamw_8bit",
                                                           "gradient_checkpointing": True},
                            peft_config=LORA, seq_len=128)
    assert from_args == from_dict
    assert (from_args.optimizer, from_args.gradient_checkpointing, from_args.precision) == \
        ("paged_adamw_8bit", True, "fp32")


def test_a_gpu_sets_the_precision_the_notebooks_would_use_there():
    read = recipe.read("xlm-roberta-large", training={**TRAINING, "fp16": False}, peft_config=LORA, seq_len=64)
    assert read.for_gpu("T4").precision == "fp16" and read.for_gpu("A100-80GB").precision == "bf16"
    assert read.for_gpu(None).precision == "fp32"
    assert read.estimate(gpu="T4", micro_batch=2).inputs["micro_batch"] == 2


def test_four_bit_lora_is_qlora_with_its_double_quantisation():
    four_bit = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=False)
    lora = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=32, target_modules=["query_key_value"])
    read = recipe.read("EleutherAI/gpt-neox-20b", training=dict(per_device_train_batch_size=1), peft_config=lora,
                       quantization=four_bit, seq_len=64)
    assert (read.method, read.task, read.double_quant, read.lora_targets) == \
        ("qlora", "causal-lm", False, ["query_key_value"])


@pytest.mark.parametrize("config, method", [
    (PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20), "prompt"),
    (PromptEncoderConfig(task_type="SEQ_CLS", num_virtual_tokens=20), "ptuning"),
    (PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20), "prefix"),
])
def test_virtual_token_methods(config, method):
    read = recipe.read("roberta-large", training=TRAINING, peft_config=config, seq_len=128)
    assert (read.method, read.num_virtual_tokens) == (method, 20)
    assert read.estimate(gpu="T4").trainable_params > 0


def test_full_and_frozen_need_no_peft_config():
    full = recipe.read("roberta-large", training=TRAINING, task="seq-cls", seq_len=128)
    frozen = recipe.read("roberta-large", training=TRAINING, task="seq-cls", seq_len=128, trainable_blocks=4)
    assert (full.method, frozen.method, frozen.trainable_blocks) == ("full", "frozen", 4)
    assert frozen.estimate(gpu="T4").trainable_params < full.estimate(gpu="T4").trainable_params


@pytest.mark.parametrize("kwargs, words", [
    (dict(training=dict(gradient_accumulation_steps=4), task="seq-cls"), "per_device_train_batch_size"),
    (dict(training={**TRAINING, "optim": "sgd"}, task="seq-cls"), "optim='sgd'"),
    (dict(training=TRAINING), "task=None"),
    (dict(training=TRAINING, task="seq-cls", quantization=BitsAndBytesConfig(load_in_4bit=True)), "QLoRA"),
])
def test_a_recipe_it_cannot_read_is_named_with_the_fix(kwargs, words):
    with pytest.raises(recipe.RecipeError, match=None) as err:
        recipe.read("roberta-large", seq_len=128, **kwargs)
    assert words in str(err.value)


def test_transformers_5s_activation_checkpointing_counts_as_checkpointing():
    # TrainingArguments / SFTConfig name it activation_checkpointing now; a dict recipe read it as "off" before
    read = recipe.read("microsoft/Phi-3-mini-4k-instruct", seq_len=512, task="causal-lm",
                       training=dict(per_device_train_batch_size=4, activation_checkpointing=True,
                                     optim="paged_adamw_32bit"))
    assert read.gradient_checkpointing and read.optimizer == "paged_adamw_32bit"


# ----------------------------------------------------------------------------- a head of several modules
# BERT's counterpart of RoBERTa's two-layer head is its pooler plus the classifier (notebooks 01 and 05 in `real`
# train both): the estimator must count what the recipe saves, or its trainable parameters disagree with peft's.
def tiny_bert(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    return BertForSequenceClassification, str(tmp_path)


@pytest.mark.parametrize("config", [
    PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=4, modules_to_save=["classifier", "pooler"]),
    LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"], modules_to_save=["classifier", "pooler"]),
], ids=["prompt", "lora"])
def test_the_estimate_counts_every_module_a_peft_config_saves(config, tmp_path):
    import copy
    import dataclasses

    from peft import get_peft_model

    model_class, folder = tiny_bert(tmp_path)
    model = get_peft_model(model_class.from_pretrained(folder), copy.deepcopy(config))
    counted = sum(p.numel() for p in model.parameters() if p.requires_grad)
    read = recipe.read(folder, training=TRAINING, peft_config=config, seq_len=32)
    assert read.head_modules == ("classifier", "pooler")
    assert read.estimate().trainable_params == counted
    pooler = 32 * 32 + 32
    without = recipe.read(folder, training=TRAINING, peft_config=dataclasses.replace(config, modules_to_save=None), seq_len=32)
    assert read.estimate().trainable_params - without.estimate().trainable_params == pooler


def test_freezing_counts_the_head_modules_it_is_given(tmp_path):
    model_class, folder = tiny_bert(tmp_path)
    model = model_class.from_pretrained(folder)
    model.requires_grad_(False)
    for module in (model.bert.encoder.layer[1], model.classifier, model.bert.pooler):
        module.requires_grad_(True)
    counted = sum(p.numel() for p in model.parameters() if p.requires_grad)
    read = recipe.read(folder, training=TRAINING, trainable_blocks=1, seq_len=32, task="seq-cls",
                       head_modules=["classifier", "pooler"])
    assert read.estimate().trainable_params == counted
    with pytest.raises(Exception, match="does not have"):
        recipe.read(folder, training=TRAINING, trainable_blocks=1, seq_len=32, task="seq-cls",
                    head_modules=["score"]).estimate()
