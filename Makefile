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

# Each step's result file is a make target: a rerun after a kill skips the finished steps;
# training resumes from its checkpoints, the comparison from its finished points (points/).
# A step whose input changed is redone: --overwrite, since make has decided its old results are stale.
run: install $(OUT)/compare/runtimes/runtimes.json
	@echo "results: $(OUT)/train/metrics.json, $(OUT)/sweep/ (sweep.csv, plots), $(OUT)/parity/ (parity.csv, plots), $(OUT)/compare/REPORT.md, models/ and runtimes/RUNTIMES.md"

$(OUT)/train/model.pt: | install
	$(PY) scripts/train.py --out-dir $(OUT)/train $$(test -d $(OUT)/train/checkpoints && echo --resume) $(TRAIN_ARGS)

$(OUT)/sweep/sweep.json: $(OUT)/train/model.pt
	$(PY) scripts/sweep_ranks.py --checkpoint $< --out-dir $(OUT)/sweep --overwrite

$(OUT)/parity/parity.json: $(OUT)/train/model.pt $(OUT)/sweep/sweep.json
	$(PY) scripts/parity_report.py --checkpoint $< --out-dir $(OUT)/parity --overwrite

$(OUT)/compare/compare.json: $(OUT)/train/model.pt $(OUT)/parity/parity.json
	$(PY) scripts/compare_methods.py --checkpoint $< --out-dir $(OUT)/compare

$(OUT)/compare/runtimes/runtimes.json: $(OUT)/compare/compare.json
	$(PY) scripts/runtime_matrix.py --checkpoint $(OUT)/train/model.pt --compare-dir $(OUT)/compare --overwrite

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q --durations=25

test-fast: lint
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
