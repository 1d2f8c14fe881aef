# The two commands a newcomer runs: `make demo` and `make test`. Each creates/reuses .venv,
# installs what it needs (torch pinned first so the CPU wheel is used) and runs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RT := $(VENV)/.runtime-installed
STAMP_DEV := $(VENV)/.dev-installed

.PHONY: demo test lint bundle bench venv mosquitto clean install uninstall

$(BIN)/python:
	@bash deploy/ensure-venv.sh $(PY) $(VENV)

$(STAMP_RT): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q 'torch==2.13.0'
	$(BIN)/pip install -q -e '.[train,dev]'
	@touch $@ $(STAMP_RT)

mosquitto:
	@bash deploy/ensure-mosquitto.sh

demo: $(STAMP_RT) mosquitto
	$(BIN)/edge-agent demo $(ARGS)

test: $(STAMP_DEV) mosquitto
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bundle: $(STAMP_DEV)
	$(BIN)/python -m training build-demo-bundle

bench: $(STAMP_DEV) mosquitto
	@for b in bench/bench_*.py; do echo "# $$b"; $(BIN)/python $$b || exit 1; done

# As root on the hub: the hardened systemd service (deploy/install.sh --help). INSTALL_ARGS e.g. --with-training,
# --bundle DIR, --root DIR (staging), --purge (with uninstall).
install:
	bash deploy/install.sh $(INSTALL_ARGS)

uninstall:
	bash deploy/install.sh --uninstall $(INSTALL_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
