# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test setup clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "edgeprune needs Python >= 3.10")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[workstation,openvino,tflite,yolo,test]"
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

## Set up, then make the built-in demo model run in 25% of its latency measured on this CPU (INT8 + pruning).
demo: $(STAMP)
	$(BIN)/edgeprune fit --target cpu --budget 25% --finetune-epochs 2 --out edgeprune-out/demo --force

## Set up, then lint (ruff: unused names, import order) and run the whole test suite (slow tests included).
test: $(STAMP)
	$(BIN)/ruff check edgeprune tests tools
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) edgeprune-out .pytest_cache
