# Two commands do everything on a fresh machine (README.md):
#   make run        install, train (CPU preset), sweep ranks, compare the deciding set of compression
#                   methods; ends with the recommendation (runs/compare/REPORT.md, recommended.json)
#   make test       install, lint (ruff, the pyrefly type check), run every unit, parity and end-to-end test
# More:
#   make run-all    make run, then the torch-vs-JAX parity report, every recipe, and the runtime matrix
#   make replicate  train two more seeds (SEEDS) and run the comparison on all three: which claims hold
#   make deploy     make run, then the deployment frontier: its models x precision x runtime, winners saved
#   make test-fast  the tests not marked slow (for development)
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= runs
TRAIN_ARGS ?=
# CIFAR-10: $CIFAR10_DIR if set; else ../shared/cifar10 where this project's machines keep a copy;
# else nothing, and the scripts use ./data/cifar10, downloading it there with torchvision.
SHARED_CIFAR10 := $(abspath ../shared/cifar10)
ifeq ($(origin CIFAR10_DIR),undefined)
ifneq ($(wildcard $(SHARED_CIFAR10)/train),)
CIFAR10_DIR := $(SHARED_CIFAR10)
endif
endif
ifdef CIFAR10_DIR
export CIFAR10_DIR
endif

.PHONY: install run run-all replicate deploy test test-fast lint clean

