"""Notebook 03's recipe as a script: SFT of an accounting assistant with TRL, on one GPU or many.

The recipe is not written here: the LoRA, 4-bit and SFTConfig keywords come from configs/sft_recipe.yaml,
the values of the notebook's Recipe cell (--recipe names another file; the options below override single
keys). What this file adds is what a launcher needs: command-line arguments, one process per GPU, and
saving from the main process only.

    # one GPU (or the CPU), no launcher
    python scripts/train_sft.py --model microsoft/Phi-3-mini-4k-instruct --output_dir runs/phi3

    # several GPUs: one process each, the same script
    accelerate launch --config_file configs/ddp.yaml            --num_processes 4 scripts/train_sft.py ...
    accelerate launch --config_file configs/deepspeed_zero3.yaml --num_processes 4 scripts/train_sft.py ...
    accelerate launch --config_file configs/fsdp.yaml            --num_processes 4 scripts/train_sft.py ...

Effective batch = --batch_size x gradient accumulation x processes. The DeepSpeed YAML repeats the
accumulation and the clipping of the training arguments; they must agree (the Trainer refuses to
start otherwise, and tests/test_sft_script.py checks the file).

--method full trains every weight instead of LoRA adapters (16-bit weights: add --no-load_in_4bit),
with --optim for its optimizer (e.g. adamw_torch_fused: mixed-precision AdamW, about 16 bytes per
parameter); --no-save measures without writing checkpoints or the trained weights.

--model also takes `tiny` (helpers.tiny's offline chat model, as in the notebook's smoke profile) and
`random:<hub id>` (that model's exact architecture with random weights, as in bench). --record writes
the run's measurements (loss curve, tokens per second, peak memory) as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # helpers/, also without `pip install -e .`

from helpers import runtime, sft  # noqa: E402
from helpers.errors import FriendlyError  # noqa: E402

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="microsoft/Phi-3-mini-4k-instruct",
                   help="hub id or local folder; 'tiny' or 'random:<hub id>' for the offline profiles")
    p.add_argument("--data", default="accounting.csv",
                   help="a file in data/, 'generate:N', a CSV/JSON/JSONL path or a hub dataset id")
    p.add_argument("--input_column", default="input")
    p.add_argument("--output_column", default="output")
    p.add_argument("--rows", type=int, default=None, help="use at most this many rows")
    p.add_argument("--output_dir", default="outputs/train_sft")
    p.add_argument("--recipe", default=str(sft.RECIPE_FILE), help="the recipe file (LoRA, 4-bit and SFTConfig keywords)")
    # None: the recipe's value
    p.add_argument("--max_steps", type=int, default=None, help="-1: train --epochs epochs (default: the recipe's)")
    p.add_argument("--epochs", type=float, default=None, help="num_train_epochs (default: the recipe's)")
    p.add_argument("--batch_size", type=int, default=None, help="per device (per process) (default: the recipe's)")
    p.add_argument("--gradient_accumulation_steps", type=int, default=None, help="(default: the recipe's)")
    p.add_argument("--learning_rate", type=float, default=None, help="(default: the recipe's)")
    p.add_argument("--max_length", type=int, default=None, help="(default: the recipe's)")
    p.add_argument("--eval_steps", type=int, default=None, help="evaluations and checkpoints (default: the recipe's)")
    p.add_argument("--eval_rows", type=int, default=None, help="validation rows used for eval_loss")
    p.add_argument("--logging_steps", type=int, default=None, help="(default: the recipe's)")
    p.add_argument("--load_in_4bit", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--method", choices=("lora", "full"), default="lora",
                   help="lora: the recipe's adapters; full: every weight trains (needs --no-load_in_4bit)")
    p.add_argument("--optim", default=None, help=f"optimizer (default: the recipe's, {sft.RECIPE['training']['optim']})")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                   help="write checkpoints and the trained weights (--no-save: measure only)")
    p.add_argument("--tf32", choices=("on", "off", "default"), default="default",
                   help="TF32 matrix products for fp32 work on Ampere+ GPUs")
    p.add_argument("--load_best", action=argparse.BooleanOptionalAction, default=True,
                   help="reload the best checkpoint at the end (the recipe; needed by early stopping)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from the last checkpoint in --output_dir if there is one")
    p.add_argument("--record", default=None, help="write this run's measurements to this JSON file")
    p.add_argument("--run_name", default=None)
    p.add_argument("--check", type=int, default=0,
                   help="after training, reload the saved adapter in a fresh process and answer N test rows")
    p.add_argument("--check_adapter", default=None, help=argparse.SUPPRESS)  # internal: the fresh process
    return p.parse_args(argv)


def resolve_model(name: str) -> str:
    from helpers import tiny

    if name == "tiny":
        return tiny.tiny_checkpoint("chat", corpus="accounting.csv", **sft.SMOKE_MODEL)
    if name.startswith("random:"):
        return tiny.random_checkpoint(name.split(":", 1)[1], corpus="accounting.csv")
    return name


def launcher() -> dict:
    """What `accelerate launch` set up for this process (plain `python` gives one process)."""
    from accelerate import PartialState

    state = PartialState(cpu=not runtime.cuda_available())
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    kind = "deepspeed-zero3" if deepspeed else "fsdp" if fsdp else ("ddp" if state.num_processes > 1 else "single")
    return {"kind": kind, "sharded": deepspeed or fsdp, "processes": state.num_processes,
            "rank": state.process_index, "local_rank": state.local_process_index,
            "main": state.is_main_process, "state": state}


def check_deepspeed_yaml(training: dict) -> None:
    """A clear message before DeepSpeed's own, when the YAML and the training keywords disagree."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() != "true":
        return
    yaml_gas = os.environ.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "auto")
    yaml_clip = os.environ.get("ACCELERATE_GRADIENT_CLIPPING", "auto")
    problems = []
    if yaml_gas not in ("auto", "none") and int(yaml_gas) != training["gradient_accumulation_steps"]:
        problems.append(f"gradient_accumulation_steps: YAML {yaml_gas}, script {training['gradient_accumulation_steps']}")
    if yaml_clip not in ("auto", "none") and float(yaml_clip) != training["max_grad_norm"]:
        problems.append(f"gradient_clipping: YAML {yaml_clip}, recipe max_grad_norm {training['max_grad_norm']}")
    if problems:
        raise FriendlyError("The DeepSpeed config and the training arguments disagree ("
                            + "; ".join(problems) + "). Make them equal: edit the YAML or the arguments.")


