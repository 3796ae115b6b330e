# Thin front door: every recipe calls nox or `python -m harness` (logic lives in harness/).
# Needs only python3.11 + make: nox is bootstrapped into .venv-tools from constraints.txt.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
TOOLS := .venv-tools
TOOLS_PY := $(TOOLS)/bin/python
NOX := $(TOOLS)/bin/nox
TOOLS_STAMP := $(TOOLS)/.bootstrapped
TARGETS := gridsize_regression bundle_loader integration cli_smoke_gs2

.PHONY: help phase-c4d-b3 $(TARGETS) test reproduce quality clean

help: ## show this help
	@echo "usage: make <target> [HUB=<new hub dir>] [NO_LEDGER=1] [FROM=<hub>]"
	@echo
	@echo "  phase-c4d-b3         all evidence targets + collate into one new hub; prints hub + verdict"
	@echo "                       HUB=<dir> names the hub (refused if it exists); NO_LEDGER=1 leaves plan.md/fix_plan.md alone"
	@echo "  gridsize_regression  one target (nox -s <name>) into a new hub; likewise:"
	@echo "  bundle_loader integration cli_smoke_gs2"
	@echo "  test                 the project's test suite (nox -s tests)"
	@echo "  reproduce FROM=<hub> rerun the plan behind <hub> into a new hub and compare"
	@echo "  quality              science benchmark in the evidence venv (QUALITY_BUDGET=quick: ~3 min); JSON last"
	@echo "  clean                remove .nox, .venv-tools and artifacts/* (never hubs under plans/)"

$(TOOLS_STAMP): constraints.txt
	@test -n "$(PYTHON)" || { echo "make: python3.11 not found; install Python 3.11 or pass PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS_PY) -m pip install --quiet -c constraints.txt nox tabulate
	@touch $@

phase-c4d-b3: $(TOOLS_STAMP)
	PYTHONPATH=$(CURDIR) $(TOOLS_PY) -m harness pipeline $(if $(HUB),--hub "$(HUB)") $(if $(NO_LEDGER),--no-ledger)

$(TARGETS): $(TOOLS_STAMP)
	$(NOX) -s $@

test: $(TOOLS_STAMP)
	$(NOX) -s tests

reproduce: $(TOOLS_STAMP)
	@test -n "$(FROM)" || { echo "usage: make reproduce FROM=<hub>" >&2; exit 2; }
	PYTHONPATH=$(CURDIR) $(TOOLS_PY) -m harness reproduce --from "$(FROM)" $(if $(HUB),--hub "$(HUB)") $(if $(NO_LEDGER),--no-ledger)

# Runs in the evidence venv but outside nox, so that the benchmark's JSON line is the last line printed.
quality: $(TOOLS_STAMP)
	$(NOX) -s evidence_env
	CUDA_VISIBLE_DEVICES="" OMP_WAIT_POLICY=PASSIVE .nox/evidence_env/bin/python bench/quality.py

clean:
	rm -rf .nox $(TOOLS)
	find artifacts -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
