# The two commands of the README: `make run` (embedded demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test lint bench services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(FLASK) db upgrade
	$(FLASK) demo seed
	@# A day of the integration cycle: remessa out, the simulated integrator answers, retorno in.
	-$(FLASK) recon sync > /dev/null
	-$(FLASK) recon simulate-integrator --seed 7 > /dev/null
	-$(FLASK) recon sync > /dev/null
	@echo "Desk em http://$(HOST):$(PORT)  (agente@example.com / demo)"
	$(FLASK) run --host $(HOST) --port $(PORT)

services:
	bash scripts/ensure-services.sh

test: $(VENV)/.dev services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) instance artifacts .pytest_cache
