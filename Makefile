# hand_scene_perception: `make demo` and `make test` work on a fresh machine; both run `make setup` first.
#
# Variables: PYTHON (interpreter for the venv, default python3.11; 3.10-3.13 work),
#            ROS_LINE (jazzy | kilted: which ROS 2 wheels; default jazzy, the LTS line),
#            VENV (venv folder, default .venv-$(ROS_LINE): one per line, so no venv mixes two lines' wheels).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3.11
ROS_LINE ?= jazzy
ifeq ($(wildcard requirements/ros-$(ROS_LINE).txt),)
$(error ROS_LINE=$(ROS_LINE) has no requirements/ros-$(ROS_LINE).txt; use jazzy or kilted)
endif
VENV ?= .venv-$(ROS_LINE)
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.setup-complete

# Network safety (ARCHITECTURE.md, Environment): DDS discovery stays on this machine for every process started here.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
# Tests bring their own DDS domain; keep the user's from leaking in.
export PYTHONDONTWRITEBYTECODE := 1

SETUP_INPUTS := Makefile setup.py package.xml requirements/python.txt requirements/dev.txt \
	requirements/ros-$(ROS_LINE).txt tools/build_interfaces.py \
	$(wildcard hand_scene_msgs/msg/*.msg hand_scene_msgs/srv/*.srv) \
	hand_scene_msgs/CMakeLists.txt hand_scene_msgs/package.xml

.PHONY: setup demo test lint colcon-check clean
.DEFAULT_GOAL := demo

setup: $(SETUP_STAMP)

# Idempotent: re-runs only when an input above changed; a complete venv makes this a no-op.
$(SETUP_STAMP): $(SETUP_INPUTS)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=python3.X (3.10-3.13)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/ros-$(ROS_LINE).txt \
		-r requirements/python.txt -r requirements/dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) tools/build_interfaces.py
	@touch $@
	@echo "setup: $(VENV) ready ($$($(PY) --version), ROS 2 $(ROS_LINE) wheels)"

demo: setup
	$(VENV)/bin/hand-scene demo

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(PY) -m pytest test

# Builds both packages the way a ROS workspace does (README "ROS 2 workspace"), with colcon from PyPI.
colcon-check: setup
	$(PY) -m pytest test/test_colcon_build.py

clean:
	rm -rf build install log outputs $(VENV)
