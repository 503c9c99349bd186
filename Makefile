# Every target works from a fresh clone: it creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Torch comes first so open_clip finds a matching torchvision; override for another build,
# e.g. make install TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= all,dev
export SEARCH_HOME ?= $(CURDIR)/.search-home

.PHONY: install test lint demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $@

install: $(VENV)/.installed

test: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check retrieval rerank training search tests benchmarks
	$(BIN)/ruff format --check retrieval rerank training search tests benchmarks

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/search data synth $(SEARCH_HOME)/demo/synth --groups 200 --seed 0
	HF_HUB_OFFLINE=1 $(BIN)/search index $(SEARCH_HOME)/demo/synth --collection demo --recreate \
		--encoder text --encoder sparse --encoder phash
	HF_HUB_OFFLINE=1 $(BIN)/search collections
	HF_HUB_OFFLINE=1 $(BIN)/search query "samsung galaxy a52 128gb hitam" --collection demo --vector hybrid --top-k 5
	HF_HUB_OFFLINE=1 $(BIN)/search query "xiaomi redmi note 10 64 gb" --collection demo --vector text --top-k 5

bench: install
	$(BIN)/python benchmarks/index_bench.py

clean:
	rm -rf $(VENV) .search-home
