# Entry points (see README): `make demo`, `make test` (the quick tier, what CI runs) and `make test-full` (every
# test). Each creates .venv on first use. `make test COV=1` (or test-full) also measures line coverage of edgeprune/.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test test-full setup wheel clean

# Where torch and torchvision come from. Empty (the default): the index pip is configured with, whose Linux torch is a
# CUDA build (about 4 GB of CUDA libraries it never uses on a CPU). Where PyTorch's own index is reachable, a machine
# without a GPU can take the CPU-only build instead (about 0.2 GB):
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

# pytest's options for both tiers: the 25 slowest tests are printed so that growth is visible; with COV=1, line
# coverage of edgeprune/ (subprocesses included: [tool.coverage.run] in pyproject.toml), total on the terminal.
PYTEST_ARGS := -q --durations=25 $(if $(COV),--cov --cov-report=term:skip-covered,)

# Fills edgeprune's cache before the tests, as a user's first fit of the demo would: the demo's trained weights and
# its ONNX Runtime latency table (about 2 minutes on an empty cache, 3 s when warm; tests/warm_cache.py). Many tests
# fit the demo; done here, that minute of training and minute of kernel timings is spent once, outside any one test.
WARM_CACHE := $(BIN)/python tests/warm_cache.py

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "edgeprune needs Python >= 3.10")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet --index-url $(TORCH_INDEX) -c constraints.txt torch torchvision)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[workstation,openvino,tflite,ncnn,executorch,yolo,timm,test]"
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

## Set up, then make the built-in demo model run in 25% of its latency measured on this CPU (INT8 + pruning).
demo: $(STAMP)
	$(BIN)/edgeprune fit --target cpu --budget 25% --finetune-epochs 2 --out edgeprune-out/demo --force

## Set up, lint (ruff: unused names, import order), then run the quick tier: every path end to end once, on the
## smallest model and input that exercises it (tests marked `full` are left to `make test-full`).
test: $(STAMP)
	$(BIN)/ruff check edgeprune tests tools
	$(WARM_CACHE)
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "not full"

## Set up, lint, then run every test: the quick tier and the variants marked `full`.
test-full: $(STAMP)
	$(BIN)/ruff check edgeprune tests tools
	$(WARM_CACHE)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## A wheel of edgeprune in dist/, to install where there is no checkout (a Raspberry Pi: copy it over, then
## pip install 'edgeprune-<version>-py3-none-any.whl[agent-tflite]'; docs/install.md).
wheel:
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) edgeprune-out dist build .pytest_cache .coverage .coverage.*
