# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: run test lint demo-models bench bench-cub clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

## Open the dashboard with the bundled demo models (this machine only; ADDRESS=0.0.0.0 serves a network).
run: $(STAMP)
	$(PY) -m streamlit run app/streamlit_app.py --server.port $(PORT) --server.address $(ADDRESS)

## Every test: unit, app (AppTest) and browser (Playwright + Debian chromium).
test: $(STAMP) lint
	$(PY) -m pytest -q

## Static checks: ruff over everything, mypy over the package and the dashboard.
lint: $(STAMP)
	$(PY) -m ruff check protoviz app tests benchmarks docs
	$(PY) -m mypy protoviz app

## Regenerate the synthetic data and retrain the demo models in assets/ from scratch.
demo-models: $(STAMP)
	$(PY) -m protoviz.train.demo --out assets

## Benchmarks print throughput next to the bare forward pass (the CUB-scale run in its quick size).
bench: $(STAMP)
	for f in benchmarks/*.py; do case $$f in *cub_scale.py) $(PY) $$f --quick || exit 1;; *) $(PY) $$f || exit 1;; esac; done

## The CUB-scale run at full size (5,994 train / 5,794 test generated images; hours on a small CPU).
bench-cub: $(STAMP)
	$(PY) benchmarks/cub_scale.py

clean:
	rm -rf $(VENV) .pytest_cache
