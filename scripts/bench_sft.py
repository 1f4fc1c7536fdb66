"""Notebook 03 at real size on one GPU: the notebook, then its script under each launcher.

    python scripts/bench_sft.py                      # everything, about 6 minutes on an H200
    python scripts/bench_sft.py --only zero3,fsdp    # some runs (the notebook's record is reused)

Runs, in this order, on one GPU, with Phi-3-mini's exact architecture and random weights (bench):
1. `notebook`: notebooks/03_accounting_sft.ipynb in the bench profile (the plain single-GPU run, TF32
   on/off measured inside) -> results/03_accounting_sft.bench.json and its figures;
2. `plain-tf32`: scripts/train_sft.py without a launcher, TF32 on;
3. `zero3`: accelerate launch --config_file configs/deepspeed_zero3.yaml --num_processes 1;
4. `fsdp`: accelerate launch --config_file configs/fsdp.yaml --num_processes 1.
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
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "random:microsoft/Phi-3-mini-4k-instruct"
# The notebook's bench settings (SETTINGS["bench"] in notebooks/03_accounting_sft.ipynb).
SETTINGS = ["--data", "generate:1200", "--max_steps", "20", "--batch_size", "4", "--gradient_accumulation_steps", "4",
            "--learning_rate", "2e-4", "--max_length", "512", "--eval_steps", "10", "--eval_rows", "32",
            "--logging_steps", "1", "--no-resume"]
# Loss curves of the launchers against the plain run, after a 5-step moving average.
TOLERANCE = {"mean_relative": 0.03, "max_relative": 0.10, "smoothing_window": 5}
README_COLUMNS = ["status", "processes", "tokens_per_s", "peak_device_gib", "final_train_loss", "loss_gap_mean",
                  "loss_gap_max", "within_tolerance", "adapter_reloaded", "scaling_efficiency"]
RUNS = {
    "plain-tf32": dict(launch=[], extra=["--tf32", "on"]),
    "zero3": dict(launch=["--config_file", "configs/deepspeed_zero3.yaml"], extra=["--check", "4"]),
    "fsdp": dict(launch=["--config_file", "configs/fsdp.yaml"], extra=["--check", "4"]),
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


def settings_for(processes: int) -> list:
    """The notebook's settings with the accumulation divided among the processes: the same effective batch."""
    settings = list(SETTINGS)
    at = settings.index("--gradient_accumulation_steps") + 1
    accumulation = int(settings[at])
    if accumulation % processes:
        raise SystemExit(f"--processes {processes} does not divide the accumulation ({accumulation}) evenly")
    settings[at] = str(accumulation // processes)
    return settings


def run_script(name: str, spec: dict, work: Path, log, processes: int = 1) -> dict:
    record = work / f"{name}.json"
    record.unlink(missing_ok=True)
    script = ["scripts/train_sft.py", "--model", MODEL, *settings_for(processes), "--output_dir", str(work / name),
              "--run_name", name, "--record", str(record), *spec["extra"]]
    launch = list(spec["launch"])
    if any("deepspeed" in part for part in launch):
        # the DeepSpeed YAML repeats the accumulation; pass the divided one so that both agree
        launch += ["--gradient_accumulation_steps", settings_for(processes)[SETTINGS.index("--gradient_accumulation_steps") + 1]]
    if spec["launch"]:
        command = [sys.executable, "-m", "accelerate.commands.launch", *launch, "--num_processes", str(processes),
                   "--num_machines", "1", "--main_process_port", "29571", *script]
    else:
        command = [sys.executable, *script]
    start = time.perf_counter()
    # The run's output goes to its own file as it happens: a run stopped by a time limit leaves its log.
    run_log = work / f"{name}.log"
    with run_log.open("w") as sink:
        done = subprocess.run(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    output = run_log.read_text(errors="replace")
    log.write(f"\n===== {name}: {' '.join(command)}\n" + output)
    wall = round(time.perf_counter() - start, 1)
    if done.returncode != 0 or not record.exists():
        error = [line for line in output.splitlines() if "Error" in line or "error" in line]
        return {"name": name, "status": "FAILED", "process_wall_s": wall, "command": " ".join(command),
                "error": (error[-1] if error else output[-500:])[:500]}
    run = json.loads(record.read_text())
    run.update(status="passed", process_wall_s=wall, command=" ".join(command))
    return run


def main(argv=None) -> int:
    from helpers import results, sft

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="notebook," + ",".join(RUNS), help="comma-separated runs")
    parser.add_argument("--results", default="results")
    parser.add_argument("--processes", type=int, default=1,
                        help="GPUs for the launcher runs (named e.g. zero3-2gpu); the accumulation is divided "
                             "among them so that the effective batch stays the notebook's")
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
        earlier = {r["name"]: r for r in json.loads(record_path.read_text())["runs"] if r.get("launcher") != "notebook"}
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
                name = base_name if args.processes == 1 else f"{base_name}-{args.processes}gpu"
                run = run_script(name, spec, work, log, args.processes)
                print(f"{name}: {run['status']} in {run['process_wall_s']} s", flush=True)
                if run["status"] == "FAILED" and spec["launch"]:
                    # Reloading the best checkpoint at the end is the launcher-specific step most
                    # likely to break (FSDP/ZeRO-3 + PEFT); measure without it and keep the error.
                    retry = run_script(name, {**spec, "extra": spec["extra"] + ["--no-load_best"]}, work, log,
                                       args.processes)
                    retry["first_attempt_error"] = run.get("error")
                    run = retry
                    print(f"{name} (--no-load_best): {run['status']} in {run['process_wall_s']} s", flush=True)
                runs[name] = run
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
        plain = json.loads(notebook_record.read_text())["runs"][0]
        reference = (plain["loss_curve"]["steps"], plain["loss_curve"]["loss"])
        runs.insert(0, {"name": "notebook (plain, one GPU)", "status": (notebook or {}).get("status", "earlier run"),
                        "processes": 1, "launcher": "notebook", **{k: plain.get(k) for k in (
                            "tokens_per_s", "peak_device_gib", "peak_allocated_gib", "peak_reserved_gib", "wall_s",
                            "train_runtime_s", "first_train_loss", "final_train_loss", "eval_loss", "loss_curve")}})
    for run in runs:
        if reference and run.get("loss_curve") and run["launcher"] != "notebook":
            gap = sft.curve_gap(reference, (run["loss_curve"]["steps"], run["loss_curve"]["loss"]),
                                window=TOLERANCE["smoothing_window"])
            run.update(loss_gap_mean=gap["mean_relative"], loss_gap_max=gap["max_relative"],
                       within_tolerance=gap["mean_relative"] <= TOLERANCE["mean_relative"]
                       and gap["max_relative"] <= TOLERANCE["max_relative"])
    # Scaling: tokens per second on N GPUs against N times the same launcher on one GPU.
    single = {r.get("launcher"): r for r in runs if r.get("processes") == 1 and r.get("status") == "passed"}
    for run in runs:
        one = single.get(run.get("launcher"))
        if run.get("processes", 1) > 1 and one and run.get("tokens_per_s") and one.get("tokens_per_s"):
            run["scaling_efficiency"] = round(run["tokens_per_s"] / (run["processes"] * one["tokens_per_s"]), 3)
    return results.make_record(
        "03_accounting_sft_script", "bench", runs, tolerance=TOLERANCE, model=MODEL, settings=SETTINGS,
        reference="the notebook's plain single-GPU run (results/03_accounting_sft.bench.json)",
        driver_wall_s=round(time.perf_counter() - started, 1), readme_columns=README_COLUMNS)


if __name__ == "__main__":
    sys.exit(main())
