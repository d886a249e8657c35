# loop_ros developer entry points. `make demo` and `make test` work on a fresh machine: they
# create/update .venv (pinned), build the messages when msg/ changed, and set the ROS env.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
DEPS_STAMP := $(VENV)/.deps-stamp
MSGS_STAMP := $(VENV)/.msgs-stamp
MSG_INPUTS := $(wildcard msg/*.msg) CMakeLists.txt package.xml pyproject.toml scripts/executable.in

# Every ROS process, test and CI run stays on this machine (DDS discovery on loopback only).
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export MUJOCO_GL := egl
export PYTHONPATH := $(CURDIR)
export AMENT_PREFIX_PATH := $(CURDIR)/$(VENV)
export PYTHONUNBUFFERED := 1

DEMO_ARGS ?=
TEST_ARGS ?=

.PHONY: demo test venv msgs bench clean help

help:
	@echo "make demo   - run the main job (RC-car LOOP graph learning live; see README)"
	@echo "make test   - run the test suite"
	@echo "make bench  - speed and learning benchmarks (bench/)"

demo: $(MSGS_STAMP)
	$(VENV)/bin/loop-ros demo $(DEMO_ARGS)

test: $(MSGS_STAMP)
	$(PY) -m pytest $(TEST_ARGS)

venv: $(DEPS_STAMP)
msgs: $(MSGS_STAMP)

$(DEPS_STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0          # first and alone: the CPU wheel, never a CUDA build
	$(PIP) install -r requirements.txt
	touch $@

# Rebuild the generated messages (and the installed executables) only when their inputs change.
$(MSGS_STAMP): $(DEPS_STAMP) $(MSG_INPUTS)
	$(PIP) install --no-build-isolation --no-deps -C build-dir=build/{wheel_tag} .
	touch $@

bench: $(MSGS_STAMP)
	$(PY) bench/planner.py
	$(PY) bench/sim_speed.py

clean:
	rm -rf build $(VENV) .pytest_cache
