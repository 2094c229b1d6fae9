# parakeet-nb: the two commands are `make run` (main job) and `make test` (every test).
# Both set up .venv first; set-up is skipped when pyproject.toml and constraints.txt
# have not changed since the last one.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BUILD  := build
EXPORT := $(BUILD)/parakeet_coreml
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600

.PHONY: setup run test test-unit test-notebooks test-slow test-optests bench lab site train-digits data constraints clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

## The main job: export the tiny models, audit them, execute every notebook.
run: setup
	$(PY) -m parakeet_nb.mainjob --build $(BUILD)

## Every test: unit tests and the notebooks under nbval (strict).
test: setup
	$(PY) -m pytest tests notebooks $(NBVAL)

test-unit: setup
	$(PY) -m pytest tests

test-notebooks: setup
	$(PY) -m pytest notebooks $(NBVAL)

## Minutes of work with the full-size preset (not part of `make test`).
test-slow: setup
	$(PY) -m pytest tests -m slow

## coremltools' own MIL op tests (every iOS14-iOS18 file), predicted by milexec, one pytest
## process per file, JOBS at a time (default: the CPU count); 41 min on 2 cores.
## `make test` runs a subset that covers every op type milexec implements.
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
test-optests: setup
	$(PY) bench/optests.py --jobs $(JOBS)

## Speed and numerical-error report.
bench: setup
	$(PY) -m parakeet_nb.benchreport --build $(BUILD)

## The static HTML site of the executed notebooks (build/site/index.html); offline.
site: setup
	$(PY) -m parakeet_nb.teach.site --out $(BUILD)/site

## Train the spoken-digits TDT model: data/digits_tdt.nemo and its card (needs espeak-ng and
## sox the first time, to make build/digits/); about 40 min on 2 cores. Not part of `make test`.
train-digits: setup
	$(PY) -m parakeet_nb.digits train

lab: setup
	$(VENV)/bin/jupyter lab notebooks

## Re-make the speech clips in data/ (needs the Debian packages espeak-ng and sox).
data:
	$(PYTHON) data/make_clips.py

## Re-pin every package after a deliberate upgrade.
constraints: setup
	$(PY) -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu/torch==\1/' > constraints.tmp
	@mv constraints.tmp constraints.txt

clean:
	rm -rf $(BUILD)