def training_keywords(args, recipe: dict = sft.RECIPE) -> dict:
    """The recipe's SFTConfig keywords with the command line's overrides."""
    overrides = {"per_device_train_batch_size": args.batch_size, "per_device_eval_batch_size": args.batch_size,
                 "gradient_accumulation_steps": args.gradient_accumulation_steps, "learning_rate": args.learning_rate,
                 "max_length": args.max_length, "max_steps": args.max_steps, "num_train_epochs": args.epochs,
                 "eval_steps": args.eval_steps, "save_steps": args.eval_steps, "logging_steps": args.logging_steps,
                 "optim": args.optim}
    training = {**recipe["training"], **{k: v for k, v in overrides.items() if v is not None}}
    if not args.save:                      # measure only: no checkpoints, so no best one to reload either
        training.update(save_strategy="no", load_best_model_at_end=False)
    if not args.load_best:                 # (only to work around a launcher that cannot reload)
        training["load_best_model_at_end"] = False
    return training


def sft_config(output_dir, training: dict, sharded: bool = False, **extra):
    """The SFTConfig: the recipe's keywords and the device's (precision, CPU or GPU).

    PEFT under ZeRO-3/FSDP needs reentrant activation checkpointing (TRL forces it for ZeRO-3)."""
    from trl import SFTConfig

    checkpointing = {**training.get("activation_checkpointing_kwargs", {}), "use_reentrant": sharded}
    return SFTConfig(output_dir=str(output_dir), **{**training, "activation_checkpointing_kwargs": checkpointing},
                     **runtime.trainer_precision_kwargs(),   # bf16 on Ampere and newer, fp16 on T4/V100, fp32 on CPU
                     use_cpu=not runtime.cuda_available(), dataloader_pin_memory=runtime.cuda_available(),
                     report_to="none", disable_tqdm=True, **extra)


def set_tf32(mode: str) -> None:
    """The recipe's two switches; 'default' leaves PyTorch's choice alone."""
    import torch

    if mode != "default":
        torch.backends.cuda.matmul.allow_tf32 = mode == "on"
        torch.backends.cudnn.allow_tf32 = mode == "on"


