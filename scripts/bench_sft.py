"""Notebook 03 at real size on one GPU: the notebook, then its script under each launcher.

    python scripts/bench_sft.py                      # everything, about 6 minutes on an H200
    python scripts/bench_sft.py --only zero3,fsdp    # some runs (the notebook's record is reused)

Runs, in this order, on one GPU, with Phi-3-mini's exact architecture and random weights (bench):
1. `notebook`: notebooks/03_accounting_sft.ipynb in the bench profile (the plain single-GPU run, TF32
   on/off measured inside) -> results/03_accounting_sft.bench.json and its figures;
2. `plain-tf32`: scripts/train_sft.py without a launcher, TF32 on;
3. `zero3`: accelerate launch --config_file configs/deepspeed_zero3.yaml --num_processes 1;
4. `fsdp`: accelerate launch --config_file configs/fsdp.yaml --num_processes 1;
5. `zero3-full-14b` (with --processes 2 or more only): a full fine-tune of Phi-3-medium (14B) that does
   not fit one GPU, under ZeRO-3 across the GPUs (FULL_SETTINGS below).
Each script run uses the notebook's bench settings (same rows, seed, batch, steps), so its loss curve
must match the notebook's within TOLERANCE. The ZeRO-3 and FSDP runs then reload their adapter in a
fresh process and answer test rows. Everything goes to results/03_accounting_sft_script.bench.json
(tokens per second, peak memory, loss curves, gaps, GPU, versions, date). A launcher run that fails
is tried once more without reloading the best checkpoint at the end (--no-load_best, the step most
likely to break with FSDP/ZeRO-3 + PEFT), keeping the first error; a run that still fails is kept with
its error, and the others still run.

Needs, besides torch with CUDA: transformers, peft, trl, accelerate, bitsandbytes, datasets,
deepspeed (pure Python: DS_BUILD_OPS=0), scikit-learn, pandas, matplotlib, pyyaml, and nbclient +
ipykernel for the notebook.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "random:microsoft/Phi-3-mini-4k-instruct"
# The notebook's bench settings (the bench overrides of PROFILE_TRAINING in notebooks/03_accounting_sft.ipynb).
SETTINGS = ["--data", "generate:1200", "--max_steps", "20", "--batch_size", "4", "--gradient_accumulation_steps", "4",
            "--learning_rate", "2e-4", "--max_length", "512", "--eval_steps", "10", "--eval_rows", "32",
            "--logging_steps", "1", "--no-resume"]
# Loss curves of the launchers against the plain run, after a 5-step moving average.
TOLERANCE = {"mean_relative": 0.03, "max_relative": 0.10, "smoothing_window": 5}
README_COLUMNS = ["status", "processes", "method", "tokens_per_s", "peak_device_gib", "final_train_loss", "loss_gap_mean",
                  "loss_gap_max", "within_tolerance", "adapter_reloaded", "scaling_efficiency"]
# A full fine-tune too big for one GPU: Phi-3-medium (14B) with mixed-precision AdamW needs about 16 bytes
# per parameter (bf16 weights and gradients, fp32 master weights and two moments): ~208 GiB, more than one
# H200's 139.8. ZeRO-3 splits all of it across the GPUs. No checkpoints (a ZeRO-3 checkpoint of it would be
# ~170 GB); fused AdamW, whose step needs no full-size temporaries.
FULL_MODEL = "random:microsoft/Phi-3-medium-4k-instruct"
FULL_SETTINGS = ["--data", "generate:1200", "--max_steps", "12", "--batch_size", "4", "--gradient_accumulation_steps", "2",
                 "--learning_rate", "2e-5", "--max_length", "512", "--eval_steps", "12", "--eval_rows", "16",
                 "--logging_steps", "1", "--no-resume", "--method", "full", "--no-load_in_4bit",
                 "--optim", "adamw_torch_fused", "--no-save", "--no-load_best"]
RUNS = {
    "plain-tf32": dict(launch=[], extra=["--tf32", "on"]),
    "zero3": dict(launch=["--config_file", "configs/deepspeed_zero3.yaml"], extra=["--check", "4"]),
    "fsdp": dict(launch=["--config_file", "configs/fsdp.yaml"], extra=["--check", "4"]),
    # several GPUs only; its own settings, so no loss curve to compare with the notebook's
    "zero3-full-14b": dict(launch=["--config_file", "configs/deepspeed_zero3.yaml"], extra=[], model=FULL_MODEL,
                           settings=FULL_SETTINGS, compare=False, min_processes=2),
}


def run_notebook(results: Path, log) -> dict:
    env = {**os.environ, "NB_PROFILE": "bench", "NB_OUTPUT_DIR": str(results), "MPLBACKEND": "Agg",
           "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "scripts/run_notebooks.py", "--profile", "bench", "--out", "outputs/bench",
               "notebooks/03_accounting_sft.ipynb"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    log.write(done.stdout + done.stderr)
    status = "passed" if done.returncode == 0 and "| passed |" in done.stdout else "FAILED"
    return {"status": status, "wall_s": round(time.perf_counter() - start, 1), "tail": done.stdout[-1500:]}


def settings_for(processes: int, settings: list = SETTINGS) -> list:
    """The run's settings with the accumulation divided among the processes: the same effective batch."""
    settings = list(settings)
    at = settings.index("--gradient_accumulation_steps") + 1
    accumulation = int(settings[at])
    if accumulation % processes:
        raise SystemExit(f"--processes {processes} does not divide the accumulation ({accumulation}) evenly")
    settings[at] = str(accumulation // processes)
    return settings


def run_script(name: str, spec: dict, work: Path, log, processes: int = 1, timeout_s: float | None = None) -> dict:
    record = work / f"{name}.json"
    record.unlink(missing_ok=True)
    settings = settings_for(processes, spec.get("settings", SETTINGS))
    script = ["scripts/train_sft.py", "--model", spec.get("model", MODEL), *settings, "--output_dir", str(work / name),
              "--run_name", name, "--record", str(record), *spec["extra"]]
    launch = list(spec["launch"])
    if any("deepspeed" in part for part in launch):
        # the DeepSpeed YAML repeats the accumulation; pass the divided one so that both agree
        launch += ["--gradient_accumulation_steps", settings[settings.index("--gradient_accumulation_steps") + 1]]
    if spec["launch"]:
        command = [sys.executable, "-m", "accelerate.commands.launch", *launch, "--num_processes", str(processes),
                   "--num_machines", "1", "--main_process_port", "29571", *script]
    else:
        command = [sys.executable, *script]
    start = time.perf_counter()
    # The run's output goes to its own file as it happens: a run stopped by a time limit leaves its log.
    run_log = work / f"{name}.log"
    with run_log.open("w") as sink:
        # its own process group, so that a stop reaches the launcher's workers too
        process = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}, start_new_session=True)
        timed_out = False
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # a hung launcher (a collective waiting forever) must not cost the other runs their turn
            os.killpg(process.pid, signal.SIGKILL)
            returncode, timed_out = process.wait(), True
    output = run_log.read_text(errors="replace")
    log.write(f"\n===== {name}: {' '.join(command)}\n" + output)
    wall = round(time.perf_counter() - start, 1)
    if timed_out:
        return {"name": name, "status": "FAILED", "process_wall_s": wall, "command": " ".join(command),
                "error": f"stopped after --run-timeout {timeout_s:.0f} s; last output: {output[-400:]}"}
    if returncode != 0 or not record.exists():
        error = [line for line in output.splitlines() if "Error" in line or "error" in line]
        return {"name": name, "status": "FAILED", "process_wall_s": wall, "command": " ".join(command),
                "error": (error[-1] if error else output[-500:])[:500]}
    run = json.loads(record.read_text())
    run.update(status="passed", process_wall_s=wall, command=" ".join(command), compared=spec.get("compare", True))
    return run


