# localizer — the two everyday commands:
#   make run    set up the environment, then run notebooks 01-04 (papermill) and refresh figures/
#   make test   set up the environment, then unit tests + smoke notebook run + nbval
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Course data: the shared lion photos when present, else the Oxford-IIIT Pet dataset (downloaded).
DATA    ?= $(if $(wildcard ../shared/data/lion),../shared/data/lion,data/oxford-iiit-pet)
PROFILE ?= quick
RUN_DIR ?=
SMOKE_DIR := build/smoke

.PHONY: setup run test unit smoke nbval benchmark clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/python -m localizer run --data $(DATA) --profile $(PROFILE) --figures figures $(if $(RUN_DIR),--run-dir $(RUN_DIR))

test: unit smoke nbval

unit: setup
	$(BIN)/python -m pytest tests -q

smoke: setup
	$(BIN)/python -m localizer run --data ../shared/data/lion --profile smoke --run-dir $(SMOKE_DIR) --overwrite --quiet

nbval: setup
	$(BIN)/python -m pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg $(SMOKE_DIR)/notebooks/*.ipynb -q

benchmark: setup
	$(BIN)/python benchmarks/throughput.py --data $(DATA) --backbone resnet18 --image-size 256
	$(BIN)/python benchmarks/throughput.py --data $(DATA) --backbone efficientnet_lite0 --image-size 160

clean:
	rm -rf build
