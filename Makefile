# Two commands for a new machine: `make demo` (the main job) and `make test` (the whole suite).
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := source scripts/env.sh &&
# Every process started here keeps DDS on loopback, in its own domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export FASTDDS_BUILTIN_TRANSPORTS ?= SHM
# Camera-sized best-effort frames need a larger shared-memory segment (see the file's comment).
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds_large_frames.xml
export OMP_NUM_THREADS ?= 2

.PHONY: help setup demo test lint bench golden clean

help:  ## list targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-7s %s\n", $$1, $$2}'

setup:  ## create .venv, install pinned requirements, build the workspace (idempotent)
	@bash scripts/setup.sh

demo: setup  ## replay the bundled camera stream through the node; print detections, memory, delay
	@$(ENV) ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-$$((40 + RANDOM % 100))} demand-layering demo

test: setup  ## run the whole test suite (linters, engine, node, bags); fails on 0 tests
	@$(ENV) python -m pytest test -p no:cacheprovider $(PYTEST_ARGS)

lint: setup  ## only the ROS linters (flake8, pep257, copyright)
	@$(ENV) python -m pytest test/test_flake8.py test/test_pep257.py test/test_copyright.py

bench: setup  ## memory-delay benchmark (long): JSON, plot and table under bench/
	@$(ENV) demand-layering bench --json bench/results.json --plot bench/curve.png \
		--table bench/table.md

golden: setup  ## regenerate the golden replay detections (after an intended change of results)
	@$(ENV) DL_REGENERATE_GOLDEN=1 python -m pytest test/ros/test_replay.py -k golden -p no:cacheprovider

clean:  ## remove build outputs (keeps .venv)
	rm -rf build install log