def main(argv=None) -> int:
    from helpers import results, runtime, sft

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="notebook," + ",".join(RUNS), help="comma-separated runs")
    parser.add_argument("--results", default="results")
    parser.add_argument("--processes", type=int, default=1,
                        help="GPUs for the launcher runs (named e.g. zero3-2gpu); the accumulation is divided "
                             "among them so that the effective batch stays the notebook's")
    parser.add_argument("--run-timeout", type=float, default=None,
                        help="seconds after which one script run is stopped and recorded as failed")
    args = parser.parse_args(argv)
    wanted = args.only.split(",")
    out = ROOT / args.results
    out.mkdir(exist_ok=True)
    work = ROOT / "outputs" / "bench" / "sft"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    record_path = out / "03_accounting_sft_script.bench.json"
    # Runs measured by an earlier call (--only redoes some) are kept: each call may end at a time limit,
    # so the record is written after every run.
    earlier = {}
    if record_path.exists():
        before = json.loads(record_path.read_text())
        # each run keeps the machine and date it was measured on (the record's own are this call's)
        earlier = {r["name"]: {**r, "gpu": r.get("gpu") or f"{before['gpu']['name']} x{before['gpu']['count']}",
                               "date": r.get("date") or before["date"]}
                   for r in before["runs"] if r.get("launcher") != "notebook"}
    machine = runtime.gpu_info()
    here = {"gpu": f"{machine['name']} x{machine['count']}", "date": time.strftime("%Y-%m-%d")}
    runs = {}
    notebook = None

    def save():
        record = build_record({**earlier, **runs}, out, notebook, started, results, sft)
        return results.save_record(record, out), record

    with (work / "bench_sft.log").open("w") as log:
        if "notebook" in wanted:
            notebook = run_notebook(out, log)
            print(f"notebook: {notebook['status']} in {notebook['wall_s']} s", flush=True)
        for base_name, spec in RUNS.items():
            if base_name in wanted:
                if args.processes > 1 and not spec["launch"]:
                    continue          # the plain run is one process by definition
                if args.processes < spec.get("min_processes", 1):
                    print(f"{base_name}: needs --processes {spec['min_processes']} or more, skipped", flush=True)
                    continue
                name = base_name if args.processes == 1 else f"{base_name}-{args.processes}gpu"
                run = run_script(name, spec, work, log, args.processes, args.run_timeout)
                print(f"{name}: {run['status']} in {run['process_wall_s']} s", flush=True)
                if run["status"] == "FAILED" and spec["launch"] and "--run-timeout" not in run["error"]:
                    # Reloading the best checkpoint at the end is the launcher-specific step most
                    # likely to break (FSDP/ZeRO-3 + PEFT); measure without it and keep the error.
                    retry = run_script(name, {**spec, "extra": spec["extra"] + ["--no-load_best"]}, work, log,
                                       args.processes, args.run_timeout)
                    retry["first_attempt_error"] = run.get("error")
                    run = retry
                    print(f"{name} (--no-load_best): {run['status']} in {run['process_wall_s']} s", flush=True)
                runs[name] = {**run, **here}
                save()
    path, record = save()
    print(results.runs_table(record, ["status", "tokens_per_s", "peak_device_gib", "final_train_loss",
                                      "loss_gap_mean", "loss_gap_max", "within_tolerance", "adapter_reloaded"]))
    print(f"record: {path}  ({record['driver_wall_s']} s); log: {work / 'bench_sft.log'}")
    return 0 if all(r.get("status") != "FAILED" for r in record["runs"]) else 1


