# Thin front door: every recipe calls nox or `python -m harness` (logic lives in harness/).
# Needs only python3.11 + make: nox, uv and the harness's few libraries are bootstrapped into
# .venv-tools from constraints.txt. Any plan target is also a make target (handed to nox).
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
TOOLS := .venv-tools
TOOLS_PY := $(TOOLS)/bin/python
NOX := $(TOOLS)/bin/nox
TOOLS_STAMP := $(TOOLS)/.bootstrapped
HARNESS := PYTHONPATH=$(CURDIR) $(TOOLS_PY) -m harness
# The run context, passed on to nox sessions through the environment.
export EVIDENCE_PROJECT := $(PROJECT)
export EVIDENCE_PLAN := $(PLAN)
CONTEXT := $(if $(PROJECT),--project "$(PROJECT)") $(if $(PLAN),--plan "$(PLAN)")
QUIET := $(if $(V),--verbose,)

.PHONY: help phase-c4d-b3 test reproduce quality bench clean tools

help: ## show this help
	@echo "usage: make <target> [PROJECT=<checkout>] [PLAN=<plan.toml>] [HUB=<new hub dir>] [NO_LEDGER=1] [V=1]"
	@echo
	@echo "  phase-c4d-b3          all evidence targets + collate into one new hub; prints hub + verdict last"
	@echo "                        PROJECT= judges another checkout; HUB= names the hub (refused if it exists);"
	@echo "                        NO_LEDGER=1 leaves plan.md/fix_plan.md alone; V=1 shows every child's output"
	@echo "  <plan target>         one target via nox into a collated hub, e.g. make cli_smoke_gs2"
	@echo "  test                  the project's test suite (nox -s tests)"
	@echo "  reproduce FROM=<hub>  rerun the plan behind <hub> (harness-made or hand-made) into a new hub and compare"
	@echo "  bench                 harness vs. by-hand timing benchmark (writes artifacts/bench/<ts>.json)"
	@echo "  quality               science benchmark in the evidence venv (QUALITY_BUDGET=quick: ~8 min); JSON last"
	@echo "  clean                 remove .nox, .venv-tools and artifacts/* (never hubs under plans/)"

$(TOOLS_STAMP): constraints.txt
	@test -n "$(PYTHON)" || { echo "make: python3.11 not found; install Python 3.11 or pass PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS_PY) -m pip install --quiet -c constraints.txt nox tabulate filelock uv pillow
	@touch $@

tools: $(TOOLS_STAMP)

phase-c4d-b3: $(TOOLS_STAMP)
	@$(HARNESS) pipeline $(CONTEXT) $(QUIET) $(if $(HUB),--hub "$(HUB)") $(if $(NO_LEDGER),--no-ledger) $(if $(JOBS),--jobs $(JOBS))

test: $(TOOLS_STAMP)
	$(NOX) -s tests

reproduce: $(TOOLS_STAMP)
	@test -n "$(FROM)" || { echo "usage: make reproduce FROM=<hub> [PROJECT=<checkout>] [PLAN=<plan.toml>]" >&2; exit 2; }
	@$(HARNESS) reproduce --from "$(FROM)" $(CONTEXT) $(if $(HUB),--hub "$(HUB)") $(if $(NO_LEDGER),--no-ledger)

bench: $(TOOLS_STAMP)
	$(TOOLS_PY) bench/harness_speed.py

# Runs in the evidence venv but outside nox, so that the benchmark's JSON line is the last line printed.
quality: $(TOOLS_STAMP)
	CUDA_VISIBLE_DEVICES="" OMP_WAIT_POLICY=PASSIVE "$$($(HARNESS) env | tail -n 1)" bench/quality.py

clean:
	rm -rf .nox $(TOOLS)
	find artifacts -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +

# Any other name is a plan target (or a nox session): hand it to nox, so a new plan needs no edit here.
.DEFAULT:
	@$(MAKE) --no-print-directory tools
	$(NOX) -s $@
