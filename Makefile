# localizer — the two everyday commands:
#   make run    set up the environment, then run notebooks 01-04 (papermill) into a new run folder
#               under runs/ (tracked files are not touched)
#   make test   set up the environment, then the tests (one smoke run of the notebooks among them)
# and:
#   make lab    JupyterLab on the notebooks, in the project's environment
#   make report the published report: a run of REPORT_PROFILE (quick; best takes 45-66 min on 2 cores)
#               in runs/report-PROFILE (trained when missing or unfinished, reused when finished), its
#               executed notebooks into report/ and its figures into figures/ (replacing those there)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Dataset of `make run` and `make benchmark`. Empty: the course data, decided by
# localizer.data.download.default_data (../shared/data/lion when it exists, else data/oxford-iiit-pet, downloaded).
DATA    ?=
PROFILE ?= auto
RUN_DIR ?=
# Processes that train (make run NPROC=2: one per GPU, or CPU processes; torch.distributed.run). Empty: one.
NPROC ?=
# The run behind report/ and figures/ (ignored by git, like all of runs/).
REPORT_PROFILE ?= quick
REPORT_RUN ?= runs/report-$(REPORT_PROFILE)
# Test data: the synthetic dataset (localizer.data.synthetic), drawn in a second; no download, no ../shared.
SYNTHETIC  := build/synthetic
SMOKE_DIR  := build/smoke
# The smoke run whose marked cell outputs become tests/notebooks/ (make notebook-expectations).
EXPECTATIONS_DIR := build/expectations

.PHONY: setup run lab report test synthetic smoke notebook-expectations benchmark docs clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/python -m localizer run $(if $(DATA),--data $(DATA)) --profile $(PROFILE) $(if $(RUN_DIR),--run-dir $(RUN_DIR)) \
		$(if $(NPROC),--nproc $(NPROC))

# LAB_ARGS: more jupyter lab options, e.g. --allow-root in a container that runs as root
lab: setup
	$(BIN)/jupyter lab notebooks $(LAB_ARGS)

report: setup
	$(BIN)/python -m localizer run $(if $(DATA),--data $(DATA)) --profile $(REPORT_PROFILE) --run-dir $(REPORT_RUN) --resume --overwrite \
		--figures figures --publish report

# The notebooks run once, with the smoke profile through papermill as make run runs them
# (tests/test_notebooks.py): their marked cells are compared with tests/notebooks/.
test: setup
	$(BIN)/python -m pytest tests -q

synthetic: setup
	$(BIN)/python -m localizer synthetic $(SYNTHETIC) --overwrite

smoke: synthetic
	$(BIN)/python -m localizer run --data $(SYNTHETIC)/yolo --profile smoke --run-dir $(SMOKE_DIR) --overwrite --quiet

# After a change to the notebooks (or to what their marked cells print): re-make the committed
# expectations (then review `git diff tests/notebooks`).
notebook-expectations: synthetic
	$(BIN)/python -m localizer run --data $(SYNTHETIC)/yolo --profile smoke --run-dir $(EXPECTATIONS_DIR) --overwrite --quiet
	$(BIN)/python tests/notebooks/keep_checked_outputs.py $(EXPECTATIONS_DIR)/notebooks/*.ipynb --out tests/notebooks

# Training and prediction speed against the hardware's ceiling, predict with PyTorch against onnxruntime, and
# BatchAugment against kornia (kornia is installed for this comparison only: localizer does not use it).
benchmark: setup
	$(BIN)/python benchmarks/throughput.py $(if $(DATA),--data $(DATA)) --backbone resnet18 --image-size 256
	$(BIN)/python benchmarks/throughput.py $(if $(DATA),--data $(DATA)) --backbone efficientnet_lite0 --image-size 160
	$(BIN)/python benchmarks/predict_speed.py $(if $(DATA),--photos $(DATA)) --threads 2
	$(BIN)/python -m pip install --quiet kornia==0.9.0
	$(BIN)/python benchmarks/augment.py --affine-p 0
	$(BIN)/python benchmarks/augment.py --affine-p 0.5

# docs/cli.md's generated part: every command's --help (tests/test_docs.py checks it)
docs: setup
	$(BIN)/python docs/make_cli_doc.py

clean:
	rm -rf build
