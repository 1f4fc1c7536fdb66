"""scripts/train_sft.py and its accelerate configs (notebook 03's recipe on one GPU or many).

* One recipe: the notebook's Recipe cell (LoraConfig, BitsAndBytesConfig, the SFTConfig keywords), the
  recipe file configs/sft_recipe.yaml and what the script trains by default are the same, key for key.
* The DeepSpeed YAML repeats two training arguments (gradient accumulation and clipping); DeepSpeed
  refuses to start when they differ from the TrainingArguments, so they are checked here against the
  recipe and against the SFTConfig that the script builds.
* Every YAML loads with accelerate's own config reader and says what the docs say it does.
* The script really trains with 2 processes: `accelerate launch --config_file configs/ddp.yaml` on
  the CPU starts 2 processes that average gradients over gloo (accelerate's FSDP and DeepSpeed need a
  GPU, and DeepSpeed is not installed here, so the CPU test uses plain data parallel; the 4-bit
  bitsandbytes path runs on the CPU too). The loss must fall, the adapter must be saved, load on a
  fresh base model and answer; then a second, single-process run resumes from its last checkpoint.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import sft
from helpers.errors import FriendlyError

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
SCRIPT = ROOT / "scripts" / "train_sft.py"


def load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_sft", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notebook_recipe() -> dict:
    """The names the notebook's Recipe cell defines, from its own source (a CPU's compute dtype)."""
    import torch
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig

    cells = json.loads((ROOT / "notebooks" / "03_accounting_sft.ipynb").read_text(encoding="utf-8"))["cells"]
    recipe_cells = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).startswith("LORA = LoraConfig(")]
    assert len(recipe_cells) == 1, "one Recipe cell, starting with LORA = LoraConfig("
    names = {"LoraConfig": LoraConfig, "BitsAndBytesConfig": BitsAndBytesConfig, "COMPUTE_DTYPE": torch.float32}
    exec("".join(recipe_cells[0]["source"]), names)
    return names


def test_the_notebook_the_recipe_file_and_the_script_hold_one_recipe(tmp_path):
    names = notebook_recipe()
    assert sft.recipe_file_differences(lora=names["LORA"], quantization=names["QUANTIZATION"], training=names["TRAINING"],
                                       early_stopping=names["EARLY_STOPPING"]) == []
    script = load_script()
    assert script.training_keywords(script.parse_args([])) == names["TRAINING"] == sft.RECIPE["training"]
    config = script.sft_config(tmp_path, names["TRAINING"])
    normalised = {"include_num_input_tokens_seen": "all"}      # SFTConfig's name for True
    for key, value in names["TRAINING"].items():
        value = normalised.get(key, value) if value is True else value
        assert getattr(getattr(config, key), "value", getattr(config, key)) == value, key
    assert sft.lora_config().to_dict() == names["LORA"].to_dict()


def test_deepspeed_yaml_agrees_with_the_training_arguments(tmp_path):
    config = yaml.safe_load((CONFIGS / "deepspeed_zero3.yaml").read_text())
    ds = config["deepspeed_config"]
    script = load_script()
    args = script.sft_config(tmp_path, script.training_keywords(script.parse_args([])))
    training = sft.RECIPE["training"]
    assert ds["gradient_accumulation_steps"] == training["gradient_accumulation_steps"] == args.gradient_accumulation_steps
    assert ds["gradient_clipping"] == training["max_grad_norm"] == args.max_grad_norm
    # the post's ZeRO-3 set-up
    assert ds["zero_stage"] == 3 and ds["zero3_init_flag"] is True and ds["zero3_save_16bit_model"] is True
    assert ds["offload_optimizer_device"] == "none" and ds["offload_param_device"] == "none"
    assert config["distributed_type"] == "DEEPSPEED" and config["mixed_precision"] == "bf16"
    assert config["num_machines"] == 1 and config["num_processes"] == 8


def test_the_command_line_overrides_single_keys_of_the_recipe():
    script = load_script()
    training = script.training_keywords(script.parse_args(["--batch_size", "2", "--eval_steps", "7", "--no-save"]))
    assert training["per_device_train_batch_size"] == training["per_device_eval_batch_size"] == 2
    assert training["eval_steps"] == training["save_steps"] == 7
    assert training["save_strategy"] == "no" and training["load_best_model_at_end"] is False
    assert training["learning_rate"] == sft.RECIPE["training"]["learning_rate"]


@pytest.mark.parametrize("name,kind", [("deepspeed_zero3.yaml", "DEEPSPEED"), ("fsdp.yaml", "FSDP"),
                                       ("ddp.yaml", "MULTI_GPU")])
def test_configs_load_with_accelerate(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / name))
    assert str(config.distributed_type).endswith(kind)
    assert config.num_machines == 1
    if kind == "FSDP":
        fsdp = config.fsdp_config
        # FSDP 1 with use_orig_params false: the Trainer adapts its wrapping to a PEFT (QLoRA) model
        assert fsdp["fsdp_version"] == 1 and fsdp["fsdp_use_orig_params"] is False
        assert fsdp["fsdp_cpu_ram_efficient_loading"] is True and fsdp["fsdp_sync_module_states"] is True


def test_a_yaml_that_disagrees_is_refused_with_a_clear_message(monkeypatch):
    script = load_script()
    training = script.training_keywords(script.parse_args(["--gradient_accumulation_steps", "4"]))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "4")
    monkeypatch.setenv("ACCELERATE_GRADIENT_CLIPPING", str(sft.RECIPE["training"]["max_grad_norm"]))
    script.check_deepspeed_yaml(training)  # agrees: nothing happens
    monkeypatch.setenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "8")
    with pytest.raises(FriendlyError, match="gradient_accumulation_steps: YAML 8, script 4"):
        script.check_deepspeed_yaml(training)


COMMON = ["--model", "tiny", "--batch_size", "4", "--gradient_accumulation_steps", "1", "--learning_rate", "1e-2",
          "--max_length", "128", "--eval_steps", "10", "--eval_rows", "16", "--logging_steps", "2"]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft-ddp")
    record = out / "record.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "ddp.yaml"),
               "--num_processes", "2", "--main_process_port", "29547", str(SCRIPT),
               *COMMON, "--max_steps", "20", "--output_dir", str(out / "run"), "--record", str(record)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out, json.loads(record.read_text())


def test_two_processes_train(two_process_run):
    _, run = two_process_run
    assert run["processes"] == 2 and run["launcher"] == "ddp"
    assert run["effective_batch"] == 4 * 1 * 2
    assert run["optimizer_steps"] == 20
    assert run["final_train_loss"] <= 0.75 * run["first_train_loss"], run["loss_curve"]
    assert run["tokens_per_s"] > 0 and run["train_tokens"] > 0


def test_the_adapter_loads_on_a_fresh_model_and_answers(two_process_run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from helpers import tiny

    out, run = two_process_run
    adapter = Path(run["adapter_dir"])
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "adapter_config.json").exists()
    base = AutoModelForCausalLM.from_pretrained(
        tiny.tiny_checkpoint("chat", corpus="accounting.csv", **sft.SMOKE_MODEL),
        quantization_config=sft.quantization_config(torch.float32), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter))
    trained = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert trained and any(p.abs().sum() > 0 for p in trained), "LoRA B starts at zero: it must have moved"
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    answers = sft.generate_answers(model, tokenizer, [sft.chat_text(tokenizer, "Cedar Cafe paid $1,850 rent.")] * 2,
                                   max_new_tokens=8)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_a_second_run_resumes_from_the_last_checkpoint(two_process_run):
    """Run in this process (one process, the same effective batch): it continues at step 20."""
    out, _ = two_process_run
    script = load_script()
    record = out / "resumed.json"
    args = [*COMMON, "--batch_size", "8", "--max_steps", "22", "--output_dir", str(out / "run"), "--record", str(record)]
    assert script.main(args) == 0
    run = json.loads(record.read_text())
    assert run["resumed_from"].endswith("checkpoint-20")
    assert run["optimizer_steps"] == 22


DS_CHECK = r'''
import os, sys
sys.path.insert(0, sys.argv[1])
from accelerate.commands.launch import launch_command_parser, _validate_launch_command
from accelerate.utils.launch import prepare_deepspeed_cmd_env
args = launch_command_parser().parse_args(["--config_file", sys.argv[2], "--num_processes", "1", "x.py"])
args, defaults, from_config = _validate_launch_command(args)
args.deepspeed_fields_from_accelerate_config = ",".join(
    list(defaults.deepspeed_config) + (["mixed_precision"] if from_config else []))
_, env = prepare_deepspeed_cmd_env(args)
os.environ.update({k: v for k, v in env.items() if k.startswith("ACCELERATE_")})
import importlib.util
from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig
from helpers import runtime, sft
spec = importlib.util.spec_from_file_location("train_sft", sys.argv[1] + "/scripts/train_sft.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)
runtime.trainer_precision_kwargs = lambda: {"bf16": True, "fp16": False}   # the YAML's bf16, as on an H200
for accumulation in (sft.RECIPE["training"]["gradient_accumulation_steps"], 2):
    training = script.training_keywords(script.parse_args(["--batch_size", "4",
                                                           "--gradient_accumulation_steps", str(accumulation)]))
    config = script.sft_config("/tmp/ds-check", training, sharded=True)
    checked = HfTrainerDeepSpeedConfig(config.deepspeed_plugin.hf_ds_config.config)
    checked.trainer_config_process(config)      # what the Trainer does before DeepSpeed starts
    print(accumulation, len(checked.mismatches), checked.config["gradient_clipping"], checked.config["train_batch_size"])
'''


def test_the_trainer_accepts_the_deepspeed_yaml():
    """With DeepSpeed installed: the Trainer's own check of the YAML against the arguments passes,
    and a wrong accumulation is caught. In a subprocess, so DeepSpeed's global state stays there."""
    pytest.importorskip("deepspeed")
    done = subprocess.run([sys.executable, "-c", DS_CHECK, str(ROOT), str(CONFIGS / "deepspeed_zero3.yaml")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.split() for line in done.stdout.splitlines() if line[:1].isdigit()]
    recipe = str(sft.RECIPE["training"]["gradient_accumulation_steps"])
    assert lines[0] == [recipe, "0", str(sft.RECIPE["training"]["max_grad_norm"]), str(4 * int(recipe))], lines
    assert lines[1][:2] == ["2", "1"], "a different accumulation must be reported as a mismatch"


def test_full_fine_tuning_trains_every_weight_without_saving(tmp_path):
    """--method full (the scale-out run's 14B full fine-tune, here on the tiny model): every weight
    trains with the optimizer asked for, the loss falls, and --no-save leaves no checkpoint behind."""
    script = load_script()
    record = tmp_path / "full.json"
    args = [*COMMON, "--max_steps", "20", "--logging_steps", "1", "--learning_rate", "2e-3", "--method", "full", "--no-load_in_4bit",
            "--optim", "adamw_torch_fused", "--no-save", "--no-load_best", "--output_dir", str(tmp_path / "run"),
            "--record", str(record)]
    assert script.main(args) == 0
    run = json.loads(record.read_text())
    from transformers import AutoConfig

    from helpers import tiny

    config = AutoConfig.from_pretrained(tiny.tiny_checkpoint("chat", corpus="accounting.csv", **sft.SMOKE_MODEL))
    assert run["method"] == "full" and run["optim"] == "adamw_torch_fused" and run["adapter_dir"] is None
    assert run["trainable_parameters"] > config.vocab_size * config.hidden_size   # the embeddings and the rest
    assert run["final_train_loss"] <= 0.75 * run["first_train_loss"], run["loss_curve"]
    assert not list((tmp_path / "run").glob("checkpoint-*")) and not (tmp_path / "run" / "model").exists()


@pytest.mark.parametrize("extra, problem", [
    (["--method", "full"], "4-bit weights cannot be trained"),
    (["--method", "full", "--no-load_in_4bit", "--check", "2"], "Drop --check"),
    (["--no-save", "--check", "2"], "--no-save saves none"),
])
def test_contradictory_options_are_refused_before_any_work(tmp_path, extra, problem):
    script = load_script()
    with pytest.raises(FriendlyError, match=problem):
        script.main([*COMMON, "--max_steps", "1", "--output_dir", str(tmp_path / "run"), *extra])
