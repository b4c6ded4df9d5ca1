# One command per job. Each target creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help install test test-fast test-gpu demo source release gradescope notebook bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package with its dev tools

test: $(STAMP)  ## run the whole test suite (CPU; slow tests included)
	$(PY) -m pytest -q

test-fast: $(STAMP)  ## the test suite without the slow (training, notebook) tests
	$(PY) -m pytest -q -m "not slow"

test-gpu: $(STAMP)  ## the GPU tier: full recipes trained on CUDA and their accuracy (needs a CUDA device)
	@$(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else \
	  'make test-gpu: no CUDA device is visible (torch.cuda.is_available() is False); run it on a GPU machine')"
	$(PY) -m pytest -v -s -m gpu --durations=0

demo: release  ## train both tasks (anomaly: the notebook's quick mode), draw the figures, grade the examples
	$(VENV)/bin/transformer-lab train reverse --out runs/demo/reverse --quiet
	$(VENV)/bin/transformer-lab train anomaly --quick --out runs/demo/anomaly --quiet
	$(VENV)/bin/transformer-lab plot pe --out runs/demo/positional_encoding.png
	$(VENV)/bin/transformer-lab plot lr --out runs/demo/lr_schedule.png
	rm -rf runs/demo/submissions runs/demo/grades
	$(VENV)/bin/autograder examples runs/demo/submissions --checkpoints runs/demo/reverse --checkpoints runs/demo/anomaly
	$(VENV)/bin/autograder grade runs/demo/submissions/* --out runs/demo/grades --jobs 2 --anomaly-features synthetic
	$(VENV)/bin/autograder report runs/demo/grades

source: $(STAMP)  ## rebuild the nbgrader source notebook from notebook/ + reference/
	$(PY) tools/build_notebook.py

release: source  ## regenerate release/ with nbgrader generate_assignment (fails on leaks)
	$(PY) tools/build_release.py

gradescope: release  ## build/gradescope/autograder.zip for Gradescope (FEATURES=path: the anomaly test features)
	$(PY) tools/build_gradescope.py $(if $(FEATURES),--features $(FEATURES))

notebook: $(STAMP)  ## run the source notebook on CPU in quick mode into runs/notebook
	$(PY) tools/run_notebook.py --out runs/notebook

bench: $(STAMP)  ## speed against the tutorial's own code and nbgrader, side by side (prints ratios)
	$(PY) benchmarks/bench_reverse.py
	$(PY) benchmarks/bench_anomaly.py
	$(PY) benchmarks/bench_features.py
	$(PY) benchmarks/bench_autograder.py

clean:  ## remove build outputs (keeps .venv)
	rm -rf runs build *.egg-info reference/*.egg-info .pytest_cache
