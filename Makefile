# videoattn: the two set-up commands (`make demo`, `make test`) and helpers (`make docs`, `make docs-serve`).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test demo docs docs-serve clean ffmpeg-libs

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch/torchvision pinned to the CUDA-free-on-CPU releases that lie on the machine's disk;
# any torch>=2.4 works, the pin only avoids a multi-GB download.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

install: $(STAMP)

# The torchcodec backend (its tests run in `make test`) needs the system's FFmpeg shared
# libraries (PyAV and decord bundle their own). Installed with apt-get where it can (root on
# Debian/Ubuntu), else a message saying what to install.
ffmpeg-libs:
	@if ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so\.'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing FFmpeg's shared libraries for torchcodec: apt-get install -y ffmpeg"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	else \
		echo "note: FFmpeg's shared libraries are missing; the torchcodec backend and its tests need them:"; \
		echo "      sudo apt-get install ffmpeg (Debian/Ubuntu), conda install -c conda-forge 'ffmpeg<8', or brew install ffmpeg"; \
	fi

test: $(STAMP) ffmpeg-libs
	$(PY) -m pytest -q tests
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict  # not --quiet: it hides the warnings --strict counts

# The documentation site (docs/, mkdocs.yml): tables rendered from docs/results/ first, then built
# with --strict (a warning, a broken link or a missing reference fails) into site/.
docs: $(STAMP)
	$(PY) scripts/render_docs.py
	$(PY) -m mkdocs build --strict

docs-serve: $(STAMP)
	$(PY) scripts/render_docs.py
	$(PY) -m mkdocs serve

# The embedded default: generate the synthetic relations dataset, train i3d_probe_nl
# (configs/relations.yaml + configs/demo.yaml), test it, print one line against the baseline.
demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

clean:
	rm -rf $(VENV) build site *.egg-info
