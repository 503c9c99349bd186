# Every target works from a fresh clone: it creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Torch comes first so open_clip finds a matching torchvision; override for another build,
# e.g. make install TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= all,dev
export SEARCH_HOME ?= $(CURDIR)/.search-home

.PHONY: install qdrant browser test docs lint demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $@

install: $(VENV)/.installed

# The pinned Qdrant server binary for the server and cluster tests (sha256 checked).
qdrant:
	bash tools/fetch_qdrant.sh

# Debian's Chromium for the browser tests (root only; skipped with the reason elsewhere).
browser:
	bash tools/install_browser.sh

# The suite runs in a private network namespace where we may make one (root): every server
# a test starts (Qdrant, Ray, the viewer, Chromium) talks over loopback only.
test: install qdrant browser
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 bash tools/in_netns.sh $(BIN)/python -m pytest -q
	$(MAKE) docs

# The docs site (mkdocs.yml, docs/): warnings (a broken link or anchor) fail the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d .cache/site

lint: install
	$(BIN)/ruff check retrieval rerank training search tests benchmarks
	$(BIN)/ruff format --check retrieval rerank training search tests benchmarks
	$(BIN)/lint-imports --no-cache

# The main job on the embedded default: synthesise, index, train the pair-gbdt
# reranker, evaluate both stages (tuning the matcher), print the table and the report
# path, then match the whole catalogue with that matcher and print where matches.csv is.
DEMO := $(SEARCH_HOME)/demo
demo: install
	HF_HUB_OFFLINE=1 $(BIN)/search data synth $(DEMO)/synth --groups 200 --seed 0
	HF_HUB_OFFLINE=1 $(BIN)/search index $(DEMO)/synth --collection demo --recreate \
		--encoder text --encoder sparse --encoder phash
	HF_HUB_OFFLINE=1 $(BIN)/search query "samsung galaxy a52 128gb hitam" --collection demo --top-k 5
	HF_HUB_OFFLINE=1 $(BIN)/search train reranker $(DEMO)/synth --kind pair-gbdt \
		--collection demo --out $(DEMO)/pair-gbdt.txt
	HF_HUB_OFFLINE=1 $(BIN)/search query "samsung galaxy a52 128gb hitam" --collection demo \
		--reranker pair-gbdt:$(DEMO)/pair-gbdt.txt --k 50 --n 5
	HF_HUB_OFFLINE=1 $(BIN)/search eval $(DEMO)/synth --collection demo --k 50 \
		--reranker pair-gbdt:$(DEMO)/pair-gbdt.txt --match-against catalogue --out $(DEMO)/eval
	HF_HUB_OFFLINE=1 $(BIN)/search match $(DEMO)/synth --collection demo \
		--matcher $(DEMO)/eval/matcher.json --out $(DEMO)/match

bench: install
	$(BIN)/python benchmarks/index_bench.py
	$(BIN)/python benchmarks/eval_bench.py
	$(BIN)/python benchmarks/pair_gbdt_abt_buy.py

clean:
	rm -rf $(VENV) .search-home