def load_model(path: str, four_bit: bool, where: dict, recipe: dict = sft.RECIPE):
    """The base model: 4-bit NF4 (QLoRA) or 16/32-bit, placed for the launcher in use.

    One GPU or DDP: each process loads the whole model on its own GPU (device_map), and
    prepare_model_for_kbit_training casts the norms and embeddings to fp32 and switches on
    activation checkpointing. FSDP and ZeRO-3 shard flat tensors of one dtype, so there the 4-bit
    weights are stored as bf16 (bnb_4bit_quant_storage), everything else stays bf16, the fp32 cast is
    skipped, and the launcher places the shards.
    """
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    dtype = runtime.torch_dtype()
    kwargs = {"dtype": dtype}
    if four_bit:
        kwargs["quantization_config"] = sft.quantization_config(dtype, quant_storage=dtype if where["sharded"] else None,
                                                                recipe=recipe)
        if runtime.cuda_available() and not where["sharded"]:
            kwargs["device_map"] = {"": where["local_rank"]}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.config.use_cache = False  # the cache is for generation; training recomputes activations
    if four_bit and not where["sharded"]:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def train(args) -> dict:
    import torch
    from transformers import AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer

    from helpers import memory

    started = time.perf_counter()
    if args.method == "full" and args.load_in_4bit:
        raise FriendlyError("--method full trains the weights themselves, and 4-bit weights cannot be trained. "
                            "Add --no-load_in_4bit (or use --method lora for QLoRA).")
    if args.check and args.method == "full":
        raise FriendlyError("--check reloads a saved LoRA adapter; --method full saves a whole model. Drop --check.")
    if args.check and not args.save:
        raise FriendlyError("--check reloads the saved adapter, and --no-save saves none: drop one of them.")
    recipe = sft.load_recipe(args.recipe)
    training = training_keywords(args, recipe)
    where = launcher()
    check_deepspeed_yaml(training)
    set_tf32(args.tf32)
    sft.quiet_config_logs()
    out = Path(args.output_dir)

    # The training arguments come first: under DeepSpeed ZeRO-3 they tell from_pretrained to
    # load each weight straight into its shard.
    config = sft_config(out, training, sharded=where["sharded"], run_name=args.run_name)
    batch, accumulation = config.per_device_train_batch_size, config.gradient_accumulation_steps

    from accelerate import PartialState

    with PartialState().main_process_first():   # one process builds an offline checkpoint, the others reuse it
        path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    frame, report = sft.load_rows(args.data, args.input_column, args.output_column, rows=args.rows)
    train_rows, val_rows, _ = sft.split(frame)
    if args.eval_rows:
        val_rows = val_rows[:args.eval_rows]
    if where["main"]:
        print(report)
        print(f"train {len(train_rows)} rows, validation {len(val_rows)} rows")
    train_set = sft.to_dataset(train_rows, tokenizer)
    val_set = sft.to_dataset(val_rows, tokenizer)

    model = load_model(path, args.load_in_4bit, where, recipe)
    mem = memory.MemoryCallback(args.run_name or where["kind"])
    speed = sft.ThroughputCallback()
    trainer = SFTTrainer(model=model, args=config, train_dataset=train_set, eval_dataset=val_set,
                         processing_class=tokenizer,
                         peft_config=sft.lora_config(recipe) if args.method == "lora" else None,
                         callbacks=[sft.early_stopping(recipe), mem, speed] if config.load_best_model_at_end else [mem, speed])
    sft.adapters_for_precision(trainer)   # fp32 adapters under fp16 (a T4): TRL made them bf16
    effective = batch * accumulation * where["processes"]
    trainable = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel()   # ZeRO-3 keeps only a shard here
                    for p in trainer.model.parameters() if p.requires_grad)
    if where["main"]:
        print(f"{args.method}: {trainable:,} trainable parameters")
        print(f"launcher {where['kind']}, {where['processes']} process(es): effective batch = "
              f"{batch} per device x {accumulation} accumulation x "
              f"{where['processes']} = {effective}")

    last = get_last_checkpoint(str(out)) if args.resume and out.is_dir() else None
    if last and where["main"]:
        print(f"resuming from {last}")
    result = trainer.train(resume_from_checkpoint=last)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    eval_metrics = trainer.evaluate()
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)

    adapter = out / ("adapter" if args.method == "lora" else "model")
    if args.save:
        if trainer.is_fsdp_enabled:  # gather the sharded weights into one file on the main process
            trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        trainer.save_model(str(adapter))
        if where["main"]:
            tokenizer.save_pretrained(str(adapter))
    where["state"].wait_for_everyone()

    steps, losses = sft.loss_curve(trainer.state.log_history)
    run = {
        "name": args.run_name or where["kind"],
        "launcher": where["kind"], "processes": where["processes"],
        "per_device_batch": batch, "gradient_accumulation_steps": accumulation,
        "effective_batch": effective, "max_grad_norm": config.max_grad_norm,
        "precision": runtime.precision(), "load_in_4bit": args.load_in_4bit, "tf32": args.tf32,
        "load_best": config.load_best_model_at_end, "method": args.method, "optim": str(getattr(config.optim, "value", config.optim)),
        "trainable_parameters": trainable,
        "model": args.model, "optimizer_steps": trainer.state.global_step, "resumed_from": last,
        **mem.tracker.summary(), **speed.summary(),
        "wall_s": round(time.perf_counter() - started, 2), "train_runtime_s": round(result.metrics["train_runtime"], 2),
        "eval_loss": round(eval_metrics["eval_loss"], 4),
        "first_train_loss": round(losses[0], 4) if losses else None,
        "final_train_loss": round(sum(losses[-5:]) / len(losses[-5:]), 4) if losses else None,
        "loss_curve": {"steps": steps, "loss": [round(v, 5) for v in losses]},
        "adapter_dir": str(adapter) if args.save else None,
    }
    if where["main"]:
        print(json.dumps({k: v for k, v in run.items() if k != "loss_curve"}, indent=1))
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return run, where


