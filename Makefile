# `make demo`: set up and run the main job on the embedded data. `make test`: set up and run the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out

.PHONY: install demo test

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0  # the CPU wheel first: an unpinned torch pulls GBs of CUDA
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The field's methods the benchmarks measure EEGModel against (tests/test_peers.py runs them); never needed by eeg2arm.
# aeon 1.6.0 caps numpy < 2.5, scipy < 1.18 and scikit-learn < 1.10: where [test] installed newer ones, pip moves
# them back here, so the tests run on versions the peers accept.
$(VENV)/.bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

install: $(VENV)/.installed

demo: install
	PATH=$(abspath $(VENV))/bin:$$PATH OUT=$(OUT) bash scripts/demo.sh

test: install $(VENV)/.bench
	$(PY) -m pytest -q -m "not container"
