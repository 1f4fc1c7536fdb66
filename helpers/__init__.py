"""Shared plumbing for the fine-tuning-on-a-budget notebooks.

One concern a module:
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
reload   a saved adapter reloaded in a fresh process, merged weights exported.
"""
__version__ = "0.1.0"
