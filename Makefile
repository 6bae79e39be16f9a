# leadscore — every target sets itself up: a fresh machine needs only `make demo` or `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help install demo test test-all lint ui bench spark-test clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,spark]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install leadscore with its dev tools and PySpark

demo: $(STAMP) ## run the whole pipeline on the demo CRM (dvc repro) and print the top SQLs
	@test -d .dvc || dvc init -q
	dvc repro
	leadscore show --top 15

test: $(STAMP) ## run the test suite (offline; slow tests included)
	$(PY) -m pytest -q

test-fast: $(STAMP) ## run the test suite without slow tests
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff and the layer contract (import-linter, pyproject.toml [tool.importlinter])
	$(VENV)/bin/ruff check pipeline features models tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

ui: $(STAMP) ## open the MLflow UI on the project's store, model-training view (docs/mlflow.md)
	@echo "MLflow UI, model-training view: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
	$(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

bench: $(STAMP) ## run the benchmarks, write benchmarks/results/*.json
	$(PY) -m benchmarks.run

# PySpark 4.3 shares the one venv with pandas 3 (the `spark` extra, installed with dev): `make test` runs the Spark
# parity test too (needs Java 17+; skipped with the reason without it). This target runs it alone.
spark-test: $(STAMP) ## only the Spark parity test: featurize + score on PySpark local[2] = the pandas path (Java 17+)
	$(PY) -m pytest -q -rs tests/pipeline/test_spark_parity.py

clean: ## remove generated data (keeps .venv and mlflow.db)
	rm -rf data/0*
