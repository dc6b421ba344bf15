# REM Workbench: `make app` starts the app on the demo world, `make test` runs the tests.
# Both set up everything on a fresh Debian machine with Python 3.11 (as root) and skip
# what is already installed on a second run.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
WAYMO_PROTOS := waymo-open-dataset-tf-2-12-0==1.6.7
APT_PACKAGES := libusb-1.0-0 chromium chromium-driver
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: app test test-all bench bench-detector bench-experiment lint setup system clean-cache weights \
	reference verify

setup: system $(STAMP)

# open3d needs libusb; the browser test needs Chromium and its driver.
system:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned to 2.13.0 (a CPU wheel on local disk); the Waymo protos package pins
# ancient TensorFlow, so it goes in with --no-deps (its *_pb2 modules need only protobuf).
$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) install -q -c constraints.txt -e '.[test]'
	$(PIP) install -q --no-deps $(WAYMO_PROTOS)
	touch $(STAMP)

app: setup
	$(VENV)/bin/streamlit run app.py --server.headless true --server.port $(PORT)

# Two workers (pytest-xdist), a test file each at a time, one thread each (tests/conftest.py);
# the 20 slowest tests are listed at the end: where the suite's time goes.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=20

test-all: setup
	$(PY) -m pytest -q -m ''

# The benchmarks print their figures (last line JSON). zuko is a bench-only dependency
# (bench/density.py compares FFJORD's scoring speed with zuko's CNF). density, mine and app
# read the demo pipeline from the cache: the first run computes it (about ten minutes).
bench: setup
	$(PY) -m pip install -q -c constraints.txt 'zuko==1.6.0'
	$(PY) bench/calibrate.py
	$(PY) bench/world.py
	$(PY) bench/mine.py
	$(PY) bench/io.py
	$(PY) bench/density.py
	$(PY) bench/app.py --no-cold

# The detector on the demo world: 3 seeds of partial and full supervision, with the errors
# of its boxes of long vehicles (about 15 min).
bench-detector: setup
	$(PY) bench/detector.py

# The active-learning experiment's whole table on the demo world: about 45 min of training
# after the app's pipeline (runs are cached one by one; a second run only reads them).
bench-experiment: setup
	$(PY) bench/experiment.py

# Re-ship the demo ensemble (rem_core/weights/demo, with its provenance) after a change of
# the detector or of the demo world: tests/test_shipped.py fails until then.
weights: setup
	$(VENV)/bin/rem detect train --preset demo --retrain
	$(VENV)/bin/rem detect ship --preset demo

# Re-ship the experiment's reference tables (rem_core/reference_results/demo, with their
# provenance), which the Experiments page opens on, from the demo experiment's cached runs
# (`make bench-experiment` computes them). It trains nothing; it replaces the shipped folder
# with the same rows and seeds: bench/reference_command.py reads them from the shipped
# provenance, runs `rem experiment --preset demo --rows ... --seeds ... --ship-reference
# --force`, and puts the old folder back if the cache gave other seeds.
reference: setup
	$(PY) bench/reference_command.py --run

# Does this code, on this machine, give what ships? Retrains one shipped demo detector and
# compares its bytes, redoes 2 of the shipped reference's runs and compares their AP; prints
# a table, records it for the app, exits 1 if it differs and a paper claim's verdict changes
# (docs/experiment.md, "Machines"). About 15 min on 2 cores after the demo pipeline.
verify: setup
	$(VENV)/bin/rem verify --preset demo --runs 2

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean-cache:
	rm -rf cache/*/
