"""Shared plumbing for the fine-tuning-on-a-budget notebooks.

One concern a module:
session  the first call of a notebook (profile, device, folders, Drive) and profiles as overrides of the recipe;
recipe   a recipe read off the notebook's own config objects, for the estimator, the OOM advice and the record;
training the one measured Trainer run: resume, room, memory, timing, OOM advice, fingerprint;
runtime  profile, banner, device and precision (NB_EMULATE=T4), seeding, versions;
colab    the Colab install cell: clone, pip with its output shown, the restart check;
tiny     offline tiny models and tokenizers, full-size configs, random-weight checkpoints;
data     loading and validating the samples, a user's own file or the hub dataset;
memory   a TrainerCallback (and a tracker for hand-written loops) recording memory per step;
estimate memory and time before a run;  cost  compute units and dollars;
plots    loss, metric and memory figures;  metrics  classification metrics;
results  the JSON measurement records written to results/;
checkpoints  where checkpoints survive a disconnect, exact resume, finished runs kept;
faults   simulated disconnects and out-of-memory errors for tests (NB_FAULT);
oom      a CUDA out-of-memory error turned into the estimator's advice;
reload   a saved adapter reloaded in a fresh process, merged weights exported;
notebook-specific: qlora (02's memory anatomy), sft (03 and its script), loop (04's hand-written loop run
resumably: checkpoints, timing, memory marks, evaluation, OOM advice), compare (05's runs).
"""
__version__ = "0.1.0"
