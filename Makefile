# videoattn: the two set-up commands (`make demo`, `make test`) and helpers.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch/torchvision pinned to the CUDA-free-on-CPU releases that lie on the machine's disk;
# any torch>=2.4 works, the pin only avoids a multi-GB download.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

# The embedded default: generate the synthetic relations dataset, train i3d_probe_nl
# (configs/relations.yaml + configs/demo.yaml), test it, print one line against the baseline.
demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

clean:
	rm -rf $(VENV) build *.egg-info
