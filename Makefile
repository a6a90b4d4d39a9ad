# `make demo`: set up and run the main job on the embedded data. `make test`: set up and run the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
EEG2ARM := $(VENV)/bin/eeg2arm
OUT ?= out
SAMPLE := eeg2arm/sample

.PHONY: install demo test

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0  # the CPU wheel first: an unpinned torch pulls GBs of CUDA
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	mkdir -p $(OUT)
	$(EEG2ARM) train --x $(SAMPLE)/X.npy --y $(SAMPLE)/y.npy --save $(OUT)/ckpt.pt \
		--classes 2 --elec 32 --bands 4 --epochs 15 --workers 0
	$(EEG2ARM) infer --ckpt $(OUT)/ckpt.pt --x $(SAMPLE)/X.npy

test: install
	$(PY) -m pytest -q -m "not container"