# pip byte-compiles the packages one file at a time (90 s of a 140 s install on 2 cores);
# compileall does it on every core (30 s). Like pip, it skips files this Python cannot compile
# (torch ships one written for Python 3.12), so its status is not the install's.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -e ".[test,deploy]"
	$(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null 2>&1 || true
	touch $@

install: $(VENV)/.installed

# Each step's result file is a make target: a rerun after a kill skips the finished steps;
# training resumes from its checkpoints, the comparison from its finished points (points/).
# A step whose input changed is redone with --overwrite, since make has decided its old results
# are stale; the comparison keeps its points unless they were built from an older model.pt.
run: install $(OUT)/sweep/sweep.json $(OUT)/compare/compare.json
	@echo "results: $(OUT)/train/metrics.json, $(OUT)/sweep/ (sweep.csv, plots), $(OUT)/compare/REPORT.md, models/"
	@echo
	@awk '/^## Recommendation/{on=1} /^## How this was measured/{on=0} on' $(OUT)/compare/REPORT.md

run-all: run $(OUT)/sweep_all/sweep.json $(OUT)/parity/parity.json $(OUT)/compare_all/compare.json \
	$(OUT)/compare_all/runtimes/runtimes.json $(OUT)/compare/deploy/frontier.json

deploy: run $(OUT)/compare/deploy/frontier.json
	@awk '/^## Recommendation/{on=1} /^## Every timed/{on=0} on' $(OUT)/compare/deploy/FRONTIER.md

$(OUT)/train/model.pt: | install
	$(PY) scripts/train.py --out-dir $(OUT)/train $$(test -d $(OUT)/train/checkpoints && echo --resume) $(TRAIN_ARGS)

# make run's sweep draws the factorized curve at six ranks to +-5% (the comparison, which decides,
# times to +-3% and includes the reconstructed control); run-all's sweep is the script's default:
# both modes, ten ranks, +-3%.
SWEEP_ARGS ?= --modes factorized --fractions 1.0,0.7,0.5,0.3,0.2,0.1 --target 0.05 --no-yardstick
$(OUT)/sweep/sweep.json: $(OUT)/train/model.pt
	$(PY) scripts/sweep_ranks.py --checkpoint $< --out-dir $(OUT)/sweep --overwrite $(SWEEP_ARGS)

$(OUT)/sweep_all/sweep.json: $(OUT)/train/model.pt
	$(PY) scripts/sweep_ranks.py --checkpoint $< --out-dir $(OUT)/sweep_all --overwrite

stale_points = $$(test -f $(1)/points/config.json && test $(2) -nt $(1)/points/config.json && echo --overwrite)

# make run's comparison times to +-5%: its budgets (0.5x and 0.25x dense) are decided at that
# width, and the stop-adjusted intervals need about 1.9x the rounds of plain 95% ones.
COMPARE_ARGS ?= --target 0.05
$(OUT)/compare/compare.json: $(OUT)/train/model.pt
	$(PY) scripts/compare_methods.py --checkpoint $< --out-dir $(OUT)/compare $(COMPARE_ARGS) \
		$(call stale_points,$(OUT)/compare,$<)

$(OUT)/parity/parity.json: $(OUT)/train/model.pt
	$(PY) scripts/parity_report.py --checkpoint $< --out-dir $(OUT)/parity --overwrite

$(OUT)/compare_all/compare.json: $(OUT)/train/model.pt
	$(PY) scripts/compare_methods.py --checkpoint $< --out-dir $(OUT)/compare_all --recipes all \
		$(call stale_points,$(OUT)/compare_all,$<)

$(OUT)/compare_all/runtimes/runtimes.json: $(OUT)/compare_all/compare.json
	$(PY) scripts/runtime_matrix.py --checkpoint $(OUT)/train/model.pt --compare-dir $(OUT)/compare_all --overwrite

# Every model make run's comparison saved, in fp32/bf16/int8 on eager, torch.compile, ONNX Runtime and
# OpenVINO, against dense fp32 eager; the winners saved in the form that runs them (deployed/).
DEPLOY_ARGS ?= --target 0.05
$(OUT)/compare/deploy/frontier.json: $(OUT)/compare/compare.json
	$(PY) scripts/deploy_frontier.py --checkpoint $(OUT)/train/model.pt --compare-dir $(OUT)/compare --overwrite \
		$(DEPLOY_ARGS)

# Claims that survive a retrain: the comparison on the seed-42 model and on SEEDS, each run with
# its own recipe seed (scripts/replicate.py resumes its finished and interrupted runs).
SEEDS ?= 43 44
$(OUT)/seed%/model.pt: | install
	$(PY) scripts/train.py --seed $* --out-dir $(OUT)/seed$* $$(test -d $(OUT)/seed$*/checkpoints && echo --resume) \
		$(TRAIN_ARGS)

# REPLICATE_ARGS go on to each comparison (scripts/replicate.py passes its other flags on).
REPLICATE_ARGS ?= $(COMPARE_ARGS)
replicate: $(OUT)/train/model.pt $(foreach s,$(SEEDS),$(OUT)/seed$(s)/model.pt)
	$(PY) scripts/replicate.py --checkpoints $^ --out-dir $(OUT)/replicate $(REPLICATE_ARGS)

# make run SMOKE=1 (any value): every step at tiny size, the small network (96,64,64,32), a few
# steps, 300 test images, 3 timing rounds: it checks an install or a change in about a minute and
# decides nothing. The suite runs it (tests/commands/test_make_run.py); pair it with OUT=elsewhere.
# It stands after every ?= above because each line appends to that default.
ifdef SMOKE
SMOKE_DATA := --test-limit 300 --no-progress-bar
SMOKE_TIMING := --min-rounds 3 --max-rounds 3 --queries 10
TRAIN_ARGS += --widths 96,64,64,32 --steps 6 --batch-size 32 --eval-every 3 --ckpt-every 3 --train-limit 2000 \
	$(SMOKE_DATA)
SWEEP_ARGS += --fractions 1.0,0.5 $(SMOKE_DATA) $(SMOKE_TIMING)
SMOKE_RECIPES := --finetune-steps 2 --distill-steps 2 --long-distill-steps 2 --calib-images 64 $(SMOKE_DATA) \
	$(SMOKE_TIMING)
COMPARE_ARGS += $(SMOKE_RECIPES)
REPLICATE_ARGS += --recipes "SVD f=0.5;dense int8"
DEPLOY_ARGS += --precisions fp32 int8-dynamic --runtimes eager onnxruntime $(SMOKE_DATA) $(SMOKE_TIMING)
endif

# ruff, then the type check (pyrefly, configured in pyproject.toml): a call that no longer fits the
# function it calls fails here, before any test runs.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pyrefly check --summary=none

test: lint
	$(PY) -m pytest -q --durations=25

test-fast: lint
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