def check_adapter(args) -> dict:
    """Reload the saved adapter on a freshly loaded base model and answer test rows (one process)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = Path(args.check_adapter)
    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    kwargs = {"dtype": runtime.torch_dtype()}
    if args.load_in_4bit:
        kwargs["quantization_config"] = sft.quantization_config(runtime.torch_dtype(), recipe=sft.load_recipe(args.recipe))
        if runtime.cuda_available():
            kwargs["device_map"] = {"": 0}
    base = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model = PeftModel.from_pretrained(base, str(adapter))
    frame, _ = sft.load_rows(args.data, args.input_column, args.output_column, rows=args.rows)
    _, _, test_rows = sft.split(frame)
    test_rows = test_rows[:args.check]
    prompts = [sft.chat_text(tokenizer, q) for q in test_rows["input"]]
    with torch.no_grad():
        answers = sft.generate_answers(model, tokenizer, prompts, max_new_tokens=64, batch_size=16)
    scores = sft.score(answers, list(test_rows["output"]))
    return {"adapter_reloaded": True, "generated_rows": len(answers),
            "generated_nonempty": sum(bool(a) for a in answers), "example_answer": answers[0] if answers else None,
            **{f"check_{k}": v for k, v in scores.items() if k.endswith("match") or k.endswith("correct")}}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.check_adapter:
        print("CHECK " + json.dumps(check_adapter(args)))
        return 0
    run, where = train(args)
    if where["main"] and args.check:
        # A fresh process, outside the launcher: the adapter must load on its own, as a user would load it.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ACCELERATE_", "FSDP_", "LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_", "TORCHELASTIC"))}
        command = [sys.executable, __file__, "--check_adapter", run["adapter_dir"], "--check", str(args.check),
                   "--recipe", args.recipe, "--model", args.model, "--data", args.data, "--input_column", args.input_column,
                   "--output_column", args.output_column]
        command += ["--rows", str(args.rows)] if args.rows else []
        command += [] if args.load_in_4bit else ["--no-load_in_4bit"]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("CHECK ")]
        if done.returncode != 0 or not lines:
            print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
            run["adapter_reloaded"] = False
        else:
            run.update(json.loads(lines[-1][6:]))
        print("adapter check:", {k: v for k, v in run.items() if k.startswith(("adapter_re", "generated", "check_"))})
    if where["main"] and args.record:
        Path(args.record).parent.mkdir(parents=True, exist_ok=True)
        Path(args.record).write_text(json.dumps(run, indent=1, default=str) + "\n")
        print(f"record: {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
