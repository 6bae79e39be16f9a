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
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install leadscore with its dev tools

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

ui: $(STAMP) ## open the MLflow UI on the project's store (http://127.0.0.1:5000)
	$(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

bench: $(STAMP) ## run the benchmarks, write benchmarks/results/*.json
	$(PY) -m benchmarks.run

SPARK_VENV := .venv-spark
SPARK_STAMP := $(SPARK_VENV)/.installed
# PySpark 4 wants pandas < 3, the main venv has pandas 3: the Spark path gets its own venv.
$(SPARK_STAMP): pyproject.toml
	@test -x $(SPARK_VENV)/bin/python || python3 -m venv $(SPARK_VENV)
	$(SPARK_VENV)/bin/python -m pip install -q --upgrade pip
	$(SPARK_VENV)/bin/python -m pip install -q 'pandas>=2.2,<3' 'pyspark>=3.5' 'pyarrow>=15' 'numpy<3' \
	  'scikit-learn>=1.4,<2' 'lightgbm>=4.3,<5' 'mlflow-skinny>=3,<4' 'sqlalchemy>=2' pyyaml joblib rich typer pytest
	$(SPARK_VENV)/bin/python -m pip install -q --no-deps -e .
	@touch $(SPARK_STAMP)

spark-test: $(SPARK_STAMP) ## the Spark parity test in local[2] (own venv .venv-spark: PySpark 4 wants pandas < 3; needs Java 17)
	$(SPARK_VENV)/bin/python -m pytest -q tests/pipeline/test_spark_parity.py

clean: ## remove generated data (keeps .venv and mlflow.db)
	rm -rf data/0*
