# Two commands do everything on a fresh machine (README.md):
#   make run    install, train (CPU preset), sweep ranks, compare with the JAX reference,
#               compare compression methods (REPORT.md)
#   make test   install, lint (ruff), run every unit and parity test
#   make test-fast   the same without the tests marked slow (for development)
VENV ?= .venv
PY := $(VENV)/bin/python
CIFAR10_DIR ?= $(abspath ../shared/cifar10)
OUT ?= runs
TRAIN_ARGS ?=
export CIFAR10_DIR

.PHONY: install run test test-fast lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,deploy]"
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) scripts/train.py --out-dir $(OUT)/train $(TRAIN_ARGS)
	$(PY) scripts/sweep_ranks.py --checkpoint $(OUT)/train/model.pt --out-dir $(OUT)/sweep
	$(PY) scripts/parity_report.py --checkpoint $(OUT)/train/model.pt --out-dir $(OUT)/parity
	$(PY) scripts/compare_methods.py --checkpoint $(OUT)/train/model.pt --out-dir $(OUT)/compare
	$(PY) scripts/runtime_matrix.py --checkpoint $(OUT)/train/model.pt --compare-dir $(OUT)/compare
	@echo "results: $(OUT)/train/metrics.json, $(OUT)/sweep/ (sweep.csv, plots), $(OUT)/parity/ (parity.csv, plots), $(OUT)/compare/REPORT.md, models/ and runtimes/RUNTIMES.md"

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q

test-fast: lint
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
