# Thin front door: every recipe calls nox or `python -m harness` (logic lives in harness/).
# Needs only python3.11 + make: nox, uv and the harness's few libraries are bootstrapped into
# .venv-tools from constraints.txt (harness/tools.py). Any plan target is also a make target.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
TOOLS := .venv-tools
TOOLS_PY := $(TOOLS)/bin/python
NOX := $(TOOLS)/bin/nox
HARNESS := $(TOOLS_PY) -m harness  # make runs recipes here: -m finds harness/ without PYTHONPATH
# The run context, passed on to nox sessions through the environment.
export EVIDENCE_PROJECT := $(PROJECT)
export EVIDENCE_PLAN := $(PLAN)
CONTEXT := $(if $(PROJECT),--project "$(PROJECT)") $(if $(PLAN),--plan "$(PLAN)")
SIGNING := $(if $(SIGN),--sign) $(if $(KEY),--key "$(KEY)")
RUN := $(CONTEXT) $(if $(V),--verbose) $(if $(JOBS),--jobs "$(JOBS)") $(if $(NO_LEDGER),--no-ledger) $(SIGNING)

.PHONY: help phase-c4d-b3 test test-e2e reproduce bisect quality bench clean tools

help: ## show this help
	@echo "usage: make <target> [PROJECT=<checkout>] [PLAN=<plan.toml>] [HUB=<new hub dir>] [NO_LEDGER=1] [JOBS=N] [V=1]"
	@echo
	@echo "  phase-c4d-b3          every plan target through nox into one new hub, then collate; hub + verdict last"
	@echo "                        PROJECT= judges another checkout; HUB= names the hub (refused if it exists);"
	@echo "                        NO_LEDGER=1 leaves plan.md/fix_plan.md alone; JOBS= targets at once; V=1 all output"
	@echo "  <plan target>         that target alone into a new partial hub (= nox -s <target> --no-dependencies);"
	@echo "                        PART=<dir> makes it a part to merge with others (python -m harness merge)"
	@echo "  test                  the project's fast test suite (nox -s tests: not slow, not e2e)"
	@echo "  test-e2e              the end-to-end tests on real engines: Slurm, fresh clones, git bisect (nox -s e2e)"
	@echo "  reproduce FROM=<hub>  rerun the plan behind <hub> (harness-made or hand-made) into a new hub and compare"
	@echo "  bisect GOOD= BAD=     the first commit whose verdict changed (each a commit or a hub); TARGETS= to narrow"
	@echo "                        SIGN=1 [KEY=<ssh key>] signs a new hub (phase-c4d-b3, reproduce, any target)"
	@echo "  bench                 harness vs. by-hand timing benchmark (writes artifacts/bench/<ts>.json)"
	@echo "  quality               science benchmark in the evidence venv (QUALITY_BUDGET=quick: ~8 min); JSON last"
	@echo "  clean                 remove .nox, .venv-tools and artifacts/* (never hubs under plans/)"

$(TOOLS)/.bootstrapped: constraints.txt harness/tools.py
	@PYTHON="$(PYTHON)" $(PYTHON) -m harness.tools >/dev/null

tools: $(TOOLS)/.bootstrapped

phase-c4d-b3: tools
	@$(HARNESS) pipeline $(RUN) $(if $(HUB),--hub "$(HUB)")

test: tools
	EVIDENCE_DRIVER=1 $(NOX) -s tests

test-e2e: tools  # its Slurm tests start a one-node cluster (scripts/slurm-local.sh, docs/scale.md)
	EVIDENCE_DRIVER=1 $(NOX) -s e2e

reproduce: tools
	@test -n "$(FROM)" || { echo "usage: make reproduce FROM=<hub> [PROJECT=<checkout>] [PLAN=<plan.toml>]" >&2; exit 2; }
	@$(HARNESS) reproduce --from "$(FROM)" $(CONTEXT) $(if $(JOBS),--jobs "$(JOBS)") $(if $(HUB),--hub "$(HUB)") $(if $(NO_LEDGER),--no-ledger) $(SIGNING)

bisect: tools
	@test -n "$(GOOD)" -a -n "$(BAD)" || { echo "usage: make bisect GOOD=<hub|commit> BAD=<hub|commit> [TARGETS=<names>]" >&2; exit 2; }
	@$(HARNESS) bisect --good "$(GOOD)" --bad "$(BAD)" $(CONTEXT) $(if $(TARGETS),--targets $(TARGETS))

bench: tools
	$(TOOLS_PY) bench/harness_speed.py

# Runs in the evidence venv but outside nox, so that the benchmark's JSON line is the last line printed.
quality: tools
	CUDA_VISIBLE_DEVICES="" OMP_WAIT_POLICY=PASSIVE "$$($(HARNESS) env | tail -n 1)" bench/quality.py

clean:
	rm -rf .nox $(TOOLS)
	find artifacts -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +

# Any other name is a plan target: run it alone through nox (the driver makes its hub). A nox session
# that is not a target (compare, quality, ...) is handed to nox as it is.
.DEFAULT:
	@$(MAKE) --no-print-directory tools
	@$(HARNESS) pipeline $(RUN) --targets $@ --no-dependencies $(if $(PART),--part "$(PART)") $(if $(HUB),--hub "$(HUB)")