def build_record(by_name: dict, out: Path, notebook, started, results, sft) -> dict:
    """The script runs, led by the notebook's plain run, each with its loss-curve gap to that run."""
    runs = [dict(run) for run in by_name.values()]
    reference = None
    notebook_record = out / "03_accounting_sft.bench.json"
    if notebook_record.exists():
        notebook_run = json.loads(notebook_record.read_text())
        plain = notebook_run["runs"][0]
        reference = (plain["loss_curve"]["steps"], plain["loss_curve"]["loss"])
        runs.insert(0, {"name": "notebook (plain, one GPU)", "status": (notebook or {}).get("status", "earlier run"),
                        "processes": 1, "launcher": "notebook", **{k: plain.get(k) for k in (
                            "tokens_per_s", "peak_device_gib", "peak_allocated_gib", "peak_reserved_gib", "wall_s",
                            "train_runtime_s", "first_train_loss", "final_train_loss", "eval_loss", "loss_curve")},
                        "gpu": f"{notebook_run['gpu']['name']} x{notebook_run['gpu']['count']}",
                        "date": notebook_run["date"]})
    for run in runs:
        if reference and run.get("loss_curve") and run["launcher"] != "notebook" and run.get("compared", True):
            gap = sft.curve_gap(reference, (run["loss_curve"]["steps"], run["loss_curve"]["loss"]),
                                window=TOLERANCE["smoothing_window"])
            run.update(loss_gap_mean=gap["mean_relative"], loss_gap_max=gap["max_relative"],
                       within_tolerance=gap["mean_relative"] <= TOLERANCE["mean_relative"]
                       and gap["max_relative"] <= TOLERANCE["max_relative"])
    # Scaling: tokens per second on N GPUs against N times the same launcher on one GPU.
    # (same launcher, same model and method: the 14B full fine-tune has no one-GPU run to scale from)
    def kind(run):
        return run.get("launcher"), run.get("model", MODEL), run.get("method", "lora")

    single = {kind(r): r for r in runs if r.get("processes") == 1 and r.get("status") == "passed"}
    for run in runs:
        one = single.get(kind(run))
        if run.get("processes", 1) > 1 and one and run.get("tokens_per_s") and one.get("tokens_per_s"):
            run["scaling_efficiency"] = round(run["tokens_per_s"] / (run["processes"] * one["tokens_per_s"]), 3)
    return results.make_record(
        "03_accounting_sft_script", "bench", runs, tolerance=TOLERANCE, model=MODEL, settings=SETTINGS,
        reference="the notebook's plain single-GPU run (results/03_accounting_sft.bench.json)",
        driver_wall_s=round(time.perf_counter() - started, 1), readme_columns=README_COLUMNS)


if __name__ == "__main__":
    sys.exit(main())
