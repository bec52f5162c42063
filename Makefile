# Two set-up commands for a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch 2.13.0 lies on this workplace's disk; on a GPU machine set TORCH_SPEC to the build you want
# (e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128").
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MPLBACKEND := Agg

.PHONY: install lint test test-slow demo device-check clean-venv

install: $(STAMP)

# dev: tests and lint; export: onnx, onnxscript, onnxruntime, openvino (hourglass export, --runtime), which the parity
# tests need, so development installs it although a plain `pip install` of the package does not
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,export]'
	touch $(STAMP)

# ruff (pyproject.toml [tool.ruff]) and dvc.yaml's code deps against the stages' imports; `make test` runs it first
lint: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pipeline.dvc_deps --check

test: install lint
	$(BIN)/python -m pytest -q

# -rA: the report also shows what passing tests print (the measured accuracy and training time)
test-slow: install
	$(BIN)/python -m pytest -q -m slow -rA

demo: install
	$(BIN)/python -m pipeline.demo

# Before a long run: the training path on this machine's device, its speed, the loader, DDP scaling and the recipes'
# projected wall-clock (docs/device-check.md); at most 5 minutes on one GPU, about a minute on a CPU
device-check: install
	$(BIN)/python -m hourglass.bench device

clean-venv:
	rm -rf $(VENV)
