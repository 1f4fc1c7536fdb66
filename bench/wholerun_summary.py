"""Whole-run estimates made before training, beside the measured runs: one summary file from device outputs.

    python bench/wholerun_summary.py OUT/r01 OUT/r03 OUT/r04 --out results/wholerun_validation.json

Each folder holds one notebook's `real` record (written by the notebook on the GPU, with the whole-run
estimate that helpers.training.measured / helpers.loop.train made before each run) and the host probe taken
before the notebook started (host_costs.json). Besides the estimate as it was made, each run gets `recomputed`:
the training part (no evaluations, no checkpoints) estimated again for the model that really trained, every
batch at the run's mean padded length; nothing is fitted to the measurement.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from helpers import pretrained, recipe, runtime, wholerun

STAND_INS = {"01": "encoder", "03": "causal", "04": "encoder", "05": "encoder", "02": "causal"}


def summarise(folder: Path) -> dict:
    record_path = next(folder.glob("0*.real.json"))
    record = json.loads(record_path.read_text())
    host = json.loads((folder / "host_costs.json").read_text())
    notebook = record["notebook"][:2]
    model = str(pretrained.folder(STAND_INS[notebook]))
    rows, first = [], True
    for run in record["runs"]:
        if "estimated_wall_s" not in run:
            continue
        fields = record["recipe"] | {"model": model, "head_modules": None}
        if "accumulation" in run and "micro_batch" in run:
            fields |= {"micro_batch": run["micro_batch"], "grad_accum": run["accumulation"]}
        ran = recipe.Recipe(**fields)
        length = round(run["estimated_padding"]["mean_padded_length"])
        again = wholerun.plan(ran, gpu="H200", updates=run["estimated_updates"], host=host, first_in_process=first,
                              batches=[(ran.micro_batch, length)] * run["estimated_micro_batches"])
        first = False
        train_s = run.get("train_s") or run.get("training_s")
        rows.append(dict(
            name=run["name"], measured_wall_s=run["measured_wall_s"], estimated_wall_s=run["estimated_wall_s"],
            wall_error=run["wall_error"], estimated_parts_s=run["estimated_parts_s"],
            # what that run's estimate was of: the recipe's hub model (04's record keeps the recipe as it ran, but
            # its loop was handed BLOOM-560m's budget recipe)
            estimated_for=record["recipe"]["model"] if notebook != "04" else "bigscience/bloom-560m",
            measured_train_s=train_s, measured_eval_s=run.get("eval_s", run.get("evaluation_s")),
            measured_checkpoint_s=run.get("checkpoint_s"),
            recomputed=dict(model=pretrained.model_for(STAND_INS[notebook]).hub_id, train_s=round(again.estimate_s, 1),
                            train_error=round(wholerun.error(again, train_s), 3)),
            peak_device_gib=run.get("peak_device_gib"), estimated_peak_device_gib=run.get("estimated_peak_device_gib")))
    probe = {k: host[k] for k in wholerun.HOST_KEYS} | {"date": host["date"]}
    return dict(notebook=record["notebook"], date=record["date"], gpu=record["gpu"]["name"],
                versions=record["versions"], host_probe=probe, runs=rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    summary = dict(
        what="whole-run estimates made before training (helpers.wholerun, host probed before each notebook) beside "
             "the measured runs, H200, notebooks in the real profile",
        made_by="bench/wholerun_summary.py", date=runtime.today(),
        caveat="The estimates made before training were of the recipe's hub model (01: xlm-roberta-large, 03: "
               "Phi-3-mini, 04: BLOOM-560m), not of the real small model that trained: the notebooks handed "
               "training.measured and loop.train the hub model's recipe. Fixed after this run (wholerun estimates "
               "the model the Trainer or the hand loop holds, in the precision it trains in). `recomputed` is the training part "
               "estimated again for the model that trained, every batch at the run's mean padded length, with the "
               "same host probe and no constant changed; it is not a before-the-run figure.",
        notebooks=[summarise(folder) for folder in args.folders])
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
